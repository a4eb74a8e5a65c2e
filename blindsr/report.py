"""A batch's summary (``summary.csv``, ``summary.json``) and a self-contained ``report.html``.

The page inlines everything (pictures as data URIs, styles in a <style> element), so it can be
mailed or archived as one file: failures first, then per image the kernel picture, a crop of the
input next to the same crop of the output, kernel diagnostics and timings.
"""
from __future__ import annotations

import base64
import datetime
import html
from pathlib import Path
from typing import Any, Sequence

import cv2
import numpy as np

from blindsr.batch import ImageOutcome
from blindsr.images import encode_png, read_image
from blindsr.metrics import y_psnr_ssim
from blindsr.outputs import atomic_write_bytes
from blindsr.tables import write_tables

SUMMARY_COLUMNS = ["image", "status", "error", "estimate_s", "sr_s", "total_s", "kernel", "kernel_group", "sigma_major",
                   "sigma_minor", "angle_deg", "restart_agreement_db", "confidence", "confidence_level", "noise_sigma",
                   "jpeg_quality", "sr_noise_sigma", "fallback", "warnings", "psnr", "ssim"]
CROP = 96  # LR pixels shown in the report


def ordered(outcomes: Sequence[ImageOutcome]) -> list[ImageOutcome]:
    """Outcomes in the order of their images' names (the order of summary rows)."""
    return sorted(outcomes, key=lambda o: o.source)


def summary_rows(outcomes: Sequence[ImageOutcome], input_dir: Path, output_dir: Path, scale: int,
                 gt_dir: Path | None = None) -> list[dict[str, Any]]:
    """One row per image, in ``ordered`` order; PSNR/SSIM against ``gt_dir`` images of the same
    relative name when given."""
    rows = []
    for o in ordered(outcomes):
        rel = Path(o.source).relative_to(input_dir) if Path(o.source).is_relative_to(input_dir) else Path(o.source)
        row: dict[str, Any] = {"image": str(rel), "status": o.status, "error": o.error,
                               "estimate_s": o.seconds.get("estimate"), "sr_s": o.seconds.get("sr"),
                               "total_s": o.seconds.get("total")}
        if o.status != "failed":
            rec = o.record
            row["kernel"] = str(Path(o.folder).relative_to(output_dir) / rec.get("kernel_file", ""))
            first = rec.get("kernels", {}).get("x2") or next(iter(rec.get("kernels", {}).values()), {})
            row.update({k: first.get(k) for k in ("sigma_major", "sigma_minor", "angle_deg")})
            provenance = rec.get("kernel_provenance", {})
            row["restart_agreement_db"] = provenance.get("restart_agreement_db")
            confidence = provenance.get("confidence") or {}
            row["confidence"], row["confidence_level"] = confidence.get("score"), confidence.get("level")
            row["noise_sigma"] = (provenance.get("noise") or {}).get("sigma")
            row["jpeg_quality"] = (rec.get("compression") or {}).get("quality")
            row["sr_noise_sigma"] = rec.get("sr_noise")
            row["kernel_group"] = rec.get("kernel_group")
            row["fallback"] = provenance.get("fallback")
            row["warnings"] = "; ".join(rec.get("warnings", [])) or None
            if gt_dir is not None:
                gt_path = gt_dir / rel
                if gt_path.is_file():
                    sr = read_image(Path(o.folder) / rec["image_file"]).rgb
                    hr = read_image(gt_path).rgb
                    h, w = min(sr.shape[0], hr.shape[0]), min(sr.shape[1], hr.shape[1])
                    row["psnr"], row["ssim"] = y_psnr_ssim(sr[:h, :w], hr[:h, :w], scale)
        rows.append(row)
    return rows


def write_summary(rows: list[dict[str, Any]], output_dir: Path, meta: dict[str, Any]) -> tuple[Path, Path]:
    return write_tables(output_dir / "summary", rows, SUMMARY_COLUMNS, meta)


def _data_uri(png: bytes) -> str:
    return "data:image/png;base64," + base64.b64encode(png).decode()


def _crops(source: Path, output: Path, scale: int) -> tuple[bytes, bytes] | None:
    """The same region of the input (nearest-neighbour enlarged) and of the output, as PNGs."""
    try:
        lr = read_image(source).rgb
        sr = read_image(output).rgb
    except Exception:  # noqa: BLE001 - a report must render even if a file went missing
        return None
    gray = lr @ np.array([0.299, 0.587, 0.114])
    size = min(CROP, *gray.shape)
    energy = cv2.boxFilter(np.abs(cv2.Laplacian(gray, cv2.CV_64F)), -1, (size, size))
    half = size // 2
    valid = energy[half:gray.shape[0] - size + half + 1, half:gray.shape[1] - size + half + 1]
    top, left = np.unravel_index(np.argmax(valid), valid.shape)
    lr_crop = lr[top:top + size, left:left + size]
    sr_crop = sr[top * scale:(top + size) * scale, left * scale:(left + size) * scale]
    big = np.kron(lr_crop, np.ones((scale, scale, 1)))
    return encode_png(big), encode_png(sr_crop)


