"""The checks that ask real tools how an edition will fare, beside the built-in ones of `verify`.

Each runs the tool itself, offline: headless Chromium (layout at phone and desktop width, dark-mode contrast),
axe-core in that Chromium (accessibility), SpamAssassin (spam score), the Nu HTML checker (standards) and the
caniemail data (client support, as warnings). Each result says which tool ran and how long it took; a tool that
is not installed gives a `skipped` result with the command that installs it, never a silent pass; a tool that
crashes, times out or prints nothing it can be understood by is a `failed` check, never a pass.

Where the tools are found, wherever the user works (not only in this repository):
- the npm checkers (axe-core, vnu-jar, caniemail): $NEWSLETTER_NODE_MODULES, ./node_modules, the per-user cache
  that `newsletter install-checkers` fills ($XDG_CACHE_HOME/newsletter/checkers, pinned versions below), or the
  source checkout's node_modules;
- Chromium: $NEWSLETTER_CHROMIUM, Debian's `chromium`, else the browser Playwright installed for itself
  (`playwright install chromium`);
- SpamAssassin and Java: the system's (apt-get install spamassassin default-jre-headless).
"""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import tempfile
from pathlib import Path

from .chromium import browser_checks
from .tools import FAILED, INSTALL_HINT, PASSED, SKIPPED, WARNING, Origin, ToolCheck, node_modules, timed, verdict

SPAM_MAX_SCORE = 0.0
SPAM_MAX_RULE = 0.01
TOOL_TIMEOUT = 300  # seconds any one tool may take before its check counts as failed


# Nu HTML checker errors that are deliberate email-client hacks, each with why it stays.
VNU_ALLOWED = (
    # Outlook's VML / Office namespaces on <html>, needed for the MSO conditional blocks.
    re.compile(r"Attribute “xmlns:[ov]” not allowed here"),
    # Apple Mail's opt-out of its own reformatting is a name-only <meta>.
    re.compile(r"Element “meta” is missing one or more of the following attributes: “content”, “property”"),
    # Outlook-only CSS properties (mso-hide, mso-line-height-rule, ...), ignored by every other client.
    re.compile(r"CSS: “mso-[a-z-]+”: Property “mso-[a-z-]+” doesn't exist"),
    # Apple Mail's older spelling of color-scheme, which turns on its dark mode.
    re.compile(r"CSS: “supported-color-schemes”: Property “supported-color-schemes” doesn't exist"),
)

# caniemail features used on purpose as progressive enhancement, or with a fallback in the theme.
CANIEMAIL_DELIBERATE = {
    "css-at-media": "progressive enhancement: the layout is fluid without it",
    "css-prefers-color-scheme": "progressive enhancement: light mode is the default",
    "css-color-scheme": "progressive enhancement: light mode is the default",
    "css-max-width": "Outlook on Windows gets the fixed-width MSO ghost table instead",
    "css-display": "the preheader also carries mso-hide:all, max-height:0 and overflow:hidden",
    "css-opacity": "the preheader is hidden by other means too",
    "css-max-height": "hides the preheader; Outlook on Windows hides it by mso-hide:all",
    "css-overflow": "hides the preheader; Outlook on Windows hides it by mso-hide:all",
    "css-height": "only `height: auto` on images, which clients without it do anyway",
}
CANIEMAIL_CLIENTS = {
    "gmail": ("desktop-webmail",),
    "outlook": ("windows", "outlook-com"),
    "apple-mail": ("macos", "ios"),
    "yahoo": ("desktop-webmail",),
}


# --- SpamAssassin ------------------------------------------------------------------------------------------------

_SA_RULE = re.compile(r"^\s*(-?\d+(?:\.\d+)?)\s+([A-Z0-9_]+)\s+(.*)$")


def spam_check(message: bytes) -> ToolCheck:
    """SpamAssassin with local tests only (-L) and no user config (-x): score <= 0.0, no rule over 0.01."""
    executable = shutil.which("spamassassin")
    if executable is None:
        return ToolCheck("spam score", "SpamAssassin", SKIPPED,
                         details=["spamassassin not found: apt-get install spamassassin (Debian, Ubuntu)"])  # fmt: skip

    def run() -> tuple[str, list[str]]:
        report = subprocess.run([executable, "-L", "-x", "-t"], input=message, capture_output=True,
                                timeout=TOOL_TIMEOUT)  # fmt: skip
        text = report.stdout.decode("utf-8", "replace")
        score = re.search(r"Content analysis details:\s+\((-?[\d.]+) points", text)
        if score is None:
            return FAILED, [f"could not read SpamAssassin's report: {report.stderr.decode()[:200]}"]
        rules = [(float(m[1]), m[2], m[3].strip()) for m in map(_SA_RULE.match, text.split("---- ---", 1)[-1]
                 .splitlines()[1:]) if m]  # fmt: skip
        problems = [f"{name} +{points}: {description}" for points, name, description in rules if points > SPAM_MAX_RULE]
        if float(score[1]) > SPAM_MAX_SCORE:
            problems.insert(0, f"score {score[1]} (must be at most {SPAM_MAX_SCORE})")
        return verdict(problems)

    return timed("spam score", _version([executable, "--version"]) or "SpamAssassin", run)


