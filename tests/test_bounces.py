"""VERP return paths and `newsletter bounces`: DSNs, abuse reports, mailto unsubscribes and auto-replies sorted, each
report acted on once. The reports are built the way Postfix, Exim, qmail and the big providers' feedback loops
write them (RFC 3464, RFC 5965)."""

from __future__ import annotations

import datetime
import email.utils
import mailbox
import time
from pathlib import Path

import pytest
from conftest import LIST_ID, SAMPLE_EDITION, sent_journal, suppressed

from newsletter.audience.tokens import message_id_for, read_verp_tag, unsubscribe_keys, unsubscribe_token, verp_tag
from newsletter.base.workspace import open_workspace
from newsletter.delivery.journal import journal_path

SECRET = "bounce-test-secret-0123456789"
KEYS = unsubscribe_keys(SECRET)


@pytest.fixture
def sent(project: Path, monkeypatch) -> Path:
    """bounce_address configured, and a journal of the sample edition that went to r0..r9@example.org."""
    toml = project / "newsletter.toml"
    toml.write_text(toml.read_text(encoding="utf-8") + 'bounce_address = "bounces@example.org"\n', encoding="utf-8")
    monkeypatch.setenv("NEWSLETTER_UNSUBSCRIBE_SECRET", SECRET)
    sent_journal(project, [f"r{i}@example.org" for i in range(10)])
    return project


def verp(row_id: int, edition: str = SAMPLE_EDITION) -> str:
    return f"bounces+{verp_tag(KEYS, LIST_ID, edition, row_id)}@example.org"


def ours(address: str) -> str:
    """The Message-ID our send gave the sample edition's message to `address` (keyed: no one else can make it)."""
    return message_id_for(SAMPLE_EDITION, LIST_ID, address, "seattle-neuro.example", KEYS[0])


FORGED = f"<{'0' * 32}.{SAMPLE_EDITION}@seattle-neuro.example>"  # the shape of ours, without the key


def dsn(to: str, recipient: str, status: str, action: str = "failed", original: bool = True,
        message_id: str = "", diagnostic: str = "mailbox problem", date: str = "") -> bytes:  # fmt: skip
    """A delivery status notification as Postfix writes it, quoting our message to `recipient`."""
    quoted = ("--B\r\nContent-Type: text/rfc822-headers\r\n\r\nFrom: Seattle Neuro Blog <newsletter@example.org>\r\n"
              f"To: {recipient}\r\nSubject: Is Physical Therapy Worth It?\r\n"
              f"Message-ID: {message_id or ours(recipient)}\r\n\r\n") if original else ""  # fmt: skip
    return (
        f"From: MAILER-DAEMON@mx.example.net (Mail Delivery System)\r\nTo: {to}\r\n"
        "Subject: Undelivered Mail Returned to Sender\r\nAuto-Submitted: auto-replied\r\n"
        'MIME-Version: 1.0\r\nContent-Type: multipart/report; report-type=delivery-status; boundary="B"\r\n'
        f"Message-ID: <dsn-{recipient}-{status}-{to}>\r\n" + (f"Date: {date}\r\n" if date else "") + "\r\n"
        "--B\r\nContent-Type: text/plain\r\n\r\nI'm sorry to have to inform you that your message could not be "
        "delivered.\r\n\r\n"
        "--B\r\nContent-Type: message/delivery-status\r\n\r\nReporting-MTA: dns; mx.example.net\r\n\r\n"
        f"Final-Recipient: rfc822; {recipient}\r\nAction: {action}\r\nStatus: {status}\r\n"
        f"Diagnostic-Code: smtp; {status[0]}50 {status} {diagnostic} for {recipient}\r\n\r\n"
        f"{quoted}--B--\r\n"
    ).encode()


def arf(recipient: str, message_id: str = "") -> bytes:
    """An abuse report as a provider's feedback loop sends it (RFC 5965), the original message quoted."""
    return (
        "From: feedback@fbl.example.net\r\nTo: abuse@example.org\r\nSubject: Complaint\r\nMIME-Version: 1.0\r\n"
        'Content-Type: multipart/report; report-type=feedback-report; boundary="F"\r\n'
        f"Message-ID: <arf-{recipient}>\r\n\r\n"
        "--F\r\nContent-Type: text/plain\r\n\r\nThis is an email abuse report.\r\n"
        "--F\r\nContent-Type: message/feedback-report\r\n\r\nFeedback-Type: abuse\r\nUser-Agent: FBL/1.0\r\n"
        "Version: 1\r\nReporting-MTA: dns; fbl.example.net\r\n\r\n"
        "--F\r\nContent-Type: message/rfc822\r\n\r\nFrom: Seattle Neuro Blog <newsletter@example.org>\r\n"
        f"To: {recipient}\r\nSubject: Is Physical Therapy Worth It?\r\n"
        f"Message-ID: {message_id or ours(recipient)}\r\n\r\nbody\r\n--F--\r\n"
    ).encode()


