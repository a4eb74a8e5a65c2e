"""Writing results safely: atomic files, output names that stay inside their folder, JSON records.

Every file blindsr writes goes to a temporary ``.<name>.partial-<pid>`` file in the destination
folder first and is renamed into place when complete, so an interrupted run never leaves a file
that looks finished.
"""
from __future__ import annotations

import json
import os
import re
import unicodedata
from pathlib import Path
from typing import Any

import numpy as np

PARTIAL_MARK = ".partial-"


def atomic_write_bytes(path: str | Path, data: bytes) -> Path:
    """Write ``data`` to ``path`` via a temporary file in the same folder and ``os.replace``."""
    path = Path(path)
    tmp = path.with_name(f".{path.name}{PARTIAL_MARK}{os.getpid()}")
    try:
        with open(tmp, "wb") as handle:
            handle.write(data)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, path)
    finally:
        if tmp.exists():
            tmp.unlink()
    return path


def write_json(path: str | Path, record: Any) -> Path:
    """Atomically write ``record`` as indented JSON (numpy scalars, arrays and paths allowed)."""
    return atomic_write_bytes(path, (json.dumps(record, indent=2, default=jsonable) + "\n").encode())


def jsonable(value: Any) -> Any:
    """``json.dumps`` fallback for numpy values and paths."""
    if isinstance(value, (np.floating, np.integer, np.bool_)):
        return value.item()
    if isinstance(value, np.ndarray):
        return value.tolist()
    if isinstance(value, Path):
        return str(value)
    raise TypeError(f"not JSON serialisable: {type(value).__name__}")


_UNSAFE = re.compile(r"[\x00-\x1f/\\:]+")


def safe_stem(name: str) -> str:
    """A file stem derived from an input name that cannot leave its output folder.

    Keeps spaces, quotes, ``=``, ``,`` and non-ASCII letters (users' names stay recognisable);
    removes path separators, control characters and leading dots so that ``..`` or absolute
    components cannot escape.
    """
    stem = unicodedata.normalize("NFC", Path(name).stem if "." in name else name)
    stem = _UNSAFE.sub("_", stem).strip().lstrip(".")
    return stem or "image"


def remove_partials(directory: str | Path) -> None:
    """Delete temporary files an interrupted run left in ``directory``."""
    directory = Path(directory)
    if directory.is_dir():
        for leftover in directory.glob(f".*{PARTIAL_MARK}*"):
            leftover.unlink(missing_ok=True)


def prepare_output_dir(directory: str | Path, targets: list[Path] | tuple[Path, ...] = (),
                       overwrite: bool = False) -> Path:
    """Create ``directory`` if needed, check it is writable, and refuse to replace existing
    ``targets`` unless ``overwrite``. Raises ``OutputError`` with one line."""
    from blindsr.errors import OutputError

    directory = Path(directory)
    if directory.exists() and not directory.is_dir():
        raise OutputError(f"{directory}: exists and is not a folder")
    try:
        directory.mkdir(parents=True, exist_ok=True)
        probe = directory / f".write-test{PARTIAL_MARK}{os.getpid()}"
        probe.write_bytes(b"")
        probe.unlink()
    except OSError as exc:
        raise OutputError(f"{directory}: cannot write here ({exc.strerror or exc})") from None
    existing = [t for t in targets if Path(t).exists()]
    if existing and not overwrite:
        raise OutputError(f"{existing[0]} already exists (and {len(existing) - 1} more); "
                          "pass overwrite=true to replace")
    return directory
