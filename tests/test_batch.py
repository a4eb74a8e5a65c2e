"""Batch runs: resume, failure isolation, executor equivalence, summary and report."""
from __future__ import annotations

import hashlib
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from blindsr.config import GROUP_HANDOFF_WIDTH, HANDOFF_WIDTH
from tests.conftest import textured_image

pytestmark = pytest.mark.slow  # the CLI in subprocesses, worker processes, training runs

FAST = ["estimator.iterations=30", "estimator.restarts=2", "sr=bicubic", "recursive=true"]
# A group's runs have their own budget (750 iterations by default): as short as one image's here.
SHARED = [*FAST, "kernel_scope=folder", "estimator.group_iterations=30"]


def blindsr(*args, cwd, timeout=600):
    return subprocess.run([sys.executable, "-m", "blindsr", *args], capture_output=True, text=True, cwd=cwd,
                          timeout=timeout)


def make_folder(root: Path, rng) -> Path:
    src = root / "in"
    (src / "nested").mkdir(parents=True)
    for i in range(2):
        Image.fromarray((textured_image(rng, 64 + 4 * i, 72) * 255).astype(np.uint8)).save(src / f"img {i}.png")
    Image.fromarray((textured_image(rng, 64, 64) * 255).astype(np.uint8)).save(src / "nested" / "deep.png")
    (src / "notes.txt").write_text("not an image")
    return root


@pytest.fixture(scope="module")
def reference(tmp_path_factory):
    """A folder of three images and one uninterrupted serial run over it."""
    root = make_folder(tmp_path_factory.mktemp("batch"), np.random.default_rng(7))
    run = blindsr("batch", "input=in", "output=serial", *FAST, cwd=root)
    assert run.returncode == 0, run.stderr
    return root