def plain(to: str, subject: str, extra: str = "", sender: str = "someone@example.net", body: str = "Hello") -> bytes:
    return (f"From: {sender}\r\nTo: {to}\r\nSubject: {subject}\r\n{extra}Message-ID: <{subject[:20]}-{to}>\r\n"
            f"\r\n{body}\r\n").encode()  # fmt: skip


QMAIL = ("Hi. This is the qmail-send program at mail.example.com.\r\nI'm afraid I wasn't able to deliver your "
         "message to the following addresses.\r\nThis is a permanent error; I've given up. Sorry it didn't work "
         "out.\r\n\r\n<r7@example.org>:\r\nSorry, no mailbox here by that name. (#5.1.1)\r\n\r\n"
         "--- Below this line is a copy of the message.\r\n")  # fmt: skip


def maildir(folder: Path, messages: list[bytes]) -> Path:
    box = mailbox.Maildir(folder, create=True)
    for data in messages:
        box.add(data)
    return folder


def test_verp_tags_are_short_verified_and_name_edition_and_row() -> None:
    tag = verp_tag(KEYS, LIST_ID, SAMPLE_EDITION, 123456)
    assert len(f"bounces+{tag}") <= 64
    assert read_verp_tag(KEYS, LIST_ID, tag)[1] == 123456
    assert read_verp_tag(KEYS, LIST_ID, tag.upper())[1] == 123456, "servers may change the case"
    assert read_verp_tag(KEYS, LIST_ID, tag[:-1] + ("a" if tag[-1] != "a" else "b")) is None
    assert read_verp_tag(unsubscribe_keys("another-key-0123456789"), LIST_ID, tag) is None


def test_send_uses_a_verp_return_path_per_recipient(sent: Path, smtp_server, smtp_env) -> None:
    from newsletter.delivery.send import Send, SendOptions

    journal_path(sent, SAMPLE_EDITION).unlink()
    server = smtp_server()
    smtp_env(server.env("none"))
    (sent / "list.csv").write_text("email\na@example.org\nb@example.org\n", encoding="utf-8")
    send = Send(SAMPLE_EDITION, sent / "list.csv", open_workspace(sent), SendOptions())
    try:
        assert send.run().complete
    finally:
        send.close()
    senders = {r.rcpt_tos[0]: r.mail_from for r in server.handler.received}
    for row_id, address in enumerate(("a@example.org", "b@example.org"), start=1):
        local, _, domain = senders[address].partition("@")
        assert domain == "example.org" and local.startswith("bounces+") and len(local) <= 64
        assert read_verp_tag(KEYS, LIST_ID, local.split("+", 1)[1])[1] == row_id


def test_reports_are_sorted_and_acted_on_once(sent: Path, cli, tmp_path: Path, smtp_env) -> None:
    token = unsubscribe_token(KEYS, LIST_ID, "r5@example.org")
    box = maildir(tmp_path / "Maildir", [
        dsn(verp(1), "r0@example.org", "5.1.1"),                              # hard bounce, by its VERP tag
        dsn(verp(2), "alias-of-r1@mx.example.net", "5.1.1", original=False),  # the tag wins over the report
        dsn("bounces@example.org", "r2@example.org", "5.0.0", diagnostic="no such user"),  # our Message-ID to r2
        dsn(verp(4), "r3@example.org", "4.2.2", action="delayed"),            # temporary: counted only
        arf("r4@example.org"),                                                 # complaint
        plain("Unsubscribe <unsubscribe@seattle-neuro.example>", f"unsubscribe {token}", sender="r5@example.org"),
        plain("unsubscribe@seattle-neuro.example", "unsubscribe " + "A" * 40),          # a forged token: left alone
        plain(verp(7), "Out of Office: back Monday", "Auto-Submitted: auto-replied\r\n"),
        plain(verp(8), "Automatic reply: Is Physical Therapy Worth It?"),
        plain("bounces@example.org", "failure notice", sender="MAILER-DAEMON@mail.example.com", body=QMAIL),  # no
        # evidence that r7 got mail from us: unverified
        plain("bounces@example.org", "Hello from a reader"),
    ])  # fmt: skip
    result = cli("bounces", "--maildir", box, "-v")
    assert result.code == 0, result.err
    assert suppressed(sent) == {
        "r0@example.org": "bounce", "r1@example.org": "bounce", "r2@example.org": "bounce",
        "r4@example.org": "complaint", "r5@example.org": "unsubscribe",
    }  # fmt: skip
    assert suppressed(sent, "edition")["r0@example.org"] == SAMPLE_EDITION
    assert suppressed(sent, "edition")["r2@example.org"] == SAMPLE_EDITION, "the edition our Message-ID names"
    for line in ("bounce: 4", "soft-bounce: 1", "complaint: 1", "unsubscribe: 1", "auto-reply: 2", "other: 2",
                 "5 address(es) suppressed"):  # fmt: skip
        assert line in result.out.splitlines(), line
    assert "bounce: r0@example.org (suppressed): userunknown: smtp; 550 5.1.1" in result.out
    again = cli("bounces", "--maildir", box)
    assert again.code == 0 and "0 address(es) suppressed" in again.out and "bounce: 0" in again.out
    assert not list((box / "new").iterdir()), "every message was moved to cur/ and flagged seen"
    status = cli("status", SAMPLE_EDITION)
    assert "bounced 3, complained 1, unsubscribed 0" in status.out
    assert "warning: 1 complaint(s) for 10 message(s) sent (10.00%)" in status.err
    (sent / "list.csv").write_text("email\nz@example.org\n", encoding="utf-8")
    smtp_env({"SMTP_HOST": "127.0.0.1", "SMTP_PORT": "9", "SMTP_SECURITY": "none"})  # never reached
    plan = cli("send", "spring-clinic", "--recipients", "list.csv")  # no terminal: it shows the plan and stops
    assert f"warning: edition {SAMPLE_EDITION}: 1 complaint(s) for 10 message(s) sent" in plan.err


