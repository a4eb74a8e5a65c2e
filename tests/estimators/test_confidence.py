"""The confidence record's factors, hand-derived, and which doubts the refinement alone caused."""
from __future__ import annotations

import pytest

from blindsr.estimators.confidence import LOW_SCORE, assess, others_trusted, refinement_alone
from blindsr.estimators.likelihood import MAX_LOG_SCALE


def provenance(physical: int = 4, agreement: float = 50.0, informative: int = 40, count: int = 40,
               log_scales: tuple[float, float] = (0.1, -0.2)) -> dict:
    return {"diagnostics": {"physical_runs": physical, "texture": {"informative": informative, "count": count}},
            "restart_agreement_db": agreement,
            "refinement": {"log_scales": list(log_scales), "tiles": {"in_focus": count, "count": count}}}


def test_factors_are_the_documented_ramps():
    # agreement 40 dB: halfway from 35 to 45; 10 of 40 tiles informative: (0.25 - 0) / 0.5; moved
    # 0.85: halfway from FREE_MOVE 0.5 to the bound 1.2, so the refinement factor is 0.5.
    c = assess(provenance(physical=1, agreement=40.0, informative=10, log_scales=(0.3, -0.85)), [])
    assert c["factors"] == {"runs": 0.5, "agreement": 0.5, "texture": 0.5, "refinement": 0.5}
    assert c["score"] == pytest.approx(0.0625) and c["level"] == "low" and c["refinement_moved"] == 0.85


def test_the_refinement_alone_is_blamed_only_when_the_rest_is_trusted():
    at_bound = provenance(log_scales=(MAX_LOG_SCALE, 0.0))
    c = assess(at_bound, [])
    assert c["score"] == 0.0 and others_trusted(c) and refinement_alone(c)
    # a trusted estimate is not a fallback of any kind
    assert not refinement_alone(assess(provenance(), []))
    # any reason (no texture, collapsed runs) rules it out, as does a doubt about the runs
    assert not refinement_alone(assess(at_bound, ["every KernelGAN run collapsed to a non-physical kernel"]))
    poor_runs = assess(provenance(agreement=37.0, log_scales=(MAX_LOG_SCALE, 0.0)), [])
    assert poor_runs["factors"]["agreement"] == pytest.approx(0.2) and not others_trusted(poor_runs)
    assert not refinement_alone(poor_runs)
    # the other factors' product exactly at LOW_SCORE still counts as trusted
    edge = assess(provenance(physical=1, agreement=40.0, log_scales=(MAX_LOG_SCALE, 0.0)), [])
    assert edge["factors"]["runs"] * edge["factors"]["agreement"] == LOW_SCORE and refinement_alone(edge)