def _version(command: list[str]) -> str:
    """A tool's first line of `--version`, or '' when it does not answer promptly."""
    try:
        result = subprocess.run(command, capture_output=True, text=True, encoding="utf-8", errors="replace",
                                timeout=30)  # fmt: skip
    except (OSError, subprocess.SubprocessError):
        return ""
    return (result.stdout.strip() or result.stderr.strip()).split("\n")[0].strip()


# --- Nu HTML checker ---------------------------------------------------------------------------------------------


def standards_check(html: str, root: Path | None = None) -> ToolCheck:
    """The Nu HTML checker: no errors beyond the commented allowlist of email-client hacks (VNU_ALLOWED)."""
    modules = node_modules(root)
    jar = modules / "vnu-jar" / "build" / "dist" / "vnu.jar" if modules else None
    java = shutil.which("java")
    if jar is None or not jar.is_file() or java is None:
        return ToolCheck(
            "HTML standards", "Nu HTML checker", SKIPPED, details=[f"vnu.jar or java missing: {INSTALL_HINT}"]
        )

    def run() -> tuple[str, list[str]]:
        with tempfile.TemporaryDirectory() as folder:
            page = Path(folder) / "email.html"
            page.write_text(html, encoding="utf-8")
            result = subprocess.run([java, "-jar", str(jar), "--format", "json", "--stdout", str(page)],
                                    capture_output=True, text=True, encoding="utf-8", errors="replace",
                                    timeout=TOOL_TIMEOUT)  # fmt: skip
        try:
            report = json.loads(result.stdout)
        except json.JSONDecodeError:
            report = None
        if not isinstance(report, dict) or not isinstance(report.get("messages"), list):
            said = " ".join((result.stderr or result.stdout or "nothing").split())[:200]
            return FAILED, [f"the Nu checker gave no report (exit {result.returncode}): {said}"]
        messages = report["messages"]
        errors = [m for m in messages if m.get("type") in ("error", "non-document-error")]
        return verdict([f"line {m.get('lastLine', '?')}: {m['message']}" for m in errors
                         if not any(allowed.search(m["message"]) for allowed in VNU_ALLOWED)])  # fmt: skip

    return timed("HTML standards", "Nu HTML checker (vnu.jar)", run)


# --- caniemail ---------------------------------------------------------------------------------------------------

_CSS_PROPERTY = re.compile(r"(?<![\w-])([a-z-]+)\s*:(?!//)")


def client_support_check(html: str, root: Path | None = None) -> ToolCheck:
    """Warn (never fail) about CSS the caniemail data marks unsupported in Gmail, Outlook, Apple Mail or Yahoo."""
    modules = node_modules(root)
    data_file = modules / "caniemail" / "data" / "caniemail.json" if modules else None
    if data_file is None or not data_file.is_file():
        return ToolCheck(
            "email client support", "caniemail data", SKIPPED, details=[f"caniemail not found: {INSTALL_HINT}"]
        )

    def run() -> tuple[str, list[str]]:
        data = json.loads(data_file.read_text(encoding="utf-8"))
        features = {item["slug"]: item for item in data["data"]}
        styles = " ".join(re.findall(r'style="([^"]*)"', html) + re.findall(r"style='([^']*)'", html)
                          + re.findall(r"<style[^>]*>(.*?)</style>", html, re.S))  # fmt: skip
        used = {f"css-{name}" for name in _CSS_PROPERTY.findall(styles)}
        if "@media" in styles:
            used.add("css-at-media")
        if "prefers-color-scheme" in styles:
            used.add("css-prefers-color-scheme")
        warnings = []
        for slug in sorted(used & set(features)):
            if slug in CANIEMAIL_DELIBERATE:
                continue
            lacking = _unsupported_in(features[slug]["stats"])
            if lacking:
                warnings.append(f"{features[slug]['title']} ({slug}) is unsupported in {', '.join(lacking)}")
        return (WARNING if warnings else PASSED), warnings

    return timed("email client support", f"caniemail data {data_file.stat().st_size // 1024} KB", run)


def _unsupported_in(stats: dict) -> list[str]:
    """Clients whose latest tested version answers 'n' (not supported) for a feature."""
    lacking = []
    for client, platforms in CANIEMAIL_CLIENTS.items():
        for platform in platforms:
            versions = stats.get(client, {}).get(platform, {})
            if versions and str(list(versions.values())[-1]).startswith("n"):
                lacking.append(f"{client} {platform}")
    return lacking


def run_tool_checks(
    html: str, message: bytes, root: Path | None = None, origin: Origin = lambda src: ""
) -> list[ToolCheck]:
    """Every tool check, in the order a reader would fix them."""
    return [
        *browser_checks(html, root, origin),
        spam_check(message),
        standards_check(html, root),
        client_support_check(html, root),
    ]
