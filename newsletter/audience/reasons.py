"""Why a message bounced, in one vocabulary, and what that means for the address.

The vocabulary is the one the best-known bounce classifier, sisimai, documents (userunknown, mailboxfull,
blocked, ...), so a reason here means what it means there. A reason is decided from the diagnostic text, the
enhanced status code (RFC 3463) and the SMTP reply together, in that order of trust: the same `5.7.1` is a
spam verdict at Gmail, a blocklist at Spamhaus and a relaying refusal at an old Exchange, and only the words
say which. The words are matched against the phrasings of the major MTAs and providers (Postfix, Exim,
Sendmail, qmail, Exchange and Microsoft 365, Gmail, Yahoo, Outlook.com, Amazon SES, Zoho, Mail.ru, GMX,
Yandex, Courier, Domino). Patterns that say the problem is on the sender's side are tried before those that
say the address is dead, because the two errors are not alike: a dead address kept costs one more bounce, a
live subscriber suppressed is lost for good.

What each reason does (`policy`):
- `hard`: the address is dead (userunknown, hostunknown, hasmoved, notaccept) and the failure permanent
  (5.x.x, or a 5xx reply): suppressed at once. The same words with a 4.x.x status are soft.
- `soft`: the mailbox may come back (mailboxfull, expired, suspend, systemerror, ...): counted; an address that
  fails so on SOFT_EDITIONS different editions spread over at least SOFT_DAYS days is suppressed.
- `sender`: the receiver refused our mail, not the address (blocked, spamdetected, policyviolation, ...): the
  address is never suppressed; the refusals are counted per edition and receiving domain, and `status` and
  the next `send` warn when they pass SENDER_SIDE_LIMIT of an edition's messages.
- `none`: not a failure (delivered, vacation).
"""

from __future__ import annotations

import functools
import re

SOFT_EDITIONS = 3
SOFT_DAYS = 15
SENDER_SIDE_LIMIT = 0.01  # of an edition's messages: a reputation or content problem worth a warning

HARD = frozenset({"userunknown", "hostunknown", "hasmoved", "notaccept"})
SENDER_SIDE = frozenset({"blocked", "spamdetected", "policyviolation", "securityerror", "contenterror", "filtered",
                         "rejected", "norelaying", "mesgtoobig", "speeding", "syntaxerror"})  # fmt: skip
NOT_FAILURES = frozenset({"delivered", "vacation"})


def _words(*phrases: str) -> str:
    return "|".join(f"(?:{phrase})" for phrase in phrases)