@pytest.mark.parametrize("days", [0, 5, 8], ids=["same day", "ten days", "sixteen days"])
def test_temporary_failures_suppress_after_three_editions_over_fifteen_days(sent: Path, cli, tmp_path: Path,
                                                                           days: int) -> None:  # fmt: skip
    start = datetime.datetime(2026, 10, 1, 9, 0, tzinfo=datetime.UTC)
    for number, edition in enumerate(("one", "two", "two", "three")):
        sent_journal(sent, ["r3@example.org"], edition)  # the second report about edition two finds it there
        date = email.utils.format_datetime(start + datetime.timedelta(days=days * number))
        full = dsn(verp(1, edition), "r3@example.org", "4.2.2", "delayed", diagnostic="mailbox full", date=date)
        assert cli("bounces", "--maildir", maildir(tmp_path / f"box{number}", [full])).code == 0
        assert ("r3@example.org" in suppressed(sent)) == (edition == "three" and days * 3 >= 15), (edition, days)


def test_a_refusal_on_the_senders_side_suppresses_nobody_and_warns(sent: Path, cli, tmp_path: Path) -> None:
    refused = [dsn(verp(row), f"r{row - 1}@example.org", "5.7.1", diagnostic="Service unavailable, Client host "
                   "[192.0.2.1] blocked using zen.spamhaus.org") for row in (1, 2)]  # fmt: skip
    result = cli("bounces", "--maildir", maildir(tmp_path / "box", refused))
    assert result.code == 0 and "refused: 2" in result.out and "0 address(es) suppressed" in result.out
    assert suppressed(sent) == {}
    status = cli("status", SAMPLE_EDITION)
    assert "refused 2" in status.out
    assert "2 of 10 message(s) (20.0%) were refused for reasons on the sender's side" in status.err
    assert "most at example.org 2" in status.err


def test_a_report_of_delivery_or_a_4xx_unknown_user_suppresses_nobody(sent: Path, cli, tmp_path: Path) -> None:
    reports = [
        dsn(verp(1), "r0@example.org", "2.1.5", action="delivered", diagnostic="OK"),  # address verification
        dsn(verp(2), "r1@example.org", "4.1.1", action="delayed", diagnostic="user unknown, try again later"),
    ]
    result = cli("bounces", "--maildir", maildir(tmp_path / "box", reports), "-v")
    assert result.code == 0 and suppressed(sent) == {}
    assert "other: 1" in result.out and "soft-bounce: 1" in result.out


def test_an_mbox_is_read_once(sent: Path, cli, tmp_path: Path) -> None:
    path = tmp_path / "bounces.mbox"
    box = mailbox.mbox(path)
    box.add(dsn(verp(1), "r0@example.org", "5.1.1"))
    box.add(arf("r4@example.org"))
    box.close()
    first = cli("bounces", "--mbox", path)
    assert first.code == 0 and "2 address(es) suppressed" in first.out
    second = cli("bounces", "--mbox", path)
    assert "bounce: 0" in second.out and "complaint: 0" in second.out
    assert len(suppressed(sent)) == 2


def test_a_missing_mailbox_is_one_line(sent: Path, cli, tmp_path: Path) -> None:
    result = cli("bounces", "--maildir", tmp_path / "nowhere")
    assert result.code == 1 and result.err.count("\n") == 1 and "Traceback" not in result.err


