"""Typed schemas for every verb's Hydra config and the swappable stage groups.

The YAML files in ``conf/`` compose these (``defaults: [<verb>_schema, ...]``); the schemas give
the types and defaults, so a typo or a wrong type fails before any work starts. Option names in
the ``estimator``/``sr``/``executor`` groups equal the registry names in code.

Where each default lives (once):

* a stage's options (``estimator.*``, ``sr.*``, ``executor.*``): in the stage's own options
  dataclass (``Options`` of the registered class, e.g. ``KernelGANSettings`` and its presets,
  ``zssr.ZSSRSettings`` and its presets, ``SRMDOptions``, the executor dataclasses); the group
  schemas here are derived from them (``stage_schema``);
* a verb's own keys (``scale``, ``seed``, ``handoff_width``, ...): the verb dataclasses below,
  with their range checks beside them (``checked``), applied once when the command line is composed.
"""
from __future__ import annotations

import dataclasses
import functools
import types
import typing
from dataclasses import dataclass, field
from typing import Any, Callable, List, Optional

from hydra.core.config_store import ConfigStore
from omegaconf import MISSING, DictConfig, OmegaConf

from blindsr.errors import UsageError
from blindsr.light import check_light

# Keys whose values are file or folder names: taken verbatim from the command line (spaces,
# commas, '=', quotes, non-ASCII all allowed), never parsed by Hydra's override grammar.
PATH_KEYS = ("input", "output", "dataset", "kernel", "gt")
GROUPS = ("estimator", "sr", "executor")


def _schema_type(annotation: Any) -> Any:
    """An option's type as OmegaConf takes it: tuples become lists, ``X | None`` Optional[X]."""
    args = [a for a in typing.get_args(annotation) if a is not Ellipsis]
    if typing.get_origin(annotation) is tuple:
        return List[args[0]]
    if isinstance(annotation, types.UnionType) or typing.get_origin(annotation) is typing.Union:
        inner = [a for a in args if a is not type(None)]
        return Optional[_schema_type(inner[0])] if len(inner) == 1 else Any
    return annotation


def stage_schema(group: str, name: str, options: type, default_preset: str | None = None) -> type:
    """The Hydra schema of option ``name`` of a stage group, derived from the stage's options
    dataclass, so that each option and its default is written once, in the stage.

    Without presets the schema is ``options``' fields and defaults plus ``name``. With presets
    (``default_preset`` given) it is ``name``, ``preset`` and every field of ``options`` as an
    override whose default None keeps the preset's value."""
    hints = typing.get_type_hints(options)
    specs: list[tuple[str, Any, Any]] = [("name", str, field(default=name))]
    if default_preset is not None:
        specs.append(("preset", str, field(default=default_preset)))
    for f in dataclasses.fields(options):
        kind = _schema_type(hints[f.name])
        if default_preset is not None:
            specs.append((f.name, Optional[kind], field(default=None)))
        elif f.default is not dataclasses.MISSING:
            specs.append((f.name, kind, field(default=f.default)))
        else:
            specs.append((f.name, kind, field(default_factory=f.default_factory)))
    title = "".join(part.capitalize() for part in (group, *name.split("_")))
    schema = dataclasses.make_dataclass(f"{title}Config", specs)
    schema.__module__ = __name__
    return schema


@functools.lru_cache(maxsize=1)
def group_schemas() -> dict[str, dict[str, type]]:
    """Every registered stage of each group -> its schema (named ``<Group><Name>Config`` in this
    module, so that tasks carrying instances pickle by name)."""
    from blindsr.backends import BACKENDS
    from blindsr.estimators import ESTIMATORS
    from blindsr.executors import EXECUTORS

    out: dict[str, dict[str, type]] = {}
    for group, registry in (("estimator", ESTIMATORS), ("sr", BACKENDS)):
        out[group] = {}
        for name in registry.names():
            stage = registry.factory(name)
            out[group][name] = stage_schema(group, name, stage.Options, getattr(stage, "default_preset", None))
    out["executor"] = {name: stage_schema("executor", name, cls) for name, cls in EXECUTORS.items()}
    for options in out.values():
        for schema in options.values():
            globals()[schema.__name__] = schema
    return out


def __getattr__(name: str) -> Any:
    """Derived stage schemas by name (what unpickling a task in a fresh worker asks for)."""
    if name.endswith("Config") and any(name.startswith(g.capitalize()) for g in GROUPS):
        group_schemas()
        if name in globals():
            return globals()[name]
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def checked(default: Any, check: Callable[[Any], str | None]) -> Any:
    """A verb option with a range check: ``check(value)`` returns what is wrong, or None."""
    return field(default=default, metadata={"check": check})


