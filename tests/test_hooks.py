"""`serve`'s webhooks for Amazon SES (through SNS), Postmark, Mailgun and SendGrid, over real HTTP (uvicorn on
loopback): payloads in each provider's documented format, signed with keys the test makes; forged, replayed,
stale and oversized variants write nothing."""

from __future__ import annotations

import base64
import datetime
import hashlib
import hmac
import json
import sqlite3
import time
from pathlib import Path

import pytest
from conftest import SAMPLE_EDITION, SITE_SECRET, sent_journal, suppressed
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, padding, rsa
from cryptography.x509.oid import NameOID
from test_serve import request

from newsletter.audience.suppressions import store_path
from newsletter.audience.tokens import message_id_for, unsubscribe_keys
from newsletter.base.workspace import open_workspace

TOPIC = "arn:aws:sns:eu-west-1:123456789012:ses-bounces"
CERT_URL = "https://sns.eu-west-1.amazonaws.com/SimpleNotificationService-0123456789abcdef.pem"
LIST_ID = "newsletter.seattle-neuro.example"


# --- keys and signatures the test makes ------------------------------------------------------------------------


def rsa_certificate(common_name: str = "sns.amazonaws.com") -> tuple[rsa.RSAPrivateKey, bytes]:
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common_name)])
    now = datetime.datetime.now(datetime.UTC)
    certificate = (x509.CertificateBuilder().subject_name(name).issuer_name(name).public_key(key.public_key())
                   .serial_number(x509.random_serial_number()).not_valid_before(now)
                   .not_valid_after(now + datetime.timedelta(days=1)).sign(key, hashes.SHA256()))  # fmt: skip
    return key, certificate.public_bytes(serialization.Encoding.PEM)


SNS_KEY, SNS_CERT = rsa_certificate()


def sns(message: dict | str, kind: str = "Notification", version: str = "1", key=SNS_KEY, **fields) -> dict:
    """An SNS message as SNS posts it, signed as SNS signs it (the fields by name, `name\\nvalue\\n` each)."""
    envelope = {"Type": kind, "MessageId": fields.pop("MessageId", f"mid-{time.monotonic_ns()}"), "TopicArn": TOPIC,
                "Message": message if isinstance(message, str) else json.dumps(message),
                "Timestamp": "2026-11-30T12:00:00.000Z", "SignatureVersion": version, "SigningCertURL": CERT_URL,
                **fields}  # fmt: skip
    if kind != "Notification":
        envelope |= {"Token": "tok", "SubscribeURL": fields.get("SubscribeURL", "https://sns.eu-west-1.amazonaws."
                     "com/?Action=ConfirmSubscription&TopicArn=x&Token=tok")}  # fmt: skip
    names = ("Message", "MessageId", "Subject", "Timestamp", "TopicArn", "Type") if kind == "Notification" else (
        "Message", "MessageId", "SubscribeURL", "Timestamp", "Token", "TopicArn", "Type")  # fmt: skip
    signed = "".join(f"{name}\n{envelope[name]}\n" for name in names if name in envelope).encode()
    digest = hashes.SHA1() if version == "1" else hashes.SHA256()
    envelope["Signature"] = base64.b64encode(key.sign(signed, padding.PKCS1v15(), digest)).decode()
    return envelope


def ses_bounce(recipients: list[tuple[str, str, str]], bounce_type: str = "Permanent", message_id: str = "") -> dict:
    """An SES bounce notice: (address, status, diagnostic) per recipient."""
    return {
        "notificationType": "Bounce",
        "bounce": {"bounceType": bounce_type, "bounceSubType": "General", "timestamp": "2026-11-30T11:59:00.000Z",
                   "feedbackId": f"fb-{time.monotonic_ns()}", "reportingMTA": "dns; a1-2.smtp-out.amazonses.com",
                   "bouncedRecipients": [{"emailAddress": a, "action": "failed", "status": s, "diagnosticCode": d}
                                         for a, s, d in recipients]},
        "mail": {"timestamp": "2026-11-30T11:58:00.000Z", "source": "newsletter@seattle-neuro.example",
                 "messageId": "010f0190-ses-id", "destination": [a for a, _, _ in recipients],
                 "headers": [{"name": "Message-ID", "value": message_id}] if message_id else [],
                 "commonHeaders": {"subject": "Is Physical Therapy Worth It?"}},
    }  # fmt: skip