@pytest.fixture
def postfix(tmp_path: Path):
    """A real Postfix on a loopback port, in a configuration of its own: example.org is a virtual domain where
    bounces@ and reader@ have Maildirs and every other address is unknown, so Postfix accepts the message, fails
    to deliver it, and mails its own DSN to the return path, which lands in bounces@'s Maildir."""
    import os
    import shutil
    import subprocess
    import tempfile

    from conftest import free_port

    if shutil.which("postfix") is None or os.geteuid() != 0:
        why = "Postfix (apt-get install postfix) and root are needed to run a Postfix of the test's own"
        pytest.fail(why) if os.environ.get("CI") else pytest.skip(why)
    base = Path(tempfile.mkdtemp(prefix="newsletter-postfix-", dir="/tmp"))  # Postfix's users must reach it
    base.chmod(0o755)
    port = free_port()
    conf, mail = base / "conf", base / "mail"
    for folder in (conf, mail, base / "queue", base / "data"):
        folder.mkdir()
    shutil.chown(base / "data", "postfix")
    shutil.chown(mail, "nobody")
    uid, gid = (
        subprocess.run(["id", flag, "nobody"], capture_output=True, text=True).stdout.strip() for flag in ["-u", "-g"]
    )
    (conf / "main.cf").write_text(f"""
queue_directory = {base}/queue
data_directory = {base}/data
command_directory = /usr/sbin
daemon_directory = /usr/lib/postfix/sbin
meta_directory = /etc/postfix
shlib_directory = /usr/lib/postfix
mail_owner = postfix
setgid_group = postdrop
inet_interfaces = 127.0.0.1
inet_protocols = ipv4
myhostname = mx.test.example
mydomain = test.example
myorigin = test.example
mydestination =
mynetworks = 127.0.0.0/8
virtual_mailbox_domains = example.org
virtual_mailbox_base = {mail}
virtual_mailbox_maps = texthash:{conf}/vmailbox
virtual_uid_maps = static:{uid}
virtual_gid_maps = static:{gid}
recipient_delimiter = +
smtpd_reject_unlisted_recipient = no
compatibility_level = 3.6
maillog_file = {base}/log
maillog_file_prefixes = {base}
smtputf8_enable = no
""")  # fmt: skip
    (conf / "vmailbox").write_text("bounces@example.org bounces/Maildir/\nreader@example.org reader/Maildir/\n")
    master = Path("/etc/postfix/master.cf").read_text().splitlines()
    (conf / "master.cf").write_text("\n".join(
        f"127.0.0.1:{port} inet n - n - - smtpd" if line.startswith("smtp ") and " inet " in line else line
        for line in master) + "\n")  # fmt: skip
    for command in ("check", "start"):
        run = subprocess.run(["postfix", "-c", str(conf), command], capture_output=True, text=True)
        log = (base / "log").read_text() if (base / "log").exists() else ""
        assert run.returncode == 0, f"postfix {command} failed: {run.stderr}{log[-500:]}"
    try:
        yield port, mail
    finally:
        subprocess.run(["postfix", "-c", str(conf), "stop"], capture_output=True)
        shutil.rmtree(base, ignore_errors=True)


def test_a_real_postfix_bounce_suppresses_exactly_that_recipient(sent: Path, postfix, smtp_env, cli) -> None:
    """send -> Postfix, which cannot deliver to gone@ and mails its own DSN to the VERP return path -> its
    Maildir -> `newsletter bounces` suppresses gone@ and nobody else."""
    port, mail = postfix
    journal_path(sent, SAMPLE_EDITION).unlink()
    smtp_env({"SMTP_HOST": "127.0.0.1", "SMTP_PORT": str(port), "SMTP_SECURITY": "none"})
    (sent / "list.csv").write_text("email\nreader@example.org\ngone@example.org\n", encoding="utf-8")
    result = cli("send", SAMPLE_EDITION, "--recipients", "list.csv", "--yes")
    assert result.code == 0, result.err
    box = mail / "bounces" / "Maildir"
    deadline = time.monotonic() + 30
    while not (list((box / "new").glob("*")) if (box / "new").is_dir() else []) and time.monotonic() < deadline:
        time.sleep(0.2)
    (report,) = list((box / "new").iterdir())
    assert b"Delivered-To: bounces+" in report.read_bytes() and b"gone@example.org" in report.read_bytes()
    (delivered,) = list((mail / "reader" / "Maildir" / "new").iterdir())  # the good address got its copy
    assert delivered.read_bytes().startswith(b"Return-Path: <bounces+"), "the VERP return path, as delivered"
    result = cli("bounces", "--maildir", box, "-v")
    assert result.code == 0, result.err
    assert "bounce: 1" in result.out.splitlines()
    assert suppressed(sent) == {"gone@example.org": "bounce"}
    assert suppressed(sent, "edition") == {"gone@example.org": SAMPLE_EDITION}


