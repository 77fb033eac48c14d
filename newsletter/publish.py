"""`build` and `check`: the edition pipeline's results written as files, or judged by every check.

The CLI calls these (and `export`) rather than the stages; a Python user can call them directly.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass
from pathlib import Path

from .base.errors import CheckFailed
from .base.workspace import Workspace
from .base.writer import safe_join, write_files
from .checks.review import review_data, review_page
from .checks.toolchecks import run_tool_checks
from .edition.compose import ComposedMessage
from .edition.pipeline import EditionPreview, preview_edition
from .edition.verify import image_origin, publication_problems


def check_edition(edition: str | Path, workspace: Workspace, tools: bool = True) -> tuple[EditionPreview, list]:
    """Every check: the built-in ones and the publication's settings (raising CheckFailed) and, with `tools`,
    the real-tool ones (returned)."""
    preview = preview_edition(edition, workspace)
    publication = preview.rendered.publication
    problems = publication_problems(publication)
    if problems:
        raise CheckFailed(problems, publication.source)
    origin = functools.partial(image_origin, preview.rendered.edition)
    results = run_tool_checks(preview.html, preview.message.data, workspace.root, origin) if tools else []
    return preview, results


@dataclass(frozen=True)
class BuildResult:
    out: Path
    files: list[Path]
    message: ComposedMessage
    html_bytes: int


def build_edition(edition: str | Path, workspace: Workspace, out: Path | None = None) -> BuildResult:
    """Write email.html, email.txt, email.eml (for the test recipient) and review.html into build/<edition>/."""
    preview = preview_edition(edition, workspace)
    out = out or safe_join(workspace.build, preview.rendered.edition.name)
    files = write_files(out, {
        "email.html": preview.html,
        "email.txt": preview.text,
        "email.eml": preview.message.data,
        "review.html": review_page(review_data(preview)),
    })  # fmt: skip
    return BuildResult(out, files, preview.message, len(preview.html.encode("utf-8")))
