"""`newsletter bounces`: read the mailbox the bounce and unsubscribe addresses deliver to, and act on each report.

Each failure gets a reason from one vocabulary (`reasons`: userunknown, mailboxfull, blocked, ...), and the
reason decides the kind:
- `bounce`: the address is dead (userunknown, hostunknown, hasmoved, notaccept) and the failure permanent:
  suppressed at once, reason `bounce`;
- `soft-bounce`: the mailbox may come back (full, suspended, expired, a temporary failure): counted, and the
  address is suppressed once it failed so on SOFT_EDITIONS different editions spread over SOFT_DAYS days;
- `refused`: the receiver refused our mail, not the address (blocklist, spam verdict, policy, authentication):
  never suppressed; counted per edition and domain, and warned about past 1% of an edition's messages;
- `complaint`: an abuse report (ARF, RFC 5965, `report-type=feedback-report`): suppressed at once;
- `unsubscribe`: mail to the `unsubscribe_mailto` address carrying a valid unsubscribe token in its subject;
- `auto-reply`: out-of-office and other automatic answers (RFC 3834 `Auto-Submitted`, the usual headers and
  subjects), once the message is known not to be a bounce (Exim marks its bounces `auto-replied` too);
- `other`: anything else, a delivery report that is not a failure (`delivered`, 2.x.x) included, left alone.

Whom a report is about: the VERP tag of the return path it was sent to (`bounces+TAG@...`, naming the edition
and the journal row, with a MAC), so a report that drops the original message still maps to its recipient; else
the report's own Final-Recipient / Original-Rcpt-To, or the To of the original message it quotes.

Each message is acted on once, and marked done only after its outcome is in the store: a Maildir message by
one rename into cur/ with the seen flag (`:2,S`, as the Maildir spec has it: the bytes are never rewritten),
an IMAP message by the \\Seen flag, an mbox message by its digest in the suppression store. A message that
cannot be read or judged (a malformed structure, nesting hundreds deep, an unknown charset, an address that is
no address) stops nothing: it is set aside (Maildir: moved to unreadable/ beside cur/; mbox and IMAP: left
unmarked), named in the output, and the run goes on. Text from a report is stripped of control characters
before it is stored or printed.
"""

from __future__ import annotations

import dataclasses
import re
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from email import message_from_bytes, policy
from email.message import EmailMessage, Message
from email.utils import parsedate_to_datetime
from typing import Protocol

from ..base.workspace import Workspace
from . import reasons
from .esp.ses import mailed_notice, notice_events
from .events import Event, kind_of
from .reasons import SOFT_DAYS, SOFT_EDITIONS
from .reports import (
    address_in,
    bounce_words,
    decoded,
    printable,
    quoted_original,
    report_blocks,
    report_fields,
    text_of,
)
from .suppressions import SuppressionStore
from .tokens import message_label, read_unsubscribe_token, read_verp_tag, required_keys, sent_to

ACTED_ON = ("bounce", "soft-bounce", "refused", "complaint")  # what a report may do to an address, given evidence
KINDS = ("bounce", "soft-bounce", "refused", "complaint", "unsubscribe", "auto-reply", "other")
_AUTO_SUBJECT = re.compile(r"^(out of (the )?office|automatic reply|auto[- ]?reply|abwesenheit|vacation)", re.I)


@dataclass
class Verdict:
    kind: str
    address: str = ""
    edition: str = ""
    detail: str = ""
    evidence: str = ""  # why the report is about mail we sent to `address`: "verp", "message-id", "token"
    reason: str = ""  # in the vocabulary of `reasons`
    at: float = 0.0  # when the failure happened, as the report's Date says (0: now)


@dataclass
class Summary:
    counts: Counter = field(default_factory=Counter)
    suppressed: int = 0
    each: Callable[[str], None] | None = None  # told one line per message as it is judged (for -v): none kept
    unreadable: list[str] = field(default_factory=list)  # messages set aside: where, and why
    unverified: int = 0  # reports without evidence: recorded, acted on only with --trust-unverified


class SentMail(Protocol):
    """What bounces needs to know of the mail that was sent (the send journals provide it)."""

    def editions(self) -> list[str]: ...

    def recipient(self, code: str, row_id: int) -> tuple[str, str] | None: ...

    def edition_sent_to(self, address: str) -> str: ...