def ses_complaint(address: str) -> dict:
    return {"notificationType": "Complaint", "mail": {"messageId": "010f-ses"},
            "complaint": {"complainedRecipients": [{"emailAddress": address}], "complaintFeedbackType": "abuse",
                          "timestamp": "2026-11-30T12:00:00Z", "feedbackId": "fb-c"}}  # fmt: skip


MAILGUN_KEY = "key-mailgun-test-0123456789"


def mailgun(event: dict, timestamp: float | None = None, token: str = "", key: str = MAILGUN_KEY) -> dict:
    stamp = str(int(time.time() if timestamp is None else timestamp))
    token = token or f"token{time.monotonic_ns()}"
    signature = hmac.new(key.encode(), (stamp + token).encode(), hashlib.sha256).hexdigest()
    return {"signature": {"timestamp": stamp, "token": token, "signature": signature}, "event-data": event}


SENDGRID_KEY = ec.generate_private_key(ec.SECP256R1())


def sendgrid_public(key: ec.EllipticCurvePrivateKey = SENDGRID_KEY) -> str:
    der = key.public_key().public_bytes(serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)
    return base64.b64encode(der).decode()


def sendgrid(events: list[dict], timestamp: float | None = None, key=SENDGRID_KEY) -> tuple[bytes, dict]:
    body = json.dumps(events).encode()
    stamp = str(int(time.time() if timestamp is None else timestamp))
    signature = key.sign(stamp.encode() + body, ec.ECDSA(hashes.SHA256()))
    return body, {"Content-Type": "application/json", "X-Twilio-Email-Event-Webhook-Timestamp": stamp,
                  "X-Twilio-Email-Event-Webhook-Signature": base64.b64encode(signature).decode()}  # fmt: skip


# --- a server with every provider set up -----------------------------------------------------------------------


@pytest.fixture
def hooks(project: Path, site: int, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, web_server):
    """`serve` with all four webhooks configured and a journal of the sample edition to r0..r9@example.org;
    returns (post(provider, body, headers) -> (status, headers, text), the URLs the app fetched)."""
    from newsletter.web.serve import create_app

    (tmp_path / "sns.pem").write_bytes(SNS_CERT)
    env = {"SES_TOPIC_ARNS": TOPIC, "SES_SIGNING_CERT_FILE": str(tmp_path / "sns.pem"),
           "POSTMARK_WEBHOOK_USER": "postmark", "POSTMARK_WEBHOOK_PASSWORD": "pm-secret",
           "MAILGUN_WEBHOOK_SIGNING_KEY": MAILGUN_KEY, "SENDGRID_WEBHOOK_PUBLIC_KEY": sendgrid_public()}  # fmt: skip
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    sent_journal(project, [f"r{i}@example.org" for i in range(10)])
    app = create_app(open_workspace(project))
    fetched: list[str] = []
    app.hooks.fetch = lambda url: fetched.append(url) or b"<ConfirmSubscriptionResponse/>"  # no network in tests
    base = web_server(app=app)

    def post(provider: str, body: bytes | dict | list, headers: dict | None = None) -> tuple[int, dict, str]:
        data = body if isinstance(body, bytes) else json.dumps(body).encode()
        status, answer_headers, text = request(base, "POST", f"/hooks/{provider}", data,
                                               {"Content-Type": "application/json", **(headers or {})})  # fmt: skip
        return status, answer_headers, text.decode()

    return post, fetched


def ours(address: str) -> str:
    return message_id_for(SAMPLE_EDITION, LIST_ID, address, "seattle-neuro.example", unsubscribe_keys(SITE_SECRET)[0])


def store_rows(project: Path, table: str) -> list[tuple]:
    with sqlite3.connect(store_path(project)) as db:
        return db.execute(f"SELECT * FROM {table}").fetchall()


def nothing_written(project: Path) -> bool:
    path = store_path(project)
    return not path.exists() or all(not store_rows(project, t) for t in ("suppressions", "events", "soft_bounces",
                                                                         "refusals", "unverified"))  # fmt: skip


# --- Amazon SES through SNS ------------------------------------------------------------------------------------


