"""Bounce reasons as the major MTAs and providers word them, and what each reason does to the address.

Each row is a diagnostic as that software writes it (the Diagnostic-Code of a DSN, or the words of a plain-text
bounce), with the reason sisimai gives that kind of failure. Rows of the same status code with different
reasons are the point: the code alone cannot tell a dead address from a blocklisted sender."""

from __future__ import annotations

import pytest

from newsletter.audience.reasons import permanent, policy, reason

CASES = [
    # Postfix
    (
        "Postfix",
        "5.1.1",
        "smtp; 550 5.1.1 <jo@example.org>: Recipient address rejected: User unknown in virtual mailbox table",
        "userunknown",
    ),
    (
        "Postfix",
        "5.4.4",
        "Host or domain name not found. Name service error for name=example.invalid type=A: Host not found",
        "hostunknown",
    ),
    ("Postfix", "5.7.1", "smtp; 554 5.7.1 <jo@example.org>: Relay access denied", "norelaying"),
    (
        "Postfix",
        "5.7.1",
        "smtp; 554 5.7.1 Service unavailable; Client host [192.0.2.1] blocked using zen.spamhaus.org",
        "blocked",
    ),
    ("Postfix", "4.4.1", "connect to mx.example.org[192.0.2.7]:25: Connection timed out", "networkerror"),
    ("Postfix", "5.1.8", "smtp; 553 5.1.8 <news@example.com>: Sender address rejected: Domain not found", "rejected"),
    # Exim
    (
        "Exim",
        "",
        "SMTP error from remote mail server after RCPT TO:<jo@example.org>: 550 5.1.1 User unknown",
        "userunknown",
    ),
    ("Exim", "", "retry timeout exceeded", "expired"),
    ("Exim", "", "Unrouteable address", "hostunknown"),
    (
        "Exim",
        "",
        "SMTP error from remote mail server after end of data: 552 5.2.2 Mailbox quota exceeded",
        "mailboxfull",
    ),
    # Sendmail
    ("Sendmail", "5.1.1", "smtp; 550 5.1.1 <jo@example.org>... User unknown", "userunknown"),
    ("Sendmail", "5.2.2", "smtp; 552 5.2.2 <jo@example.org>... Mailbox full", "mailboxfull"),
    ("Sendmail", "4.4.7", "Message could not be delivered for 5 days", "expired"),
    # qmail
    ("qmail", "", "Sorry, no mailbox here by that name. (#5.1.1)", "userunknown"),
    ("qmail", "", "Sorry, I couldn't find any host named example.invalid. (#5.1.2)", "hostunknown"),
    ("qmail", "", "This message is looping: it already has my Delivered-To line. (#5.4.6)", "networkerror"),
    # Exchange and Microsoft 365
    ("Exchange", "5.1.1", "#550 5.1.1 RESOLVER.ADR.RecipNotFound; not found ##", "userunknown"),
    (
        "Microsoft 365",
        "5.1.10",
        "smtp; 550 5.1.10 RESOLVER.ADR.RecipientNotFound; Recipient not found by SMTP address lookup",
        "userunknown",
    ),
    (
        "Microsoft 365",
        "5.4.1",
        "smtp; 550 5.4.1 Recipient address rejected: Access denied. AS(201806281)",
        "userunknown",
    ),
    (
        "Microsoft 365",
        "5.7.1",
        "smtp; 550 5.7.1 Unfortunately, messages from [192.0.2.1] weren't sent. Please "
        "contact your Internet service provider since part of their network is on our block list (S3150)",
        "blocked",
    ),
    (
        "Outlook.com",
        "5.7.1",
        "smtp; 550 5.7.1 Service unavailable, Client host [192.0.2.1] blocked using Spamhaus",
        "blocked",
    ),
    (
        "Outlook.com",
        "5.5.0",
        "smtp; 550 5.5.0 Requested action not taken: mailbox unavailable (S2017062302)",
        "userunknown",
    ),
    ("Exchange", "4.3.1", "smtp; 452 4.3.1 Insufficient system resources", "systemfull"),
    # Gmail
    (
        "Gmail",
        "5.1.1",
        "smtp; 550-5.1.1 The email account that you tried to reach does not exist. Please try "
        "double-checking the recipient's email address for typos",
        "userunknown",
    ),
    (
        "Gmail",
        "4.2.2",
        "smtp; 452-4.2.2 The email account that you tried to reach is over quota. Please direct the "
        "recipient to https://support.google.com/mail/?p=OverQuotaTemp",
        "mailboxfull",
    ),
    (
        "Gmail",
        "5.7.1",
        "smtp; 550-5.7.1 [192.0.2.1] Our system has detected that this message is likely "
        "unsolicited mail. To reduce the amount of spam sent to Gmail, this message has been blocked.",
        "spamdetected",
    ),
    (
        "Gmail",
        "5.7.26",
        "smtp; 550-5.7.26 Unauthenticated email from example.com is not accepted due to domain's DMARC policy",
        "securityerror",
    ),
    (
        "Gmail",
        "4.7.28",
        "smtp; 421-4.7.28 Gmail has detected an unusual rate of unsolicited mail originating from your SPF domain",
        "spamdetected",
    ),
    ("Gmail", "5.2.1", "smtp; 550-5.2.1 The email account that you tried to reach is disabled.", "suspend"),
    (
        "Gmail",
        "4.2.1",
        "smtp; 450-4.2.1 The user you are trying to contact is receiving mail at a rate that "
        "prevents additional messages from being delivered",
        "speeding",
    ),
    # Yahoo
    (
        "Yahoo",
        "",
        "smtp; 554 delivery error: dd This user doesn't have a yahoo.com account (jo@yahoo.com) [0] - "
        "mta1234.mail.ne1.yahoo.com",
        "userunknown",
    ),
    (
        "Yahoo",
        "4.7.0",
        "smtp; 421 4.7.0 [TSS04] Messages from 192.0.2.1 temporarily deferred due to unexpected "
        "volume or user complaints",
        "blocked",
    ),
    # Amazon SES
    ("Amazon SES", "5.1.1", "smtp; 550 5.1.1 user unknown", "userunknown"),
    (
        "Amazon SES",
        "5.3.0",
        "smtp; 554 5.3.0 Message rejected: Email address is on the suppression list",
        "userunknown",
    ),
    # Zoho
    ("Zoho", "5.1.1", "smtp; 550 5.1.1 User does not exist - <jo@zoho.com>", "userunknown"),
    ("Zoho", "5.7.7", "smtp; 554 5.7.7 Email policy violation detected", "policyviolation"),
    # Mail.ru
    (
        "Mail.ru",
        "",
        "smtp; 550 Message was not accepted -- invalid mailbox. Local mailbox jo@mail.ru is "
        "unavailable: user not found",
        "userunknown",
    ),
    (
        "Mail.ru",
        "",
        "smtp; 550 spam message rejected. Please visit http://help.mail.ru/notspam-support/id",
        "spamdetected",
    ),
    ("Mail.ru", "", "smtp; 552 Message was not accepted -- mailbox is over quota", "mailboxfull"),
    (
        "Mail.ru",
        "",
        "smtp; 550 Message was not accepted -- invalid mailbox. Local mailbox jo@mail.ru is "
        "unavailable: account is disabled",
        "suspend",
    ),
    # GMX and Web.de
    ("GMX", "5.1.1", "smtp; 550 5.1.1 Requested action not taken: mailbox unavailable", "userunknown"),
    (
        "GMX",
        "",
        "smtp; 554-gmx.net (mxgmx004) Nemesis ESMTP Service not available 554-No SMTP service "
        "554-IP address is block listed.",
        "blocked",
    ),
    # Yandex
    ("Yandex", "5.7.1", "smtp; 550 5.7.1 No such user!", "userunknown"),
    ("Yandex", "5.7.1", "smtp; 554 5.7.1 [2] Message rejected under suspicion of SPAM", "spamdetected"),
    # Courier, Domino and older MTAs
    ("Courier", "", "smtp; 550 User unknown.", "userunknown"),
    ("Courier", "", "Mailbox full.", "mailboxfull"),
    ("Domino", "", "User not listed in public Name & Address Book", "userunknown"),
    ("DragonFly", "", "<jo@example.org>: unknown user", "userunknown"),
    # sender-side and content, whatever the code
    ("Postfix", "5.7.1", "smtp; 550 5.7.1 Message rejected due to content policy", "policyviolation"),
    ("Sendmail", "5.3.4", "smtp; 552 5.3.4 Message size exceeds fixed limit", "mesgtoobig"),
    (
        "Exim",
        "",
        "SMTP error from remote mail server after end of data: 550 This message contains a virus",
        "contenterror",
    ),
    ("Postfix", "5.7.1", "smtp; 550 5.7.1 Email rejected per SPF policy", "securityerror"),
]