def killed_batch(root: Path, output: str, args: list[str], marker: str) -> int:
    """Start a batch, kill it with -9 as soon as a file matching ``marker`` (a glob under the output)
    exists, and return how many match then."""
    out = root / output
    proc = subprocess.Popen([sys.executable, "-m", "blindsr", "batch", "input=in", f"output={output}", *args],
                            cwd=root, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.time() + 300
    while not list(out.glob(marker)) and time.time() < deadline:
        time.sleep(0.02)
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    return len(list(out.glob(marker)))


def kernel_hashes(out: Path) -> dict[str, str]:
    return {str(p.relative_to(out)): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(out.rglob("*_kernel_x2.npy"))}


def test_batch_isolates_failures_and_resumes(tmp_path, rng):
    root = make_folder(tmp_path, rng)
    (root / "in" / "broken.png").write_bytes(b"\x89PNG\r\n\x1a\n garbage")
    first = blindsr("batch", "input=in", "output=out", *FAST, cwd=root)
    assert first.returncode == 1 and "1 image(s) failed" in first.stderr
    assert "Traceback" not in first.stderr
    summary = json.loads((root / "out" / "summary.json").read_text())
    status = {r["image"]: r["status"] for r in summary["rows"]}
    assert status == {"broken.png": "failed", "img 0.png": "done", "img 1.png": "done", "nested/deep.png": "done"}
    assert summary["skipped_non_images"] == ["notes.txt"]
    assert "broken.png" in next(r["error"] for r in summary["rows"] if r["status"] == "failed")
    done = [r for r in summary["rows"] if r["status"] == "done"]
    assert all(0.0 <= r["confidence"] <= 1.0 and r["confidence_level"] in ("high", "low") for r in done)
    assert "confidence" in (root / "out" / "summary.csv").read_text().splitlines()[0]
    before = kernel_hashes(root / "out")
    assert len(before) == 3
    report = (root / "out" / "report.html").read_text()
    assert report.count("<section>") == 3 and "data:image/png;base64," in report and "Failures" in report
    assert report.count("kernel confidence") == 3
    (root / "in" / "broken.png").unlink()
    again = blindsr("batch", "input=in", "output=out", *FAST, cwd=root)
    assert again.returncode == 0, again.stderr
    assert "0 done, 3 already done, 0 failed" in again.stdout
    assert kernel_hashes(root / "out") == before
    assert not (root / "out" / "broken").exists() or not list((root / "out" / "broken").glob("*.png"))
    changed = blindsr("batch", "input=in", "output=out", *FAST, "seed=9", cwd=root)
    assert "3 done, 0 already done" in changed.stdout  # another config: finished images are redone


def test_interrupted_batch_resumes_to_identical_outputs(reference):
    out = reference / "killed"
    finished = killed_batch(reference, "killed", FAST, "**/COMPLETE.json")
    assert 1 <= finished < 3
    resumed = blindsr("batch", "input=in", "output=killed", *FAST, cwd=reference)
    assert resumed.returncode == 0, resumed.stderr
    assert f"{finished} already done" in resumed.stdout
    assert kernel_hashes(out) == kernel_hashes(reference / "serial")
    images = {p.relative_to(out): p.read_bytes() for p in out.rglob("*_x2.png")}
    assert images == {p.relative_to(reference / "serial"): p.read_bytes()
                      for p in (reference / "serial").rglob("*_x2.png")}


def test_summary_and_records_hold_what_the_presets_ran_with(reference):
    """summary.json and each image's record spell the default preset out into its values, with the
    options the command line set."""
    from blindsr.estimators.kernelgan.settings import DEFAULT_PRESET, PRESETS

    summary = json.loads((reference / "serial" / "summary.json").read_text())
    record = json.loads(next((reference / "serial").rglob("img 0_x2.json")).read_text())
    for estimator in (summary["estimator"], record["config"]["estimator"]):
        assert estimator["preset"] == DEFAULT_PRESET and estimator["g_crop"] == PRESETS[DEFAULT_PRESET].g_crop
        assert (estimator["iterations"], estimator["restarts"]) == (30, 2)
    assert summary["sr"] == record["config"]["sr"] == {"name": "bicubic"}


@pytest.mark.parametrize("executor", [
    ["executor=local", "executor.workers=2"],
    ["executor=submitit", "executor.cluster=local", "executor.timeout_min=10"],
    ["executor=ray", "executor.address=127.0.0.1:26479"],
])
def test_executors_give_identical_kernels(reference, executor):
    name = executor[0].split("=")[1]
    if name != "local":
        pytest.importorskip(name)
    ray_cli = [sys.executable, "-m", "ray.scripts.scripts"]
    if name == "ray":
        start = subprocess.run([*ray_cli, "start", "--head", "--node-ip-address=127.0.0.1", "--port=26479",
                                "--num-cpus=2", "--include-dashboard=false", "--disable-usage-stats"],
                               capture_output=True, text=True, timeout=180)
        assert start.returncode == 0, start.stderr
    try:
        other = blindsr("batch", "input=in", f"output={name}", *FAST, *executor, cwd=reference)
        assert other.returncode == 0, other.stderr + other.stdout
    finally:
        if name == "ray":
            subprocess.run([*ray_cli, "stop", "--force"], capture_output=True, timeout=120)
    assert len(kernel_hashes(reference / "serial")) == 3
    assert kernel_hashes(reference / name) == kernel_hashes(reference / "serial")


def test_shared_kernels_resume_after_kill(tmp_path):
    """kernel_scope=folder: one group task per folder runs before its images; killed with -9 once
    a group is finished, the re-run resumes that group (and every finished image) and ends with
    the outputs of an uninterrupted run. Every image of a group gets the group's kernel and its
    own noise level."""
    root = make_folder(tmp_path, np.random.default_rng(11))
    reference = blindsr("batch", "input=in", "output=whole", *SHARED, cwd=root)
    assert reference.returncode == 0, reference.stderr
    assert "shared kernel for the input folder: 2 image(s), done" in reference.stdout
    out = root / "killed"
    finished = killed_batch(root, "killed", SHARED, "shared_kernels/*/COMPLETE.json")
    assert finished >= 1
    resumed = blindsr("batch", "input=in", "output=killed", *SHARED, cwd=root)
    assert resumed.returncode == 0, resumed.stderr
    assert resumed.stdout.count(", resumed") >= finished
    assert kernel_hashes(out) == kernel_hashes(root / "whole")
    summary = json.loads((out / "summary.json").read_text())
    groups = {g["label"]: g for g in summary["groups"]}
    assert set(groups) == {"the input folder", "folder nested"}
    assert groups["the input folder"]["images"] == 2 and groups["the input folder"]["used"] == ["img 0.png", "img 1.png"]
    rows = {r["image"]: r for r in summary["rows"]}
    assert rows["nested/deep.png"]["kernel_group"] == groups["folder nested"]["group"]
    for folder, names in (("the input folder", ["img 0", "img 1"]), ("folder nested", ["nested/deep"])):
        shared_k = np.load(out / "shared_kernels" / groups[folder]["group"] / "shared_kernel_x2.npy")
        for name in names:
            own = np.load(out / name / f"{Path(name).name}_kernel_x2.npy")
            assert np.array_equal(own, shared_k)
            sidecar = json.loads((out / name / f"{Path(name).name}_kernel_x2.json").read_text())
            assert sidecar["provenance"]["noise"]["sigma"] >= 0.0
            # A shared kernel reaches SR at the group's handoff width, not one image's.
            record = json.loads((out / name / f"{Path(name).name}_x2.json").read_text())
            assert record["stages"]["sr"]["handoff_width"] == GROUP_HANDOFF_WIDTH != HANDOFF_WIDTH
    assert "kernel_group" in (out / "summary.csv").read_text().splitlines()[0]
    assert "shared kernel:" in (out / "report.html").read_text()


def test_a_failed_group_fails_its_images_only(tmp_path):
    """kernel_scope=folder where one folder holds only an image too small to estimate a kernel
    from (8x8): that group fails (in the output and summary.json), its image fails naming the
    missing shared kernel, the other folders' groups and images finish; exit 1."""
    root = make_folder(tmp_path, np.random.default_rng(12))
    (root / "in" / "bad").mkdir()
    Image.fromarray(np.full((8, 8, 3), 128, np.uint8)).save(root / "in" / "bad" / "broken.png")
    run = blindsr("batch", "input=in", "output=out", *SHARED, cwd=root)
    assert run.returncode == 1 and "1 image(s) failed" in run.stderr and "Traceback" not in run.stderr
    assert "shared kernel for folder bad: 1 image(s), none of the group's images could be used" in run.stdout
    summary = json.loads((root / "out" / "summary.json").read_text())
    status = {g["label"]: g["status"] for g in summary["groups"]}
    assert status == {"folder bad": "failed", "the input folder": "done", "folder nested": "done"}
    rows = {r["image"]: r for r in summary["rows"]}
    assert rows["bad/broken.png"]["status"] == "failed"
    assert "group's shared kernel was not estimated" in rows["bad/broken.png"]["error"]
    assert all(rows[name]["status"] == "done" for name in ("img 0.png", "img 1.png", "nested/deep.png"))