@pytest.fixture
def dovecot(test_ca):
    """A real Dovecot IMAPS server on a loopback port, with a certificate from the test CA and one user whose
    Maildir the test fills: `bounces` / `imap-secret`."""
    import os
    import shutil
    import subprocess
    import tempfile

    from conftest import free_port

    if shutil.which("dovecot") is None or os.geteuid() != 0:
        why = "Dovecot (apt-get install dovecot-imapd) and root are needed to run an IMAP server of the test's own"
        pytest.fail(why) if os.environ.get("CI") else pytest.skip(why)
    base = Path(tempfile.mkdtemp(prefix="newsletter-dovecot-", dir="/tmp"))
    base.chmod(0o755)
    port = free_port()
    home = base / "home" / "bounces"
    for folder in ("cur", "new", "tmp"):
        (home / "Maildir" / folder).mkdir(parents=True)
    cert = test_ca.issue_cert("127.0.0.1")
    cert.private_key_pem.write_to_path(str(base / "key.pem"))
    cert.cert_chain_pems[0].write_to_path(str(base / "cert.pem"))
    test_ca.cert_pem.write_to_path(str(base / "ca.pem"))
    (base / "users").write_text("bounces:{PLAIN}imap-secret::::::\n")
    (base / "dovecot.conf").write_text(f"""
protocols = imap
listen = 127.0.0.1
base_dir = {base}/run
state_dir = {base}/state
log_path = {base}/log
ssl = required
ssl_cert = <{base}/cert.pem
ssl_key = <{base}/key.pem
disable_plaintext_auth = yes
auth_mechanisms = plain
default_internal_user = dovecot
default_login_user = dovenull
mail_location = maildir:~/Maildir
passdb {{
  driver = passwd-file
  args = {base}/users
}}
userdb {{
  driver = static
  args = uid=nobody gid=nogroup home={base}/home/%u
}}
service imap-login {{
  inet_listener imap {{
    port = 0
  }}
  inet_listener imaps {{
    port = {port}
    ssl = yes
  }}
}}
""")  # fmt: skip
    subprocess.run(["chown", "-R", "nobody:nogroup", str(base / "home")], check=True)
    server = subprocess.Popen(["dovecot", "-F", "-c", str(base / "dovecot.conf")], stdout=subprocess.PIPE,
                              stderr=subprocess.STDOUT)  # fmt: skip
    import socket

    deadline = time.monotonic() + 15
    while time.monotonic() < deadline:
        try:
            socket.create_connection(("127.0.0.1", port), 0.2).close()
            break
        except OSError:
            time.sleep(0.1)
    else:
        server.kill()
        pytest.fail(f"dovecot did not start: {(base / 'log').read_text() if (base / 'log').exists() else ''}")
    try:
        yield port, home / "Maildir", base / "ca.pem"
    finally:
        server.terminate()
        server.wait(10)
        shutil.rmtree(base, ignore_errors=True)


def test_reports_are_read_over_imap_once_with_the_certificate_verified(sent: Path, dovecot, cli, monkeypatch):
    import subprocess

    port, box, ca_file = dovecot
    folder = mailbox.Maildir(box, create=False)
    folder.add(dsn(verp(1), "r0@example.org", "5.1.1"))
    folder.add(arf("r4@example.org"))
    folder.add(plain(verp(7), "Out of Office", "Auto-Submitted: auto-replied\r\n"))
    subprocess.run(["chown", "-R", "nobody:nogroup", str(box)], check=True)
    settings = {"IMAP_HOST": "127.0.0.1", "IMAP_PORT": str(port), "IMAP_USERNAME": "bounces",
                "IMAP_PASSWORD": "imap-secret"}  # fmt: skip
    for key, value in settings.items():
        monkeypatch.setenv(key, value)
    for key, value, said in (("IMAP_TIMEOUT", "nan", "IMAP_TIMEOUT: must be a positive number"),
                             ("IMAP_TIMEOUT", "1e400", "IMAP_TIMEOUT: must be a positive number"),
                             ("IMAP_PORT", "99999", "IMAP_PORT: 99999 is not a port number")):  # fmt: skip
        monkeypatch.setenv(key, value)
        bad = cli("bounces", "--imap")
        assert bad.code == 78 and said in bad.err and bad.err.count("\n") == 1, bad.err
        if key in settings:
            monkeypatch.setenv(key, settings[key])
        else:
            monkeypatch.delenv(key)
    untrusted = cli("bounces", "--imap")
    assert untrusted.code == 78 and "TLS certificate not trusted" in untrusted.err, untrusted.err
    monkeypatch.setenv("IMAP_CA_FILE", str(ca_file))
    monkeypatch.setenv("IMAP_PASSWORD", "wrong")
    wrong = cli("bounces", "--imap")
    assert wrong.code == 78 and "IMAP login failed for user bounces at 127.0.0.1" in wrong.err
    assert "wrong" not in wrong.err
    monkeypatch.setenv("IMAP_PASSWORD", "imap-secret")
    first = cli("bounces", "--imap")
    assert first.code == 0, first.err
    for line in ("bounce: 1", "complaint: 1", "auto-reply: 1", "2 address(es) suppressed"):
        assert line in first.out.splitlines(), (line, first.out)
    assert suppressed(sent) == {"r0@example.org": "bounce",
                                                                "r4@example.org": "complaint"}  # fmt: skip
    again = cli("bounces", "--imap")
    assert again.code == 0 and "bounce: 0" in again.out and "auto-reply: 0" in again.out, "flagged \\Seen"


