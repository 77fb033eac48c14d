"""Reading the user's text files: one way, so every stage reports a missing, unreadable or non-UTF-8 file in the
same one line that names it."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from pathlib import Path
from typing import BinaryIO

from .errors import ContentError, DataError


def open_bytes(path: Path) -> BinaryIO:
    """Open a file for reading bytes, turning the usual failures into one line that names the file."""
    try:
        return path.open("rb")
    except FileNotFoundError:
        raise ContentError("no such file", path) from None
    except IsADirectoryError:
        raise ContentError("is a folder, expected a file", path) from None
    except OSError as exc:
        raise ContentError(f"cannot read: {exc.strerror}", path) from None


def not_utf8(data: bytes, error: UnicodeDecodeError) -> str:
    """What is wrong with bytes that do not decode, in the words every reader uses."""
    return f"not UTF-8 text (byte 0x{data[error.start]:02x})"


def read_text(path: Path) -> str:
    """Read a UTF-8 text file, turning the usual failures into one line that names the file."""
    with open_bytes(path) as handle:
        try:
            data = handle.read()
        except OSError as exc:
            raise ContentError(f"cannot read: {exc.strerror}", path) from None
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        line = data[: exc.start].count(b"\n") + 1
        raise ContentError(not_utf8(data, exc), path, line) from None
    return text.replace("\r\n", "\n").replace("\r", "\n")


@contextlib.contextmanager
def data_errors() -> Iterator[None]:
    """A list file that cannot be read is bad data (EX_DATAERR), like a malformed one: the same line, another
    exit status."""
    try:
        yield
    except DataError:
        raise
    except ContentError as error:
        raise DataError(error.message, error.path, error.line) from None
