"""Where reports come from: a Maildir, an mbox or an IMAP folder, each read once, each message marked done only
after `bounces.judge` has stored its outcome. A message that cannot be read or judged is set aside (Maildir:
moved to unreadable/ beside cur/; mbox and IMAP: left unmarked) and the run goes on."""

from __future__ import annotations

import contextlib
import hashlib
import mailbox
import os
from pathlib import Path

from ..base.config import IMAPSettings
from ..base.errors import ConfigError, ContentError, JournalError, NewsletterError
from .bounces import BounceReader, Summary, judge
from .reports import printable

UNREADABLE = "unreadable"  # beside cur/: where a Maildir message that cannot be judged is set aside


def read_maildir(folder: Path, reader: BounceReader, summary: Summary) -> None:
    """Every message in new/, and in cur/ without the seen flag; each marked seen by one rename into cur/ once
    its outcome is stored. The folder is listed once: a run's cost grows with its new messages, nothing else."""
    if not (folder / "new").is_dir() or not (folder / "cur").is_dir():
        raise ContentError("not a Maildir (no new/ and cur/ folders)", folder)
    for sub in ("new", "cur"):
        with os.scandir(folder / sub) as entries:  # one listing, read as it goes: memory flat whatever the size
            for entry in entries:
                path = Path(entry.path)
                base, _, flags = path.name.partition(":2,")
                if path.name.startswith(".") or "S" in flags or not entry.is_file():
                    continue
                if _judged(path.read_bytes(), reader, summary, str(path)):
                    os.rename(path, folder / "cur" / f"{base}:2,{''.join(sorted(set(flags) | {'S'}))}")
                else:
                    _set_aside(folder, path, summary)


def _set_aside(folder: Path, path: Path, summary: Summary) -> None:
    """Move a message that cannot be judged out of the way, to unreadable/ beside cur/."""
    aside = folder / UNREADABLE
    aside.mkdir(mode=0o700, exist_ok=True)
    os.rename(path, aside / path.name)
    summary.unreadable[-1] += f" (moved to {aside / path.name})"


def read_imap(settings: IMAPSettings, reader: BounceReader, summary: Summary) -> None:
    """Every unseen message of the folder over IMAPS (certificate and host name verified); each is then
    flagged \\Seen, so the next run skips it."""
    import imaplib
    import ssl

    where = f"{settings.host}:{settings.port}"
    context = ssl.create_default_context(cafile=settings.ca_file or None)
    try:
        imap = imaplib.IMAP4_SSL(settings.host, settings.port, ssl_context=context, timeout=settings.timeout)
    except ssl.SSLCertVerificationError as error:
        raise ConfigError(f"cannot connect to IMAP {where}: TLS certificate not trusted ({error.verify_message}); "
                          "set IMAP_CA_FILE to the CA that signed it") from None  # fmt: skip
    except (TimeoutError, OSError) as error:
        raise ConfigError(f"cannot connect to IMAP {where}: {error.strerror or error}") from None
    try:
        try:
            imap.login(settings.username, settings.password)
        except imaplib.IMAP4.error:
            raise ConfigError(f"IMAP login failed for user {settings.username} at {where}") from None
        status, _ = imap.select(_quoted(settings.folder))
        if status != "OK":
            raise ConfigError(f"IMAP folder {settings.folder!r} not found at {where} (IMAP_FOLDER)")
        _, found = imap.uid("SEARCH", None, "UNSEEN")
        for uid in found[0].split() if found and found[0] else []:
            _, parts = imap.uid("FETCH", uid, "(BODY.PEEK[])")
            data = next((part[1] for part in parts if isinstance(part, tuple)), None)
            if data is not None and _judged(data, reader, summary, f"IMAP message UID {uid.decode()}"):
                imap.uid("STORE", uid, "+FLAGS", "(\\Seen)")
    except imaplib.IMAP4.error as error:
        raise ConfigError(f"IMAP {where}: {error}") from None
    finally:
        with contextlib.suppress(imaplib.IMAP4.error, OSError):
            imap.logout()


def _quoted(folder: str) -> str:
    return '"' + folder.replace("\\", "\\\\").replace('"', '\\"') + '"'


def read_mbox(path: Path, reader: BounceReader, summary: Summary) -> None:
    """Every message whose digest the store has not seen."""
    if not path.is_file():
        raise ContentError("no such mbox file", path)
    box = mailbox.mbox(path, create=False)
    try:
        for position, key in enumerate(box.iterkeys(), start=1):
            data = box.get_bytes(key)
            digest = hashlib.sha256(data).hexdigest()
            if not reader.store.processed(digest) and _judged(data, reader, summary, f"{path}: message {position}"):
                reader.store.mark_processed(digest)
    finally:
        box.close()


def _judged(data: bytes, reader: BounceReader, summary: Summary, where: str) -> bool:
    """Judge and act on one message; False when it could not be read or judged (said in `summary`). A store
    that cannot be written stops the run: nothing could be recorded."""
    try:
        judge(data, reader, summary)
    except (JournalError, ConfigError):
        raise
    except Exception as error:  # whatever a hostile or broken message makes a parser raise (RecursionError too)
        why = error.message if isinstance(error, NewsletterError) else f"{type(error).__name__}: {error}"
        summary.unreadable.append(f"{where}: {printable(why)[:200]}")
        return False
    return True