_TEXT: tuple[tuple[str, str], ...] = (
    (
        "norelaying",
        _words(
            r"relay(ing)? (access )?(denied|not (permitted|allowed))",
            r"unable to relay",
            r"not permitted to relay",
            r"we do not relay",
            r"relaying (is )?(denied|prohibited)",
        ),
    ),
    (
        "spamdetected",
        _words(
            r"\bspam\b",
            r"unsolicited",
            r"junk ?mail",
            r"bulk mail",
            r"classified as (spam|junk)",
            r"looks like spam",
            r"content scan(ner)? (rejected|refused)",
            r"\bUBE\b",
        ),
    ),
    (
        "securityerror",
        _words(
            r"\bspf\b",
            r"\bdkim\b",
            r"\bdmarc\b",
            r"authentication (is )?(required|failed)",
            r"not authenticated",
            r"unauthenticated (email|mail|sender)",
            r"tls (is )?required",
            r"encryption required",
            r"must issue a starttls",
            r"sender authentication",
        ),
    ),
    (
        "blocked",
        _words(
            r"\bblocked\b",
            r"block ?list(ed)?",
            r"black ?list(ed)?",
            r"deny ?list(ed)?",
            r"spamhaus",
            r"\bdnsbl\b",
            r"\brbl\b",
            r"\b(listed|found) (at|on|in|by) .{0,60}(spam|block|black|\bbl\b|\brbl\b|\bdnsbl\b)",
            r"\bbanned\b",
            r"reputation",
            r"client host .{0,80} rejected",
            r"access denied.{0,40}\bip\b",
            r"\bip\b.{0,40}(blocked|denied)",
            r"not allowed to send",
            r"rejected (because|due to) .{0,20}(ip|network)",
            r"too many (complaints|bad recipients)",
            r"user complaints",
            r"4\.7\.650",
            r"5\.7\.606",
        ),
    ),
    ("virus", _words(r"\bvirus\b", r"malware", r"infected")),
    (
        "policyviolation",
        _words(
            r"\bpolicy\b",
            r"prohibited",
            r"violat(e|es|ion)",
            r"not permitted",
            r"administrative(ly)? (prohibited|denied)",
        ),
    ),
    (
        "filtered",
        _words(
            r"\bfilter(ed|ing)?\b",
            r"refused by (the )?recipient",
            r"recipient (has )?(blocked|refused)",
            r"rejected by (the )?(recipient|user)",
        ),
    ),
    (
        "rejected",
        _words(
            r"sender (address )?(rejected|refused|denied|unknown|not allowed|verify failed)",
            r"domain of sender address",
            r"sender domain",
            r"invalid sender",
            r"from address",
            r"return[- ]path",
            r"mail from .{0,40}(rejected|refused)",
            r"sender .{0,60} not permitted",
        ),
    ),
    (
        "speeding",
        _words(
            r"rate limit",
            r"too many (messages|mails|emails|recipients)",
            r"sending rate",
            r"throttl",
            r"at a rate",
            r"receiving mail (too fast|at a rate)",
            r"limit exceeded for",
            r"too fast",
            r"unexpected volume",
        ),
    ),
    ("toomanyconn", _words(r"too many (connections|concurrent|simultaneous|sessions)", r"connection (rate )?limit")),
    (
        "mesgtoobig",
        _words(
            r"message (size )?(is )?(too (big|large)|exceeds)",
            r"size limit",
            r"too large",
            r"message length exceeds",
            r"maximum (message )?size",
        ),
    ),
    (
        "mailboxfull",
        _words(
            r"mail ?box (is )?(full|over)",
            r"over ?quota",
            r"quota (exceeded|exceed|full)",
            r"exceeded (its |the )?(storage|quota|mailbox)",
            r"insufficient (disk )?space",
            r"(mailbox|mail ?folder|inbox) size limit",
            r"out of storage",
            r"storage (full|limit)",
            r"postfach (ist )?voll",
            r"user is over",
            r"перепол",
            r"mailbox has exceeded",
        ),
    ),
    (
        "suspend",
        _words(
            r"(account|mailbox|user|address) (has been |is )?(disabled|suspended|inactive|deactivated|"
            r"locked|frozen|expired)",
            r"mailbox is inactive",
            r"account (is )?not active",
            r"(disabled|suspended|inactive) (account|mailbox|user)",
            r"заблокирован",
        ),
    ),
    ("hasmoved", _words(r"has moved", r"address (has )?changed", r"moved to <", r"no longer with")),
    (
        "expired",
        _words(
            r"retry time(out)? (not reached|exceeded)",
            r"delivery time expired",
            r"message expired",
            r"(could|was) not (be )?deliver(ed|able) (for|in|within) .{0,20}(days|hours)",
            r"too long in (the )?queue",
            r"delivery (attempts )?(timed out|expired)",
            r"giving up",
            r"delay(ed)? .{0,20}(days|hours)",
        ),
    ),
    (
        "hostunknown",
        _words(
            r"host (or domain name )?not found",
            r"domain (name )?(does not|doesn't) exist",
            r"name or service not known",
            r"host unknown",
            r"unknown host",
            r"unrout(e)?able",
            r"\bnxdomain\b",
            r"domain (is )?not found",
            r"no (mx|mail exchanger|such domain)",
            r"couldn't find any host",
            r"unknown domain",
            r"domain (is )?invalid",
        ),
    ),
    (
        "notaccept",
        _words(
            r"does not accept (e-?)?mail",
            r"null mx",
            r"not accepting (any )?(e-?)?mail",
            r"accepts no (e-?)?mail",
            r"no mail (is )?accepted",
        ),
    ),
    (
        "userunknown",
        _words(
            r"user ?unknown",
            r"unknown (user|recipient|mailbox|local[- ]?part|e-?mail address)",
            r"no such (user|mailbox|recipient|address|person|account)",
            r"(address|mailbox|recipient|user|account|e-?mail) (does not|doesn't|not) exist",
            r"(recipient|user|mailbox|address|account) (was )?not found",
            r"recip(ient)?notfound",
            r"recipient address rejected: access denied",
            r"this user doesn't have a",
            r"invalid (recipient|mailbox|address|user)",
            r"not a valid (mailbox|recipient|user)",
            r"no mailbox (here )?by that name",
            r"mailbox unavailable",
            r"bad destination",
            r"no longer (accepts|valid)",
            r"account that you tried to reach does not exist",
            r"is not a known user",
            r"utilisateur inconnu",
            r"нет такого",
            r"not our customer",
            r"badrcptto",
            r"not listed in",
            r"addressee unknown",
            r"unknown address",
            r"on the (account-level )?suppression list",  # Amazon SES: it bounced before
        ),
    ),
    ("systemfull", _words(r"(disk|system|queue|file ?system) (is )?full", r"insufficient system storage")),
    (
        "networkerror",
        _words(
            r"connection (timed out|refused|reset|lost)",
            r"lost connection",
            r"network",
            r"no route to host",
            r"dns (failure|error|lookup)",
            r"temporary lookup failure",
            r"loops? back to myself",
            r"mail (forwarding )?loop",
            r"looping",
            r"too many hops",
        ),
    ),
    (
        "syntaxerror",
        _words(r"syntax error", r"command (unrecognized|not (implemented|recognized))", r"bad sequence of commands"),
    ),
    (
        "systemerror",
        _words(
            r"system error",
            r"internal (server )?error",
            r"local (configuration )?error",
            r"server error",
            r"service (is )?(currently )?unavailable",
            r"mail system",
            r"temporar(il)?y (failure|unavailable|error)",
        ),
    ),
)

