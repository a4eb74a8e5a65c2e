"""Folders of images: one task per image, resumable, failures isolated.

Each image gets its own result folder (its relative path without the suffix; ``photo_jpg`` style
when two images would share one). A task writes the SR image, kernels and record atomically, then
``COMPLETE`` last - a small JSON with the config fingerprint and the files' hashes. A folder without
a valid marker is an interrupted or failed run: it is emptied and redone from scratch. A task never
raises: failures come back as an outcome with the error message, so one bad image cannot stop the
others. ``process`` is a top-level function of plain data, so every executor (threads, processes,
SLURM via submitit, Ray) can run it.
"""
from __future__ import annotations

import hashlib
import json
import shutil
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from blindsr.config import BatchConfig, plain, resolved_settings
from blindsr.errors import BlindSRError
from blindsr.images import list_images, read_image
from blindsr.light import decode
from blindsr.outputs import safe_stem, write_json

COMPLETE = "COMPLETE.json"
# Config keys that do not change what a task produces (so changing them keeps finished images).
NEUTRAL_KEYS = ("input", "output", "overwrite", "log_level", "debug", "executor", "recursive", "gt", "device")
# Options added after folders had been written, with the default that gives those folders'
# results: at that default they stay out of the fingerprint, so such folders still resume.
LATER_DEFAULTS = {"light": "encoded"}


@dataclass(frozen=True)
class ImageTask:
    source: str
    folder: str
    stem: str
    config: BatchConfig  # typed, with the stage configs (blindsr.config), as the command line composed it
    fingerprint: str
    group: str | None = None  # the folder of its group's shared kernel (blindsr.groups), if any


@dataclass
class ImageOutcome:
    source: str
    folder: str
    status: str  # done | failed | resumed
    error: str | None = None
    seconds: dict[str, float] = field(default_factory=dict)
    files: dict[str, str] = field(default_factory=dict)
    record: dict[str, Any] = field(default_factory=dict)


def fingerprint(config: BatchConfig) -> str:
    """Hash of everything in the config that affects a task's results (``LATER_DEFAULTS`` left out
    at their defaults), the stages as what they run (``resolved_settings``: a folder made before a
    release changed a preset's values is made again, not resumed)."""
    values = plain(config)
    values.update({group: resolved_settings(group, getattr(config, group)) for group in ("estimator", "sr")})
    relevant = {k: v for k, v in values.items()
                if k not in NEUTRAL_KEYS and not (k in LATER_DEFAULTS and v == LATER_DEFAULTS[k])}
    return hashlib.sha256(json.dumps(relevant, sort_keys=True, default=str).encode()).hexdigest()[:16]


def plan_tasks(input_dir: str | Path, output_dir: str | Path, config: BatchConfig,
               recursive: bool = False) -> tuple[list[ImageTask], list[Path]]:
    """Tasks for every image under ``input_dir`` and the other files (skipped). Task paths are
    absolute: workers of other executors may run in other working directories."""
    input_dir, output_dir = Path(input_dir).resolve(), Path(output_dir).resolve()
    images, others = list_images(input_dir, recursive)
    print_key = fingerprint(config)
    taken: dict[Path, int] = {}
    folders = []
    for path in images:
        rel = path.relative_to(input_dir)
        folder = rel.parent / safe_stem(rel.name)
        taken[folder] = taken.get(folder, 0) + 1
        folders.append(folder)
    tasks = []
    for path, folder in zip(images, folders):
        if taken[folder] > 1:  # photo.jpg and photo.png side by side
            folder = folder.with_name(f"{folder.name}_{path.suffix.lstrip('.').lower()}")
        tasks.append(ImageTask(str(path), str(output_dir / folder), safe_stem(path.name), config, print_key))
    return tasks, others


def completed(task: ImageTask) -> dict | None:
    """The marker of a finished task with the same fingerprint whose files are all there."""
    return finished(task.folder, task.fingerprint)


def finished(folder: str | Path, fingerprint: str | None = None) -> dict | None:
    """The ``COMPLETE`` marker of a finished task's folder (an image's or a group's shared kernel),
    when every file it lists is there and, if ``fingerprint`` is given, it was made with it."""
    try:
        info = json.loads((Path(folder) / COMPLETE).read_text())
    except (OSError, ValueError):
        return None
    if fingerprint is not None and info.get("fingerprint") != fingerprint:
        return None
    if not all((Path(folder) / name).is_file() for name in info.get("files", [])):
        return None
    return info


