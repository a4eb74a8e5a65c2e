"""Typed schemas for every verb's Hydra config and the swappable stage groups.

The YAML files in ``conf/`` compose these (``defaults: [<verb>_schema, ...]``); the schemas give
the types and defaults, so a typo or a wrong type fails before any work starts. Option names in
the ``estimator``/``sr``/``executor`` groups equal the registry names in code.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, List, Optional

from hydra.core.config_store import ConfigStore
from omegaconf import MISSING

# Keys whose values are file or folder names: taken verbatim from the command line (spaces,
# commas, '=', quotes, non-ASCII all allowed), never parsed by Hydra's override grammar.
PATH_KEYS = ("input", "output", "dataset", "kernel", "gt")


@dataclass
class KernelGANConfig:
    name: str = "kernelgan"
    preset: str = "default"  # default | paper
    iterations: Optional[int] = None
    restarts: Optional[int] = None
    workers: Optional[int] = None
    crops_per_iteration: Optional[int] = None
    threshold_rank: Optional[int] = None
    bicubic_target: Optional[str] = None
    g_crop: Optional[int] = None
    edge_shave: Optional[int] = None
    lr: Optional[float] = None
    refine: Optional[str] = None  # affine (default preset) | none (paper preset)


@dataclass
class BicubicEstimatorConfig:
    name: str = "bicubic"


@dataclass
class GroundTruthEstimatorConfig:
    """Only in ``eval``: the dataset's own ground-truth kernels (the upper bound)."""

    name: str = "gt"


@dataclass
class ZSSRBackendConfig:
    name: str = "zssr"
    # fast (default: the paper's network at the input resolution, a short cosine schedule; docs/
    # BENCHMARKS.md 'speed') | kernelgan (KernelGAN's DIV2KRK configuration) | original | real
    preset: str = "fast"
    max_iterations: Optional[int] = None
    back_projection: Optional[int] = None
    ensemble: Optional[bool] = None
    precision: Optional[str] = None  # auto | fp32 | bf16


@dataclass
class SRMDBackendConfig:
    name: str = "srmd"
    variant: str = "srmd"  # srmd | srmdnf
    noise: float = 0.0  # sigma of the input noise, 0-255 units
    adapter: str = "fit"  # fit | naive
    tile: int = 0  # 0: automatic
    weights: Optional[str] = None
    pca: Optional[str] = None


@dataclass
class BicubicBackendConfig:
    name: str = "bicubic"


@dataclass
class NoBackendConfig:
    """Only in ``eval``: score kernels without super-resolving."""

    name: str = "none"


# Estimated kernels are narrowed to this fraction of their width before SR (stages.handoff_kernels);
# chosen on held-out BSD100RK images (docs/BENCHMARKS.md, 'handoff width').
HANDOFF_WIDTH = 0.95


@dataclass
class CommonConfig:
    output: str = "blindsr_out"
    device: str = "auto"
    seed: int = 0
    overwrite: bool = False
    max_pixels: int = 40_000_000
    log_level: str = "WARNING"
    debug: bool = False


@dataclass
class EstimateConfig(CommonConfig):
    input: str = MISSING
    scale: int = 2
    estimator: Any = MISSING


@dataclass
class EvalConfig(CommonConfig):
    dataset: str = MISSING
    output: str = "blindsr_eval"
    scale: int = 2
    limit: int = 0
    # Table-1 mode: several options per stage (``estimator=[gt,kernelgan] sr=[zssr,srmd]`` sets these).
    estimators: List[str] = field(default_factory=list)
    srs: List[str] = field(default_factory=list)
    handoff_width: float = HANDOFF_WIDTH
    estimator: Any = MISSING
    sr: Any = MISSING
    executor: Any = MISSING


@dataclass
class DegradeConfig(CommonConfig):
    input: str = MISSING
    output: str = MISSING
    seed: int = 1001
    scales: List[int] = field(default_factory=lambda: [2, 4])


@dataclass
class PipelineConfig(CommonConfig):
    input: str = MISSING
    scale: int = 2
    handoff_width: float = HANDOFF_WIDTH
    estimator: Any = MISSING
    sr: Any = MISSING


@dataclass
class SRConfig(CommonConfig):
    input: str = MISSING
    kernel: str = MISSING  # PATH, or PATH,PATH for x2 and x4
    scale: int = 2
    handoff_width: float = 1.0  # given kernels are used as given unless this is set
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
class SerialExecutorConfig:
    name: str = "serial"


@dataclass
class LocalExecutorConfig:
    name: str = "local"
    workers: int = 2
    threads_per_worker: int = 0


@dataclass
class SubmititExecutorConfig:
    name: str = "submitit"
    cluster: Optional[str] = None  # null: SLURM; local | debug: without SLURM
    folder: str = ""
    partition: Optional[str] = None
    timeout_min: int = 60
    cpus_per_task: int = 2
    gpus_per_node: int = 0
    mem_gb: int = 8
    array_parallelism: int = 16
    threads_per_task: int = 0


@dataclass
class RayExecutorConfig:
    name: str = "ray"
    address: Optional[str] = None
    num_cpus: float = 1
    num_gpus: float = 0
    threads_per_task: int = 1


@dataclass
class BatchConfig(CommonConfig):
    input: str = MISSING
    output: str = MISSING
    scale: int = 2
    recursive: bool = False
    gt: Optional[str] = None  # folder of ground-truth HR images with the same relative names
    title: str = ""
    handoff_width: float = HANDOFF_WIDTH
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
GROUP_SCHEMAS = {
    "estimator": {"kernelgan": KernelGANConfig, "bicubic": BicubicEstimatorConfig,
                  "gt": GroundTruthEstimatorConfig},
    "sr": {"zssr": ZSSRBackendConfig, "srmd": SRMDBackendConfig, "bicubic": BicubicBackendConfig,
           "none": NoBackendConfig},
    "executor": {"serial": SerialExecutorConfig, "local": LocalExecutorConfig,
                 "submitit": SubmititExecutorConfig, "ray": RayExecutorConfig},
}


def register_schemas() -> None:
    store = ConfigStore.instance()
    for verb, schema in SCHEMAS.items():
        store.store(name=f"{verb}_schema", node=schema)
    for group, options in GROUP_SCHEMAS.items():
        for option, schema in options.items():
            store.store(group=group, name=f"{option}_schema", node=schema)
