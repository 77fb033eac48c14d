"""The one place that writes output files: paths confined to the output folder, every write atomic.

A reader (or a crash) never sees a half-written file: data goes to a temporary file in the same folder and is
renamed over the target, which POSIX makes atomic. Paths are compared resolved, with `is_relative_to`, because a
prefix test lets `out-evil/` pass for `out/`.
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

from .errors import ContentError


def safe_join(root: Path, name: str) -> Path:
    """`root / name`, refusing any name that would land outside `root` (`..`, absolute paths, links)."""
    target = (root / name).resolve()
    if not target.is_relative_to(root.resolve()) or target == root.resolve():
        raise ContentError(f"output path {name!r} escapes the output folder", root)
    return target


def atomic_write(path: Path, data: bytes | str, durable: bool = True) -> None:
    """Write `data` to `path` via a temp file and rename; `durable` also fsyncs before the rename."""
    payload = data.encode("utf-8") if isinstance(data, str) else data
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, temp_name = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as handle:
            handle.write(payload)
            if durable:
                handle.flush()
                os.fsync(handle.fileno())
        os.replace(temp_name, path)
    except BaseException:
        Path(temp_name).unlink(missing_ok=True)
        raise


def write_files(root: Path, files: dict[str, bytes | str], durable: bool = True) -> list[Path]:
    """Write several files into `root`; every path is checked before the first byte is written."""
    targets = {safe_join(root, name): data for name, data in files.items()}
    for target, data in targets.items():
        atomic_write(target, data, durable)
    return list(targets)
