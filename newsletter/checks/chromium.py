"""The checks in headless Chromium: the layout at phone and desktop width with dark-mode contrast, axe-core's
accessibility rules, and the screenshots. Chromium: $NEWSLETTER_CHROMIUM, Debian's `chromium`, else the browser
Playwright installed for itself (`playwright install chromium`)."""

from __future__ import annotations

import contextlib
import os
import re
import shutil
from collections.abc import Iterator
from pathlib import Path

from .tools import FAILED, INSTALL_HINT, SKIPPED, Origin, ToolCheck, node_modules, timed, verdict

PHONE, DESKTOP = 375, 1024
MIN_FONT_PX = 14
MAX_COLUMN_PX = 600

# axe-core rules left out, by name: every email trips them, because an email is a fragment shown inside the mail
# client's own page, which provides the landmarks (<main>, regions) around it.
AXE_SKIPPED_RULES = ("region", "landmark-one-main")
AXE_TAGS = ("wcag2a", "wcag2aa", "wcag21a", "wcag21aa", "best-practice")


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
        layout = timed("responsive layout", f"Chromium {version}",
                        lambda: verdict(layout_problems(instance, html, origin)))  # fmt: skip
        if axe_file is None or not axe_file.is_file():
            access = ToolCheck("accessibility", "axe-core", SKIPPED, details=[f"axe-core not found: {INSTALL_HINT}"])
        else:
            source = axe_file.read_text(encoding="utf-8")
            axe_version = re.search(r"axe v([\d.]+)", source[:300])
            access = timed("accessibility", f"axe-core {axe_version[1] if axe_version else ''} in Chromium {version}",
                            lambda: verdict(axe_violations(instance, html, source)))  # fmt: skip
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
