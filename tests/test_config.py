"""One definition per option: the stage schemas are derived from the stages' own options, tasks
carry typed configs, and range checks live with the options (applied once, at composition)."""
from __future__ import annotations

import dataclasses
import pickle

import pytest
from omegaconf import OmegaConf

import zssr
from blindsr.backends.srmd import SRMDOptions
from blindsr.cli import compose
from blindsr.config import group_schemas, plain
from blindsr.errors import UsageError
from blindsr.estimators.kernelgan.settings import DEFAULT_PRESET, KernelGANSettings
from blindsr.executors import LocalExecutor
from blindsr.stages import build_backend, build_estimator


def field_names(cls: type) -> set[str]:
    return {f.name for f in dataclasses.fields(cls)}


def test_preset_stage_schemas_are_the_settings_fields_as_unset_overrides():
    schemas = group_schemas()
    kernelgan = schemas["estimator"]["kernelgan"]
    assert field_names(kernelgan) == field_names(KernelGANSettings) | {"name", "preset"}
    defaults = kernelgan()
    assert defaults.preset == DEFAULT_PRESET
    assert all(getattr(defaults, f) is None for f in field_names(KernelGANSettings))
    zssr_schema = schemas["sr"]["zssr"]
    assert field_names(zssr_schema) == field_names(zssr.ZSSRSettings) | {"name", "preset"}
    assert "workers" not in field_names(kernelgan) and "max_iterations" not in field_names(zssr_schema)


def test_plain_stage_schemas_keep_the_options_defaults():
    srmd = group_schemas()["sr"]["srmd"]()
    for f in dataclasses.fields(SRMDOptions):
        assert getattr(srmd, f.name) == f.default
    local = group_schemas()["executor"]["local"]()
    assert (local.workers, local.threads_per_worker) == (LocalExecutor().workers, LocalExecutor().threads_per_worker)
    assert set(group_schemas()["estimator"]) >= {"gt", "kernelgan", "bicubic"}
    assert set(group_schemas()["sr"]) >= {"none", "zssr", "srmd", "bicubic"}


def test_every_settings_field_is_settable_from_the_command_line():
    cfg = compose("pipeline", ["input=x.png", "sr=zssr", "sr.max_iters=7", "sr.adam_betas=[0.8,0.9]",
                               "estimator.g_structure=[7,5,3,1]", "estimator.sparsity_weight=2.5"])
    estimator = build_estimator(cfg.estimator, "cpu")
    assert estimator.settings.g_structure == (7, 5, 3, 1) and estimator.settings.sparsity_weight == 2.5
    assert estimator.settings.iterations == KernelGANSettings(iterations=1000).iterations  # the preset's
    backend = build_backend(cfg.sr, "cpu")
    assert backend.settings.max_iters == 7 and backend.settings.adam_betas == (0.8, 0.9)
    assert backend.settings.schedule == zssr.PRESETS["fast"].schedule


@pytest.mark.parametrize("args, needle", [
    (["estimator.workers=2"], "workers"),
    (["sr=zssr", "sr.max_iterations=5"], "max_iterations"),
    (["sr=zssr", "sr.schedule=linear"], "schedule"),
    (["sr=srmd", "sr.adapter=exact"], "adapter"),
    (["estimator.refine=tiles"], "refine"),
])
def test_unknown_or_bad_stage_options_are_usage_errors(args, needle):
    with pytest.raises(UsageError, match=needle):
        cfg = compose("pipeline", ["input=x.png", *args])
        build_estimator(cfg.estimator, "cpu")
        build_backend(cfg.sr, "cpu")


@pytest.mark.parametrize("verb, args", [
    ("pipeline", ["input=x"]), ("sr", ["input=x", "kernel=k.npy"]), ("estimate", ["input=x"]),
    ("batch", ["input=x", "output=y"]), ("eval", ["dataset=d"])])
def test_range_checks_apply_to_every_verb_at_composition(verb, args):
    with pytest.raises(UsageError, match=r"scale=3: must be one of 2, 4"):
        compose(verb, [*args, "scale=3"])
    if verb != "estimate":
        for width in ("0.0", "-1.0", "1.01"):
            with pytest.raises(UsageError, match=rf"handoff_width={width}: must be in \(0, 1\]"):
                compose(verb, [*args, f"handoff_width={width}"])
    assert compose(verb, [*args, "scale=4"]).scale == 4


def test_degrade_scales_and_max_pixels_are_checked():
    with pytest.raises(UsageError, match="scales"):
        compose("degrade", ["input=a", "output=b", "scales=[3]"])
    with pytest.raises(UsageError, match="max_pixels"):
        compose("pipeline", ["input=a", "max_pixels=0"])


def test_benchmark_only_stages_are_refused_outside_eval():
    cfg = compose("pipeline", ["input=x.png", "estimator=gt", "sr=none"])
    with pytest.raises(UsageError, match="estimator=gt"):
        build_estimator(cfg.estimator, "cpu")
    with pytest.raises(UsageError, match="sr=none"):
        build_backend(cfg.sr, "cpu")
    assert build_estimator(cfg.estimator, "cpu", benchmark=True).learned is False


def test_typed_task_configs_pickle_and_drop_unset_overrides():
    cfg = compose("batch", ["input=a", "output=b", "sr=zssr", "sr.max_iters=5", "executor=local"])
    config = OmegaConf.to_object(cfg)
    assert type(config.estimator).__name__ == "EstimatorKernelganConfig"
    assert pickle.loads(pickle.dumps(config)) == config
    data = plain(config)
    assert data["sr"] == {"name": "zssr", "preset": "fast", "max_iters": 5}
    assert data["estimator"] == {"name": "kernelgan", "preset": DEFAULT_PRESET}
    assert data["handoff_width"] == cfg.handoff_width and data["executor"]["workers"] == LocalExecutor().workers


def test_help_shows_the_values_of_the_selected_presets(capsys):
    from blindsr.cli import main

    assert main(["pipeline", "sr=zssr", "sr.preset=kernelgan", "--help"]) == 0
    out = capsys.readouterr().out
    assert "sr=zssr preset kernelgan:" in out and f"max_iters: {zssr.PRESETS['kernelgan'].max_iters}" in out
    assert f"estimator=kernelgan preset {DEFAULT_PRESET}:" in out


def test_batch_resumes_by_what_the_stages_run(monkeypatch):
    """A batch folder resumes only when its stages would run the same settings: a release that changes
    what a preset runs makes the folder's images again; an override equal to the preset's own value
    is the same run."""
    from blindsr.batch import fingerprint
    from blindsr.estimators.kernelgan.settings import PRESETS

    def batch(*args: str) -> str:
        return fingerprint(OmegaConf.to_object(compose("batch", ["input=a", "output=b", "sr=zssr", *args])))

    before = batch()
    shipped = PRESETS[DEFAULT_PRESET]
    assert batch(f"estimator.g_crop={shipped.g_crop}", f"sr.max_iters={zssr.PRESETS['fast'].max_iters}") == before
    assert batch(f"estimator.g_crop={shipped.g_crop + 8}") != before
    monkeypatch.setitem(PRESETS, DEFAULT_PRESET, dataclasses.replace(shipped, g_crop=shipped.g_crop + 8))
    assert batch() != before
    assert batch(f"estimator.g_crop={shipped.g_crop}") == before
    # A change in the code that no setting shows: the stage's ``results_version``.
    from blindsr.estimators.kernelgan import KernelGANEstimator
    monkeypatch.setattr(KernelGANEstimator, "results_version", KernelGANEstimator.results_version + 1)
    assert batch(f"estimator.g_crop={shipped.g_crop}") != before
