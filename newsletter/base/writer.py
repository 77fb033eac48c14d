"""The one place that writes output files: paths confined to the output folder, every write atomic.

A reader (or a crash) never sees a half-written file: data goes to a temporary file in the same folder and is
renamed over the target, which POSIX makes atomic. Paths are compared resolved, with `is_relative_to`, because a
prefix test lets `out-evil/` pass for `out/`. Files get the mode the user's umask gives new files (the
temporary file's 0600 is not kept), unless the caller asks for owner-only (files that hold subscriber data).

CSV written for people to open in a spreadsheet goes through `csv_text`, which neutralises cells a spreadsheet
would run as a formula (OWASP "CSV injection"): a cell starting with `=`, `+`, `-`, `@`, a tab or a carriage
return gets a leading `'`.
"""

from __future__ import annotations

import contextlib
import csv
import io
import os
import tempfile
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import BinaryIO

from .errors import ContentError

_FORMULA_START = ("=", "+", "-", "@", "\t", "\r")


def safe_join(root: Path, name: str) -> Path:
    """`root / name`, refusing any name that would land outside `root` (`..`, absolute paths, links)."""
    target = (root / name).resolve()
    if not target.is_relative_to(root.resolve()) or target == root.resolve():
        raise ContentError(f"output path {name!r} escapes the output folder", root)
    return target


def _umask_mode() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return 0o666 & ~mask


def make_folder(folder: Path) -> None:
    """Create an output folder (and its parents), or say plainly that something else is in the way."""
    for parent in [folder, *folder.parents]:
        if parent.exists() and not parent.is_dir():
            raise ContentError("is a file, not a folder: choose another output folder", parent)
    folder.mkdir(parents=True, exist_ok=True)


def private_folder(folder: Path) -> None:
    """Create `folder` owner-only (0700), and any parent it needs the same way (`mkdir(parents=True)` gives
    parents the umask's mode, so `.newsletter/` came out 0755 when its journal folder was made first); a folder
    that is already there is tightened."""
    for missing in reversed([p for p in (folder, *folder.parents) if not p.exists()]):
        missing.mkdir(mode=0o700, exist_ok=True)
    os.chmod(folder, 0o700)


def atomic_write(path: Path, data: bytes | str, durable: bool = True, private: bool = False) -> None:
    """Write `data` to `path` via a temp file and rename; `durable` also fsyncs before the rename; `private`
    keeps the file owner-only (0600) instead of what the umask gives."""
    with atomic_file(path, durable, private) as handle:
        handle.write(data.encode("utf-8") if isinstance(data, str) else data)


@contextlib.contextmanager
def atomic_file(path: Path, durable: bool = True, private: bool = False) -> Iterator[BinaryIO]:
    """`atomic_write` for data written a piece at a time (a manifest of a million rows): the file appears at
    `path`, whole, when the block ends without an error, and not at all otherwise."""
    make_folder(path.parent)
    fd, temp_name = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as handle:
            yield handle
            if not private:
                os.fchmod(handle.fileno(), _umask_mode())
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


def spreadsheet_safe(cell: object) -> str:
    """A cell a spreadsheet shows as text, never runs: a leading `'` before a formula character."""
    text = "" if cell is None else str(cell)
    return "'" + text if text.startswith(_FORMULA_START) else text


def spreadsheet_row(row: Iterable[object]) -> list[str]:
    return [spreadsheet_safe(cell) for cell in row]


def csv_text(rows: Iterable[Iterable[object]]) -> str:
    """CSV for people and spreadsheets, every cell through `spreadsheet_safe`."""
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerows(spreadsheet_row(row) for row in rows)
    return out.getvalue()
