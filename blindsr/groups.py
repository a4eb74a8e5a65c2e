"""Shared kernels in a batch: one kernel per folder or per camera, estimated from the group's images
together.

The blur kernel belongs to the optics, not to the photo. With ``kernel_scope=folder`` every folder
of the input is one group; with ``kernel_scope=camera`` images are grouped by the EXIF camera
(make and model), lens model and focal length, and images without a camera in their EXIF form
one group per folder (a scanner's or a microscope's files rarely carry any). Each group's kernel is
estimated once, from up to ``MAX_GROUP_IMAGES`` of its images spread evenly over their name order
(``KernelGANEstimator.estimate_group``: the evidence pooled, not an average of per-image kernels),
each cut to its most textured ``GROUP_WINDOW`` square. It is saved under
``<output>/shared_kernels/<group>/`` with ``group.json`` (which images, the confidence, warnings)
and a ``COMPLETE.json`` marker written last; the group's images then use it, each with its own
noise level fitted under it. A group task is a task of its own, run on the batch's executor
before the images, resumable like them: its fingerprint holds the config and the content hashes
of the images it read, and every member image's fingerprint holds the group's.
"""
from __future__ import annotations

import hashlib
import json
import re
import shutil
import time
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, Sequence

import numpy as np

from blindsr.batch import COMPLETE, ImageTask, finished
from blindsr.config import BatchConfig
from blindsr.errors import BlindSRError
from blindsr.images import camera_identity
from blindsr.light import decode
from blindsr.outputs import write_json

SCOPES = ("image", "folder", "camera")
GROUPS_FOLDER = "shared_kernels"
KERNEL_STEM = "shared"
MAX_GROUP_IMAGES = 16
GROUP_WINDOW = 1024  # LR px: a large photo lends the group its most textured square of this side


@dataclass(frozen=True)
class GroupTask:
    name: str  # folder name under GROUPS_FOLDER
    label: str  # what the group is, for people
    key: dict[str, Any]
    members: tuple[str, ...]  # every image that will use the kernel
    used: tuple[str, ...]  # the images the estimate reads
    folder: str
    config: BatchConfig
    fingerprint: str


@dataclass
class GroupOutcome:
    name: str
    label: str
    folder: str
    status: str  # done | failed | resumed
    members: int = 0
    error: str | None = None
    seconds: float = 0.0
    record: dict[str, Any] = field(default_factory=dict)


def group_key(source: str, input_dir: Path, scope: str) -> dict[str, Any]:
    """What puts an image in a group under ``scope`` ("folder" or "camera")."""
    folder = Path(source).parent.relative_to(input_dir).as_posix()
    if scope == "folder":
        return {"folder": folder}
    identity = camera_identity(source)
    return {"folder": folder, "camera": None} if identity is None else identity


def describe(key: dict[str, Any]) -> str:
    if key.get("camera") is None:
        folder = "the input folder" if key["folder"] == "." else f"folder {key['folder']}"
        return folder if "camera" not in key else f"no camera in EXIF, {folder}"
    return ", ".join(v for v in (key["camera"], key["lens"], key["focal_length"]) if v)


def evenly_spread(items: Sequence[str], most: int) -> list[str]:
    picks = np.unique(np.linspace(0, len(items) - 1, min(most, len(items))).round().astype(int))
    return [items[i] for i in picks]


def _digest(*parts: Any) -> str:
    return hashlib.sha256(json.dumps(parts, sort_keys=True, default=str).encode()).hexdigest()[:16]


def _content(path: str) -> str:
    try:
        return hashlib.sha256(Path(path).read_bytes()).hexdigest()
    except OSError:
        return "unreadable"


def plan_groups(tasks: list[ImageTask], scope: str, input_dir: Path,
                output_dir: Path) -> tuple[list[ImageTask], list[GroupTask]]:
    """The group tasks of ``scope``, and the image tasks bound to their groups (each image's
    fingerprint then covers its group's); ``scope`` "image" leaves the tasks as they are."""
    if scope == "image" or not tasks:
        return tasks, []
    by_key: dict[str, list[ImageTask]] = {}
    for task in tasks:
        by_key.setdefault(json.dumps(group_key(task.source, input_dir, scope), sort_keys=True), []).append(task)
    groups, bound = [], {}
    for key_text, members in sorted(by_key.items()):
        key = json.loads(key_text)
        label = describe(key)
        name = f"{re.sub(r'[^A-Za-z0-9]+', '_', label).strip('_')[:60]}-{_digest(key_text)[:6]}"
        used = evenly_spread([t.source for t in members], MAX_GROUP_IMAGES)
        config = members[0].config
        fingerprint = _digest(members[0].fingerprint, key_text, [(u, _content(u)) for u in used])
        folder = output_dir / GROUPS_FOLDER / name
        groups.append(GroupTask(name, label, key, tuple(t.source for t in members), tuple(used), str(folder),
                                config, fingerprint))
        for task in members:
            bound[task.source] = replace(task, group=str(folder), fingerprint=_digest(task.fingerprint, fingerprint))
    return [bound[t.source] for t in tasks], groups