class BounceReader:
    """Turns reports into verdicts and verdicts into suppressions, for one publication's working folder."""

    def __init__(self, workspace: Workspace, sent: SentMail, trust_unverified: bool = False) -> None:
        """`sent` says which editions went out and whom a VERP tag's journal row was sent to.
        `trust_unverified` acts on reports without evidence too: anyone can send those (unsafe)."""
        self.trust_unverified = trust_unverified
        publication = workspace.publication
        self.publication = publication
        self.keys = required_keys(publication.unsubscribe_secret, "bounces")
        self.store = SuppressionStore(workspace.suppressions)
        self._sent = sent

    def close(self) -> None:
        self.store.close()

    # --- whom a report is about ---------------------------------------------------------------------------

    def _verp(self, message: Message) -> tuple[str, str] | None:
        """(address, edition) from the VERP tag of the address the report was delivered to."""
        local = self.publication.bounce_address.rpartition("@")[0].lower()
        if not local:
            return None
        headers = [message.get(h, "") for h in ("Delivered-To", "X-Original-To", "Envelope-To", "To")]
        for value in headers:
            for tag in re.findall(rf"\b{re.escape(local)}\+([A-Za-z0-9-]+)@", str(value), re.I):
                found = read_verp_tag(self.keys, self.publication.list_id, tag)
                recipient = self._sent.recipient(*found) if found else None
                if recipient:
                    return recipient
        return None

    # --- sorting ------------------------------------------------------------------------------------------

    def classify(self, message: EmailMessage) -> list[Verdict]:
        """The verdicts of one message: one per recipient block of a DSN without a VERP tag and per recipient
        of an Amazon SES notice that came by mail; else one."""
        report = message.get_param("report-type", header="content-type") if message.is_multipart() else None
        kind = message.get_content_type()
        if kind == "multipart/report" and str(report).lower() == "feedback-report":
            return [self._complaint(message)]
        if kind == "multipart/report" and str(report).lower() == "delivery-status":
            return self._dsn(message)
        notice = self._ses_notice(message)
        if notice is not None:
            return notice
        unsubscribe = self._mailto_unsubscribe(message)
        if unsubscribe is not None:
            return [unsubscribe]
        bounce = self._nonstandard(message)
        if bounce.kind == "other" and _is_auto_reply(message):  # `Auto-Submitted` alone: Exim's bounces say it too
            return [Verdict("auto-reply", detail=str(message.get("Subject", ""))[:80], reason="vacation")]
        return [bounce]

    def _evidence(self, message: EmailMessage, verp: tuple[str, str] | None, address: str) -> tuple[str, str]:
        """(evidence, edition): a valid VERP tag, or a quoted original whose Message-ID we made for `address`;
        ("", the edition the report claims) when there is neither."""
        if verp:
            return "verp", verp[1]
        original = quoted_original(message)
        message_id = str(original.get("Message-ID", "")) if original else ""
        edition = sent_to(self.keys, self.publication.list_id, message_id, address, self._sent.editions())
        return ("message-id", edition) if edition else ("", self._edition_of(message))

    def _edition_of(self, message: EmailMessage) -> str:
        """The edition a report quotes, by the label our Message-IDs carry (`<digest.EDITION@domain>`)."""
        original = quoted_original(message)
        return self._labelled(str(original.get("Message-ID", "")) if original else "")

    def _labelled(self, message_id: str) -> str:
        match = re.search(r"\.([A-Za-z0-9-]+)@", message_id)
        if match is None:
            return ""
        return next((name for name in self._sent.editions() if message_label(name) == match[1]), "")

    def _complaint(self, message: EmailMessage) -> Verdict:
        verp = self._verp(message)
        fields = report_fields(message, "message/feedback-report")
        original = quoted_original(message)
        address = verp[0] if verp else address_in(fields.get("original-rcpt-to", "")) or address_in(
            str(original.get("To", "")) if original else "")  # fmt: skip
        kind = fields.get("feedback-type", "abuse")
        evidence, edition = self._evidence(message, verp, address)
        return Verdict(
            "complaint" if address else "other",
            address,
            edition,
            f"{kind} report from {fields.get('reporting-mta', fields.get('user-agent', 'a provider'))}",
            evidence,
            "feedback",
        )

    def _dsn(self, message: EmailMessage) -> list[Verdict]:
        """A delivery status notification. With a VERP tag, one verdict: the block naming the tag's recipient
        (else the first: a forward or an alias changes the address a report names). Without one, a verdict
        per recipient block, each with its own evidence (our quoted Message-ID is made for one address only)."""
        verp = self._verp(message)
        blocks = report_blocks(message, "message/delivery-status")
        shared, recipients = (blocks[0], blocks[1:]) if len(blocks) > 1 else ({}, blocks)
        original = quoted_original(message)
        fallback = address_in(str(original.get("To", ""))) if original else ""  # a Final-Recipient of no address
        verdicts = [self._failure(message, {**shared, **fields}, verp, fallback) for fields in recipients or [{}]]
        if verp:
            named = [verdict for claimed, verdict in verdicts if claimed.lower() == verp[0].lower()]
            return [(named or [verdicts[0][1]])[0]]
        each: dict[str, Verdict] = {}
        for _, verdict in verdicts:
            seen = each.get(verdict.address.lower())
            if seen is None or (verdict.evidence and not seen.evidence):
                each[verdict.address.lower()] = verdict
        return list(each.values())

    def _failure(self, message: EmailMessage, fields: dict[str, str], verp: tuple[str, str] | None,
                 fallback: str) -> tuple[str, Verdict]:  # fmt: skip
        """One recipient block: the address it names, and its verdict."""
        claimed = address_in(fields.get("original-recipient", "")) or address_in(fields.get("final-recipient", ""))
        address = verp[0] if verp else claimed or fallback
        action, status = fields.get("action", ""), fields.get("status", "")
        diagnostic = fields.get("diagnostic-code", "") or status
        why = reasons.reason(diagnostic, status, action)
        kind = reasons.kind(why, reasons.permanent(status, diagnostic, action or "failed"))
        evidence, edition = self._evidence(message, verp, address)
        return claimed, Verdict(kind if address else "other", address, edition,
                                f"{why}: {diagnostic}" if diagnostic else why, evidence, why,
                                _reported_at(message))  # fmt: skip

    def _mailto_unsubscribe(self, message: EmailMessage) -> Verdict | None:
        mailto = self.publication.unsubscribe_mailto.lower()
        if not mailto or mailto not in str(message.get("To", "")).lower():
            return None
        for token in re.findall(r"[A-Za-z0-9_-]{22,400}", str(message.get("Subject", ""))):
            address = read_unsubscribe_token(self.keys, self.publication.list_id, token)
            if address:
                return Verdict("unsubscribe", address, detail="mailto: unsubscribe", evidence="token")
        return Verdict("other", detail="mail to the unsubscribe address without a valid token")

    def _nonstandard(self, message: EmailMessage) -> Verdict:
        """Old MTAs and some providers send bounces in formats of their own: flufl.bounce knows many, and
        `X-Failed-Recipients` (Exim) names the address; the reason comes from the words of the text part."""
        from flufl.bounce import all_failures

        try:
            temporary, permanent_ones = all_failures(message)  # (temporary, permanent), as flufl.bounce has them
        except Exception:
            temporary, permanent_ones = set(), set()
        failed = [a.decode("utf-8", "replace") for a in sorted(permanent_ones) or sorted(temporary)]
        failed = [a for a in (address_in(f) for f in [*failed, *str(message.get("X-Failed-Recipients", "")).split(",")])
                  if a]  # fmt: skip
        verp = self._verp(message)
        if not failed and not verp:
            return Verdict("other", detail=str(message.get("Subject", ""))[:80])
        if not failed:  # sent to a VERP address, but not recognisably a bounce
            return Verdict("other", verp[0], verp[1], "mail to a return path that is not a bounce")
        address = verp[0] if verp else failed[0]
        text = bounce_words(message)
        why = reasons.reason(text)
        is_permanent = reasons.permanent("", text, "failed" if permanent_ones or not temporary else "delayed")
        evidence, edition = self._evidence(message, verp, address)
        return Verdict(reasons.kind(why, is_permanent), address, edition,
                       f"{why}: non-standard bounce ({str(message.get('Subject', ''))[:60]})", evidence, why,
                       _reported_at(message))  # fmt: skip

    def event_verdict(self, event: Event) -> Verdict:
        """A provider's event, judged like a report: its evidence is the provider's signature, or (a notice read
        from a mailbox) a Message-ID we made for the address; its edition the one that Message-ID names, else
        the newest edition sent to the address."""
        address = address_in(event.address)
        edition = sent_to(self.keys, self.publication.list_id, event.message_id, address, self._sent.editions())
        evidence = "message-id" if edition else event.provider if event.verified else ""
        if not edition and address:
            edition = self._sent.edition_sent_to(address) if event.verified else self._labelled(event.message_id)
        detail = f"{event.reason}: {event.detail}" if event.detail else event.reason
        return Verdict(kind_of(event) if address else "other", address, edition or "", f"{detail} ({event.provider})",
                       evidence, event.reason, event.at)  # fmt: skip

    def _ses_notice(self, message: EmailMessage) -> list[Verdict] | None:
        """An Amazon SES notice that came by mail (unsigned: evidence only by our Message-ID), or None."""
        text = text_of(message, 64) if not message.is_multipart() else ""
        notice = mailed_notice(text_of(message, 1 << 20)) if text.lstrip().startswith("{") else None
        if notice is None:
            return None
        verdicts = [self.event_verdict(event) for event in notice_events(*notice, verified=False)]
        return verdicts or [Verdict("other", detail="an Amazon SES notice of no bounce or complaint")]

    # --- acting ---------------------------------------------------------------------------------------------

    def trusted(self, verdict: Verdict) -> bool:
        """Whether a report may change anything: it shows it is about mail we sent (or the operator said to
        trust every report). A DSN or an abuse report is a message anyone can write, naming anyone."""
        return bool(verdict.evidence) or self.trust_unverified or verdict.kind not in ACTED_ON

    def act(self, verdict: Verdict) -> bool:
        """Record what a verdict means; True when it suppressed an address. A report without evidence is
        recorded as unverified, with the address it claims, and changes nothing."""
        if not self.trusted(verdict):
            self.store.record_unverified(verdict.address, verdict.kind, verdict.detail, verdict.edition)
            return False
        if verdict.kind in ("bounce", "complaint", "unsubscribe"):
            return self.store.add(verdict.address, verdict.kind, f"{verdict.kind} report", verdict.detail,
                                  verdict.edition)  # fmt: skip
        if verdict.kind == "refused":
            self.store.record_refusal(verdict.address, verdict.edition or "?", verdict.reason)
            return False
        if verdict.kind != "soft-bounce":
            return False
        editions, span = self.store.soft_bounce(verdict.address, verdict.edition or "?", verdict.at or time.time())
        if editions >= SOFT_EDITIONS and span >= SOFT_DAYS * 86400:
            return self.store.add(verdict.address, "bounce", "temporary failures",
                                  f"temporary failures on {editions} editions over {span / 86400:.0f} days: "
                                  f"{verdict.detail}", verdict.edition)  # fmt: skip
        return False