def _sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def process(task: ImageTask, progress=None) -> ImageOutcome:
    """Run the pipeline on one image into its folder; never raises."""
    from blindsr.progress import task_lines
    from blindsr.stages import built_stage, run_pipeline, stage_work, write_outputs

    info = completed(task)
    if info is not None:
        return ImageOutcome(task.source, task.folder, "resumed", seconds=info.get("seconds", {}),
                            files=info.get("files", {}), record=info.get("record", {}))
    folder = Path(task.folder)
    start = time.perf_counter()
    try:
        if folder.exists():
            shutil.rmtree(folder)  # an interrupted or failed earlier attempt: redo from scratch
        folder.mkdir(parents=True)
        config = task.config
        estimator = None if task.group else built_stage("estimator", config.estimator, config.device)
        backend = built_stage("sr", config.sr, config.device)
        scale = config.scale
        image = read_image(task.source, config.max_pixels)
        kernels = None if task.group is None else group_kernels(task.group, image, scale, config.light)
        if progress is None:
            progress = task_lines(f"{task.stem} x{scale}", stage_work(estimator, backend, image.shape, scale))
        width = config.handoff_width if task.group is None else config.group_handoff_width
        result = run_pipeline(image, estimator, backend, scale, seed=config.seed, kernels=kernels,
                              handoff_width=width, progress=progress, light=config.light)
        paths = write_outputs(folder, task.stem, scale, image, result, plain(config))
    except BlindSRError as exc:
        return _failed(task, str(exc), start)
    except Exception as exc:  # noqa: BLE001 - one image's crash must not stop the batch
        return _failed(task, f"internal error: {exc.__class__.__name__}: {exc}", start)
    stages = result.record["stages"]
    seconds = {name: stage.get("seconds", 0.0) for name, stage in stages.items()}
    seconds["total"] = round(time.perf_counter() - start, 3)
    files = {p.name: _sha256(p) for p in folder.iterdir() if p.is_file()}
    record = {"kernels": result.record["kernels"], "warnings": result.record["warnings"],
              "kernel_file": paths[f"kernel_x{min(result.kernels)}"].name, "image_file": paths["image"].name,
              "kernel_provenance": {k: v for k, v in result.kernels[min(result.kernels)].provenance.items()
                                    if k in ("restart_agreement_db", "restarts", "fallback", "seconds",
                                             "confidence", "noise")},
              "kernel_group": (result.kernels[min(result.kernels)].provenance.get("group") or {}).get("name"),
              "compression": result.record["compression"],
              "sr_noise": sr_noise(stages["sr"].get("diagnostics") or {})}
    write_json(folder / COMPLETE, {"fingerprint": task.fingerprint, "source": task.source,
                                   "seconds": seconds, "files": files, "record": record})
    return ImageOutcome(task.source, task.folder, "done", seconds=seconds, files=files, record=record)


def group_kernels(folder: str, image, scale: int, light: str = "encoded") -> dict:
    """A group's shared kernels for one of its images, with that image's own noise level fitted
    under the x2 kernel (``sr.noise=auto`` reads it) on the values the kernel acted on (``light``)."""
    from blindsr.estimators.noise import estimate_noise
    from blindsr.groups import shared_kernels

    kernels = shared_kernels(folder, scale)
    noise = estimate_noise(decode(image.rgb, light), kernels[2].array, 2)
    return {s: k.with_provenance(noise=noise) for s, k in kernels.items()}


def lost_image(task: ImageTask, message: str) -> ImageOutcome:
    """An executor's ``on_lost`` for image tasks: the worker died, the image failed."""
    return ImageOutcome(task.source, task.folder, "failed", error=message)


def sr_noise(diagnostics: dict[str, Any]) -> float | None:
    """The noise sigma (8-bit) the SR back-end was told: SRMD's noise channel, or the noise ZSSR
    put on its training sons; None for back-ends without one."""
    if "noise" in diagnostics:
        return diagnostics["noise"]
    sons = diagnostics.get("son_noise")
    return None if sons is None else round(255.0 * sons["noise_std"], 3)


def _failed(task: ImageTask, message: str, start: float) -> ImageOutcome:
    folder = Path(task.folder)
    error = " ".join(message.split())
    try:
        folder.mkdir(parents=True, exist_ok=True)
        write_json(folder / "ERROR.json", {"source": task.source, "error": error})
    except OSError:
        pass
    return ImageOutcome(task.source, task.folder, "failed", error=error,
                        seconds={"total": round(time.perf_counter() - start, 3)})


def outcome_dict(outcome: ImageOutcome) -> dict:
    return asdict(outcome)
