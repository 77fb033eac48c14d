"""What every real-tool check shares: the verdict's shape, how a check is timed (a tool that crashes or hangs
fails, never passes), and where the npm checkers are found and installed."""

from __future__ import annotations

import os
import shutil
import subprocess
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from ..base.errors import ConfigError

PASSED, FAILED, WARNING, SKIPPED = "passed", "failed", "warning", "skipped"
INSTALL_HINT = "install them with `newsletter install-checkers` (needs npm; pinned versions, per-user cache)"
CHECKERS = {"axe-core": "4.14.1", "vnu-jar": "26.9.27", "caniemail": "1.0.5"}  # as package.json pins them


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


def timed(name: str, tool: str, run: Callable[[], tuple[str, list[str]]]) -> ToolCheck:
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


Origin = Callable[[str], str]  # an image's src -> the article file it came from ('' when unknown)


def verdict(problems: list[str]) -> tuple[str, list[str]]:
    return (FAILED if problems else PASSED), problems
