"""`send_test`: the real edition, personalised with sample data, subject `[TEST] `, to a few addresses.

It delivers through the same `Transport` as `send`, one connection for all addresses. A refused address is
reported and the next one is still tried; a connection the server closes (after a 421, say) is opened again for
the next address, so every address gets its own result.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from ..base.addresses import parse_recipient
from ..base.errors import ContentError, DeliveryError, SetupFailed
from ..base.model import Recipient
from ..base.workspace import Workspace
from ..edition.compose import MessageFactory
from ..edition.pipeline import render_checked
from .transport import Transport, TransportFactory, run_deliveries, transport_for

TEST_PREFIX = "[TEST] "
MAX_TEST_ADDRESSES = 10


@dataclass(frozen=True)
class TestDelivery:
    address: str
    message_id: str
    reply: str
    error: str = ""


def send_test(
    edition: str | Path,
    addresses: list[str],
    workspace: Workspace,
    verbose: bool = False,
    transport: TransportFactory | None = None,
) -> list[TestDelivery]:
    """Send the edition, subject prefixed `[TEST] ` and with Message-IDs of its own, to each address.

    Raises when the very first connection cannot be made, or when the settings cannot work (a refused login,
    an untrusted certificate); otherwise returns one result per address."""
    if not addresses:
        raise ContentError("send-test needs at least one --to address")
    if len(addresses) > MAX_TEST_ADDRESSES:
        raise ContentError(f"send-test sends to at most {MAX_TEST_ADDRESSES} addresses (got {len(addresses)})")
    checked = [parse_recipient(a) for a in addresses]
    rendered = render_checked(edition, workspace)
    factory = MessageFactory(rendered, subject_prefix=TEST_PREFIX, unique_ids=True, dkim=workspace.dkim)
    if transport is None:
        transport, _ = transport_for(workspace.settings, factory.sender.addr_spec, verbose)
    # only the name typed with the address: a colleague must not be greeted as the list's test recipient
    messages = [factory.compose(Recipient(email=address, name=name)) for name, address in checked]
    return run_deliveries(_deliver(transport(), messages))


async def _deliver(transport: Transport, messages: list) -> list[TestDelivery]:
    results: list[TestDelivery] = []
    try:
        for message in messages:
            address = message.recipient.email
            try:
                if not transport.is_open:
                    await transport.open()
                reply = await transport.send(message)
            except SetupFailed:
                raise
            except DeliveryError as error:
                if not results and not transport.is_open and error.code is None:
                    raise  # could not connect at all: one line says so
                results.append(TestDelivery(address, message.message_id, "", str(error)))
                continue
            results.append(TestDelivery(address, message.message_id, reply))
    finally:
        await transport.close()
    return results
