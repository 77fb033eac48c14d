"""Transports by name: NEWSLETTER_TRANSPORT picks a module of newsletter.delivery from one registry, and the
handler transport, a function in the place of a mail server, is how a new one is added: one module, one line."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest
from conftest import SAMPLE_EDITION, parse_message

from newsletter.base.errors import ConfigError, PermanentFailure
from newsletter.base.workspace import open_workspace
from newsletter.delivery import transport as registry
from newsletter.delivery.handler import HandlerTransport
from newsletter.delivery.send import Send, SendOptions

DELIVERY = Path(registry.__file__).parent


def test_every_registered_transport_is_one_module_with_from_settings() -> None:
    for name, module in registry.TRANSPORTS.items():
        source = ast.parse((DELIVERY / f"{module}.py").read_text(encoding="utf-8"))
        functions = {node.name for node in source.body if isinstance(node, ast.FunctionDef)}
        assert "from_settings" in functions, name


def test_the_handler_transport_is_named_in_the_registry_and_nowhere_else() -> None:
    """What adding a transport takes: its module, and its line in TRANSPORTS; no other module names it."""
    assert registry.TRANSPORTS["handler"] == "handler"
    mentions = [path.name for path in DELIVERY.parent.rglob("*.py")
                if "handler import" in path.read_text(encoding="utf-8") or "HandlerTransport" in
                path.read_text(encoding="utf-8")]  # fmt: skip
    assert mentions == ["handler.py"], mentions


def test_transports_are_chosen_by_the_setting(tmp_path: Path) -> None:
    factory, where = registry.transport_for({"NEWSLETTER_TRANSPORT": "memory"}, "a@example.org")
    assert where == "memory" and factory() is factory(), "the lanes share one list"
    factory, where = registry.transport_for({"NEWSLETTER_TRANSPORT": "files", "NEWSLETTER_OUTBOX": str(tmp_path)},
                                            "a@example.org")  # fmt: skip
    assert where == str(tmp_path)
    factory, where = registry.transport_for({"SMTP_HOST": "relay.example", "SMTP_PORT": "2525"}, "a@example.org")
    assert where == "relay.example:2525", "SMTP is the default"
    with pytest.raises(ConfigError, match="NEWSLETTER_TRANSPORT: unknown transport 'carrier-pigeon'"):
        registry.transport_for({"NEWSLETTER_TRANSPORT": "carrier-pigeon"}, "a@example.org")
    with pytest.raises(ConfigError, match="test double"):
        registry.transport_for({"NEWSLETTER_TRANSPORT": "handler"}, "a@example.org")


def test_a_send_into_the_files_transport_spools_every_message(project: Path, cli, monkeypatch) -> None:
    monkeypatch.setenv("NEWSLETTER_TRANSPORT", "files")
    monkeypatch.setenv("NEWSLETTER_OUTBOX", str(project / "outbox"))
    monkeypatch.setenv("NEWSLETTER_UNSUBSCRIBE_SECRET", "a-key-of-sixteen-bytes")
    (project / "list.csv").write_text("email\na@example.org\nb@example.org\n", encoding="utf-8")
    result = cli("send", SAMPLE_EDITION, "--recipients", "list.csv", "--yes")
    assert result.code == 0, result.err
    files = sorted((project / "outbox").glob("*.eml"))
    assert [parse_message(f.read_bytes())["To"].addresses[0].addr_spec for f in files] == [
        "a@example.org",
        "b@example.org",
    ]


def test_a_handler_refusing_a_recipient_fails_only_that_one(project: Path, monkeypatch) -> None:
    monkeypatch.setenv("NEWSLETTER_UNSUBSCRIBE_SECRET", "a-key-of-sixteen-bytes")
    (project / "list.csv").write_text("email\na@example.org\nb@example.org\n", encoding="utf-8")

    def refuse_b(message):
        if message.recipient.email == "b@example.org":
            raise PermanentFailure("550 5.1.1 no such user", code=550)
        return "250 OK"

    send = Send(SAMPLE_EDITION, project / "list.csv", open_workspace(project), SendOptions(),
                transport=lambda: HandlerTransport(refuse_b))  # fmt: skip
    try:
        report = send.run()
    finally:
        send.close()
    assert (report.progress.sent, report.progress.failed) == (1, 1)
