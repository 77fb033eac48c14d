"""What the webhooks need from the environment / .env. A provider without its settings has no webhook: its
path answers 404, so nothing is accepted that could not be verified."""

from __future__ import annotations

import base64
import binascii
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

from ...base.errors import ConfigError

PROVIDERS = ("ses", "postmark", "mailgun", "sendgrid")


@dataclass(frozen=True)
class HookSettings:
    ses_topic_arns: tuple[str, ...] = ()  # SES_TOPIC_ARNS: the only SNS topics accepted
    ses_certificate: bytes = b""  # SES_SIGNING_CERT_FILE: a PEM used instead of fetching SigningCertURL
    postmark_user: str = ""
    postmark_password: str = field(default="", repr=False)
    mailgun_key: bytes = field(default=b"", repr=False)
    sendgrid_key: bytes = b""  # the public key, DER

    def enabled(self, provider: str) -> bool:
        return {
            "ses": bool(self.ses_topic_arns),
            "postmark": bool(self.postmark_user and self.postmark_password),
            "mailgun": bool(self.mailgun_key),
            "sendgrid": bool(self.sendgrid_key),
        }.get(provider, False)


def hook_settings(env: Mapping[str, str]) -> HookSettings:
    """The webhook settings; a ConfigError for one that is set but cannot work (said when `serve` starts)."""
    arns = tuple(arn.strip() for arn in env.get("SES_TOPIC_ARNS", "").split(",") if arn.strip())
    bad = [arn for arn in arns if not arn.startswith("arn:aws") or arn.count(":") != 5]
    if bad:
        raise ConfigError(f"SES_TOPIC_ARNS: not a topic ARN: {bad[0]} (arn:aws:sns:REGION:ACCOUNT:TOPIC)")
    certificate = b""
    if env.get("SES_SIGNING_CERT_FILE", "").strip():
        path = Path(env["SES_SIGNING_CERT_FILE"].strip())
        if not path.is_file():
            raise ConfigError(f"SES_SIGNING_CERT_FILE: no such file {path}")
        certificate = path.read_bytes()
    user, password = env.get("POSTMARK_WEBHOOK_USER", "").strip(), env.get("POSTMARK_WEBHOOK_PASSWORD", "")
    if bool(user) != bool(password):
        raise ConfigError("POSTMARK_WEBHOOK_USER and POSTMARK_WEBHOOK_PASSWORD are set together or not at all")
    return HookSettings(arns, certificate, user, password, env.get("MAILGUN_WEBHOOK_SIGNING_KEY", "").strip().encode(),
                        _public_key(env.get("SENDGRID_WEBHOOK_PUBLIC_KEY", "")))  # fmt: skip


def _public_key(text: str) -> bytes:
    """SendGrid's verification key as its settings page shows it: base64 DER, or a PEM block."""
    body = "".join(line for line in text.strip().splitlines() if not line.startswith("-----"))
    if not body:
        return b""
    try:
        der = base64.b64decode(body, validate=True)
    except (binascii.Error, ValueError):
        raise ConfigError("SENDGRID_WEBHOOK_PUBLIC_KEY: not a base64 public key") from None
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.hazmat.primitives.serialization import load_der_public_key

    try:
        key = load_der_public_key(der)
    except ValueError:
        raise ConfigError("SENDGRID_WEBHOOK_PUBLIC_KEY: not a public key") from None
    if not isinstance(key, ec.EllipticCurvePublicKey):
        raise ConfigError("SENDGRID_WEBHOOK_PUBLIC_KEY: not an elliptic-curve (ECDSA) key")
    return der
