"""The review page: what an editor checks before sending, on one page.

The HTML part at desktop and phone width, the same in dark mode, the plain-text part, the headers that inboxes
show, the HTML size against Gmail's clip, and every check with what to fix. `build` writes it as a static
review.html; `newsletter preview` serves it and rebuilds on every change. The email is shown in sandboxed
iframes; dark mode is shown by turning the theme's `prefers-color-scheme: dark` rules on unconditionally, so the
page needs no browser setting to show both.
"""

from __future__ import annotations

import html
import re
from dataclasses import dataclass, field
from email import message_from_bytes, policy

from ..edition.pipeline import EditionPreview
from ..edition.verify import GMAIL_CLIP_BYTES
from .tools import ToolCheck

RELOAD_SCRIPT = """<script>
let shown = null;
setInterval(async () => {
  try { const v = await (await fetch('/version', {cache: 'no-store'})).text();
        if (shown === null) shown = v; else if (v !== shown) location.reload(); } catch (e) {}
}, 700);
</script>"""


@dataclass
class ReviewData:
    """Everything the page shows; `error` replaces the previews when the edition does not build."""

    title: str
    preheader: str = ""
    html: str = ""
    text: str = ""
    message: bytes = b""
    core_problems: list[str] = field(default_factory=list)
    tool_checks: list[ToolCheck] = field(default_factory=list)
    tools_note: str = ""
    error: str = ""
    building: bool = False  # nothing to show yet: `preview` serves this while the first build runs


def forced_dark(email_html: str) -> str:
    """The email with its dark-mode rules applied whatever the viewer's setting."""
    return re.sub(r"@media\s*\(prefers-color-scheme:\s*dark\)", "@media all", email_html)


def _frame(label: str, email_html: str, width: int) -> str:
    return (f'<figure><figcaption>{label}</figcaption><iframe sandbox title="{html.escape(label)}" '
            f'style="width:{width}px" srcdoc="{html.escape(email_html, quote=True)}"></iframe></figure>')  # fmt: skip


def _headers(message: bytes, preheader: str) -> str:
    """What an inbox shows before the message is opened, and the headers that make it a good list message."""
    if not message:
        return ""
    parsed = message_from_bytes(message, policy=policy.default)
    shown = [(name, str(parsed[name] or "")) for name in ("From", "To", "Subject")] + [("Preheader", preheader)]
    shown += [(name, str(parsed[name] or "")) for name in ("Message-ID", "List-Unsubscribe", "List-Id")]
    rows = "".join(f"<tr><th>{name}</th><td>{html.escape(value)}</td></tr>" for name, value in shown)
    return f"<table class=headers>{rows}</table>"


def _size(email_html: str) -> str:
    size = len(email_html.encode("utf-8"))
    share = min(size / GMAIL_CLIP_BYTES, 1.0)
    verdict = "fits" if size < GMAIL_CLIP_BYTES else "CLIPPED: the footer and disclaimer would be hidden"
    return (f'<p>HTML part: <strong>{size / 1024:.1f} KB</strong> of Gmail\'s ~{GMAIL_CLIP_BYTES // 1024} KB clip '
            f'({verdict}).</p><div class=bar><div style="width:{share:.0%}"></div></div>')  # fmt: skip


def _checks(data: ReviewData) -> str:
    items = [f"<li class=failed>built-in check: {html.escape(p)}</li>" for p in data.core_problems]
    if not data.core_problems and not data.error:
        items.append('<li class=passed>built-in checks (disclaimer, copyright, address, titles, unsubscribe link, '
                     'size, alt text, safe HTML, text line length): passed</li>')  # fmt: skip
    for check in data.tool_checks:
        details = "".join(f"<li>{html.escape(d)}</li>" for d in check.details)
        tool = f"<small>({html.escape(check.tool)}, {check.seconds:.1f} s)</small>"
        items.append(f"<li class={check.status}>{html.escape(check.name)}: <strong>{check.status}</strong> "
                     f"{tool}<ul>{details}</ul></li>")  # fmt: skip
    if data.tools_note:
        items.append(f"<li>{html.escape(data.tools_note)}</li>")
    return "<ul class=checks>" + "".join(items) + "</ul>"


def review_page(data: ReviewData, live: bool = False) -> str:
    """The whole page as one self-contained HTML document."""
    title = html.escape(data.title)
    if data.building:
        body = "<p>Building the edition and running the checks; this page reloads when they are done.</p>"
    elif data.error:
        body = f"<p class=error>This edition does not build: {html.escape(data.error)}</p>{_checks(data)}"
    else:
        dark = forced_dark(data.html)
        body = (
            f"<h2>Headers</h2>{_headers(data.message, data.preheader)}{_size(data.html)}"
            f"<h2>Checks</h2>{_checks(data)}"
            "<h2>The HTML part</h2><div class=panes>"
            f"{_frame('Desktop', data.html, 680)}{_frame('Phone, 375 px', data.html, 375)}"
            f"{_frame('Desktop, dark mode', dark, 680)}{_frame('Phone, dark mode', dark, 375)}</div>"
            f"<h2>The text part</h2><pre>{html.escape(data.text)}</pre>"
        )
    return f"""<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8"><title>Review: {title}</title>
<style>
body {{ font: 15px/1.45 system-ui, sans-serif; margin: 24px; color: #1b1f23; }}
.panes {{ display: flex; flex-wrap: wrap; gap: 16px; align-items: flex-start; }}
figure {{ margin: 0; }} figcaption {{ font-weight: bold; margin-bottom: 4px; }}
iframe {{ height: 900px; border: 1px solid #d0d7de; background: #fff; }}
pre {{ background: #f6f8fa; padding: 16px; max-width: 80ch; white-space: pre-wrap; }}
.headers th {{ text-align: left; padding-right: 12px; vertical-align: top; }}
.bar {{ width: 400px; height: 10px; background: #eee; }} .bar div {{ height: 10px; background: #1f5f8b; }}
.failed > strong, li.failed {{ color: #b00020; }} .passed > strong, li.passed {{ color: #1a7f37; }}
.warning > strong {{ color: #9a6700; }} .skipped > strong {{ color: #57606a; }}
.error {{ color: #b00020; font-weight: bold; }}
</style></head>
<body><h1>Review: {title}</h1>{body}{RELOAD_SCRIPT if live else ""}</body></html>
"""


def review_data(preview: EditionPreview, tool_checks: list | None = None) -> ReviewData:
    note = "" if tool_checks else "Checks by real tools (Chromium, axe-core, SpamAssassin, Nu): `newsletter check`"
    edition = preview.rendered.edition
    return ReviewData(edition.subject, edition.preheader, preview.html, preview.text, preview.message.data,
                      tool_checks=tool_checks or [], tools_note=note)  # fmt: skip
