"""The web service `newsletter serve`: one-click unsubscribe, the archive, web versions and the feed, with the
request deadline that guards it; the archive also as static files.

Imports: base, audience, edition, delivery.
"""