def write_report(rows: list[dict[str, Any]], outcomes: Sequence[ImageOutcome], output_dir: Path,
                 scale: int, title: str) -> Path:
    """``report.html`` next to the summary."""
    failed = [r for r in rows if r["status"] == "failed"]
    parts = [f"<h1>{html.escape(title)}</h1>",
             f"<p>{len(rows)} images: {len(rows) - len(failed)} finished, {len(failed)} failed. "
             f"Generated {datetime.datetime.now():%Y-%m-%d %H:%M}.</p>"]
    if failed:
        parts.append("<h2 class='bad'>Failures</h2><table><tr><th>image</th><th>error</th></tr>")
        parts += [f"<tr><td>{html.escape(r['image'])}</td><td>{html.escape(r['error'] or '')}</td></tr>"
                  for r in failed]
        parts.append("</table>")
    parts.append("<h2>Results</h2>")
    for row, outcome in zip(rows, ordered(outcomes)):
        if row["status"] == "failed":
            continue
        folder = Path(outcome.folder)
        kernel_png = (output_dir / row["kernel"]).with_suffix(".png")
        crops = _crops(Path(outcome.source), folder / outcome.record["image_file"], scale)
        facts = [f"kernel &sigma; {row['sigma_major']:.2f} / {row['sigma_minor']:.2f} px, "
                 f"{row['angle_deg']:.0f}&deg;" if row.get("sigma_major") is not None else "",
                 f"estimate {row['estimate_s'] or 0:.1f} s, SR {row['sr_s'] or 0:.1f} s, total {row['total_s'] or 0:.1f} s"]
        if row.get("restart_agreement_db") is not None:
            facts.append(f"restart agreement {row['restart_agreement_db']:.1f} dB")
        if row.get("confidence") is not None:
            level = "bad" if row["confidence_level"] == "low" else "good"
            facts.append(f"<span class='{level}'>kernel confidence {row['confidence']:.2f} "
                         f"({html.escape(row['confidence_level'])})</span>")
        if row.get("kernel_group"):
            facts.append(f"shared kernel: {html.escape(row['kernel_group'])}")
        if row.get("noise_sigma") is not None:
            facts.append(f"noise &sigma; {row['noise_sigma']:.1f} (8-bit)")
        if row.get("jpeg_quality") is not None:
            facts.append(f"JPEG quality {row['jpeg_quality']}")
        if row.get("sr_noise_sigma") is not None:
            facts.append(f"SR told noise &sigma; {row['sr_noise_sigma']:.1f}")
        if row.get("fallback"):
            facts.append(f"<span class='bad'>fallback: {html.escape(row['fallback'])}</span>")
        if row.get("psnr") is not None:
            facts.append(f"Y-PSNR {row['psnr']:.2f} dB, SSIM {row['ssim']:.4f}")
        if row.get("warnings"):
            facts.append(f"<span class='bad'>{html.escape(row['warnings'])}</span>")
        figures = []
        if kernel_png.is_file():
            figures.append(f"<figure><img class='kernel' src='{_data_uri(kernel_png.read_bytes())}'>"
                           "<figcaption>kernel</figcaption></figure>")
        if crops:
            figures.append(f"<figure><img src='{_data_uri(crops[0])}'><figcaption>input (x{scale} enlarged)"
                           "</figcaption></figure>")
            figures.append(f"<figure><img src='{_data_uri(crops[1])}'><figcaption>output</figcaption></figure>")
        parts.append(f"<section><h3>{html.escape(row['image'])}</h3><div class='row'>{''.join(figures)}</div>"
                     f"<p>{'<br>'.join(f for f in facts if f)}</p></section>")
    style = ("body{font-family:sans-serif;margin:2em;max-width:1100px} .bad{color:#b00}"
             " table{border-collapse:collapse} td,th{border:1px solid #ccc;padding:4px 8px;text-align:left}"
             " .row{display:flex;gap:1em;flex-wrap:wrap} figure{margin:0} img{max-width:340px;image-rendering:pixelated}"
             " img.kernel{width:160px} section{border-top:1px solid #ddd;padding-top:.5em}")
    page = (f"<!DOCTYPE html><html lang='en'><head><meta charset='utf-8'><title>{html.escape(title)}</title>"
            f"<style>{style}</style></head><body>{''.join(parts)}</body></html>")
    return atomic_write_bytes(output_dir / "report.html", page.encode())
