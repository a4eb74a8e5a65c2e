"""One kernel per camera, and blind noise: per-image, averaged and folder-joint kernels on one-camera
sets, and SRMD given sigma 0, the estimated sigma and the true sigma.

One-camera sets are made here from the HR images of BSD100RK and Urban100RK (never committed): every
image of a set is degraded with the same random DIV2KRK-protocol x2 kernel; in some sets every
``defocus_every``-th scene first gets a defocused background (benchmarks/hard_set.py's generator:
a sharp subject, 50-80 % of the frame blurred by a disk or a Gaussian), and some get Gaussian noise
of sigma 5 or 10 (8-bit units) before the 8-bit rounding. The sets use images no choice of this
project was made on (BSD100RK 21-100, Urban100RK 9-20), except the ``tune`` sets (BSD100RK 1-10,
clean, and 11-20, sigma 5; Urban100RK 1-8, sigma 10), which are for choosing and are reported apart.

Per image: the default KernelGAN estimate of that image alone ("own"); per set: the mean of the own
kernels ("averaged", each centred, averaged on a common canvas) and the joint estimate from all the
set's images at once (``KernelGANEstimator.estimate_group``, reading exactly what a batch with
``kernel_scope=folder`` reads). Scores: kernel PSNR against the true kernel; SR Y-PSNR of SRMD with
each kernel as the pipeline hands it over (``handoff_width``), given the true sigma; and on every
set SRMD with the own kernel and sigma 0, the sigma its estimate recorded ("auto") and the true
sigma, and with the joint kernel and each image's own sigma fitted under it (what a batch with
``kernel_scope=folder sr.noise=auto`` does). Part ``zssr``: on ``tune_noise`` and ``noise5``, ZSSR with the own
kernel: the default preset, and without back-projection with noise on its training sons, the
image's own level (``sr.noise_std=auto``) or KernelGAN's fixed 0.0125 (``ZSSR_VARIANTS``). Seconds: each own estimate, and the joint estimate (its cost per image is its time
divided by the set's size). Every result is cached in ``--work``; an interrupted run resumes.
``--retime`` makes the own estimates again (once per code revision) in this process, then the joint
one, so that their seconds are side by side (the kernels must come out as cached).

Part ``budgets``: the joint estimate of the tuning sets under each ``GROUP_BUDGETS``
entry (``estimator.group_iterations`` x ``group_restarts``, the shape and the G crop; ``--budget``
picks some), three seeds each: where the default group budget was chosen. Part ``handoff``: SRMD with the tuning sets' joint kernels narrowed to
several widths (``STUDY_WIDTHS``): where the handoff width of a group's kernel was chosen. Each
part writes its own section of docs/BENCHMARKS.md.

    python -m benchmarks.camera --shared ../shared/data [--sets tune,clean,defocus,noise5,noise10]
        [--part main|zssr|budgets|handoff]
"""
from __future__ import annotations

import argparse
import json
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from blindsr.tables import mean_p10_worst

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))


@dataclass(frozen=True)
class CameraSet:
    source: str  # BSD100RK or Urban100RK
    numbers: tuple[int, ...]
    seed: int
    sigma: float
    defocus_every: int  # 0: none; n: images 1, 1 + n, ... of the set get a defocused background
    role: str  # tune or report
    zssr: bool = False  # also ZSSR with and without noise on its sons (ZSSR_VARIANTS)

    def defocused(self) -> list[int]:
        """The set's scenes (1-based) made with a defocused background."""
        every = self.defocus_every
        return [i + 1 for i in range(len(self.numbers)) if every and i % every == 0]

    def describe(self) -> str:
        """The set in words: its source images, noise and defocused scenes."""
        first, last = self.numbers[0], self.numbers[-1]
        noise = f"Gaussian noise of sigma {self.sigma:g} in 8-bit units" if self.sigma else "no noise"
        scenes = self.defocused()
        blur = ("" if not scenes else "; scene " + str(scenes[0]) if len(scenes) == 1 else
                "; scenes " + ", ".join(map(str, scenes[:-1])) + f" and {scenes[-1]}") + \
            (" with a defocused background" if scenes else "")
        return f"{self.source} {first}-{last}, {noise}{blur}"


SETS = {
    "tune": CameraSet("BSD100RK", tuple(range(1, 11)), 5101, 0.0, 3, "tune"),
    "tune_noise": CameraSet("BSD100RK", tuple(range(11, 21)), 5106, 5.0, 3, "tune", zssr=True),
    # Added after the report set noise10 lost 0.92 dB of joint kernel PSNR with 56-px group crops,
    # which no tuning set could have shown (none had sigma 10): Urban100RK 1-8 are tuning images.
    "tune_noise10": CameraSet("Urban100RK", tuple(range(1, 9)), 5107, 10.0, 3, "tune"),
    "clean": CameraSet("BSD100RK", tuple(range(21, 33)), 5102, 0.0, 0, "report"),
    "defocus": CameraSet("BSD100RK", tuple(range(33, 45)), 5103, 0.0, 2, "report"),
    "noise5": CameraSet("BSD100RK", tuple(range(45, 57)), 5104, 5.0, 3, "report", zssr=True),
    "noise10": CameraSet("Urban100RK", tuple(range(9, 21)), 5105, 10.0, 3, "report"),
}


