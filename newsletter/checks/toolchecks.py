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

import contextlib
import json
import os
import re
import shutil
import subprocess
import tempfile
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

PASSED, FAILED, WARNING, SKIPPED = "passed", "failed", "warning", "skipped"
PHONE, DESKTOP = 375, 1024
MIN_FONT_PX = 14
MAX_COLUMN_PX = 600
SPAM_MAX_SCORE = 0.0
SPAM_MAX_RULE = 0.01
INSTALL_HINT = "install them with `newsletter install-checkers` (needs npm; pinned versions, per-user cache)"
CHECKERS = {"axe-core": "4.14.1", "vnu-jar": "26.9.27", "caniemail": "1.0.5"}  # as package.json pins them
TOOL_TIMEOUT = 300  # seconds any one tool may take before its check counts as failed

# axe-core rules left out, by name: every email trips them, because an email is a fragment shown inside the mail
# client's own page, which provides the landmarks (<main>, regions) around it.
AXE_SKIPPED_RULES = ("region", "landmark-one-main")
AXE_TAGS = ("wcag2a", "wcag2aa", "wcag21a", "wcag21aa", "best-practice")

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


@dataclass
class ToolCheck:
    """One tool's verdict: what it checked, with what, how long it took, and what to fix."""

    name: str
    tool: str
    status: str
    seconds: float = 0.0
    details: list[str] = field(default_factory=list)

    def line(self) -> str:
        head = f"{self.name}: {self.status} ({self.tool}, {self.seconds:.1f} s)"
        return head + "".join(f"\n  - {d}" for d in self.details)


def _timed(name: str, tool: str, run: Callable[[], tuple[str, list[str]]]) -> ToolCheck:
    """Run one check; a tool that crashes or hangs fails the check (a check that did not run has not passed)."""
    start = time.perf_counter()
    try:
        status, details = run()
    except subprocess.TimeoutExpired as error:
        status, details = FAILED, [f"{tool} did not finish within {error.timeout:g} s"]
    except (OSError, ValueError, KeyError, subprocess.SubprocessError) as error:
        status, details = FAILED, [f"{tool} could not be run or read: {error.__class__.__name__}: {error}"]
    except Exception as error:  # the browser's own errors (Playwright), whatever their class
        status, details = FAILED, [f"{tool} failed: {' '.join(str(error).split())[:300]}"]
    return ToolCheck(name, tool, status, time.perf_counter() - start, details)


SOURCE_CHECKOUT = Path(__file__).resolve().parents[2]


def checkers_cache() -> Path:
    """The per-user folder `newsletter install-checkers` installs the npm checkers into."""
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "newsletter" / "checkers"


def node_modules(root: Path | None = None) -> Path | None:
    """Where the npm checkers are (see the module's docstring), the first folder that has them."""
    candidates = [os.environ.get("NEWSLETTER_NODE_MODULES", ""), str(root / "node_modules") if root else "",
                  str(checkers_cache() / "node_modules"), str(SOURCE_CHECKOUT / "node_modules")]  # fmt: skip
    return next((Path(c) for c in candidates if c and Path(c).is_dir()), None)


def install_checkers() -> Path:
    """Install the pinned npm checkers into the per-user cache; returns the node_modules folder."""
    from ..base.errors import ConfigError

    npm = shutil.which("npm")
    if npm is None:
        raise ConfigError("install-checkers needs npm (apt-get install npm, or Node.js from nodejs.org)")
    folder = checkers_cache()
    folder.mkdir(parents=True, exist_ok=True)
    packages = [f"{name}@{version}" for name, version in CHECKERS.items()]
    # vnu-jar's install script only downloads a Java runtime; the system's Java runs the jar
    command = [npm, "install", "--prefix", str(folder), "--no-audit", "--no-fund", "--ignore-scripts", *packages]
    try:  # npm's output is not always UTF-8 (a Windows code page in a path, say): replace, never crash on it
        result = subprocess.run(command, capture_output=True, text=True, encoding="utf-8", errors="replace",
                                timeout=600)  # fmt: skip
    except subprocess.TimeoutExpired:
        raise ConfigError(f"npm did not finish installing the checkers into {folder} within 10 minutes") from None
    if result.returncode != 0:
        last = (result.stderr.strip().splitlines() or ["no output"])[-1]
        raise ConfigError(f"npm could not install the checkers into {folder}: {last}")
    return folder / "node_modules"


