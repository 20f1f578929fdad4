"""Versioned npz/json artifacts: atomic writes, format checks, content hashes.

Every artifact records ``format`` and ``format_version``; readers check both. Writes go to a temporary file in
the same directory and are renamed into place, so a failure never leaves a partial file nor clobbers an
existing one.
"""

from __future__ import annotations

import contextlib
import hashlib
import io
import json
import os
import tempfile
import zipfile
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

import numpy as np

from pipeline.errors import InputError


def sha256_file(path: str | Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


@contextlib.contextmanager
def atomic_path(path: str | Path, suffix: str = "") -> Iterator[Path]:
    """Yield a temporary path beside ``path``; rename it onto ``path`` only if the block succeeds."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=suffix or path.suffix)
    os.close(fd)
    try:
        yield Path(tmp)
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)


def save_npz(path: str | Path, fmt: str, version: int, arrays: Mapping[str, Any]) -> None:
    """Write ``arrays`` (numpy arrays, strings, numbers, or JSON-able dicts) to a deterministic npz.

    Byte-identical output for identical input: entries are sorted and zip timestamps fixed.
    """
    entries: dict[str, np.ndarray] = {
        "format": np.array(fmt),
        "format_version": np.array(version),
    }
    for key, value in arrays.items():
        if isinstance(value, dict):
            entries[key] = np.array(json.dumps(value, sort_keys=True))
        else:
            entries[key] = np.asarray(value)
    with atomic_path(path, ".npz") as tmp, zipfile.ZipFile(tmp, "w", zipfile.ZIP_DEFLATED) as zf:
        for key in sorted(entries):
            buf = io.BytesIO()
            np.lib.format.write_array(buf, entries[key], allow_pickle=False)
            info = zipfile.ZipInfo(f"{key}.npy", date_time=(1980, 1, 1, 0, 0, 0))
            info.compress_type = zipfile.ZIP_DEFLATED
            zf.writestr(info, buf.getvalue())


def load_npz(path: str | Path, fmt: str, version: int) -> dict[str, np.ndarray]:
    """Read an npz written by :func:`save_npz`, checking its format and version."""
    path = Path(path)
    if not path.is_file():
        raise InputError(path, "file not found")
    try:
        with np.load(path, allow_pickle=False) as z:
            data = {k: z[k] for k in z.files}
    except (OSError, ValueError, zipfile.BadZipFile, EOFError) as e:
        raise InputError(path, f"not a readable npz file ({e})") from None
    found = str(data.get("format", "<none>"))
    if found != fmt:
        raise InputError(path, f"expected a {fmt} file, found format '{found}'")
    got = int(data["format_version"])
    if got != version:
        raise InputError(path, f"{fmt} format version {got} is not supported (this build reads {version})")
    return data


def json_field(data: Mapping[str, np.ndarray], key: str) -> Any:
    return json.loads(str(data[key]))


def write_json(path: str | Path, obj: Any) -> None:
    with atomic_path(path, ".json") as tmp:
        tmp.write_text(json.dumps(obj, indent=2, sort_keys=True) + "\n")


def require_finite(where: str | Path, name: str, arr: np.ndarray) -> None:
    """InputError naming ``where``, the field and the first frame (axis 0) holding NaN or infinity."""
    bad = ~np.isfinite(arr)
    if bad.any():
        frame = int(np.argwhere(bad)[0][0])
        raise InputError(where, f"{name} has NaN or infinite values (first at frame {frame})")