def _scale(value: int) -> str | None:
    return None if value in (2, 4) else "must be one of 2, 4"


def _width(value: float) -> str | None:
    return None if 0.0 < value <= 1.0 else "must be in (0, 1]"


def _scales(value: list[int]) -> str | None:
    return None if value and all(s in (2, 4) for s in value) else "choose from 2 and 4"


def _scope(value: str) -> str | None:
    return None if value in ("image", "folder", "camera") else "choose from image, folder, camera"


def _sigma(value: float) -> str | None:
    return None if 0.0 <= value <= 75.0 else "must be a sigma in [0, 75] (8-bit units)"


def _positive(value: int) -> str | None:
    return None if value > 0 else "must be positive"


def validate(cfg: DictConfig, schema: type) -> None:
    """Apply the range checks of ``schema``'s fields to a composed config (``UsageError``)."""
    for f in dataclasses.fields(schema):
        check = f.metadata.get("check")
        if check is not None and not OmegaConf.is_missing(cfg, f.name):
            value = cfg[f.name]
            problem = check(list(value) if isinstance(value, typing.Sequence) and not isinstance(value, str)
                            else value)
            if problem:
                raise UsageError(f"{f.name}={value}: {problem}")


# The stage class attribute, and the key in ``resolved_settings``, that counts changes to what a
# stage computes which no setting shows (``resolved_settings``).
RESULTS_VERSION_KEY = "results_version"


def stage_settings(config: DictConfig | dict | Any) -> dict[str, Any]:
    """A stage's config (a composed node, its typed object, or a dict of either) as the options it
    sets: without unset (None) overrides, so that a preset's own value applies."""
    if isinstance(config, DictConfig):
        values = OmegaConf.to_container(config, resolve=True)
    else:
        values = config if isinstance(config, dict) else dataclasses.asdict(config)
    return {k: v for k, v in values.items() if v is not None}


def resolved_settings(group: str, config: DictConfig | dict | Any) -> dict[str, Any]:
    """A stage's config as what it runs, for cache keys, resume fingerprints and records:
    ``stage_settings``, and for a stage with presets (its class has ``resolve``) every setting its
    preset and overrides come to. Why: a preset's name stands for values a release may change (the
    default KernelGAN preset's G crop did), and a result made with the old values must not be taken
    for a new one. Stages without presets already carry every default in their config. A setting
    added to a preset stage changes the keys too: its earlier results are made again, never reused
    unsure.

    A change in a stage's code that alters its results without changing a setting is counted by the
    class's ``results_version`` (``RESULTS_VERSION_KEY`` here): set it to 2 at the first such change
    and raise it at each later one. A class without it is at version 1, which is not hashed, so
    the results written before a stage was first versioned keep their keys."""
    from blindsr.backends import BACKENDS
    from blindsr.estimators import ESTIMATORS

    values = stage_settings(config)
    registry = {"estimator": ESTIMATORS, "sr": BACKENDS}[group]
    try:
        factory = registry.factory(values["name"])
        version = getattr(factory, RESULTS_VERSION_KEY, None)
        versioned = {} if version is None else {RESULTS_VERSION_KEY: version}
        resolve = getattr(factory, "resolve", None)
        if resolve is None:
            return {**values, **versioned}
        resolved = resolve(**{k: v for k, v in values.items() if k not in ("name", RESULTS_VERSION_KEY)})
    except (KeyError, ValueError, TypeError) as exc:  # unknown stage, preset or setting
        raise UsageError(str(exc.args[0])) from None
    preset = values.get("preset") or getattr(factory, "default_preset", None)  # unset: the stage's default
    return {"name": values["name"], "preset": preset, **dataclasses.asdict(resolved), **versioned}


def plain(config: Any) -> dict[str, Any]:
    """A verb's typed config (``OmegaConf.to_object``) as JSON-ready data for records and
    fingerprints, its stage groups as ``stage_settings``."""
    values = dataclasses.asdict(config)
    for group in GROUPS:
        if isinstance(values.get(group), dict):
            values[group] = stage_settings(values[group])
    return values


# Estimated kernels are narrowed to this fraction of their width before SR (stages.handoff_kernels);
# chosen on held-out BSD100RK images (docs/BENCHMARKS.md, 'handoff width').
HANDOFF_WIDTH = 0.95
# A group's shared kernel (batch kernel_scope=folder|camera) is a different estimate (pooled evidence,
# its shape selected) and gets its own width; chosen on the one-camera tuning sets
# (docs/BENCHMARKS.md, 'the joint kernel's handoff width').
GROUP_HANDOFF_WIDTH = 0.9