@pytest.mark.parametrize("version", ["1", "2"])
def test_ses_bounces_and_complaints_arrive_signed_and_count_once(project: Path, hooks, version: str) -> None:
    post, _ = hooks
    notice = ses_bounce([("r1@example.org", "5.1.1", "smtp; 550 5.1.1 <r1@example.org>: Recipient address rejected: "
                          "User unknown in virtual mailbox table"),
                         ("r2@example.org", "5.2.2", "smtp; 552 5.2.2 Mailbox full"),
                         ("r3@example.org", "5.7.1", "smtp; 550 5.7.1 Message rejected as spam by Content "
                          "Filtering")], message_id=ours("r1@example.org"))  # fmt: skip
    message = sns(notice, version=version)
    status, _, text = post("ses", message)
    assert (status, text) == (200, "ok: 3 event(s)")
    assert suppressed(project) == {"r1@example.org": "bounce"}, "mailbox full is soft, a spam verdict is ours"
    assert suppressed(project, "edition") == {"r1@example.org": SAMPLE_EDITION}
    assert [row[:2] for row in store_rows(project, "soft_bounces")] == [("r2@example.org", SAMPLE_EDITION)]
    assert [row[:3] for row in store_rows(project, "refusals")] == [(SAMPLE_EDITION, "example.org", "spamdetected")]
    assert post("ses", message)[0] == 200, "SNS retries: answered, and changes nothing"
    assert len(store_rows(project, "refusals")) == 1 and len(store_rows(project, "events")) == 3
    assert post("ses", sns(ses_complaint("r4@example.org"), version=version))[0] == 200
    assert suppressed(project)["r4@example.org"] == "complaint"


def test_ses_messages_that_do_not_verify_write_nothing(project: Path, hooks) -> None:
    post, fetched = hooks
    notice = ses_bounce([("r1@example.org", "5.1.1", "smtp; 550 5.1.1 user unknown")])
    other_key, _ = rsa_certificate()
    tampered = sns(notice)
    tampered["Message"] = tampered["Message"].replace("r1@", "r5@")
    for message in (sns(notice, key=other_key), tampered, sns(notice, TopicArn="arn:aws:sns:eu-west-1:666:evil"),
                    sns(notice, SigningCertURL="https://sns.eu-west-1.amazonaws.com.evil.example/cert.pem"),
                    sns(notice, SigningCertURL="http://sns.eu-west-1.amazonaws.com/cert.pem"),
                    sns(notice, version="3"), {**sns(notice), "Signature": "not base64!"}):  # fmt: skip
        status, _, text = post("ses", message)
        assert status in (400, 403), (status, text)
    assert post("ses", b"{not json")[0] == 400
    assert nothing_written(project) and fetched == []


def test_an_sns_subscription_is_confirmed_only_when_signed_and_on_an_sns_host(project: Path, hooks) -> None:
    post, fetched = hooks
    good = "https://sns.eu-west-1.amazonaws.com/?Action=ConfirmSubscription&TopicArn=x&Token=tok"
    assert post("ses", sns("confirm", "SubscriptionConfirmation", SubscribeURL=good))[0] == 200
    assert fetched == [good]
    forged = sns("confirm", "SubscriptionConfirmation", SubscribeURL=good, key=rsa_certificate()[0])
    evil = sns("confirm", "SubscriptionConfirmation", SubscribeURL="https://attacker.example/?Action=Confirm")
    assert post("ses", forged)[0] == 403 and post("ses", evil)[0] == 403
    assert fetched == [good], "nothing else was fetched"


def test_a_certificate_not_issued_to_sns_is_refused(project: Path, hooks, tmp_path: Path) -> None:
    _, certificate = rsa_certificate("attacker.example")
    (tmp_path / "sns.pem").write_bytes(certificate)  # as if the pinned (or fetched) certificate were another's
    from newsletter.web.serve import create_app

    app = create_app(open_workspace(project))
    with pytest.raises(Exception, match="not Amazon SNS's"):
        app.hooks.certificates.key_for(CERT_URL)


# --- Postmark ---------------------------------------------------------------------------------------------------


def postmark_record(kind: str, address: str, record_id: int, details: str = "") -> dict:
    return {"RecordType": "SpamComplaint" if kind == "SpamComplaint" else "Bounce", "MessageStream": "outbound",
            "ID": record_id, "Type": kind, "TypeCode": 1, "Name": kind, "MessageID": "883953f4-6105-42a2",
            "Description": "The server was unable to deliver your message.", "Details": details, "Email": address,
            "From": "newsletter@seattle-neuro.example", "BouncedAt": "2026-11-30T16:33:54.9070259Z",
            "Inactive": True, "Subject": "Is Physical Therapy Worth It?"}  # fmt: skip


def basic(user: str, password: str) -> dict:
    return {"Authorization": "Basic " + base64.b64encode(f"{user}:{password}".encode()).decode()}


