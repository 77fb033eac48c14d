"""The checks by real tools (Chromium, axe-core, SpamAssassin, the Nu checker, caniemail), the review page
that shows an edition and their verdicts, and `preview`, which serves it live.

Imports: base, audience, edition.
"""
