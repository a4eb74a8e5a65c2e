"""Result tables: markdown for people, CSV and JSON for scripts."""
from __future__ import annotations

import csv
import io
import math
from pathlib import Path
from typing import Any, Sequence

import numpy as np

from blindsr.outputs import atomic_write_bytes, write_json


def _cell(value: Any, digits: int) -> str:
    if isinstance(value, float):
        return "inf" if math.isinf(value) else ("" if math.isnan(value) else f"{value:.{digits}f}")
    return "" if value is None else str(value)


def markdown_table(rows: Sequence[dict[str, Any]], columns: Sequence[str],
                   digits: int | dict[str, int] = 2) -> str:
    """Rows as a markdown table; ``digits`` for floats, or per column (default 2)."""
    places = {c: (digits.get(c, 2) if isinstance(digits, dict) else digits) for c in columns}
    lines = ["| " + " | ".join(columns) + " |", "|" + "---|" * len(columns)]
    for row in rows:
        lines.append("| " + " | ".join(_cell(row.get(c), places[c]) for c in columns) + " |")
    return "\n".join(lines)


def mean_p10_worst(values: Sequence[float], signed: bool = False) -> str:
    """Per-image values summarised as "mean / 10th percentile / worst (minimum)", two decimals
    (``signed``: with a sign, for differences)."""
    v = np.asarray(values, dtype=np.float64)
    form = "+.2f" if signed else ".2f"
    return f"{v.mean():{form}} / {np.percentile(v, 10):{form}} / {v.min():{form}}"


def mean_worst(values: Sequence[float], signed: bool = False) -> str:
    """Per-image values summarised as "mean / worst (minimum)", two decimals (``signed``: with a
    sign, for differences)."""
    v = np.asarray(values, dtype=np.float64)
    form = "+.2f" if signed else ".2f"
    return f"{v.mean():{form}} / {v.min():{form}}"


def differences(values: Sequence[float], below: float = -0.1) -> str:
    """Per-image differences (dB) as ``mean_p10_worst`` with signs, and how many are below ``below``."""
    count = int((np.asarray(values, dtype=np.float64) < below).sum())
    return f"{mean_p10_worst(values, signed=True)} ({count} below {below:g})"


def mean_row(rows: Sequence[dict[str, Any]], columns: Sequence[str], label_column: str) -> dict[str, Any]:
    """Column means over rows with finite numbers; the label column says 'mean'."""
    out: dict[str, Any] = {label_column: "**mean**"}
    for c in columns:
        values = [r[c] for r in rows if isinstance(r.get(c), (int, float)) and not isinstance(r.get(c), bool)
                  and math.isfinite(r[c])]
        if values and c != label_column:
            out[c] = sum(values) / len(values)
    return out


def write_tables(stem: Path, rows: Sequence[dict[str, Any]], columns: Sequence[str],
                 meta: dict[str, Any]) -> tuple[Path, Path]:
    """``<stem>.csv`` (one row per image) and ``<stem>.json`` (rows + metadata), atomically."""
    buf = io.StringIO()
    writer = csv.DictWriter(buf, fieldnames=list(columns), extrasaction="ignore")
    writer.writeheader()
    writer.writerows(rows)
    csv_path = atomic_write_bytes(stem.with_suffix(".csv"), buf.getvalue().encode())
    json_path = write_json(stem.with_suffix(".json"), {**meta, "rows": list(rows)})
    return csv_path, json_path
