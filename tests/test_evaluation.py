"""The Table-1 bookkeeping of ``eval`` (blindsr.evaluation) on hand-made results: cache keys,
which combinations super-resolve, the per-image join and the summary rows."""
from __future__ import annotations

import dataclasses
import hashlib
import json
import math

import pytest
from omegaconf import OmegaConf

import zssr
from blindsr.config import group_schemas, resolved_settings
from blindsr.errors import UsageError
from blindsr.estimators.kernelgan.settings import DEFAULT_PRESET
from blindsr.estimators.kernelgan.settings import PRESETS as KERNELGAN_PRESETS
from blindsr.evaluation import PUBLISHED_DIV2KRK, lost_task, merge, sr_combinations, stage_key, summary_row


def key_of(name: str, values: dict) -> str:
    """The documented key, computed here: the name and the first 8 hex digits of the SHA-256 of
    the sorted JSON of what the stage runs."""
    return name + "-" + hashlib.sha256(json.dumps(values, sort_keys=True).encode()).hexdigest()[:8]


def test_stage_key_is_the_name_and_a_hash_of_what_the_stage_runs():
    config = {"name": "zssr", "preset": "fast", "max_iters": 800}
    # The fast preset with the override, and the noise level it runs with unless one is set.
    runs = dataclasses.asdict(dataclasses.replace(zssr.PRESETS["fast"], max_iters=800, noise_std="auto"))
    assert stage_key("sr", config) == key_of("zssr", {"name": "zssr", "preset": "fast", **runs})
    assert stage_key("sr", dict(reversed(list(config.items())))) == stage_key("sr", config)  # order-free
    assert stage_key("sr", {**config, "max_iters": 801}) != stage_key("sr", config)
    assert stage_key("sr", {**config, "schedule": None}) == stage_key("sr", config)  # unset overrides do not count
    assert stage_key("sr", {**config, "schedule": "cosine"}) == stage_key("sr", config)  # nor the preset's own value
    typed = group_schemas()["sr"]["zssr"](max_iters=800)  # the typed config gives the same key
    assert stage_key("sr", typed) == stage_key("sr", config)


def test_stage_key_changes_when_a_preset_changes_what_it_runs(monkeypatch):
    """A release that changes a preset's values (the default KernelGAN preset's G crop did) must not
    find the results of the old values under the same key."""
    for group, name, presets, preset, setting in (("estimator", "kernelgan", KERNELGAN_PRESETS, DEFAULT_PRESET, "g_crop"),
                                                  ("sr", "zssr", zssr.PRESETS, "fast", "max_iters")):
        before = stage_key(group, {"name": name})
        shipped = presets[preset]
        monkeypatch.setitem(presets, preset, dataclasses.replace(shipped, **{setting: getattr(shipped, setting) + 8}))
        assert stage_key(group, {"name": name}) != before
        monkeypatch.setitem(presets, preset, shipped)
        assert stage_key(group, {"name": name}) == before


def test_stage_key_counts_a_stage_results_version(monkeypatch):
    """A change in a stage's code that no setting shows is counted by the class's
    ``results_version``: hashed with the settings, so raising it makes the stage's results again; a
    class without one (version 1) is keyed by its settings alone, as before versioning."""
    from blindsr.backends.srmd import SRMDBackend
    from blindsr.estimators.kernelgan import KernelGANEstimator

    runs = {"name": "kernelgan", "preset": DEFAULT_PRESET, **dataclasses.asdict(KERNELGAN_PRESETS[DEFAULT_PRESET])}
    assert KernelGANEstimator.results_version == 2
    assert resolved_settings("estimator", {"name": "kernelgan"})["results_version"] == 2
    assert stage_key("estimator", {"name": "kernelgan"}) == key_of("kernelgan", {**runs, "results_version": 2})
    # The preset unset is the stage's default preset named.
    named = {"name": "kernelgan", "preset": DEFAULT_PRESET}
    assert stage_key("estimator", named) == stage_key("estimator", {"name": "kernelgan"})
    monkeypatch.setattr(KernelGANEstimator, "results_version", 3)
    assert stage_key("estimator", {"name": "kernelgan"}) == key_of("kernelgan", {**runs, "results_version": 3})
    srmd = {"name": "srmd", "noise": 5.0}
    assert not hasattr(SRMDBackend, "results_version") and stage_key("sr", srmd) == key_of("srmd", srmd)
    monkeypatch.setattr(SRMDBackend, "results_version", 2, raising=False)
    assert stage_key("sr", srmd) == key_of("srmd", {**srmd, "results_version": 2})


def test_a_key_from_the_recorded_settings_is_the_key_of_the_config():
    """eval records each stage as its resolved settings; a key made from that record (as a
    benchmark that reads the table does) finds the same cache folder."""
    for group, config in (("estimator", {"name": "kernelgan", "iterations": 300}), ("sr", {"name": "zssr"}),
                          ("sr", {"name": "srmd", "noise": 5.0})):
        assert stage_key(group, resolved_settings(group, config)) == stage_key(group, config)


