"""The edition pipeline end to end: load -> render -> inline -> verify, then compose for one recipient or a list.

Each raises a `NewsletterError` on bad input; nothing here writes a file (`publish` and `export` do).
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from pathlib import Path

from ..base.addresses import parse_mailbox
from ..base.errors import CheckFailed
from ..base.model import Publication, Recipient, RenderedEdition
from ..base.workspace import Workspace
from .compose import ComposedMessage, MessageFactory
from .inline import inline_css
from .load import load_edition
from .render import render_edition
from .verify import check_rendered


def render_checked(edition: str | Path, workspace: Workspace, extra_fields: tuple[str, ...] = ()) -> RenderedEdition:
    """Load, render and inline an edition, then run every check; raises CheckFailed listing all problems."""
    loaded = load_edition(edition, workspace.root)
    rendered = render_edition(loaded, workspace.publication, workspace.templates, extra_fields)
    inlined = replace(rendered, html=inline_css(rendered.html))
    problems = check_rendered(inlined)
    if problems:
        raise CheckFailed(problems, loaded.folder)
    return inlined


def placeholder_recipient(publication: Publication) -> Recipient:
    """The placeholder recipient that `build` addresses its .eml to (`test_recipient` in newsletter.toml)."""
    address = parse_mailbox(
        publication.test_recipient, "[publication] test_recipient", str(publication.source or "newsletter.toml")
    )
    return Recipient(email=address.addr_spec, name=address.display_name)


@dataclass(frozen=True)
class EditionPreview:
    """The edition as the test recipient gets it: both parts decoded, and the whole message."""

    rendered: RenderedEdition
    text: str
    html: str
    message: ComposedMessage


def preview_edition(edition: str | Path, workspace: Workspace) -> EditionPreview:
    """Render, check and compose the edition for the placeholder test recipient."""
    rendered = render_checked(edition, workspace)
    factory = MessageFactory(rendered, dkim=workspace.dkim)
    recipient = placeholder_recipient(rendered.publication)
    text, html = factory.personalise(recipient)
    return EditionPreview(rendered, text, html, factory.compose(recipient))


def message_factory(edition: str | Path, workspace: Workspace, columns: tuple[str, ...] = ()) -> MessageFactory:
    """Render and check the edition once, with the recipients file's extra `columns` available to templates,
    ready to compose a message for each recipient."""
    return MessageFactory(render_checked(edition, workspace, columns), dkim=workspace.dkim)
