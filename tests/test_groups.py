"""Shared kernels: grouping by folder and by EXIF camera, crops across a group, pooled refinement."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from blindsr.batch import plan_tasks
from blindsr.degradation import degrade, gaussian_kernel
from blindsr.estimators.kernelgan.crops import crop_maps, densest_window, plan_group_crops
from blindsr.estimators.likelihood import refine_covariance
from blindsr.groups import MAX_GROUP_IMAGES, evenly_spread, plan_groups
from blindsr.images import camera_identity
from blindsr.kernel import SRKernel
from tests.conftest import batch_config, textured_image
from tests.estimators.test_likelihood import power_law_field


def save(path: Path, rng, camera: tuple[str, str] | None = None, focal: float | None = None,
         lens: str | None = None) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    image = Image.fromarray((textured_image(rng, 40, 48) * 255).astype(np.uint8))
    exif = Image.Exif()
    if camera:
        exif[0x010F], exif[0x0110] = camera
        sub = exif.get_ifd(0x8769)
        if focal is not None:
            sub[0x920A] = focal
        if lens:
            sub[0xA434] = lens
    image.save(path, exif=exif)


@pytest.fixture
def shoot(tmp_path, rng):
    """Two cameras, one at two focal lengths, and EXIF-less scans in two folders."""
    src = tmp_path / "in"
    save(src / "a" / "canon1.jpg", rng, ("Canon", "Canon EOS 5D"), 50.0, "EF50mm f/1.8")
    save(src / "a" / "canon2.jpg", rng, ("Canon", "Canon EOS 5D"), 50.0, "EF50mm f/1.8")
    save(src / "b" / "canon3.jpg", rng, ("Canon", "Canon EOS 5D"), 50.0, "EF50mm f/1.8")
    save(src / "a" / "canon_wide.jpg", rng, ("Canon", "Canon EOS 5D"), 35.0, "EF50mm f/1.8")
    save(src / "a" / "nikon.jpg", rng, ("NIKON CORPORATION", "NIKON D750"), 24.0)
    save(src / "a" / "scan1.png", rng)
    save(src / "a" / "scan2.png", rng)
    save(src / "b" / "scan3.png", rng)
    return src


def groups_of(src: Path, scope: str, *overrides: str):
    config = batch_config(f"input={src}", "output=out", "recursive=true", *overrides)
    tasks, _ = plan_tasks(src, src.parent / "out", config, recursive=True)
    return tasks, *plan_groups(tasks, scope, src.resolve(), (src.parent / "out").resolve())


def test_camera_identity_from_exif(shoot):
    assert camera_identity(shoot / "a" / "canon1.jpg") == {"camera": "Canon EOS 5D", "lens": "EF50mm f/1.8",
                                                           "focal_length": "50 mm"}
    assert camera_identity(shoot / "a" / "nikon.jpg") == {"camera": "NIKON CORPORATION NIKON D750", "lens": "",
                                                          "focal_length": "24 mm"}
    assert camera_identity(shoot / "a" / "scan1.png") is None
    assert camera_identity(shoot / "missing.png") is None


def test_grouping_by_camera_with_and_without_exif(shoot):
    tasks, bound, groups = groups_of(shoot, "camera")
    members = {g.label: sorted(Path(m).name for m in g.members) for g in groups}
    assert members == {
        "Canon EOS 5D, EF50mm f/1.8, 50 mm": ["canon1.jpg", "canon2.jpg", "canon3.jpg"],  # across folders
        "Canon EOS 5D, EF50mm f/1.8, 35 mm": ["canon_wide.jpg"],
        "NIKON CORPORATION NIKON D750, 24 mm": ["nikon.jpg"],
        "no camera in EXIF, folder a": ["scan1.png", "scan2.png"],  # no EXIF: one group per folder
        "no camera in EXIF, folder b": ["scan3.png"],
    }
    assert len({g.name for g in groups}) == len(groups)
    by_source = {t.source: t for t in bound}
    for g in groups:
        assert all(by_source[m].group == g.folder for m in g.members)
        assert Path(g.folder).parent.name == "shared_kernels"
    assert all(t.fingerprint != b.fingerprint for t, b in zip(tasks, bound))  # the group's print is in it


def test_grouping_by_folder_and_by_image(shoot):
    tasks, bound, groups = groups_of(shoot, "folder")
    assert sorted(g.label for g in groups) == ["folder a", "folder b"]
    assert sorted(len(g.members) for g in groups) == [2, 6]
    same, unbound, none = groups_of(shoot, "image")
    assert none == [] and unbound == same and all(t.group is None for t in unbound)


def test_fingerprints_follow_the_images_the_group_reads(shoot, rng):
    _, before, _ = groups_of(shoot, "folder")
    save(shoot / "b" / "scan3.png", rng)  # new content in folder b only
    _, after, _ = groups_of(shoot, "folder")
    changed = {Path(b.source).parent.name for b, a in zip(before, after) if b.fingerprint != a.fingerprint}
    assert changed == {"b"}


def test_a_large_group_reads_an_even_spread():
    names = [f"{i:03d}" for i in range(100)]
    picked = evenly_spread(names, MAX_GROUP_IMAGES)
    assert len(picked) == MAX_GROUP_IMAGES and picked[0] == "000" and picked[-1] == "099"
    assert evenly_spread(names[:3], MAX_GROUP_IMAGES) == names[:3]


def test_group_crops_follow_the_shares_and_stay_inside_their_image(rng):
    images = [textured_image(rng, 70, 90), textured_image(rng, 120, 66)]
    maps = [crop_maps(x, 32, 10) for x in images]
    plan = plan_group_crops(maps, np.array([0.8, 0.2]), 5000, np.random.default_rng(3))
    for chosen in (plan.g_images, plan.d_images):
        assert np.mean(chosen == 0) == pytest.approx(0.8, abs=0.03)
    for corners, chosen, size in ((plan.g_corners, plan.g_images, 32), (plan.d_corners, plan.d_images, 10)):
        for i, x in enumerate(images):
            c = corners[chosen == i]
            assert (c >= 0).all() and (c % 2 == 0).all()
            assert (c[:, 0] + size <= x.shape[0]).all() and (c[:, 1] + size <= x.shape[1]).all()


def test_densest_window_finds_the_texture():
    image = np.full((300, 400, 3), 0.5)
    image[200:280, 20:120] = textured_image(np.random.default_rng(1), 80, 100)
    window = densest_window(image, 128)
    assert window.shape == (128, 128, 3)
    rows, cols = np.nonzero(np.any(window != 0.5, axis=2))
    assert rows.size > 0.5 * 80 * 100  # most of the textured patch is inside
    assert densest_window(image[:100, :100], 128).shape == (100, 100, 3)


def test_pooled_refinement_of_copies_equals_the_single_image(rng):
    """Summing the likelihood over a group's tiles: a group of two copies of an image holds the
    same evidence as the image, so the refit is the same."""
    hr = power_law_field(rng, 384)
    truth = gaussian_kernel(13, np.diag([2.5, 1.2]))
    lr = np.round(degrade(hr, truth, 2) * 255) / 255
    start = SRKernel(gaussian_kernel(13, np.eye(2) * 1.5), 2)
    single = refine_covariance(start, lr, 2).provenance["refinement"]
    pooled = refine_covariance(start, [lr, lr], 2).provenance["refinement"]
    assert single["applied"] and pooled["log_scales"] == pytest.approx(single["log_scales"], abs=1e-6)
    assert pooled["tiles"]["count"] == 2 * single["tiles"]["count"]