def test_postmark_bounces_need_the_basic_auth_and_count_once(project: Path, hooks) -> None:
    post, _ = hooks
    auth = basic("postmark", "pm-secret")
    hard = postmark_record("HardBounce", "r1@example.org", 101, "smtp;550 5.1.1 The email account does not exist")
    for wrong in ({}, basic("postmark", "guess"), basic("someone", "pm-secret"), {"Authorization": "Bearer x"}):
        status, headers, _ = post("postmark", hard, wrong)
        assert status == 401 and headers.get("www-authenticate", "").startswith("Basic"), wrong
    assert nothing_written(project)
    assert post("postmark", hard, auth)[0] == 200 and post("postmark", hard, auth)[0] == 200
    assert post("postmark", postmark_record("SoftBounce", "r2@example.org", 102, "mailbox full"), auth)[0] == 200
    assert post("postmark", postmark_record("Blocked", "r3@example.org", 103, "blocked by policy"), auth)[0] == 200
    assert post("postmark", postmark_record("SpamComplaint", "r4@example.org", 104), auth)[0] == 200
    assert suppressed(project) == {"r1@example.org": "bounce", "r4@example.org": "complaint"}
    assert suppressed(project, "edition")["r1@example.org"] == SAMPLE_EDITION, "the edition sent to r1"
    assert len(store_rows(project, "soft_bounces")) == 1 and len(store_rows(project, "refusals")) == 1


def test_postmark_broadcast_streams_report_as_subscription_changes(project: Path, hooks) -> None:
    """Newsletters go out on a broadcast stream, whose bounces and complaints come as SubscriptionChange."""
    post, _ = hooks
    auth = basic("postmark", "pm-secret")

    def change(address: str, reason: str, suppress: bool = True, origin: str = "Recipient") -> dict:
        return {"RecordType": "SubscriptionChange", "MessageID": f"pm-{address}", "ServerID": 23,
                "MessageStream": "broadcast", "ChangedAt": "2026-11-30T10:53:34.416071Z", "Recipient": address,
                "Origin": origin, "SuppressSending": suppress, "SuppressionReason": reason}  # fmt: skip

    for record in (
        change("r1@example.org", "HardBounce"),
        change("r2@example.org", "SpamComplaint"),
        change("r3@example.org", "ManualSuppression"),
        change("r4@example.org", None, suppress=False),
    ):
        assert post("postmark", record, auth)[0] == 200  # fmt: skip
    assert post("postmark", change("r1@example.org", "HardBounce"), auth)[0] == 200, "a retry"
    assert suppressed(project) == {"r1@example.org": "bounce", "r2@example.org": "complaint",
                                   "r3@example.org": "unsubscribe"}  # fmt: skip
    assert len(store_rows(project, "events")) == 3


# --- Mailgun ----------------------------------------------------------------------------------------------------


def mailgun_failed(address: str, severity: str, code: int, message: str, event_id: str) -> dict:
    return {"event": "failed", "id": event_id, "timestamp": time.time(), "severity": severity, "reason": "bounce",
            "recipient": address, "log-level": "error",
            "delivery-status": {"code": code, "message": message, "description": "", "attempt-no": 1},
            "message": {"headers": {"message-id": ours(address).strip("<>"), "to": address}}}  # fmt: skip


def test_mailgun_events_are_signed_fresh_and_used_once(project: Path, hooks) -> None:
    post, _ = hooks
    failed = mailgun_failed("r1@example.org", "permanent", 550, "5.1.1 The email account that you tried to reach "
                            "does not exist.", "mg-1")  # fmt: skip
    assert post("mailgun", mailgun(failed, key="wrong-key"))[0] == 403
    assert post("mailgun", mailgun(failed, timestamp=time.time() - 600))[0] == 403, "stale"
    assert post("mailgun", mailgun(failed, timestamp=time.time() + 600))[0] == 403, "from the future"
    assert nothing_written(project)
    signed = mailgun(failed)
    assert post("mailgun", signed)[0] == 200
    assert post("mailgun", signed)[0] == 403, "the same token again: a replay"
    temporary = mailgun_failed("r2@example.org", "temporary", 452, "4.2.2 The email account is over quota", "mg-2")
    complained = {"event": "complained", "id": "mg-3", "timestamp": time.time(), "recipient": "r3@example.org",
                  "message": {"headers": {"message-id": "x@y"}}}  # fmt: skip
    assert post("mailgun", mailgun(temporary))[0] == 200 and post("mailgun", mailgun(complained))[0] == 200
    assert post("mailgun", mailgun(failed))[0] == 200, "a retry with a new token: its event id is known"
    assert suppressed(project) == {"r1@example.org": "bounce", "r3@example.org": "complaint"}
    assert [row[:2] for row in store_rows(project, "soft_bounces")] == [("r2@example.org", SAMPLE_EDITION)]


