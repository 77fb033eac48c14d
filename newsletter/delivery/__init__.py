"""Delivery: the messages on their way. The transport interface and its implementations (SMTP, files,
memory), the exactly-once send with its journal, pacing policies and group commit, the test send, the export
dry run, and a local capturing SMTP server.

Imports: base, audience, edition.
"""