# --- nothing stops the run ------------------------------------------------------------------------------------------


def nested(depth: int) -> bytes:
    """A multipart nested `depth` deep: the email package's parser recurses once per level."""
    head = "".join(f'Content-Type: multipart/mixed; boundary="b{i}"\r\n\r\n--b{i}\r\n' for i in range(depth))
    return f"From: x@example.net\r\nTo: bounces@example.org\r\nSubject: deep\r\nMIME-Version: 1.0\r\n{head}".encode()


POISON = nested(2000)
NO_ADDRESS = dsn(verp(99), "@mx.example.org", "5.1.1").replace(b"rfc822; @mx.example.org", b"rfc822; bad@@address")


def test_a_message_that_cannot_be_judged_is_set_aside_and_the_run_goes_on(sent: Path, cli, tmp_path: Path) -> None:
    box = maildir(tmp_path / "Maildir", [POISON, NO_ADDRESS, dsn(verp(1), "r0@example.org", "5.1.1")])
    result = cli("bounces", "--maildir", box)
    assert result.code == 0, result.err
    assert "bounce: 1" in result.out and suppressed(sent) == {"r0@example.org": "bounce"}
    aside = sorted((box / "unreadable").iterdir())
    assert len(aside) == 1, "the unreadable message is moved beside cur/"
    assert result.err.count("newsletter: set aside, could not be read: ") == 1
    assert "Traceback" not in result.err and str(aside[0]) in result.err
    assert not list((box / "new").iterdir()), "every other message was judged"
    again = cli("bounces", "--maildir", box)
    assert again.code == 0 and again.err == "", "a set-aside message is not met again"


def test_marking_seen_renames_and_never_rewrites(sent: Path, cli, tmp_path: Path) -> None:
    data = dsn(verp(2), "r1@example.org", "5.1.1")
    box = maildir(tmp_path / "Maildir", [data])
    (name,) = [p.name for p in (box / "new").iterdir()]
    assert cli("bounces", "--maildir", box).code == 0
    (marked,) = (box / "cur").iterdir()
    assert marked.name == f"{name}:2,S" and marked.read_bytes() == data, "one rename, the bytes untouched (CRLF)"


def test_an_mbox_message_that_fails_is_not_marked_done(sent: Path, cli, tmp_path: Path) -> None:
    path = tmp_path / "bounces.mbox"
    box = mailbox.mbox(path)
    box.add(POISON)
    box.add(dsn(verp(1), "r0@example.org", "5.1.1"))
    box.close()
    for run in range(2):
        result = cli("bounces", "--mbox", path)
        assert result.code == 0 and f"{path}: message 1:" in result.err, (run, result.err)
        assert ("bounce: 1" in result.out) == (run == 0), "the good one once; the poison is tried again"


def test_report_text_is_stripped_of_control_characters(sent: Path, cli, tmp_path: Path) -> None:
    data = dsn(verp(3), "r2@example.org", "5.1.1").replace(b"mailbox problem", b"\x1b[31mmailbox\x1b[0m\x07 gone")
    assert cli("bounces", "--maildir", maildir(tmp_path / "Maildir", [data]), "-v").code == 0
    (detail,) = suppressed(sent, "detail").values()
    assert "\x1b" not in detail and "\x07" not in detail and "mailbox gone" in detail


def test_an_encoded_out_of_office_subject_is_still_an_auto_reply(sent: Path, cli, tmp_path: Path) -> None:
    """Messages are parsed with headers left as written (for speed): an RFC 2047 subject is decoded to judge it."""
    subject = "=?utf-8?q?Automatic_reply=3A_on_leave_until_Monday?="
    box = maildir(tmp_path / "Maildir", [plain(verp(4), subject)])
    result = cli("bounces", "--maildir", box)
    assert "auto-reply: 1" in result.out and suppressed(sent) == {}


