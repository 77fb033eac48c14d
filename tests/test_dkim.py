"""DKIM: every message export, send-test and send produce verifies with an independent verifier (dkimpy, with a
DNS lookup that returns the record `dkim-keygen` printed); a message changed after signing does not; bad keys
and settings are one line before anything is sent."""

from __future__ import annotations

import re
import stat
from pathlib import Path

import pytest
from conftest import SAMPLE_EDITION

dkim = pytest.importorskip("dkim")


@pytest.fixture(params=["rsa", "ed25519"])
def signing(request, project: Path, cli, monkeypatch):
    """A key made by `newsletter dkim-keygen`, configured; returns the DNS record's value."""
    result = cli("dkim-keygen", "--selector", "news1", "--type", request.param, "--out", "keys")
    assert result.code == 0, result.err
    key = project / "keys" / "news1.private"
    assert stat.S_IMODE(key.stat().st_mode) == 0o600
    record = re.search(r"^news1\._domainkey\.seattle-neuro\.example IN TXT (.+)$", result.out, re.M)[1]
    monkeypatch.setenv("DKIM_PRIVATE_KEY_FILE", str(key))
    monkeypatch.setenv("DKIM_SELECTOR", "news1")
    return "".join(re.findall(r'"([^"]*)"', record)).encode()


def verifies(message: bytes, record: bytes) -> bool:
    def dns(name: bytes, timeout: int = 5) -> bytes:
        assert name == b"news1._domainkey.seattle-neuro.example."
        return record

    return dkim.verify(message, dnsfunc=dns)


def test_exported_messages_verify_and_cover_the_list_headers(project: Path, cli, signing) -> None:
    (project / "list.csv").write_text("email,name\nann@example.org,Ann\nbo@example.org,Bö Ürsula\n", encoding="utf-8")
    assert cli("export", SAMPLE_EDITION, "--recipients", "list.csv", "--out", "out").code == 0
    files = sorted((project / "out").glob("*.eml"))
    assert len(files) == 2
    for eml in files:
        data = eml.read_bytes()
        assert verifies(data, signing), eml.name
        header = re.search(rb"^DKIM-Signature:(.*?)\r\n(?=\S)", data, re.S | re.M)[1].decode()
        signed = re.search(r"h=([^;]+);", header)[1].split(":")
        for name in ("from", "to", "subject", "date", "message-id", "mime-version", "content-type", "list-id",
                     "list-unsubscribe", "list-unsubscribe-post"):  # fmt: skip
            assert name in signed, name
        tampered = data[:-200] + (b"X" if data[-200:-199] != b"X" else b"Y") + data[-199:]  # one body byte
        assert not verifies(tampered, signing)
        assert not verifies(data.replace(b"Subject: ", b"Subject: [changed] ", 1), signing)


def test_test_sends_and_sends_are_signed(project: Path, cli, signing, smtp_server, smtp_env) -> None:
    server = smtp_server()
    smtp_env({**server.env("none"), "NEWSLETTER_UNSUBSCRIBE_SECRET": "dkim-test-key-0123456789"})
    assert cli("send-test", SAMPLE_EDITION, "--to", "me@example.org").code == 0
    (project / "list.csv").write_text("email\na@example.org\nb@example.org\n", encoding="utf-8")
    assert cli("send", SAMPLE_EDITION, "--recipients", "list.csv", "--yes").code == 0
    assert len(server.handler.received) == 3
    for received in server.handler.received:
        assert verifies(received.data, signing)


@pytest.mark.parametrize(
    ("setting", "expected"),
    [
        ({"DKIM_PRIVATE_KEY_FILE": "missing.pem"}, "DKIM_PRIVATE_KEY_FILE: cannot read missing.pem"),
        ({"DKIM_PRIVATE_KEY_FILE": "newsletter.toml"}, "is not an unencrypted PEM private key"),
        ({"DKIM_PRIVATE_KEY_FILE": "short.pem"}, "is a 1024-bit RSA key; DKIM needs at least 2048 bits"),
        ({"DKIM_DOMAIN": "elsewhere.example"}, "DKIM_DOMAIN: elsewhere.example does not match the From domain"),
        ({"DKIM_SELECTOR": "bad selector"}, "DKIM_SELECTOR: 'bad selector' is not a selector"),
        ({"DKIM_DOMAIN": "bad domain!"}, "DKIM_DOMAIN: 'bad domain!' is not a domain name"),
        ({"DKIM_DOMAIN": "example"}, "DKIM_DOMAIN: 'example' is not a domain name"),  # a top-level domain alone
        ({"DKIM_PRIVATE_KEY_FILE": "open.pem"}, "is readable by others (mode 644)"),
    ],
)
def test_bad_dkim_settings_are_one_line_before_anything_is_written(project: Path, cli, monkeypatch, setting,
                                                                     expected) -> None:  # fmt: skip
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import rsa

    short = rsa.generate_private_key(public_exponent=65537, key_size=1024)
    (project / "short.pem").write_bytes(short.private_bytes(serialization.Encoding.PEM,
                                        serialization.PrivateFormat.PKCS8, serialization.NoEncryption()))  # fmt: skip
    assert cli("dkim-keygen", "--selector", "good", "--type", "ed25519", "--out", "keys").code == 0
    (project / "open.pem").write_bytes((project / "keys" / "good.private").read_bytes())
    (project / "open.pem").chmod(0o644)
    (project / "short.pem").chmod(0o600)
    monkeypatch.setenv("DKIM_PRIVATE_KEY_FILE", str(project / "keys" / "good.private"))
    monkeypatch.setenv("DKIM_SELECTOR", "good")
    for key, value in setting.items():
        monkeypatch.setenv(key, value)
    (project / "list.csv").write_text("email\na@example.org\n", encoding="utf-8")
    result = cli("export", SAMPLE_EDITION, "--recipients", "list.csv", "--out", "out")
    assert result.code == 78 and expected in result.err and result.err.count("\n") == 1, result.err
    assert not (project / "out").exists()


def test_keygen_never_overwrites_a_key(project: Path, cli) -> None:
    assert cli("dkim-keygen", "--selector", "s1", "--out", "keys").code == 0
    before = (project / "keys" / "s1.private").read_bytes()
    result = cli("dkim-keygen", "--selector", "s1", "--out", "keys")
    assert result.code == 1 and "already there" in result.err
    assert (project / "keys" / "s1.private").read_bytes() == before


def test_messages_to_long_names_verify(project: Path, cli, signing) -> None:
    """Names too long for one header line (one unbroken word, a thousand characters, non-ASCII) are folded with
    CRLF within the line limits, so the signature covers exactly what a receiver reads."""
    names = ["A" * 72, "B" * 1000, "Zoë " * 40, "word " * 60, "Ä" + "C" * 300]
    rows = "".join(f'n{i}@example.org,"{name}"\n' for i, name in enumerate(names))
    (project / "list.csv").write_text("email,name\n" + rows, encoding="utf-8")
    assert cli("export", SAMPLE_EDITION, "--recipients", "list.csv", "--out", "out").code == 0
    files = sorted((project / "out").glob("*.eml"))
    assert len(files) == len(names)
    for eml in files:
        data = eml.read_bytes()
        head = data.split(b"\r\n\r\n", 1)[0]
        assert b"\n" not in head.replace(b"\r\n", b"") and max(map(len, head.split(b"\r\n"))) <= 998
        assert verifies(data, signing), eml.name