def group_images(sources: Sequence[str], estimator: Any, max_pixels: int,
                 light: str = "encoded") -> tuple[list[np.ndarray], list[str], list[dict]]:
    """What a group's estimate reads: each image's most textured ``GROUP_WINDOW`` square (of the
    values the kernel acted on, ``light``), the images read, and those skipped (unreadable, or too
    small for the estimator) with the reason."""
    from blindsr.estimators.kernelgan.crops import densest_window
    from blindsr.images import read_image

    images, read, skipped = [], [], []
    for source in sources:
        try:
            image = read_image(source, max_pixels)
            estimator.check(image.shape)
        except BlindSRError as exc:
            skipped.append({"image": source, "error": str(exc)})
            continue
        images.append(densest_window(decode(image.rgb, light), GROUP_WINDOW))
        read.append(source)
    if not images:
        raise BlindSRError("none of the group's images could be used: " + "; ".join(s["error"] for s in skipped))
    return images, read, skipped


def process_group(task: GroupTask, progress=None) -> GroupOutcome:
    """Estimate a group's shared kernel into its folder; never raises."""
    from blindsr.kernel import save_kernel
    from blindsr.progress import task_lines
    from blindsr.stages import announce_untrusted, built_stage, estimate_stage

    info = finished(task.folder, task.fingerprint)
    if info is not None:
        return GroupOutcome(task.name, task.label, task.folder, "resumed", len(task.members),
                            seconds=info.get("seconds", 0.0), record=info.get("record", {}))
    start = time.perf_counter()
    folder = Path(task.folder)
    try:
        if folder.exists():
            shutil.rmtree(folder)
        folder.mkdir(parents=True)
        config = task.config
        estimator = built_stage("estimator", config.estimator, config.device)
        images, read, skipped = group_images(task.used, estimator, config.max_pixels, config.light)
        if progress is None:
            progress = task_lines(f"shared kernel of {task.label} x{config.scale}",
                                  [estimate_stage(estimator, estimator.group_iterations(config.scale))])
        estimate = estimator.estimate_group(images, config.scale, seed=config.seed, progress=progress)
        announce_untrusted(Path(f"shared kernel of {task.label}"), estimate.warnings)
        files = []
        for kernel in estimate.kernels.values():
            kernel = kernel.with_provenance(group={**kernel.provenance.get("group", {}), "name": task.name,
                                                   "label": task.label, "key": task.key,
                                                   "members": len(task.members), "used": read, "skipped": skipped})
            files += [p.name for p in save_kernel(kernel, folder, KERNEL_STEM).values()]
        k = estimate.kernels[min(estimate.kernels)]
        record = {"name": task.name, "label": task.label, "key": task.key, "members": list(task.members),
                  "used": read, "skipped": skipped, "kernel": k.describe(),
                  "confidence": k.provenance.get("confidence"), "fallback": k.provenance.get("fallback"),
                  "warnings": estimate.warnings, "seconds": round(estimate.seconds, 3)}
        write_json(folder / "group.json", record)
        seconds = round(time.perf_counter() - start, 3)
        write_json(folder / COMPLETE, {"fingerprint": task.fingerprint, "seconds": seconds,
                                       "files": files + ["group.json"], "record": record})
        return GroupOutcome(task.name, task.label, task.folder, "done", len(task.members), seconds=seconds,
                            record=record)
    except Exception as exc:  # noqa: BLE001 - a group's failure fails its images, not the batch
        error = " ".join(str(exc).split())
        if not isinstance(exc, BlindSRError):
            error = f"internal error: {exc.__class__.__name__}: {error}"
        return GroupOutcome(task.name, task.label, task.folder, "failed", len(task.members), error=error,
                            seconds=round(time.perf_counter() - start, 3))


def lost_group(task: GroupTask, message: str) -> GroupOutcome:
    """An executor's ``on_lost`` for group tasks."""
    return GroupOutcome(task.name, task.label, task.folder, "failed", len(task.members), error=message)


def shared_kernels(folder: str | Path, scale: int) -> dict[int, Any]:
    """The finished group's kernels that SR at ``scale`` uses (x2, and x4 for scale 4)."""
    from blindsr.kernel import kernel_paths, load_kernel

    info = finished(folder)
    if info is None:
        raise BlindSRError("its group's shared kernel was not estimated (see the summary's groups)")
    kernels = {}
    for s in sorted({2, scale}):
        path = kernel_paths(Path(folder), KERNEL_STEM, s)["npy"]
        if path.is_file():
            kernels[s] = load_kernel(path, s)
    if 2 not in kernels:
        raise BlindSRError(f"{folder}: the shared x2 kernel is missing")
    return kernels