# --- SendGrid ---------------------------------------------------------------------------------------------------


def test_sendgrid_batches_are_verified_with_ecdsa_and_read_by_type(project: Path, hooks) -> None:
    post, _ = hooks
    events = [
        {"email": "r1@example.org", "timestamp": 1764500000, "smtp-id": ours("r1@example.org"), "event": "bounce",
         "sg_event_id": "sg-1", "reason": "550 5.1.1 The email account that you tried to reach does not exist",
         "status": "5.1.1", "type": "bounce"},
        {"email": "r2@example.org", "timestamp": 1764500000, "event": "bounce", "sg_event_id": "sg-2",
         "reason": "554 5.7.1 Service unavailable; Client host blocked using Spamhaus", "status": "5.7.1",
         "type": "blocked", "bounce_classification": "Reputation"},
        {"email": "r3@example.org", "timestamp": 1764500000, "event": "dropped", "sg_event_id": "sg-3",
         "reason": "Bounced Address", "status": "5.0.0"},
        {"email": "r4@example.org", "timestamp": 1764500000, "event": "spamreport", "sg_event_id": "sg-4"},
        {"email": "r5@example.org", "timestamp": 1764500000, "event": "delivered", "sg_event_id": "sg-5"},
    ]  # fmt: skip
    body, headers = sendgrid(events)
    assert post("sendgrid", body + b" ", headers)[0] == 403, "a changed body"
    assert post("sendgrid", *sendgrid(events, key=ec.generate_private_key(ec.SECP256R1())))[0] == 403
    assert post("sendgrid", *sendgrid(events, timestamp=time.time() - 3600))[0] == 403, "stale"
    assert post("sendgrid", body, {"Content-Type": "application/json"})[0] == 403, "unsigned"
    assert nothing_written(project)
    assert post("sendgrid", body, headers)[0] == 200 and post("sendgrid", body, headers)[0] == 200
    assert suppressed(project) == {"r1@example.org": "bounce", "r3@example.org": "bounce",
                                   "r4@example.org": "complaint"}  # fmt: skip
    assert [row[:3] for row in store_rows(project, "refusals")] == [(SAMPLE_EDITION, "example.org", "blocked")]


# --- every provider ---------------------------------------------------------------------------------------------


def test_oversized_unconfigured_and_wrong_method_requests_write_nothing(project: Path, hooks, site: int) -> None:
    post, _ = hooks
    assert post("postmark", b"x" * (2 << 20), basic("postmark", "pm-secret"))[0] == 413
    assert post("mandrill", {"a": 1})[0] == 404 and post("../unsubscribe", {})[0] == 404
    assert request(f"http://127.0.0.1:{site}", "GET", "/hooks/ses")[0] == 405
    assert nothing_written(project)


def test_a_provider_without_settings_has_no_webhook(project: Path, site: int, web_server) -> None:
    base = web_server()
    status, _, _ = request(base, "POST", "/hooks/sendgrid", b"[]", {"Content-Type": "application/json"})
    assert status == 404


@pytest.mark.parametrize(
    ("name", "value", "said"),
    [
        ("SENDGRID_WEBHOOK_PUBLIC_KEY", "not-a-key!", "SENDGRID_WEBHOOK_PUBLIC_KEY: not a base64 public key"),
        ("SES_TOPIC_ARNS", "my-topic", "SES_TOPIC_ARNS: not a topic ARN: my-topic"),
        ("POSTMARK_WEBHOOK_USER", "postmark", "POSTMARK_WEBHOOK_USER and POSTMARK_WEBHOOK_PASSWORD are set together"),
        ("SES_SIGNING_CERT_FILE", "/nonexistent.pem", "SES_SIGNING_CERT_FILE: no such file"),
    ],
)
def test_a_webhook_setting_that_cannot_work_stops_serve_at_start(site: int, cli, monkeypatch, name, value, said):
    monkeypatch.setenv(name, value)
    result = cli("serve", "--port", str(site))
    assert result.code != 0 and said in result.err and len(result.err.strip().splitlines()) == 1, result.err
