"""How far a kernel estimate can be trusted, from what the estimator saw while making it.

Every learned kernel carries ``provenance["confidence"]``: a score in [0, 1], a level, and the
reasons behind a low one. The score is the product of four factors, each 1 when its evidence is
ample:

* runs - how many of KernelGAN's restarts stayed physical (two or more: 1);
* agreement - how closely the kept restarts agree (kernel PSNR between them; 45 dB or more: 1,
  35 dB or less: 0);
* texture - the share of small tiles that say anything about a blur's width, scored against the
  bicubic kernel (a half or more: 1);
* refinement - how far the likelihood refinement stretched KernelGAN's kernel (up to e^0.5 per
  axis: 1, falling to 0 at the refinement's bound).

The level is ``low`` when a reason forced a fallback (``FALLBACK_REASONS``) or the score is below
``LOW_SCORE``; the estimator then hands over the kernel its fallback rule names and warns.
"""
from __future__ import annotations

import math
from typing import Any

from blindsr.estimators.likelihood import MAX_LOG_SCALE

LOW_SCORE = 0.25
UNTRUSTED = "kernel estimate not trusted"  # how the estimator's fallback warning begins
GOOD_AGREEMENT_DB, POOR_AGREEMENT_DB = 45.0, 35.0
FREE_MOVE = 0.5  # log-scale the refinement may move an axis before the factor falls


def _ramp(value: float, zero: float, one: float) -> float:
    return float(min(1.0, max(0.0, (value - zero) / (one - zero))))


def assess(provenance: dict[str, Any], reasons: list[str]) -> dict[str, Any]:
    """The confidence record of a kernel from its estimator provenance; ``reasons`` are the
    fallbacks already taken (each a sentence naming what went wrong)."""
    diagnostics = provenance.get("diagnostics", {})
    physical = int(diagnostics.get("physical_runs", provenance.get("restarts", 1)))
    agreement = provenance.get("restart_agreement_db")
    refinement = provenance.get("refinement", {})
    tiles = refinement.get("tiles", {})
    texture = diagnostics.get("texture") or tiles
    moved = max((abs(v) for v in refinement.get("log_scales", [0.0])), default=0.0)
    factors = {
        "runs": _ramp(physical, 0, 2),
        "agreement": 1.0 if agreement is None or not math.isfinite(agreement)
        else _ramp(agreement, POOR_AGREEMENT_DB, GOOD_AGREEMENT_DB),
        "texture": 1.0 if not texture.get("count") else _ramp(texture["informative"] / texture["count"], 0.0, 0.5),
        "refinement": 1.0 - _ramp(moved, FREE_MOVE, MAX_LOG_SCALE),
    }
    score = math.prod(factors.values())
    level = "low" if reasons or score < LOW_SCORE else "high"
    return {"score": round(score, 4), "level": level, "factors": {k: round(v, 4) for k, v in factors.items()},
            "reasons": list(reasons), "physical_runs": physical, "refinement_moved": round(moved, 4),
            "in_focus_tiles": tiles.get("in_focus"), "tiles": tiles.get("count")}


def others_trusted(confidence: dict[str, Any]) -> bool:
    """Whether a confidence record trusts everything but the refinement: no reason forced a
    fallback and the product of the other factors is at least ``LOW_SCORE``."""
    others = math.prod(v for k, v in confidence["factors"].items() if k != "refinement")
    return not confidence["reasons"] and others >= LOW_SCORE


def refinement_alone(confidence: dict[str, Any]) -> bool:
    """Whether the refinement alone made a confidence low (``others_trusted`` and a low level):
    then KernelGAN's estimate before the refinement is still worth handing over."""
    return confidence["level"] == "low" and others_trusted(confidence)