# RFC 3463 subject.detail -> reason, for reports whose words say nothing known.
_STATUS = {
    "1.1": "userunknown", "1.2": "hostunknown", "1.3": "userunknown", "1.4": "userunknown",
    "1.6": "hasmoved", "1.7": "rejected", "1.8": "rejected", "1.10": "notaccept",
    "2.0": "suspend", "2.1": "suspend", "2.2": "mailboxfull", "2.3": "exceedlimit", "2.4": "systemerror",
    "3.0": "systemerror", "3.1": "systemfull", "3.2": "notaccept", "3.3": "systemerror", "3.4": "mesgtoobig",
    "3.5": "systemerror", "4.0": "networkerror", "4.1": "networkerror", "4.2": "networkerror",
    "4.3": "networkerror", "4.4": "hostunknown", "4.5": "toomanyconn", "4.6": "networkerror", "4.7": "expired",
    "5.0": "syntaxerror", "5.1": "syntaxerror", "5.2": "syntaxerror", "5.3": "exceedlimit",
    "5.4": "syntaxerror", "5.5": "syntaxerror", "6.0": "contenterror", "7.0": "securityerror",
    "7.1": "blocked", "7.2": "securityerror", "7.7": "securityerror", "7.8": "securityerror",
    "7.9": "securityerror", "7.23": "securityerror", "7.24": "securityerror", "7.25": "blocked",
    "7.26": "securityerror", "7.27": "notaccept",
}  # fmt: skip
_ENHANCED = re.compile(r"\b([245])\.(\d{1,3})\.(\d{1,3})\b")
_REPLY = re.compile(r"(?<![\d.])([245])\d\d(?![\d.])")


@functools.cache
def _compiled() -> tuple[tuple[str, re.Pattern[str]], ...]:
    """The patterns, compiled when the first report is judged (not when `status` merely imports this)."""
    return tuple((name, re.compile(words, re.IGNORECASE)) for name, words in _TEXT)


def status_of(*texts: str) -> str:
    """The first enhanced status code (`5.1.1`) in the texts, or ''."""
    for text in texts:
        found = _ENHANCED.search(text or "")
        if found:
            return found[0]
    return ""


def reason(diagnostic: str, status: str = "", action: str = "") -> str:
    """The reason of one recipient's failure, from what the report says about it."""
    action = action.lower()
    status = status_of(status, diagnostic)
    if action in ("delivered", "relayed", "expanded") or status.startswith("2."):
        return "delivered"
    for name, words in _compiled():
        if words.search(diagnostic or ""):
            return "contenterror" if name == "virus" else name
    if status:
        subject_detail = status.split(".", 1)[1]
        return _STATUS.get(subject_detail) or _STATUS.get(subject_detail.split(".")[0] + ".0", "undefined")
    return "undefined"


def permanent(status: str, diagnostic: str, action: str = "") -> bool:
    """Whether the failure is for good: a 5.x.x status, else a 5xx reply, else the report's `failed`."""
    status = status_of(status, diagnostic)
    if status:
        return status.startswith("5")
    reply = _REPLY.search(diagnostic or "")
    if reply:
        return reply[1] == "5"
    return action.lower() == "failed"


def policy(name: str, is_permanent: bool) -> str:
    """`hard`, `soft`, `sender` or `none` (see the module's docstring)."""
    if name in NOT_FAILURES:
        return "none"
    if name in SENDER_SIDE:
        return "sender"
    if name == "feedback":
        return "hard"
    return "hard" if name in HARD and is_permanent else "soft"


_KINDS = {"hard": "bounce", "soft": "soft-bounce", "sender": "refused", "none": "other"}


def kind(name: str, is_permanent: bool) -> str:
    """What a failure does to its address, in the words of `bounces`: `bounce` (suppressed), `soft-bounce`
    (counted), `refused` (the sender's problem, counted per domain) or `other`; a complaint is a `complaint`."""
    return "complaint" if name == "feedback" else _KINDS[policy(name, is_permanent)]