def test_keys_of_stages_without_presets_are_their_settings():
    """Stages without presets carry every default in their config: their keys are as before, so the
    folders already written for them (SRMD's, the ground truth's) are found again."""
    srmd = OmegaConf.to_object(OmegaConf.structured(group_schemas()["sr"]["srmd"]))
    assert stage_key("sr", srmd) == key_of("srmd", {k: v for k, v in dataclasses.asdict(srmd).items() if v is not None})
    assert stage_key("estimator", {"name": "gt"}) == key_of("gt", {"name": "gt"})
    assert stage_key("sr", {"name": "bicubic"}) == key_of("bicubic", {"name": "bicubic"})


def test_a_bad_preset_in_a_key_is_a_usage_error():
    with pytest.raises(UsageError, match="preset"):
        stage_key("estimator", {"name": "kernelgan", "preset": "no-such-preset"})


def test_bicubic_interpolation_is_one_row_and_none_scores_kernels_only():
    assert sr_combinations(["gt", "kernelgan"], ["none", "bicubic", "zssr"]) == [
        ("gt", "bicubic"), ("gt", "zssr"), ("kernelgan", "zssr")]
    assert sr_combinations(["kernelgan"], ["none"]) == []
    assert sr_combinations(["bicubic", "gt"], ["srmd", "bicubic"]) == [
        ("bicubic", "srmd"), ("bicubic", "bicubic"), ("gt", "srmd")]


def results() -> list[dict]:
    kernel = [{"estimator": e, "sr": None, "image": f"im_{n}", "kernel_psnr": 40.0 + n + (e == "gt") * 10,
               "estimate_s": 1.0} for e in ("gt", "kernelgan") for n in (10, 2)]
    sr = [{"estimator": e, "sr": s, "image": f"im_{n}", "psnr": 30.0 + n, "ssim": 0.8, "sr_s": 2.0}
          for e, s in (("gt", "zssr"), ("kernelgan", "zssr"), ("gt", "bicubic")) for n in (10, 2)]
    sr[1]["psnr"] = 29.0  # gt + zssr on im_2
    return kernel + sr


def test_merge_joins_kernel_and_sr_results_per_image():
    combos = merge(results(), ["gt", "kernelgan"], ["none", "bicubic", "zssr"],
                   sr_combinations(["gt", "kernelgan"], ["none", "bicubic", "zssr"]))
    labels = [label for _, label in combos]
    assert labels == ["GT kernel (kernel only)", "KernelGAN (kernel only)", "bicubic interpolation",
                      "GT kernel + ZSSR", "KernelGAN + ZSSR"]
    rows = dict(((key, label), r) for (key, label), r in combos.items())
    gt_zssr = rows[(("gt", "zssr"), "GT kernel + ZSSR")]
    assert [r["image"] for r in gt_zssr] == ["im_2", "im_10"]  # numeric order, not text order
    assert gt_zssr[0] == {"image": "im_2", "kernel_psnr": 52.0, "estimate_s": 1.0, "psnr": 29.0, "ssim": 0.8,
                          "sr_s": 2.0}
    bicubic = rows[(("gt", "bicubic"), "bicubic interpolation")]
    assert "kernel_psnr" not in bicubic[0]  # interpolation uses no kernel
    only = rows[(("kernelgan", "none"), "KernelGAN (kernel only)")]
    assert only[1] == {"image": "im_10", "kernel_psnr": 50.0, "estimate_s": 1.0}


def test_summary_row_means_skip_failures_and_missing_values():
    rows = [{"image": "im_1", "psnr": 30.0, "ssim": 0.9, "kernel_psnr": math.nan},
            {"image": "im_2", "psnr": 32.0, "ssim": 0.7, "kernel_psnr": 45.0},
            {"image": "im_3", "error": "boom", "psnr": 99.0}]
    row = summary_row("KernelGAN + ZSSR", rows, 2, ("kernelgan", "zssr"))
    assert row["images"] == 2 and row["failed"] == 1
    assert row["psnr"] == pytest.approx(31.0) and row["ssim"] == pytest.approx(0.8)
    assert row["kernel_psnr"] == pytest.approx(45.0) and row["sr_s"] is None
    assert (row["published_psnr"], row["published_ssim"]) == PUBLISHED_DIV2KRK[("kernelgan", "zssr", 2)] == (30.36, 0.8669)
    assert "published_psnr" not in summary_row("x", rows, 2, None)


def test_a_lost_task_becomes_an_error_row():
    class Entry:
        name = "im_7"

    class Task:
        entry, estimator, sr = Entry(), group_schemas()["estimator"]["kernelgan"](), None

    assert lost_task(Task(), "worker died") == {"image": "im_7", "estimator": "kernelgan", "sr": None,
                                                 "error": "worker died"}
    assert json.dumps(lost_task(Task(), "x"))  # plain data, as results are written as JSON