def chromium_path() -> str | None:
    """$NEWSLETTER_CHROMIUM, else Debian's Chromium; None lets Playwright use the browser it installed."""
    return os.environ.get("NEWSLETTER_CHROMIUM") or shutil.which("chromium") or shutil.which("chromium-browser")


# --- headless Chromium -------------------------------------------------------------------------------------------

CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update",
                 "--disable-sync", "--no-first-run", "--disable-quic"]  # fmt: skip


@contextlib.contextmanager
def browser() -> Iterator[object | None]:
    """A Playwright-driven Chromium (see `chromium_path`), or None when Playwright or every browser is missing."""
    executable = chromium_path()
    try:
        from playwright.sync_api import Error, sync_playwright
    except ImportError:
        yield None
        return
    with sync_playwright() as playwright:
        try:
            instance = playwright.chromium.launch(executable_path=executable, args=CHROMIUM_ARGS)
        except Error:
            if executable is not None:  # a browser that is there but will not start is a failure, not a skip
                raise
            yield None
            return
        try:
            yield instance
        finally:
            instance.close()


def open_page(instance, html: str, width: int, dark: bool = False):
    """The email in a fresh page of `width` CSS pixels; every network request is refused (data: URIs load)."""
    page = instance.new_page(viewport={"width": width, "height": 900}, color_scheme="dark" if dark else "light")
    page.route("**/*", lambda route: route.abort())
    page.set_content(html, wait_until="load")
    return page


INSPECT_SCRIPT = Path(__file__).parent / "browser" / "inspect.js"


def inspect_page(instance, html: str, width: int, dark: bool = False) -> dict:
    """Run newsletter/browser/inspect.js on the email at `width`, in light or dark mode."""
    script = INSPECT_SCRIPT.read_text(encoding="utf-8")
    return open_page(instance, html, width, dark).evaluate(script, {"minFont": MIN_FONT_PX, "dark": dark})


def layout_problems(instance, html: str, origin: Origin = lambda src: "") -> list[str]:
    """Phone: no horizontal scroll, text >= 14px, images within the column. Desktop: column <= 600px, centred.
    Dark mode: WCAG AA contrast for every visible piece of text. `origin` names the file an image came from."""
    problems = []
    phone = inspect_page(instance, html, PHONE)
    if phone["scrollWidth"] > PHONE:
        problems.append(
            f"at {PHONE}px the page is {phone['scrollWidth']}px wide: something overflows (scrolls sideways)"
        )
    problems += [f"at {PHONE}px text under {MIN_FONT_PX}px: {s}" for s in phone["small"]]
    for image in phone["wide"]:
        source = origin(image["src"])
        problems.append(f"at {PHONE}px the image {image['src'][:80]!r} (alt {image['alt'][:60]!r})"
                        + (f" of {source}" if source else "")
                        + f" is {image['width']}px wide: it overflows")  # fmt: skip
    desktop = inspect_page(instance, html, DESKTOP)
    column = desktop["column"]
    if column is None:
        problems.append(f"at {DESKTOP}px no content column narrower than the window holds the <h1>")
    else:
        if column["width"] > MAX_COLUMN_PX + 0.5:
            problems.append(f"at {DESKTOP}px the content column is {column['width']:.0f}px (at most {MAX_COLUMN_PX})")
        if abs(column["left"] - (desktop["viewport"] - column["right"])) > 2:
            problems.append(f"at {DESKTOP}px the content column is not centred")
    for width in (PHONE, DESKTOP):
        low = inspect_page(instance, html, width, dark=True)["low"]
        problems += [f"dark mode at {width}px, contrast below WCAG AA: {item}" for item in low]
    return problems