# --- trust: only evidence acts ------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "report",
    [
        dsn("bounces@example.org", "victim@example.org", "5.1.1", message_id=FORGED),  # no tag, a made-up id
        dsn("bounces@example.org", "victim@example.org", "5.1.1", original=False),  # nothing quoted at all
        dsn("bounces@example.org", "victim@example.org", "5.1.1", message_id=ours("r0@example.org")),  # ours, to
        # someone else: a real Message-ID is evidence only for the address it was made for
        dsn("bounces+zzzzz-1-aaaaaaaa@example.org", "victim@example.org", "5.1.1", message_id=FORGED),  # bad tag
        arf("victim@example.org", message_id=FORGED),
        plain("bounces@example.org", "failure notice", sender="MAILER-DAEMON@x.example",
              body=QMAIL.replace("r7@example.org", "victim@example.org")),
    ],
    ids=["forged-message-id", "no-original", "message-id-for-another", "invalid-verp-tag", "forged-arf", "qmail"],
)  # fmt: skip
def test_a_forged_report_suppresses_no_one(sent: Path, cli, tmp_path: Path, report: bytes) -> None:
    box = maildir(tmp_path / "Maildir", [report] * 3)
    result = cli("bounces", "--maildir", box, "-v")
    assert result.code == 0, result.err
    assert suppressed(sent) == {} and "0 address(es) suppressed" in result.out
    assert "3 report(s) unverified" in result.out and "(unverified: no evidence we sent it" in result.out
    status = cli("status", SAMPLE_EDITION)
    assert "warning" not in status.err, "forged complaints raise no complaint-rate warning"


def test_trust_unverified_is_the_operators_choice(sent: Path, cli, tmp_path: Path) -> None:
    box = maildir(tmp_path / "Maildir", [dsn("bounces@example.org", "victim@example.org", "5.1.1", message_id=FORGED)])
    assert cli("bounces", "--maildir", box).code == 0 and suppressed(sent) == {}
    forged_again = maildir(tmp_path / "Again", [dsn("bounces@example.org", "victim@example.org", "5.1.1",
                                                    message_id=FORGED)])  # fmt: skip
    result = cli("bounces", "--maildir", forged_again, "--trust-unverified")
    assert result.code == 0 and suppressed(sent) == {"victim@example.org": "bounce"}


EXIM = ("This message was created automatically by mail delivery software.\r\n\r\nA message that you sent could not "
        "be delivered to one or more of its recipients. This is a permanent error. The following address(es) "
        "failed:\r\n\r\n  r6@example.org\r\n    SMTP error from remote mail server after RCPT TO:<r6@example.org>:\r\n"
        "    550 5.1.1 <r6@example.org>: Recipient address rejected: User unknown in virtual mailbox\r\n")  # fmt: skip


def test_an_exim_bounce_marked_auto_replied_is_a_bounce_not_a_vacation_reply(sent: Path, cli, tmp_path: Path) -> None:
    headers = "Auto-Submitted: auto-replied\r\nX-Failed-Recipients: r6@example.org\r\n"
    exim = plain(verp(7), "Mail delivery failed: returning message to sender", headers,
                 sender="Mail Delivery System <Mailer-Daemon@mx.example.net>", body=EXIM)  # fmt: skip
    result = cli("bounces", "--maildir", maildir(tmp_path / "box", [exim]), "-v")
    assert result.code == 0 and "bounce: 1" in result.out and "auto-reply: 0" in result.out, result.out
    assert suppressed(sent) == {"r6@example.org": "bounce"}


def test_a_report_on_several_recipients_is_judged_by_the_block_it_proves(sent: Path, cli, tmp_path: Path) -> None:
    one = dsn("bounces@example.org", "r2@example.org", "5.1.1", diagnostic="user unknown")
    blocks = (b"Final-Recipient: rfc822; stranger@example.net\r\nAction: failed\r\nStatus: 5.1.1\r\n"
              b"Diagnostic-Code: smtp; 550 5.1.1 user unknown\r\n\r\n")  # fmt: skip
    several = one.replace(
        b"Final-Recipient: rfc822; r2@example.org", blocks + b"Final-Recipient: rfc822; r2@example.org"
    )
    malformed = dsn("bounces@example.org", "@mx.example.org", "5.1.1", diagnostic="user unknown",
                    message_id=ours("r3@example.org"))  # fmt: skip
    malformed = malformed.replace(b"To: @mx.example.org", b"To: r3@example.org")  # the original's To is right
    result = cli("bounces", "--maildir", maildir(tmp_path / "box", [several, malformed]), "-v")
    assert result.code == 0, result.err
    assert suppressed(sent) == {"r2@example.org": "bounce", "r3@example.org": "bounce"}, result.out
    assert "bounce: 3" in result.out.splitlines(), "every recipient block gets a verdict"
    assert "bounce: stranger@example.net (unverified: no evidence we sent it" in result.out


