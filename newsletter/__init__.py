"""newsletter: articles on disk -> email editions, written to files or sent over SMTP.

The package's folders are its architecture, each a floor that imports only the floors below it: `base` (data,
errors, settings, files), `audience` (recipients, tokens, suppressions, bounces), `edition` (load -> render ->
inline -> verify -> compose), `delivery` (transports, send, journal), then `web` (serve, archive) and `checks`
(real-tool checks, review, preview); on top, the command line (`cli`), `init` and `publish` (build and check).
What a library user may import is listed in `__all__` and importable from here (`from newsletter import
build_edition`); each name is loaded on first use, so `import newsletter` stays cheap for the command line.
"""

from __future__ import annotations

import importlib

__version__ = "0.2.0"

_PUBLIC = {
    # the pipeline: build, check, export (dry run)
    "render_checked": "edition.pipeline", "preview_edition": "edition.pipeline", "check_edition": "publish",
    "build_edition": "publish", "export_edition": "delivery.export", "import_article": "edition.importer",
    "load_publication": "base.config", "open_workspace": "base.workspace", "Workspace": "base.workspace",
    # delivery
    "send_test": "delivery.sendtest", "Send": "delivery.send", "SendOptions": "delivery.send",
    "SendReport": "delivery.send", "Transport": "delivery.transport", "FileTransport": "delivery.files",
    "MemoryTransport": "delivery.memory", "SMTPTransport": "delivery.smtp",
    # data and errors
    "Edition": "base.model", "Article": "base.model", "Publication": "base.model", "Recipient": "base.model",
    "NewsletterError": "base.errors", "ContentError": "base.errors", "ConfigError": "base.errors",
    "CheckFailed": "base.errors", "DeliveryError": "base.errors", "TemporaryFailure": "base.errors",
    "PermanentFailure": "base.errors", "OutcomeUnknown": "base.errors", "ConnectionFailed": "base.errors",
    "SetupFailed": "base.errors", "AuthenticationFailed": "base.errors", "JournalError": "base.errors",
}  # fmt: skip

__all__ = ["__version__", *_PUBLIC]


def __getattr__(name: str) -> object:
    if name not in _PUBLIC:
        raise AttributeError(f"module 'newsletter' has no attribute {name!r}")
    return getattr(importlib.import_module(f".{_PUBLIC[name]}", __name__), name)
