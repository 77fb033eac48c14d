"""Recipients CSV and suppression list: strict addresses, line numbers for every skipped row."""

from __future__ import annotations

from pathlib import Path

import pytest

from newsletter.audience.exclusions import load_suppressed
from newsletter.audience.recipients import load_recipients
from newsletter.base.addresses import address_problem, mailbox_key


@pytest.mark.parametrize(
    "address",
    ["alice@example.org)<bob@example.org>", "a b@example.org", "a@b", "@example.org", "a@", "a..b@example.org",
     "a@-example.org", "a@example..org", "\"quoted\"@example.org", "a@exa_mple.org", "a@example.org\n",
     "x" * 65 + "@e.org",
     "b@a\u200db.com",  # a zero-width joiner: UTS #46 would refuse it here, but never silently
     "b@\u00adab.com",  # a soft hyphen: UTS #46 maps it away, which would make this b@ab.com
     "b@a\u200bb.com", "b@a\u2060b.com", "b@a\u202eb.com", "b@a\ufe0fb.com", "b@a\u3164b.com",
     "x@xn--zz.com"],  # an A-label IDNA 2008 does not allow
)  # fmt: skip
def test_strict_addresses_are_refused(address: str) -> None:
    assert address_problem(address) is not None


@pytest.mark.parametrize("address", ["a@example.org", "o'brien+news@example.org", "zoe@exämple.org", "a.b@c.example"])
def test_ordinary_addresses_pass(address: str) -> None:
    assert address_problem(address) is None


@pytest.mark.parametrize(
    ("address", "key"),
    [("jo@straße.de", "jo@xn--strae-oqa.de"),  # IDNA 2008 keeps ß; IDNA 2003 sent it to strasse.de, another domain
     ("ann@bücher.de", "ann@xn--bcher-kva.de"), ("ann@BÜCHER.de", "ann@xn--bcher-kva.de"),
     ("x@ＥＸＡＭＰＬＥ.com", "x@example.com")],  # fullwidth letters are the same domain (UTS #46 mapping)
)  # fmt: skip
def test_domains_are_idna_2008(address: str, key: str) -> None:
    assert address_problem(address) is None
    assert mailbox_key(address) == key


def test_rows_are_validated_with_line_numbers(tmp_path: Path) -> None:
    path = tmp_path / "list.csv"
    path.write_text(
        "Email,Name,City\n"
        'a@example.org,"Ann, the first",Oslo\n'
        "\n"
        "bad-address,X,\n"
        "A@EXAMPLE.ORG,Dup,\n"
        'b@example.org,"Eve =?UTF-8?Q?=0A?=Bcc: x@example.com",\n'
        "c@example.org,Cy,Bergen,extra\n"
        "d@example.org\n",
        encoding="utf-8",
    )
    result = load_recipients(path)
    assert [(r.email, r.name, r.fields, r.line) for r in result.recipients] == [
        ("a@example.org", "Ann, the first", {"city": "Oslo"}, 2),
        ("d@example.org", "", {}, 8),
    ]
    assert result.columns == ("city",)
    assert [p.split(": ", 1)[0] for p in result.problems] == [f"{path}:{n}" for n in (4, 5, 6, 7)]
    assert "duplicate of line 2" in result.problems[1]
    assert "line break" in result.problems[2]
    assert "4 fields but the header names 3" in result.problems[3]


def test_suppression_list_as_csv_or_lines(tmp_path: Path) -> None:
    lines = tmp_path / "unsub.txt"
    lines.write_text("# unsubscribed\nA@example.org\n\nb@example.org\n")
    assert load_suppressed(lines) == {"a@example.org", "b@example.org"}
    table = tmp_path / "unsub.csv"
    table.write_text("date,Email\n2026-01-01,C@example.org\n")
    assert load_suppressed(table) == {"c@example.org"}
    suppressed_list = tmp_path / "list.csv"
    suppressed_list.write_text("email\nc@example.org\nd@example.org\n")
    result = load_recipients(suppressed_list, frozenset({"c@example.org"}))
    assert [r.email for r in result.recipients] == ["d@example.org"]
    assert result.problems == [f"{suppressed_list}:2: unsubscribed (in the suppression list), skipped"]


def test_display_name_form_is_accepted_and_the_name_kept(tmp_path: Path) -> None:
    path = tmp_path / "list.csv"
    path.write_text(
        "email,name\n"
        '"Ann Example <ann@example.org>",\n'
        '"Bob B <bob@example.org>",Robert\n'
        '"Cy <cy@example.org",\n'
        '"<>",\n',
        encoding="utf-8",
    )
    result = load_recipients(path)
    assert [(r.email, r.name) for r in result.recipients] == [("ann@example.org", "Ann Example"),
                                                               ("bob@example.org", "Robert")]  # fmt: skip
    assert result.problems == [
        f"{path}:4: invalid address 'Cy <cy@example.org': expected 'Name <name@example.org>' or name@example.org",
        f"{path}:5: empty address",
    ]


def test_two_spellings_of_an_internationalised_domain_are_one_mailbox(tmp_path: Path) -> None:
    path = tmp_path / "list.csv"
    path.write_text("email\nann@bücher.de\nANN@xn--bcher-kva.de\n", encoding="utf-8")
    result = load_recipients(path)
    assert [r.email for r in result.recipients] == ["ann@bücher.de"]
    assert "duplicate of line 2" in result.problems[0]
    suppressed = load_suppressed(_written(tmp_path / "unsub.txt", "ann@xn--bcher-kva.de\n"))
    assert load_recipients(path, suppressed).recipients == []


def _written(path: Path, text: str) -> Path:
    path.write_text(text, encoding="utf-8")
    return path


@pytest.mark.parametrize("text", ["Ann <ann@example.org>", "ann@example.org"])
def test_parse_recipient_takes_both_forms(text: str) -> None:
    from newsletter.base.addresses import parse_recipient

    assert parse_recipient(text)[1] == "ann@example.org"
    assert parse_recipient(text)[0] == ("Ann" if "<" in text else "")


def test_a_row_the_csv_module_cannot_read_is_a_bad_row_and_the_rest_is_kept(tmp_path: Path) -> None:
    path = _written(tmp_path / "list.csv", "email,name\na@example.org," + "x" * 140_000 + "\nb@example.org,B\n")
    result = load_recipients(path)
    assert [r.email for r in result.recipients] == ["b@example.org"]
    assert result.problems == [f"{path}:2: not a readable CSV row: field larger than field limit (131072)"]
