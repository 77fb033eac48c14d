"""newsletter: articles on disk -> email editions, written to files or sent over SMTP.

The pipeline, one module per stage: load -> render -> inline -> verify -> compose -> deliver. What a library user
may import is listed in `__all__` and importable from here (`from newsletter import build_edition`); each name is
loaded on first use, so `import newsletter` stays cheap for the command line.
"""

from __future__ import annotations

import importlib

__version__ = "0.1.0"

_PUBLIC = {
    # the pipeline: build, check, export (dry run)
    "render_checked": "pipeline", "preview_edition": "pipeline", "check_edition": "publish",
    "build_edition": "publish", "export_edition": "export", "import_article": "importer",
    "load_publication": "config",
    # delivery
    "send_test": "sendtest", "Send": "send", "SendOptions": "send", "SendReport": "send",
    "Transport": "transport", "FileTransport": "transport", "MemoryTransport": "transport",
    "SMTPTransport": "smtp",
    # data and errors
    "Edition": "model", "Article": "model", "Publication": "model", "Recipient": "model",
    "NewsletterError": "errors", "ContentError": "errors", "ConfigError": "errors", "CheckFailed": "errors",
    "DeliveryError": "errors", "TemporaryFailure": "errors", "PermanentFailure": "errors",
    "OutcomeUnknown": "errors", "ConnectionFailed": "errors", "SetupFailed": "errors",
    "AuthenticationFailed": "errors", "JournalError": "errors",
}  # fmt: skip

__all__ = ["__version__", *_PUBLIC]


def __getattr__(name: str) -> object:
    if name not in _PUBLIC:
        raise AttributeError(f"module 'newsletter' has no attribute {name!r}")
    return getattr(importlib.import_module(f".{_PUBLIC[name]}", __name__), name)
