"""Reading the user's text files: one way, so every stage reports a missing, unreadable or non-UTF-8 file in the
same one line that names it."""

from __future__ import annotations

from pathlib import Path

from .errors import ContentError


def read_text(path: Path) -> str:
    """Read a UTF-8 text file, turning the usual failures into one line that names the file."""
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        raise ContentError("no such file", path) from None
    except IsADirectoryError:
        raise ContentError("is a folder, expected a file", path) from None
    except OSError as exc:
        raise ContentError(f"cannot read: {exc.strerror}", path) from None
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        line = data[: exc.start].count(b"\n") + 1
        raise ContentError(f"not UTF-8 text (byte 0x{data[exc.start]:02x})", path, line) from None
    return text.replace("\r\n", "\n").replace("\r", "\n")
