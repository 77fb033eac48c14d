"""Stage 3, inline: move the theme's CSS into style attributes, once per edition.

Many inboxes (Gmail's apps, Outlook) drop or ignore `<style>`; inline styles are what survives. Rules that cannot
be inlined (`@media`, dark mode, client fix-ups) live in a `<style data-premailer="ignore">` block that premailer
leaves in `<head>` untouched, `!important` included (its default `strip_important=True` would break the phone
layout; see docs/pitfalls.md).
"""

from __future__ import annotations

import logging

import cssutils
from premailer import Premailer

from ..base.errors import ContentError

# cssutils reports every mso- and other client-specific property as an error; they are deliberate.
cssutils.log.setLevel(logging.CRITICAL)


def inline_css(html: str) -> str:
    """Return `html` with its stylesheet inlined, ending in a newline as a MIME text body should; never fetches
    anything from the network."""
    try:
        inlined = Premailer(
            html,
            strip_important=False,
            allow_network=False,
            disable_validation=True,
            keep_style_tags=False,
            remove_classes=False,
            cssutils_logging_level=logging.CRITICAL,
            disable_leftover_css=False,
            cache_css_parsing=True,
            disable_basic_attributes=["width", "height"],
        ).transform(pretty_print=False)
    except Exception as exc:  # premailer raises bare lxml/cssutils errors; name the stage instead
        raise ContentError(f"could not inline the template's CSS: {exc}") from None
    return inlined if inlined.endswith("\n") else inlined + "\n"