def axe_violations(instance, html: str, axe_source: str) -> list[str]:
    """axe-core's WCAG 2 A/AA and best-practice rules, in light and in dark mode."""
    found = []
    for dark in (False, True):
        page = open_page(instance, html, DESKTOP, dark=dark)
        page.add_script_tag(content=axe_source)
        options = {"runOnly": {"type": "tag", "values": list(AXE_TAGS)},
                   "rules": {rule: {"enabled": False} for rule in AXE_SKIPPED_RULES}}  # fmt: skip
        result = page.evaluate("async (options) => await axe.run(document, options)", options)
        for violation in result["violations"]:
            targets = ", ".join(str(node["target"][0]) for node in violation["nodes"][:3])
            line = f"{violation['id']} ({violation['impact']}): {violation['help']} [{targets}]"
            if line not in found:
                found.append(line + (" in dark mode" if dark else ""))
    return found


Origin = Callable[[str], str]  # an image's src -> the article file it came from ('' when unknown)


def browser_checks(html: str, root: Path | None = None, origin: Origin = lambda src: "") -> list[ToolCheck]:
    """Layout and accessibility, sharing one Chromium."""
    try:
        return _browser_checks(html, root, origin)
    except Exception as error:  # Chromium that would not start or crashed: both checks failed, not skipped
        why = f"Chromium failed: {' '.join(str(error).split())[:300]}"
        return [ToolCheck("responsive layout", "headless Chromium", FAILED, details=[why]),
                ToolCheck("accessibility", "axe-core in Chromium", FAILED, details=[why])]  # fmt: skip


def _browser_checks(html: str, root: Path | None, origin: Origin) -> list[ToolCheck]:
    modules = node_modules(root)
    axe_file = modules / "axe-core" / "axe.min.js" if modules else None
    with browser() as instance:
        if instance is None:
            why = (
                "Chromium or Playwright for Python not installed: pip install 'newsletter[review]', then apt-get "
                "install chromium (or `playwright install chromium`, or set NEWSLETTER_CHROMIUM)"
            )
            return [ToolCheck("responsive layout", "headless Chromium", SKIPPED, details=[why]),
                    ToolCheck("accessibility", "axe-core in Chromium", SKIPPED, details=[why])]  # fmt: skip
        version = instance.version
        layout = _timed("responsive layout", f"Chromium {version}",
                        lambda: _verdict(layout_problems(instance, html, origin)))  # fmt: skip
        if axe_file is None or not axe_file.is_file():
            access = ToolCheck("accessibility", "axe-core", SKIPPED, details=[f"axe-core not found: {INSTALL_HINT}"])
        else:
            source = axe_file.read_text(encoding="utf-8")
            axe_version = re.search(r"axe v([\d.]+)", source[:300])
            access = _timed("accessibility", f"axe-core {axe_version[1] if axe_version else ''} in Chromium {version}",
                            lambda: _verdict(axe_violations(instance, html, source)))  # fmt: skip
    return [layout, access]


def screenshots(html: str, out: Path) -> list[Path]:
    """desktop.png, mobile.png and dark.png of the email, as Chromium renders it."""
    out.mkdir(parents=True, exist_ok=True)
    shots = {"desktop.png": (DESKTOP, False), "mobile.png": (PHONE, False), "dark.png": (PHONE, True)}
    with browser() as instance:
        if instance is None:
            from ..base.errors import ConfigError

            raise ConfigError("screenshot needs Chromium and Playwright for Python: apt-get install chromium; "
                              "pip install playwright")  # fmt: skip
        paths = []
        for name, (width, dark) in shots.items():
            page = open_page(instance, html, width, dark)
            page.screenshot(path=str(out / name), full_page=True)
            paths.append(out / name)
    return paths


def _verdict(problems: list[str]) -> tuple[str, list[str]]:
    return (FAILED if problems else PASSED), problems


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
        return _verdict(problems)

    return _timed("spam score", _version([executable, "--version"]) or "SpamAssassin", run)


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
        return _verdict([f"line {m.get('lastLine', '?')}: {m['message']}" for m in errors
                         if not any(allowed.search(m["message"]) for allowed in VNU_ALLOWED)])  # fmt: skip

    return _timed("HTML standards", "Nu HTML checker (vnu.jar)", run)


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

    return _timed("email client support", f"caniemail data {data_file.stat().st_size // 1024} KB", run)


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
