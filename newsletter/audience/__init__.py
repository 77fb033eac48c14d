"""The audience: who gets the newsletter and who must not. The recipients list, the self-verifying tokens and
identifiers in every message (unsubscribe links, VERP tags, Message-IDs), the suppression store, and the
bounces, complaints and mailto unsubscribes that fill it, by mail or as email service providers' events.

Imports: base.
"""
