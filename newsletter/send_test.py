"""`send_test`: the real edition, personalised with sample data, subject `[TEST] `, to a few addresses.

Kept apart from `pipeline` so that build and export never import smtplib: a dry run cannot connect anywhere.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from .addresses import normalise_address
from .compose import MessageFactory
from .config import require_smtp_settings
from .errors import ContentError, DeliveryError
from .model import Recipient
from .pipeline import placeholder_recipient, render_checked
from .smtp import SMTPBackend

TEST_PREFIX = "[TEST] "
MAX_TEST_ADDRESSES = 10


@dataclass(frozen=True)
class TestDelivery:
    address: str
    message_id: str
    reply: str
    error: str = ""


def send_test(
    edition: str | Path, addresses: list[str], root: Path | None = None, verbose: bool = False
) -> list[TestDelivery]:
    """Send the edition, subject prefixed `[TEST] `, to each address over one connection.

    A refused address is reported and the others still get theirs; a connection or login failure raises.
    """
    if not addresses:
        raise ContentError("send-test needs at least one --to address")
    if len(addresses) > MAX_TEST_ADDRESSES:
        raise ContentError(f"send-test sends to at most {MAX_TEST_ADDRESSES} addresses (got {len(addresses)})")
    checked = [normalise_address(a) for a in addresses]
    settings = require_smtp_settings(root)
    rendered = render_checked(edition, root)
    factory = MessageFactory(rendered, subject_prefix=TEST_PREFIX)
    sample_name = placeholder_recipient(rendered.publication).name
    results = []
    with SMTPBackend(settings, factory.sender.addr_spec, verbose) as backend:
        for address in checked:
            message = factory.compose(Recipient(email=address, name=sample_name))
            try:
                reply = backend.send(message)
            except DeliveryError as error:
                if error.code is None:  # the connection itself failed: nothing more can be sent on it
                    raise
                results.append(TestDelivery(address, message.message_id, "", str(error)))
                continue
            results.append(TestDelivery(address, message.message_id, reply))
    return results