def make_set(name: str, spec: CameraSet, shared: Path, out: Path) -> Path:
    """The set in DIV2KRK layout (x2 only) under ``out/name``, made once; ``manifest.json`` last."""
    from benchmarks.hard_set import defocus
    from blindsr.degradation import degrade, random_kernels
    from blindsr.images import read_image, write_image
    from blindsr.kernel import write_kernel_array
    from blindsr.outputs import write_json

    folder = out / name
    if (folder / "manifest.json").exists():
        return folder
    for sub in ("gt", "lr_x2", "gt_k_x2"):
        (folder / sub).mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(spec.seed)
    drawn = random_kernels(rng)[2]
    kernel = np.asarray(drawn.array)
    images = []
    for i, number in enumerate(spec.numbers):
        hr = read_image(shared / spec.source / "gt" / f"im_{number}.png").rgb
        hr = np.round(hr[:hr.shape[0] // 4 * 4, :hr.shape[1] // 4 * 4] * 255) / 255
        edit = None
        if spec.defocus_every and i % spec.defocus_every == 0:
            hr, edit = defocus(hr, ("disk", "gaussian")[(i // spec.defocus_every) % 2], rng)
            hr = np.round(hr * 255) / 255
        lr = degrade(hr, kernel, 2)
        if spec.sigma:
            lr = lr + rng.normal(0.0, spec.sigma / 255.0, lr.shape)
        write_image(folder / "gt" / f"im_{i + 1}.png", hr)
        write_image(folder / "lr_x2" / f"im_{i + 1}.png", lr)
        for suffix in ("npy", "mat"):
            write_kernel_array(folder / "gt_k_x2" / f"kernel_{i + 1}.{suffix}", kernel)
        images.append({"number": i + 1, "source": f"{spec.source} im_{number}", "defocus": edit})
    write_json(folder / "manifest.json", {"set": name, "seed": spec.seed, "sigma": spec.sigma,
                                          "shared_kernel": True, "kernel": drawn.provenance, "images": images})
    return folder


def cached_estimate(out: Path, retime: bool) -> dict | None:
    """The estimate cached as ``out``.json, or None; with ``retime``, one not yet made again at
    this revision comes back marked ``_stale`` (to be made again and compared)."""
    from benchmarks.common import revision

    if not out.with_suffix(".json").exists():
        return None
    cached = json.loads(out.with_suffix(".json").read_text())
    return {**cached, "_stale": True} if retime and cached.get("retimed_at") != revision() else cached


def store_estimate(out: Path, record: dict, kernel: np.ndarray, cached: dict | None) -> dict:
    """Cache a new estimate, or record a remade one's time beside the first and whether its kernel
    is the cached one bit for bit (``same_kernel``)."""
    from benchmarks.common import revision

    if cached is None:
        np.save(out.with_suffix(".npy"), np.asarray(kernel))
    else:
        record.update(retimed_at=revision(), first_seconds=cached.get("first_seconds", cached["seconds"]),
                      same_kernel=bool(np.array_equal(np.load(out.with_suffix(".npy")), kernel)))
    out.with_suffix(".json").write_text(json.dumps(record))
    return record


def own_estimate(lr: Path, out: Path, retime: bool = False) -> dict:
    """The default estimate of one image, cached as ``out``.npy/.json; ``retime``: made again
    and timed now, its kernel compared with the cached one (``same_kernel``)."""
    cached = cached_estimate(out, retime)
    if cached is not None and not cached.get("_stale"):
        return cached
    from blindsr.estimators import get_estimator
    from blindsr.images import read_image

    image = read_image(lr).rgb
    start = time.perf_counter()
    estimate = get_estimator("kernelgan", device="cpu").estimate(image, 2, seed=0)
    seconds = time.perf_counter() - start
    k = estimate.kernels[2]
    out.parent.mkdir(parents=True, exist_ok=True)
    record = {"seconds": seconds, "noise": k.provenance.get("noise"), "fallback": k.provenance.get("fallback"),
              "confidence": (k.provenance.get("confidence") or {}).get("score")}
    return store_estimate(out, record, k.array, cached)


# Group budgets tried on the tuning sets: (estimator.group_iterations, group_restarts, group_shape,
# group_g_crop); the first five were measured when every estimate trained on 64-px G crops.
GROUP_BUDGETS = {"1000 x 4 (one image's), KernelGAN's shape (until now)": (1000, 4, "kernel", 64),
                 "1000 x 4, shape selected": (1000, 4, "select", 64), "750 x 4, shape selected": (750, 4, "select", 64),
                 "500 x 8, shape selected": (500, 8, "select", 64), "500 x 4, shape selected": (500, 4, "select", 64),
                 "750 x 4, shape selected, 56-px crops": (750, 4, "select", 56),
                 "600 x 4, shape selected": (600, 4, "select", 64)}
BUDGET_SEEDS = (0, 1, 2)


def budget_label(shape: str | None = None) -> str:
    """The default group budget and shape (or ``shape``), as the joint estimates' cache names
    carry them (KernelGAN's shape unnamed: the names from before shape selection)."""
    from blindsr.estimators.kernelgan.settings import settings_for

    group = settings_for("default").for_group()
    shape = shape or group.shape
    return f"{group.iterations}x{group.restarts}" + ("" if shape == "kernel" else f"_{shape}")


def joint_estimate(lrs: list[Path], out: Path, seed: int = 0, retime: bool = False, **overrides) -> dict:
    """The set's joint estimate, as a batch with kernel_scope=folder makes it, cached; ``retime``:
    made again and timed now, as ``own_estimate`` does."""
    cached = cached_estimate(out, retime)
    if cached is not None and not cached.get("_stale"):
        return cached
    from blindsr.estimators import get_estimator
    from blindsr.groups import MAX_GROUP_IMAGES, evenly_spread, group_images
    from blindsr.images import DEFAULT_MAX_PIXELS

    estimator = get_estimator("kernelgan", device="cpu", **overrides)
    start = time.perf_counter()
    images, read, _ = group_images(evenly_spread([str(p) for p in lrs], MAX_GROUP_IMAGES), estimator,
                                   DEFAULT_MAX_PIXELS)
    estimate = estimator.estimate_group(images, 2, seed=seed)
    seconds = time.perf_counter() - start
    k = estimate.kernels[2]
    out.parent.mkdir(parents=True, exist_ok=True)
    record = {"seconds": seconds, "images_read": len(read), "fallback": k.provenance.get("fallback"),
              "confidence": (k.provenance.get("confidence") or {}).get("score"),
              "shape": (k.provenance.get("shape") or {}).get("chosen")}
    return store_estimate(out, record, k.array, cached)


def averaged(kernels: list[np.ndarray]) -> np.ndarray:
    from blindsr.kernel import SRKernel, crop_or_pad

    size = max(k.shape[0] for k in kernels)
    return SRKernel.from_array(sum(crop_or_pad(k, size) for k in kernels) / len(kernels), 2, order=1).array


def sr_scores(lr: np.ndarray, hr: np.ndarray, kernel: np.ndarray, sigma: float | str, cache: Path,
              noise_record: dict | None = None, width: float | None = None) -> tuple[float, float]:
    """Y-PSNR and SSIM of SRMD x2 with ``kernel`` handed over as the pipeline does (narrowed to
    ``width``, by default the handoff width), cached as ``cache``.json (the name kept whole: it may
    hold dots)."""
    cache = cache.with_name(cache.name + ".json")
    if cache.exists():
        return tuple(json.loads(cache.read_text()))
    from blindsr.backends import adapt, get_backend
    from blindsr.config import HANDOFF_WIDTH
    from blindsr.kernel import SRKernel
    from blindsr.metrics import y_psnr_ssim
    from blindsr.stages import handoff_kernels

    k = SRKernel(kernel, 2, provenance={"noise": noise_record} if noise_record else {})
    backend = get_backend("srmd", device="cpu", noise=sigma)
    kernels = adapt(handoff_kernels({2: k}, HANDOFF_WIDTH if width is None else width), backend.needs, 2)
    sr = backend.super_resolve(lr, 2, kernels).image
    values = tuple(float(v) for v in y_psnr_ssim(sr, hr[:sr.shape[0], :sr.shape[1]], 2))
    cache.parent.mkdir(parents=True, exist_ok=True)
    cache.write_text(json.dumps(values))
    return values


# ZSSR on noisy images: the fast preset as it was (no noise on its sons, back-projection on), as it
# is by default (noise_std auto: on these noisy images, the image's own noise on the sons and no
# back-projection, which would re-inject the noise), and with KernelGAN's fixed 0.0125 (its
# ``real`` setting). Results are cached by position in this table.
ZSSR_VARIANTS = {"fast, no son noise": {"noise_std": 0.0}, "fast (default), sons noise auto": {},
                 "fast, sons noise 0.0125": {"noise_std": 0.0125, "back_projection_iters": 0}}


def zssr_scores(lr: np.ndarray, hr: np.ndarray, kernel: np.ndarray, noise_record: dict | None,
                variant: str, cache: Path) -> tuple[float, float]:
    """Y-PSNR and SSIM of ZSSR x2 (a ``ZSSR_VARIANTS`` entry) with the kernel handed over as the
    pipeline does, cached."""
    if cache.exists():
        return tuple(json.loads(cache.read_text()))
    from blindsr.backends import adapt, get_backend
    from blindsr.config import HANDOFF_WIDTH
    from blindsr.kernel import SRKernel
    from blindsr.metrics import y_psnr_ssim
    from blindsr.stages import handoff_kernels

    k = SRKernel(kernel, 2, provenance={"noise": noise_record} if noise_record else {})
    backend = get_backend("zssr", device="cpu", **ZSSR_VARIANTS[variant])
    sr = backend.super_resolve(lr, 2, adapt(handoff_kernels({2: k}, HANDOFF_WIDTH), backend.needs, 2)).image
    values = tuple(float(v) for v in y_psnr_ssim(sr, hr[:sr.shape[0], :sr.shape[1]], 2))
    cache.parent.mkdir(parents=True, exist_ok=True)
    cache.write_text(json.dumps(values))
    return values


def drawn_covariance(spec: CameraSet) -> np.ndarray:
    """The covariance (HR px^2) of the Gaussian the protocol drew for the set, before its per-tap noise."""
    from blindsr.degradation import random_kernels

    drawn = random_kernels(np.random.default_rng(spec.seed))[2].provenance
    c, s = np.cos(drawn["theta"]), np.sin(drawn["theta"])
    rotation = np.array([[c, -s], [s, c]])
    return rotation @ np.diag(drawn["eigenvalues"]) @ rotation.T


def smooth_ceiling(spec: CameraSet, truth) -> float:
    """Kernel PSNR of the drawn Gaussian itself against the true kernel, which the protocol made
    by multiplying every tap by 1 + U(-0.25, 0.25): what a perfect smooth estimate scores."""
    from blindsr.degradation import gaussian_kernel
    from blindsr.metrics import kernel_psnr

    return kernel_psnr(gaussian_kernel(truth.size, drawn_covariance(spec)), truth, size=truth.size)


def run_set(name: str, spec: CameraSet, shared: Path, work: Path, retime: bool = False,
            zssr: bool = False) -> dict:
    from blindsr.config import GROUP_HANDOFF_WIDTH
    from blindsr.estimators.noise import estimate_noise
    from blindsr.images import read_image
    from blindsr.kernel import load_kernel
    from blindsr.metrics import kernel_psnr

    folder = make_set(name, spec, shared, work / "sets")
    lrs = [folder / "lr_x2" / f"im_{i + 1}.png" for i in range(len(spec.numbers))]
    truth = load_kernel(folder / "gt_k_x2" / "kernel_1.npy", 2)
    results = work / "results" / name
    own = [own_estimate(lr, results / "own" / lr.stem, retime) for lr in lrs]
    print(f"{name}: own estimates done", flush=True)
    budget = budget_label()
    joint = joint_estimate(lrs, results / f"joint_{budget}", retime=retime)
    # The same joint estimate keeping KernelGAN's shape (no shape selection), for its kernel PSNR.
    kernel_shape = results / f"joint_{budget_label('kernel')}"
    joint_estimate(lrs, kernel_shape, group_shape="kernel")
    joint_kernel_shape = np.load(kernel_shape.with_suffix(".npy"))
    own_k = [np.load(results / "own" / f"{lr.stem}.npy") for lr in lrs]
    kernels = {"own": own_k, "averaged": [averaged(own_k)] * len(lrs),
               "joint": [np.load(results / f"joint_{budget}.npy")] * len(lrs)}
    rows = []
    for i, lr_path in enumerate(lrs):
        lr, hr = read_image(lr_path).rgb, read_image(folder / "gt" / lr_path.name).rgb
        row = {"image": lr_path.stem, "own_s": own[i]["seconds"], "own_fallback": own[i]["fallback"] or "",
               "sigma_auto": (own[i]["noise"] or {}).get("sigma")}
        def score(key: str, kernel: np.ndarray, sigma: float | str, noise: dict | None = None) -> None:
            # The joint kernel changes with the group budget and is handed over at the group's width.
            joint_key = key.startswith("joint")
            tag = f"_{budget}_w{round(GROUP_HANDOFF_WIDTH * 100)}" if joint_key else ""
            row[key], row[f"{key}_ssim"] = sr_scores(lr, hr, kernel, sigma,
                                                     results / "sr" / f"{lr_path.stem}_{key}{tag}", noise,
                                                     GROUP_HANDOFF_WIDTH if joint_key else None)

        for kind, ks in kernels.items():
            row[f"{kind}_kernel_psnr"] = kernel_psnr(ks[i], truth, size=truth.size)
            score(f"{kind}_sr", ks[i], spec.sigma)
        row["joint_kernel_shape_kernel_psnr"] = kernel_psnr(joint_kernel_shape, truth, size=truth.size)
        # SRMD with the true kernel: a kernel estimate can beat it on one image, never on average.
        score("true_sr", truth.array, spec.sigma)
        score("own_sr_sigma0", own_k[i], 0.0)
        score("own_sr_auto", own_k[i], "auto", own[i]["noise"])
        # What batch kernel_scope=folder sr.noise=auto gives: the image's own noise under the joint kernel.
        joint_noise = estimate_noise(lr, kernels["joint"][i], 2)
        row["joint_sigma_auto"] = joint_noise["sigma"]
        score("joint_sr_auto", kernels["joint"][i], "auto", joint_noise)
        if zssr:
            for n, variant in enumerate(ZSSR_VARIANTS):
                row[f"zssr{n}"], row[f"zssr{n}_ssim"] = zssr_scores(
                    lr, hr, own_k[i], own[i]["noise"], variant, results / "zssr" / f"{lr_path.stem}_{n}.json")
        if "same_kernel" in own[i]:
            row["own_same_kernel"] = own[i]["same_kernel"]
        rows.append(row)
    print(f"{name}: scored", flush=True)
    return {"name": name, "spec": spec, "rows": rows, "joint": joint, "ceiling": smooth_ceiling(spec, truth)}


def warm_up() -> None:
    """One short estimate before anything is timed: the process's first pays one-off costs
    (imports torch makes on first use), which no image's time should carry."""
    from blindsr.estimators import get_estimator

    image = np.random.default_rng(0).random((96, 96, 3))
    get_estimator("kernelgan", device="cpu", iterations=20, restarts=2).estimate(image, 2, seed=0)


def budget_study(shared: Path, work: Path, chosen: list[str] | None = None) -> str:
    """The joint estimate of each tuning set under each ``GROUP_BUDGETS`` entry (or those
    ``chosen``; the first is the reference) and seed."""
    chosen = chosen or list(GROUP_BUDGETS)
    from blindsr.kernel import load_kernel
    from blindsr.metrics import kernel_psnr

    runs = []
    for name, spec in SETS.items():
        if spec.role != "tune":
            continue
        folder = make_set(name, spec, shared, work / "sets")
        lrs = [folder / "lr_x2" / f"im_{i + 1}.png" for i in range(len(spec.numbers))]
        truth = load_kernel(folder / "gt_k_x2" / "kernel_1.npy", 2)
        for label in chosen:
            iterations, restarts, shape, g_crop = GROUP_BUDGETS[label]
            crop = "" if g_crop == 64 else f"_g{g_crop}"
            for seed in BUDGET_SEEDS:
                out = work / "results" / name / "budgets" / f"{iterations}x{restarts}_{shape}{crop}_seed{seed}"
                record = joint_estimate(lrs, out, seed, group_iterations=iterations, group_restarts=restarts,
                                        group_shape=shape, group_g_crop=g_crop)
                runs.append({"set": name, "budget": label, "seed": seed, "seconds": record["seconds"],
                             "kernel PSNR": kernel_psnr(np.load(out.with_suffix(".npy")), truth, size=truth.size)})
        print(f"{name}: budgets done", flush=True)

    def mean_psnr(budget: str, name: str | None = None) -> float:
        return float(np.mean([r["kernel PSNR"] for r in runs if r["budget"] == budget and name in (None, r["set"])]))

    def mean_seconds(budget: str) -> float:
        return float(np.mean([r["seconds"] for r in runs if r["budget"] == budget]))

    first, names = chosen[0], list(dict.fromkeys(r["set"] for r in runs))
    rows = []
    for label in chosen:
        worst = min(r["kernel PSNR"] for r in runs if r["budget"] == label)
        rows.append({"group budget (iterations x runs)": label, "estimates": sum(r["budget"] == label for r in runs),
                     "kernel PSNR mean / worst": f"{mean_psnr(label):.2f} / {worst:.2f}",
                     "dB vs the first": f"{mean_psnr(label) - mean_psnr(first):+.3f}",
                     "seconds": f"{mean_seconds(label):.1f}",
                     "time vs the first": f"{mean_seconds(label) / mean_seconds(first):.2f}x",
                     **{f"{name}: mean (vs the first)": f"{mean_psnr(label, name):.2f} "
                                                        f"({mean_psnr(label, name) - mean_psnr(first, name):+.3f})"
                        for name in names}})
    return ("Tuning sets only, seeds " + ", ".join(map(str, BUDGET_SEEDS)) + ". The joint estimate of each tuning set under each budget, its loss-weight and learning-rate "
            "schedules compressed in proportion to the iterations (`KernelGANSettings.for_group`), the refined "
            "kernel's shape KernelGAN's or selected by the pooled likelihood (`estimator.group_shape`). The default "
            "group budget and shape are chosen here; the first row is the reference of the 'vs the first' columns.\n\n" + table(rows) + "\n\n" + table(
                [{**r, "seconds": round(r["seconds"], 2), "kernel PSNR": round(float(r["kernel PSNR"]), 3)} for r in runs]))


# Handoff widths tried for the joint kernel on the tuning sets (``handoff_study``).
STUDY_WIDTHS = (0.8, 0.85, 0.9, 0.95, 1.0)


def handoff_study(shared: Path, work: Path) -> str:
    """SRMD with the tuning sets' joint kernels (shape selected, and KernelGAN's shape) narrowed to
    each ``STUDY_WIDTHS`` entry, beside the own kernels at the handoff width and the true kernel:
    whether the width chosen for one image's KernelGAN kernel suits a group's kernel."""
    from blindsr.config import GROUP_HANDOFF_WIDTH, HANDOFF_WIDTH
    from blindsr.images import read_image
    from blindsr.kernel import SRKernel, load_kernel

    lines, per_image, worst, variance = [], [], {}, {}
    for name, spec in SETS.items():
        if spec.role != "tune":
            continue
        folder = make_set(name, spec, shared, work / "sets")
        lrs = [folder / "lr_x2" / f"im_{i + 1}.png" for i in range(len(spec.numbers))]
        truth = load_kernel(folder / "gt_k_x2" / "kernel_1.npy", 2)
        results = work / "results" / name
        for lr in lrs:
            own_estimate(lr, results / "own" / lr.stem)
        joints = {}
        for shape in ("select", "kernel"):
            label = budget_label(shape)
            record = joint_estimate(lrs, results / f"joint_{label}", group_shape=shape)
            joints[shape] = (label, record, np.load(results / f"joint_{label}.npy"))
        scores: dict[str, list[float]] = {}
        for i, lr_path in enumerate(lrs):
            lr, hr = read_image(lr_path).rgb, read_image(folder / "gt" / lr_path.name).rgb
            sr_dir = results / "sr"
            row = {"set": name, "image": lr_path.stem,
                   "own": sr_scores(lr, hr, np.load(results / "own" / f"{lr_path.stem}.npy"), spec.sigma,
                                    sr_dir / f"{lr_path.stem}_own_sr")[0]}
            # The true kernel at each width too: where SRMD's preference lies for a kernel of the right
            # covariance (the handoff width's own cache keeps its name).
            for width in STUDY_WIDTHS:
                row[f"true {width}"] = sr_scores(lr, hr, truth.array, spec.sigma, sr_dir / (
                    f"{lr_path.stem}_true_sr" + ("" if width == HANDOFF_WIDTH else f"_w{round(width * 100)}")),
                    width=width)[0]
            for shape, (label, _, kernel) in joints.items():
                for width in STUDY_WIDTHS:
                    row[f"{shape} {width}"] = sr_scores(lr, hr, kernel, spec.sigma,
                                                        sr_dir / f"{lr_path.stem}_joint_w{round(width * 100)}_{label}", width=width)[0]
            for key, value in row.items():
                if key not in ("set", "image"):
                    scores.setdefault(key, []).append(value)
            per_image.append({k: (round(v, 3) if isinstance(v, float) else v) for k, v in row.items()})
        own_sr = np.asarray(scores["own"])
        for key, values in scores.items():
            v = np.asarray(values)
            if key.startswith("select"):
                worst[key] = min(worst.get(key, np.inf), float(np.min(v - own_sr)))
            kind = {"select": f"joint, shape selected ({joints['select'][1]['shape']})",
                    "kernel": "joint, KernelGAN shape", "true": "true kernel"}.get(key.split()[0])
            lines.append({"set": name, "kernel": f"{kind}, width {key.split()[-1]}" if kind else key,
                          "SR mean / p10 / worst": mean_p10_worst(v), "vs own: mean": f"{np.mean(v - own_sr):+.3f}",
                          "vs own: worst image": f"{np.min(v - own_sr):+.3f}"})
        # How wide the joint kernel came out: its variance over the true kernel's (which degraded the
        # images: the drawn Gaussian cut to the protocol's canvas, each tap scaled by its noise).
        true_variance = np.trace(truth.covariance())
        variance[name] = {shape: float(np.trace(SRKernel(kernel, 2).covariance()) / true_variance)
                          for shape, (_, _, kernel) in joints.items()}
        variance[name]["drawn"] = float(np.trace(drawn_covariance(spec)) / true_variance)
        print(f"{name}: handoff study done", flush=True)
    best = max(worst, key=worst.get)
    return ("SRMD x2 Y-PSNR on the tuning sets (" + ", ".join(f"`{n}`" for n, s in SETS.items() if s.role == "tune") + "), given the true sigma, with the set's joint "
            "kernel narrowed to each width before SR, beside each image's own estimate at the handoff width and "
            f"the true kernel at each width (the handoff width for the own kernels: {HANDOFF_WIDTH}); 'vs own': SR with that kernel minus SR with the image's own, per image. "
            "mean / 10th percentile / worst over the set's images.\n\n" + table(lines)
            + f"\n\nWidth whose worst image (SR with the joint kernel, shape selected, minus SR with the image's own, "
            f"over the tuning sets) is highest: **{best.split()[-1]}** ({worst[best]:+.3f} dB). Shipped group handoff width "
            f"(`group_handoff_width`, batch with kernel_scope=folder|camera): **{GROUP_HANDOFF_WIDTH}**.\n\n"
            "The joint kernel's variance (the trace of its second moments) over the true kernel's: "
            + "; ".join(f"{name}: shape selected {v['select']:.3f}, KernelGAN shape {v['kernel']:.3f} (the drawn "
                        f"Gaussian before the protocol cut and noised it: {v['drawn']:.3f})"
                        for name, v in variance.items())
            + ". A kernel of the right covariance, narrowed to the handoff width, would take the width "
            f"{HANDOFF_WIDTH} / sqrt(ratio)."
            + "\n\n### Per image\n\n" + table(per_image))


def table(rows: list[dict]) -> str:
    from blindsr.tables import markdown_table

    return markdown_table(rows, list(rows[0]))


def section(results: list[dict]) -> str:
    summary, noise, checks = [], [], []
    for res in results:
        rows, spec, joint = res["rows"], res["spec"], res["joint"]
        n = len(rows)
        own_s = float(np.mean([r["own_s"] for r in rows]))
        per_image = joint["seconds"] / n
        gain = np.mean([r["joint_kernel_psnr"] for r in rows]) - np.mean([r["own_kernel_psnr"] for r in rows])
        worst_sr = min(r["joint_sr"] - r["own_sr"] for r in rows)
        beaten = [r for r in rows if r["joint_sr"] - r["own_sr"] < -0.1]
        lucky = sum(r["own_sr"] > r["true_sr"] for r in beaten)
        # The same check for the true kernel: how far a perfect kernel is from the goal on this set.
        true_worst = min(r["true_sr"] - r["own_sr"] for r in rows)
        true_beaten = sum(r["true_sr"] - r["own_sr"] < -0.1 for r in rows)
        summary.append({
            "set": f"{res['name']} ({spec.role})", "images": f"{spec.source} {spec.numbers[0]}-{spec.numbers[-1]}",
            "sigma": spec.sigma, "defocused": len(spec.defocused()),
            "own kernel PSNR mean/p10/worst": mean_p10_worst([r["own_kernel_psnr"] for r in rows]),
            "averaged": f"{rows[0]['averaged_kernel_psnr']:.2f}",
            "joint, KernelGAN's shape": f"{rows[0]['joint_kernel_shape_kernel_psnr']:.2f}",
            "joint": f"{rows[0]['joint_kernel_psnr']:.2f}",
            "smooth ceiling": f"{res['ceiling']:.2f}",
            "joint - mean own (dB)": f"{gain:+.2f}",
            "SR own mean/p10/worst": mean_p10_worst([r["own_sr"] for r in rows]),
            "SR averaged": mean_p10_worst([r["averaged_sr"] for r in rows]), "SR joint": mean_p10_worst([r["joint_sr"] for r in rows]),
            "SR true kernel": mean_p10_worst([r["true_sr"] for r in rows]),
            "SSIM own / joint / true kernel": " / ".join(f"{np.mean([r[k] for r in rows]):.4f}"
                                                        for k in ("own_sr_ssim", "joint_sr_ssim", "true_sr_ssim")),
            "worst image, joint - own SR (dB)": f"{worst_sr:+.3f}",
            "worst image, joint - true kernel SR (dB)": f"{min(r['joint_sr'] - r['true_sr'] for r in rows):+.3f}",
            "own s/image": f"{own_s:.1f}", "joint s": f"{joint['seconds']:.1f}", "joint s/image": f"{per_image:.2f}",
            "cost falls": f"{own_s / per_image:.1f}x (size {n})", "own fallbacks": sum(bool(r["own_fallback"]) for r in rows),
            "joint fallback": joint["fallback"] or ""})
        if spec.role == "report":
            checks.append(f"- {res['name']}: joint kernel PSNR {gain:+.2f} dB over the mean own (goal >= +2; the "
                          f"smooth ceiling is {res['ceiling'] - np.mean([r['own_kernel_psnr'] for r in rows]):+.2f} dB "
                          f"above the mean own), worst image SR joint - own {worst_sr:+.3f} dB (goal >= -0.1; "
                          f"{len(beaten)} image(s) below -0.1 dB, on {lucky} of them the own kernel also beats "
                          f"the true kernel; the true kernel itself: worst image {true_worst:+.3f} dB, {true_beaten} "
                          f"image(s) below -0.1 dB), estimate cost per image falls {own_s / per_image:.1f}x for {n} images "
                          f"(goal >= {n}x)")
        # Every set; on a clean one this is what auto costs where there is no noise.
        auto = [r["sigma_auto"] for r in rows]
        noise.append({"set": res["name"], "true sigma": spec.sigma,
                      "estimated sigma mean/min/max": f"{np.mean(auto):.2f} / {min(auto):.2f} / {max(auto):.2f}",
                      "SRMD sigma 0": mean_p10_worst([r["own_sr_sigma0"] for r in rows]),
                      "SRMD auto": mean_p10_worst([r["own_sr_auto"] for r in rows]),
                      "SRMD true sigma": mean_p10_worst([r["own_sr"] for r in rows]),
                      "joint kernel, auto": mean_p10_worst([r["joint_sr_auto"] for r in rows]),
                      "auto - true, mean (worst)": f"{np.mean([r['own_sr_auto'] - r['own_sr'] for r in rows]):+.3f} "
                                                   f"({min(r['own_sr_auto'] - r['own_sr'] for r in rows):+.3f})",
                      "auto - sigma 0, mean": f"{np.mean([r['own_sr_auto'] - r['own_sr_sigma0'] for r in rows]):+.2f}",
                      "SSIM sigma 0 / auto / true sigma": " / ".join(
                          f"{np.mean([r[k] for r in rows]):.4f}" for k in ("own_sr_sigma0_ssim", "own_sr_auto_ssim",
                                                                           "own_sr_ssim")),
                      "SSIM auto - sigma 0, worst": f"{min(r['own_sr_auto_ssim'] - r['own_sr_sigma0_ssim'] for r in rows):+.4f}"})
        if spec.role == "report" and spec.sigma:
            checks.append(f"- {res['name']}: SRMD auto - true sigma {noise[-1]['auto - true, mean (worst)']} dB "
                          f"(goal within 0.3), auto - sigma 0 {noise[-1]['auto - sigma 0, mean']} dB"
                          + (" (goal >= +1 at sigma 10)" if spec.sigma >= 10 else ""))
    same = [r["own_same_kernel"] for res in results for r in res["rows"] if "own_same_kernel" in r]
    same_joint = [res["joint"]["same_kernel"] for res in results if "same_kernel" in res["joint"]]
    retimed = (f" The own estimates were made again and timed (--retime; see the remark for the run that did it): "
               f"{sum(same)} of {len(same)} came out bit for bit as cached." if same else "")
    if same_joint:
        retimed += (f" So were the joint estimates (the default budget's), just after each set's own: "
                    f"{sum(same_joint)} of {len(same_joint)} bit for bit as cached.")
    per_image = []
    for res in results:
        for r in res["rows"]:
            per_image.append({"set": res["name"], **{k: (round(v, 3) if isinstance(v, float) else v) for k, v in r.items()}})
    from blindsr.config import GROUP_HANDOFF_WIDTH, HANDOFF_WIDTH

    return ("Sets of one camera (one random DIV2KRK x2 kernel per set), x2, seed 0, SRMD given each kernel "
            f"as a batch hands it over (own and averaged kernels narrowed to the handoff width {HANDOFF_WIDTH}, the "
            f"joint kernel to the group handoff width {GROUP_HANDOFF_WIDTH}) and the true sigma unless said. mean / 10th percentile / worst "
            "over the set's images. 'smooth ceiling': the kernel PSNR of the set's Gaussian itself, before "
            "the protocol's per-tap noise (x(1 + U(-0.25, 0.25))), against the true kernel: what the drawn "
            "Gaussian scores (a smooth estimate can score a little above it where the noise moved the true kernel's "
            "moments). The true kernel is handed over like the own kernels (the handoff width). The joint estimate reads up to 16 images of the set (each its most "
            "textured 1024 px square, all of these sets' images are smaller), crops drawn across them in "
            "proportion to their informative tiles, the refinement's tiles pooled, trained with the group budget "
            f"({budget_label('kernel').replace('x', ' iterations x ')} runs; one image's estimate: 1000 x 4); its "
            "kernel is KernelGAN's refined shape or the Gaussian of its covariance, whichever the pooled likelihood "
            "prefers ('joint, KernelGAN's shape': the same estimate without that choice)." + retimed
            + "\n\n" + table(summary) + "\n\n### Blind noise level (own kernel; SRMD sr.noise=auto reads its record; on a clean set "
            "the true sigma is 0)\n\n" + table(noise)
            + "\n\n### Checks (report sets)\n\n" + "\n".join(checks)
            + "\n\n### Per image\n\n" + table(per_image))


def zssr_section(results: list[dict]) -> str:
    """ZSSR with the own kernel on the sets marked ``zssr``, each ``ZSSR_VARIANTS`` entry."""
    zssr_rows = []
    for res in results:
        rows = res["rows"]
        line = {"set": f"{res['name']} ({res['spec'].role})", "true sigma": res["spec"].sigma}
        for n, variant in enumerate(ZSSR_VARIANTS):
            line[f"{variant}: Y-PSNR"] = mean_p10_worst([r[f"zssr{n}"] for r in rows])
            line[f"{variant}: SSIM"] = f"{np.mean([r[f'zssr{n}_ssim'] for r in rows]):.4f}"
        line["auto - no son noise, worst image"] = f"{min(r['zssr1'] - r['zssr0'] for r in rows):+.3f}"
        line["auto - 0.0125, worst image"] = f"{min(r['zssr1'] - r['zssr2'] for r in rows):+.3f}"
        zssr_rows.append(line)
    return ("ZSSR x2 on the noisy one-camera sets with each image's own kernel (handoff width) and its noise "
            "record, precision auto; mean / 10th percentile / worst over the set's images.\n\n" + table(zssr_rows))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--remark", action="append", default=[], help="a line added to the section")
    parser.add_argument("--shared", type=Path, required=True, help="the folder holding BSD100RK and Urban100RK")
    parser.add_argument("--sets", default=",".join(SETS), help=f"comma-separated, from {', '.join(SETS)}")
    parser.add_argument("--work", type=Path, default=ROOT / "bench_out" / "camera")
    parser.add_argument("--retime", action="store_true", help="make the own and joint estimates again, timed side by side")
    parser.add_argument("--part", choices=PARTS, default="main", help="which section to write: " + "; ".join(
        f"{k}: {v[1]}" for k, v in PARTS.items()))
    parser.add_argument("--make-sets", action="store_true", help="only make the --sets (for other benchmarks)")
    parser.add_argument("--budget", action="append", choices=GROUP_BUDGETS, default=None,
                        help="--part budgets: a budget to run (repeatable; the first is the reference; default: all)")
    parser.add_argument("--section", default=None, help="NAME:TITLE of the section written instead of the part's")
    args = parser.parse_args()
    if args.make_sets:
        for name in args.sets.split(","):
            print(make_set(name, SETS[name], args.shared, args.work / "sets"))
        return
    from benchmarks.common import write_section

    import torch
    torch.set_num_threads(2)
    warm_up()
    section_name, title, target = PARTS[args.part]
    if args.part == "main":
        results = [run_set(name, SETS[name], args.shared, args.work, args.retime) for name in args.sets.split(",")]
        body = section(results)
    elif args.part == "zssr":
        body = zssr_section([run_set(name, SETS[name], args.shared, args.work, zssr=True)
                             for name in args.sets.split(",") if SETS[name].zssr])
    elif args.part == "budgets":
        body = budget_study(args.shared, args.work, args.budget)
    else:
        body = handoff_study(args.shared, args.work)
    if args.section:
        section_name, _, title = args.section.partition(":")
        title = title or section_name
    write_section(section_name, title, "\n\n".join([*args.remark, body]), target)


# The benchmark's parts: (section, title, make target); each writes its own section.
PARTS = {"main": ("camera", "One kernel per camera and blind noise (one-camera sets)", "bench-camera"),
         "zssr": ("camera-zssr", "One-camera sets: ZSSR on noisy images", "bench-camera-zssr"),
         "budgets": ("camera-budgets", "One kernel per camera: group budgets (tuning sets)", "bench-camera-budgets"),
         "handoff": ("camera-handoff", "One kernel per camera: the joint kernel's handoff width (tuning sets)",
                     "bench-camera-handoff")}


if __name__ == "__main__":
    main()