@pytest.mark.parametrize(("software", "status", "diagnostic", "expected"), CASES,
                         ids=[f"{case[0]}-{i}" for i, case in enumerate(CASES)])  # fmt: skip
def test_the_reason_is_read_from_the_words_the_code_and_the_reply(software, status, diagnostic, expected) -> None:
    assert reason(diagnostic, status, "failed") == expected


def test_a_report_of_delivery_is_not_a_failure() -> None:
    assert reason("smtp; 250 2.1.5 OK", "2.1.5", "delivered") == "delivered"
    assert reason("", "2.0.0", "relayed") == "delivered"
    assert policy("delivered", True) == "none" and policy("vacation", True) == "none"


@pytest.mark.parametrize(("why", "status", "diagnostic", "expected"), [
    ("userunknown", "5.1.1", "550 5.1.1 user unknown", "hard"),
    ("userunknown", "4.1.1", "450 4.1.1 user unknown, try later", "soft"),    # a temporary failure is never hard
    ("userunknown", "", "550 no such user", "hard"),                          # the reply code when no status
    ("hostunknown", "", "", "hard"),                                           # the report's own `failed`
    ("mailboxfull", "5.2.2", "552 5.2.2 mailbox full", "soft"),               # full mailboxes empty again
    ("suspend", "5.2.1", "550 5.2.1 account disabled", "soft"),
    ("blocked", "5.7.1", "550 5.7.1 blocked using Spamhaus", "sender"),       # never the address's fault
    ("spamdetected", "5.7.1", "550 5.7.1 likely unsolicited mail", "sender"),
    ("undefined", "5.0.0", "550 5.0.0 something happened", "soft"),           # unknown: counted, not dropped
])  # fmt: skip
def test_only_dead_addresses_failing_for_good_are_hard(why, status, diagnostic, expected) -> None:
    assert policy(why, permanent(status, diagnostic, "failed")) == expected