def ses_mailed(address: str, message_id: str, kind: str = "Bounce") -> bytes:
    """An Amazon SES notice as an SNS email-JSON subscription mails it: the SNS envelope, the notice inside."""
    import json

    detail = (
        {
            "bounce": {
                "bounceType": "Permanent",
                "bounceSubType": "General",
                "feedbackId": f"fb-{address}",
                "bouncedRecipients": [
                    {
                        "emailAddress": address,
                        "action": "failed",
                        "status": "5.1.1",
                        "diagnosticCode": "smtp; 550 5.1.1 user unknown",
                    }
                ],
            }
        }
        if kind == "Bounce"
        else {"complaint": {"complainedRecipients": [{"emailAddress": address}], "feedbackId": f"fc-{address}"}}
    )
    notice = {
        "notificationType": kind,
        **detail,
        "mail": {"messageId": "0100-ses", "headers": [{"name": "Message-ID", "value": message_id}]},
    }
    envelope = {
        "Type": "Notification",
        "MessageId": f"sns-{address}",
        "TopicArn": "arn:aws:sns:eu-west-1:1:t",
        "Message": json.dumps(notice),
        "Signature": "...",
        "SignatureVersion": "1",
    }
    return (f"From: AWS Notifications <no-reply@sns.amazonaws.com>\r\nTo: bounces@example.org\r\n"
            f"Subject: AWS Notification Message\r\nMessage-ID: <sns-{address}>\r\nContent-Type: text/plain; "
            f"charset=UTF-8\r\n\r\n{json.dumps(envelope)}\r\n").encode()  # fmt: skip


def test_an_ses_notice_by_mail_counts_only_with_our_message_id(sent: Path, cli, tmp_path: Path) -> None:
    """Mailed notices carry no signature anyone checks: the Message-ID we made for the address is the evidence."""
    box = maildir(tmp_path / "box", [
        ses_mailed("r1@example.org", ours("r1@example.org")),
        ses_mailed("r2@example.org", ours("r2@example.org"), kind="Complaint"),
        ses_mailed("victim@example.org", FORGED),
        ses_mailed("r3@example.org", ours("r0@example.org")),  # ours, but made for someone else
    ])  # fmt: skip
    result = cli("bounces", "--maildir", box, "-v")
    assert result.code == 0, result.err
    assert suppressed(sent) == {"r1@example.org": "bounce", "r2@example.org": "complaint"}, result.out
    assert "bounce: 3" in result.out.splitlines() and "complaint: 1" in result.out.splitlines()
    assert "2 report(s) unverified" in result.out
    assert suppressed(sent, "edition")["r1@example.org"] == SAMPLE_EDITION


def test_a_real_postfix_dsn_for_two_unknown_users_judges_both(sent: Path, postfix, cli, tmp_path: Path) -> None:
    """One message to two unknown users: Postfix reports both in one DSN, and each block gets a verdict. A message
    of ours has one recipient, and its Message-ID proves that one: gone1 is suppressed, gone2 (named by the same
    report, proven by nothing) is recorded unverified, and suppressed only when the operator trusts every report."""
    import shutil
    import smtplib

    port, mail = postfix
    message = (
        f"From: Seattle Neuro Blog <newsletter@example.org>\r\nTo: gone1@example.org, gone2@example.org\r\n"
        f"Subject: Is Physical Therapy Worth It?\r\nMessage-ID: {ours('gone1@example.org')}\r\n\r\nHello\r\n"
    )
    with smtplib.SMTP("127.0.0.1", port, timeout=10) as smtp:
        smtp.sendmail("bounces@example.org", ["gone1@example.org", "gone2@example.org"], message.encode())
    box = mail / "bounces" / "Maildir"
    deadline = time.monotonic() + 30
    while not (list((box / "new").glob("*")) if (box / "new").is_dir() else []) and time.monotonic() < deadline:
        time.sleep(0.2)
    (report,) = list((box / "new").iterdir())
    assert report.read_bytes().count(b"Final-Recipient: rfc822; gone") == 2, "one DSN naming both"
    copy = tmp_path / "copy"
    shutil.copytree(box, copy)
    result = cli("bounces", "--maildir", box, "-v")
    assert result.code == 0, result.err
    assert "bounce: 2" in result.out.splitlines()
    assert "bounce: gone1@example.org (suppressed): userunknown" in result.out
    assert "bounce: gone2@example.org (unverified" in result.out
    assert suppressed(sent) == {"gone1@example.org": "bounce"}
    assert cli("bounces", "--maildir", copy, "--trust-unverified").code == 0
    assert suppressed(sent) == {"gone1@example.org": "bounce", "gone2@example.org": "bounce"}
