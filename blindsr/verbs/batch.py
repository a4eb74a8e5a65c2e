"""``batch``: the pipeline over every image of a folder, resumable, on any executor.

One result folder per image under ``output``; finished images (``COMPLETE.json`` with the same
config fingerprint) are skipped on a re-run, interrupted ones redone from scratch, failures
recorded without stopping the others. Writes ``summary.csv``, ``summary.json`` and ``report.html``
to ``output``; exits with 1 (and the count) if any image failed.
"""
from __future__ import annotations

import shutil
import sys
from pathlib import Path

from omegaconf import DictConfig, OmegaConf

from blindsr.config import resolved_settings
from blindsr.batch import COMPLETE, ImageOutcome, lost_image, plan_tasks, process
from blindsr.errors import InputError, UsageError
from blindsr.executors import get_executor
from blindsr.groups import GroupOutcome, lost_group, plan_groups, process_group
from blindsr.outputs import prepare_output_dir
from blindsr.progress import progress_bar
from blindsr.report import summary_rows, write_report, write_summary
from blindsr.stages import build_backend, build_estimator, check_ready, options


def run(cfg: DictConfig) -> int:
    scale = cfg.scale
    executor = get_executor(cfg.executor.name, **options(cfg.executor))
    estimator = build_estimator(cfg.estimator, cfg.device)  # fail fast on a bad stage config, before any work
    check_ready(build_backend(cfg.sr, cfg.device), scale)  # SRMD's weights, before any image's estimate
    if cfg.kernel_scope != "image" and not hasattr(estimator, "estimate_group"):
        raise UsageError(f"kernel_scope={cfg.kernel_scope} needs an estimator that learns from the images "
                         f"(kernelgan), not {cfg.estimator.name}")
    input_dir, output_dir = Path(cfg.input).resolve(), Path(cfg.output).resolve()
    if not input_dir.is_dir():
        raise InputError(f"{input_dir}: not a folder")
    gt_dir = Path(cfg.gt) if cfg.gt else None
    if gt_dir is not None and not gt_dir.is_dir():
        raise InputError(f"gt={gt_dir}: not a folder")
    config = OmegaConf.to_object(cfg)
    tasks, others = plan_tasks(input_dir, output_dir, config, cfg.recursive)
    if not tasks:
        raise InputError(f"{input_dir}: no images found")
    tasks, groups = plan_groups(tasks, cfg.kernel_scope, input_dir, output_dir)
    prepare_output_dir(output_dir)
    if cfg.overwrite:
        for task in [*tasks, *groups]:
            shutil.rmtree(task.folder, ignore_errors=True)
    group_outcomes: list[GroupOutcome] = []
    if groups:
        with progress_bar(len(groups), "shared kernels", unit="group", stoppable=False) as bar:
            def on_group(outcome: GroupOutcome) -> None:
                group_outcomes.append(outcome)
                bar.update(1)

            executor.run(process_group, groups, on_group, lost_group)
        for g in sorted(group_outcomes, key=lambda g: g.name):
            state = g.error if g.status == "failed" else g.status
            print(f"shared kernel for {g.label}: {g.members} image(s), {state}")
    outcomes: list[ImageOutcome] = []
    with progress_bar(len(tasks), "batch", unit="image", stoppable=False) as bar:
        def on_done(outcome: ImageOutcome) -> None:
            outcomes.append(outcome)
            bar.set_postfix_str(f"{sum(o.status == 'failed' for o in outcomes)} failed")
            bar.update(1)

        executor.run(process, tasks, on_done, lost_image)
    rows = summary_rows(outcomes, input_dir, output_dir, scale, gt_dir)
    meta = {"input": str(input_dir), "scale": scale, "executor": cfg.executor.name,
            "estimator": resolved_settings("estimator", config.estimator), "sr": resolved_settings("sr", config.sr),
            "seed": cfg.seed,
            "skipped_non_images": [str(p.relative_to(input_dir)) for p in others],
            "marker": COMPLETE, "kernel_scope": cfg.kernel_scope,
            "groups": [group_summary(g, input_dir) for g in sorted(group_outcomes, key=lambda g: g.name)]}
    csv_path, _ = write_summary(rows, output_dir, meta)
    report = write_report(rows, outcomes, output_dir, scale, cfg.title or f"blindsr batch: {input_dir}")
    failed = [o for o in outcomes if o.status == "failed"]
    resumed = sum(o.status == "resumed" for o in outcomes)
    print(f"{len(tasks)} images: {len(tasks) - len(failed) - resumed} done, {resumed} already done, "
          f"{len(failed)} failed; {len(others)} non-image files skipped")
    print(f"summary: {csv_path}\nreport: {report}")
    if failed:
        print(f"blindsr batch: {len(failed)} image(s) failed (see {csv_path})", file=sys.stderr)
        return 1
    return 0


def group_summary(outcome: GroupOutcome, input_dir: Path) -> dict:
    """A shared kernel's line in ``summary.json``: the group, its images, and how it went."""
    record = outcome.record
    confidence = record.get("confidence") or {}
    return {"group": outcome.name, "label": outcome.label, "status": outcome.status, "error": outcome.error,
            "images": outcome.members, "seconds": outcome.seconds,
            "used": [str(Path(p).relative_to(input_dir)) for p in record.get("used", [])],
            "confidence": confidence.get("score"), "confidence_level": confidence.get("level"),
            "fallback": record.get("fallback"), "kernel": record.get("kernel")}