@dataclass
class CommonConfig:
    output: str = "blindsr_out"
    device: str = "auto"
    seed: int = 0
    overwrite: bool = False
    max_pixels: int = checked(40_000_000, _positive)
    log_level: str = "WARNING"
    debug: bool = False
    # Where the blur acted: on the stored values (the DIV2KRK protocol) or on the linear light
    # they encode (a camera's photo); blindsr.light.
    light: str = checked("encoded", check_light)


@dataclass
class EstimateConfig(CommonConfig):
    input: str = MISSING
    scale: int = checked(2, _scale)
    estimator: Any = MISSING


@dataclass
class EvalConfig(CommonConfig):
    dataset: str = MISSING
    output: str = "blindsr_eval"
    scale: int = checked(2, _scale)
    limit: int = 0
    # Table-1 mode: several options per stage (``estimator=[gt,kernelgan] sr=[zssr,srmd]`` sets these).
    estimators: List[str] = field(default_factory=list)
    srs: List[str] = field(default_factory=list)
    handoff_width: float = checked(HANDOFF_WIDTH, _width)
    # One kernel per image, or one shared by each folder or each camera (blindsr.groups); a shared
    # kernel reaches SR narrowed to group_handoff_width instead of handoff_width.
    kernel_scope: str = checked("image", _scope)
    group_handoff_width: float = checked(GROUP_HANDOFF_WIDTH, _width)
    estimator: Any = MISSING
    sr: Any = MISSING
    executor: Any = MISSING


@dataclass
class DegradeConfig(CommonConfig):
    input: str = MISSING
    output: str = MISSING
    seed: int = 1001
    scales: List[int] = field(default_factory=lambda: [2, 4], metadata={"check": _scales})
    shared_kernel: bool = False  # one kernel draw for every image: a one-camera set
    noise: float = checked(0.0, _sigma)  # Gaussian noise sigma added to every LR image (8-bit units)


@dataclass
class PipelineConfig(CommonConfig):
    input: str = MISSING
    scale: int = checked(2, _scale)
    handoff_width: float = checked(HANDOFF_WIDTH, _width)
    estimator: Any = MISSING
    sr: Any = MISSING


@dataclass
class SRConfig(CommonConfig):
    input: str = MISSING
    kernel: str = MISSING  # PATH, or PATH,PATH for x2 and x4
    scale: int = checked(2, _scale)
    handoff_width: float = checked(1.0, _width)  # given kernels are used as given unless this is set
    sr: Any = MISSING


@dataclass
class WeightsConfig:
    """``weights``: list or fetch pretrained files (``blindsr.weights``)."""

    action: str = "list"  # list | fetch
    names: List[str] = field(default_factory=list)  # registry names; empty = all
    pca: Optional[str] = None  # a local srmd_pca_matlab.mat (verified, then cached by fetch)
    log_level: str = "WARNING"
    debug: bool = False


@dataclass
class BatchConfig(CommonConfig):
    input: str = MISSING
    output: str = MISSING
    scale: int = checked(2, _scale)
    recursive: bool = False
    gt: Optional[str] = None  # folder of ground-truth HR images with the same relative names
    title: str = ""
    handoff_width: float = checked(HANDOFF_WIDTH, _width)
    # One kernel per image, or one shared by each folder or each camera (blindsr.groups); a shared
    # kernel reaches SR narrowed to group_handoff_width instead of handoff_width.
    kernel_scope: str = checked("image", _scope)
    group_handoff_width: float = checked(GROUP_HANDOFF_WIDTH, _width)
    estimator: Any = MISSING
    sr: Any = MISSING
    executor: Any = MISSING


@dataclass
class ReportConfig:
    output: str = MISSING
    gt: Optional[str] = None
    title: str = ""
    log_level: str = "WARNING"
    debug: bool = False


SCHEMAS = {
    "batch": BatchConfig,
    "report": ReportConfig,
    "pipeline": PipelineConfig,
    "sr": SRConfig,
    "estimate": EstimateConfig,
    "eval": EvalConfig,
    "degrade": DegradeConfig,
    "weights": WeightsConfig,
}
def register_schemas() -> None:
    store = ConfigStore.instance()
    for verb, schema in SCHEMAS.items():
        store.store(name=f"{verb}_schema", node=schema)
    for group, options in group_schemas().items():
        for option, schema in options.items():
            store.store(group=group, name=f"{option}_schema", node=schema)