def _is_auto_reply(message: Message) -> bool:
    auto = str(message.get("Auto-Submitted", "no")).lower()
    return (auto not in ("", "no") or any(h in message for h in ("X-Autoreply", "X-Autorespond", "X-Vacation"))
            or bool(_AUTO_SUBJECT.match(decoded(message.get("Subject", "")))))  # fmt: skip


def _reported_at(message: Message) -> float:
    """When the report says the failure happened (its Date), never later than now; 0 when it does not say."""
    try:
        return min(parsedate_to_datetime(str(message.get("Date", ""))).timestamp(), time.time())
    except (TypeError, ValueError, IndexError, OverflowError):
        return 0.0


def judge(data: bytes, reader: BounceReader, summary: Summary) -> None:
    message = message_from_bytes(data, policy=policy.compat32)
    for verdict in reader.classify(message):
        _take(shown(verdict), message, reader, summary)


def shown(verdict: Verdict) -> Verdict:
    """The verdict as it may be stored and printed: its detail (the report's own words) without control
    characters or terminal escapes."""
    return dataclasses.replace(verdict, detail=printable(verdict.detail))


def _take(verdict: Verdict, message: Message, reader: BounceReader, summary: Summary) -> None:
    """Act on one verdict of a message, count it, and tell `summary.each` (for -v)."""
    summary.counts[verdict.kind] += 1
    trusted = reader.trusted(verdict)
    summary.unverified += not trusted
    suppressed = reader.act(verdict)
    summary.suppressed += suppressed
    who = verdict.address or "-"
    detail = f": {verdict.detail}" if verdict.detail else ""
    mark = " (suppressed)" if suppressed else "" if trusted else " (unverified: no evidence we sent it; not acted on)"
    if summary.each is not None:
        summary.each(f"{verdict.kind}: {who}{mark}{detail} "
                     f"[{printable(str(message.get('Message-ID', '')))}]")  # fmt: skip
