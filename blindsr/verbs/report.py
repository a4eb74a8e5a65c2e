"""``report``: rebuild ``summary.csv/json`` and ``report.html`` of a batch output folder from the
per-image records (``COMPLETE.json`` / ``ERROR.json``), e.g. after runs on several machines."""
from __future__ import annotations

import json
from pathlib import Path

from omegaconf import DictConfig

from blindsr.batch import COMPLETE, ImageOutcome
from blindsr.errors import InputError
from blindsr.report import summary_rows, write_report, write_summary


def collect(output_dir: Path) -> list[ImageOutcome]:
    outcomes = []
    for marker in sorted(output_dir.rglob(COMPLETE)):
        info = json.loads(marker.read_text())
        outcomes.append(ImageOutcome(info["source"], str(marker.parent), "done", seconds=info.get("seconds", {}),
                                     files=info.get("files", {}), record=info.get("record", {})))
    for marker in sorted(output_dir.rglob("ERROR.json")):
        info = json.loads(marker.read_text())
        outcomes.append(ImageOutcome(info["source"], str(marker.parent), "failed", error=info.get("error")))
    return outcomes


def run(cfg: DictConfig) -> int:
    output_dir = Path(cfg.output)
    summary = output_dir / "summary.json"
    if not summary.is_file():
        raise InputError(f"{output_dir}: no summary.json (not a batch output folder)")
    meta = {k: v for k, v in json.loads(summary.read_text()).items() if k != "rows"}
    outcomes = collect(output_dir)
    input_dir = Path(meta.get("input", "."))
    rows = summary_rows(outcomes, input_dir, output_dir, int(meta.get("scale", 2)),
                        Path(cfg.gt) if cfg.gt else None)
    write_summary(rows, output_dir, meta)
    path = write_report(rows, outcomes, output_dir, int(meta.get("scale", 2)), cfg.title or f"blindsr batch: {input_dir}")
    print(f"report: {path}")
    return 0
