"""The command line end to end: build, check, export and import as a user runs them, and every kind of bad
input answered with one line naming the file, exit 1, no traceback, and the previous output untouched."""

from __future__ import annotations

import csv
import os
import shutil
import stat
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pytest
from conftest import DATA, REPO, SAMPLE_EDITION, parse_message, parts, write_recipients

from newsletter.base.addresses import ascii_address
from newsletter.cli import _parser

EDITION = Path("issues") / SAMPLE_EDITION
CONFIG = "newsletter.toml"
ARTICLE = EDITION / "is-physical-therapy-worth-it-for-back-pain.md"


def test_every_command_has_help(cli) -> None:
    commands = _parser()._subparsers._group_actions[0].choices  # type: ignore[union-attr]
    assert {"build", "check", "export", "import", "send-test", "send", "status", "smtp-capture", "preview",
            "screenshot", "install-checkers", "serve", "archive", "suppressions", "suppress",
            "unsuppress", "dkim-keygen", "bounces", "init", "subscribers", "subscribe", "forget",
            "form-snippet"} == set(commands)  # fmt: skip
    for name in commands:
        result = cli(name, "--help")
        assert result.code == 0
        assert "usage: newsletter " + name in result.out
        assert commands[name].description
        assert "78  configuration or credentials wrong" in result.out  # every command documents its exit statuses


def test_build_writes_files_that_agree(project: Path, cli) -> None:
    result = cli("build", SAMPLE_EDITION)
    assert result.code == 0, result.err
    out = project / "build" / SAMPLE_EDITION
    assert sorted(p.name for p in out.iterdir()) == ["email.eml", "email.html", "email.txt", "review.html"]
    assert "wrote build/back-pain/email.eml" in result.out
    message = parse_message((out / "email.eml").read_bytes())
    text, html = parts(message)
    assert text.replace("\r\n", "\n") == (out / "email.txt").read_text(encoding="utf-8")
    assert html.replace("\r\n", "\n") == (out / "email.html").read_text(encoding="utf-8")
    assert message["To"].addresses[0].addr_spec == "newsletter@seattle-neuro.example"  # the From, by default
    assert "XNLF" not in text + html
    assert not list(out.glob(".*tmp"))


def test_build_out_option_and_edition_as_folder(project: Path, cli, tmp_path: Path) -> None:
    result = cli("build", project / "issues" / "cafe-news", "--out", tmp_path / "elsewhere")
    assert result.code == 0, result.err
    message = parse_message((tmp_path / "elsewhere" / "email.eml").read_bytes())
    assert message["Subject"] == "Café news: naïve questions, expert answers"


def test_check_passes_quietly_and_writes_nothing(project: Path, cli) -> None:
    result = cli("check", "spring-clinic", "--quick")
    assert result.code == 0, result.err
    assert result.out == "issues/spring-clinic: built-in checks passed (2 article(s))\n"
    assert not (project / "build").exists()


def test_check_reports_one_line_per_problem(project: Path, cli) -> None:
    (project / "templates").mkdir()
    (project / "templates" / "email.html").write_text(
        '<html><body><img src="x.png"><a href="javascript:alert(1)">x</a><a href="/book">book</a>'
        "{{ recipient.unsubscribe_url }}</body></html>"
    )
    result = cli("check", SAMPLE_EDITION)
    assert result.code == 1
    lines = result.err.strip().splitlines()
    assert all(line.startswith(f"newsletter: {EDITION}: ") for line in lines)
    for expected in ("HTML part lacks the disclaimer", "HTML part lacks the copyright line",
                     "image without alt text: x.png", "unsafe HTML: javascript: URL", "no lang attribute",
                     "not an absolute http(s)/mailto URL (it leads nowhere in an email): <a href='/book'>",
                     ):  # fmt: skip
        assert any(expected in line for line in lines), expected


def test_export_writes_one_message_per_valid_recipient(project: Path, cli) -> None:
    recipients = write_recipients(project / "list.csv", [
        ["email", "name", "city"],
        ["alice@example.org", "Alice", "Seattle"],
        ["not-an-address", "Nobody", ""],
        ["ALICE@example.org", "Alice again", ""],
        ["zoe@exämple.org", "Zoë", "Zürich"],
        ["bob@example.org", "", ""],
        ["eve@example.org)<mallory@example.org>", "Eve", ""],
    ])  # fmt: skip
    result = cli("export", SAMPLE_EDITION, "--recipients", recipients, "--out", "out")
    assert result.code == 0, result.err
    assert "wrote 3 message(s)" in result.out and "nothing was sent" in result.out
    assert f"{recipients}:3: invalid address 'not-an-address'" in result.err
    assert f"{recipients}:4: duplicate of line 2 (ALICE@example.org), sent once" in result.err
    assert f"{recipients}:7: invalid address" in result.err
    with (project / "out" / "manifest.csv").open(encoding="utf-8") as handle:
        manifest = list(csv.DictReader(handle))
    assert [row["recipient"] for row in manifest] == ["alice@example.org", "zoe@exämple.org", "bob@example.org"]
    assert sorted(p.name for p in (project / "out").glob("*.eml")) == sorted(row["file"] for row in manifest)
    for row in manifest:
        message = parse_message((project / "out" / row["file"]).read_bytes())
        assert message["Message-ID"] == row["Message-ID"]
        assert message["To"].addresses[0].addr_spec == ascii_address(row["recipient"])  # IDNA domain in headers
    text, _ = parts(parse_message((project / "out" / manifest[0]["file"]).read_bytes()))
    assert "Hi Alice," in text and "alice@example.org" in text
    assert (project / ".newsletter").stat().st_mode & 0o777 == 0o700, "where exports are recorded: owner-only"


def test_export_says_when_it_uses_the_development_key(project: Path, cli, monkeypatch) -> None:
    write_recipients(project / "list.csv", [["email"], ["a@example.org"]])
    result = cli("export", SAMPLE_EDITION, "--recipients", "list.csv", "--out", "out")
    assert result.code == 0
    assert "newsletter: warning: NEWSLETTER_UNSUBSCRIBE_SECRET is not set" in result.err
    monkeypatch.setenv("NEWSLETTER_UNSUBSCRIBE_SECRET", "a real key of some length")
    result = cli("export", SAMPLE_EDITION, "--recipients", "list.csv", "--out", "out2")
    assert result.code == 0 and "warning" not in result.err


def test_export_makes_recipient_columns_available_to_templates(project: Path, cli) -> None:
    (project / "templates").mkdir()
    theme = (REPO / "templates" / "email.txt").read_text(encoding="utf-8")
    (project / "templates" / "email.txt").write_text(
        theme.replace("Hi {{ recipient.name }},", "Hi {{ recipient.name }} in {{ recipient.city }},")
    )
    recipients = write_recipients(project / "list.csv", [["Email", "Name", "City"], ["a@example.org", "Ann", "Oslo"]])
    assert cli("export", SAMPLE_EDITION, "--recipients", recipients, "--out", "out").code == 0
    text, _ = parts(parse_message(next((project / "out").glob("*.eml")).read_bytes()))
    assert "Hi Ann in Oslo," in text
    no_city = write_recipients(project / "nocity.csv", [["email"], ["a@example.org"]])
    result = cli("export", SAMPLE_EDITION, "--recipients", no_city, "--out", "out2")
    assert result.code == 1 and "recipient" in result.err and "city" in result.err


def test_export_never_opens_a_network_connection(project: Path) -> None:
    """Run export in a fresh interpreter where any socket connect raises."""
    write_recipients(project / "list.csv", [["email"], ["a@example.org"]])
    guard = (
        "import socket, sys\n"
        "def refuse(*a, **k): raise SystemExit('network connection attempted')\n"
        "socket.socket.connect = refuse; socket.create_connection = refuse\n"
        "from newsletter.cli import main\n"
        "sys.exit(main(['export', 'back-pain', '--recipients', 'list.csv', '--out', 'out']))\n"
    )
    result = subprocess.run([sys.executable, "-c", guard], cwd=project, capture_output=True, text=True, check=False)
    assert result.returncode == 0, result.stderr
    assert "smtplib" not in subprocess.run(
        [sys.executable, "-c", "import sys, newsletter.edition.pipeline; print(sorted(sys.modules))"],
        capture_output=True, text=True, check=True,
    ).stdout  # fmt: skip


def test_command_runs_as_installed_script(project: Path) -> None:
    """The console script a README user types, in a real process."""
    script = Path(sys.executable).with_name("newsletter")
    command = [str(script)] if script.exists() else [sys.executable, "-m", "newsletter"]
    result = subprocess.run([*command, "build", SAMPLE_EDITION], cwd=project, capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
    bad = subprocess.run([*command, "build", "missing"], cwd=project, capture_output=True, text=True)
    assert bad.returncode == 1 and bad.stderr.count("\n") == 1 and "Traceback" not in bad.stderr
    usage = subprocess.run([*command, "build"], cwd=project, capture_output=True, text=True)
    assert usage.returncode == 2


# --- bad input: (what to break, command, text the one-line error must contain) --------------------------------

Breaker = Callable[[Path], None]


def edit(path: str, old: str, new: str) -> Breaker:
    def apply(root: Path) -> None:
        target = root / path
        text = target.read_text(encoding="utf-8")
        assert old in text, (old, path)
        target.write_text(text.replace(old, new, 1), encoding="utf-8")

    return apply


def write(path: str, content: str | bytes) -> Breaker:
    def apply(root: Path) -> None:
        target = root / path
        target.parent.mkdir(parents=True, exist_ok=True)
        if isinstance(content, bytes):
            target.write_bytes(content)
        else:
            target.write_text(content, encoding="utf-8")

    return apply


def setenv(key: str, value: str) -> Breaker:
    def apply(root: Path) -> None:
        os.environ[key] = value

    return apply


def nothing(root: Path) -> None:
    pass


def both(*breakers: Breaker) -> Breaker:
    def apply(root: Path) -> None:
        for breaker in breakers:
            breaker(root)

    return apply


TOML = str(EDITION / "issue.toml")
MD = str(ARTICLE)
BUILD = ("build", SAMPLE_EDITION)
THEME = (REPO / "templates" / "email.html").read_text(encoding="utf-8")
TEXT_THEME = (REPO / "templates" / "email.txt").read_text(encoding="utf-8")
BIG = '+++\ntitle = "Long"\n+++\n\n' + ("A long paragraph of words that goes on. " * 40 + "\n\n") * 80
EXPORT = ("export", SAMPLE_EDITION, "--recipients", "list.csv", "--out", "exported")

BAD_INPUT = [
    ("missing edition", nothing, ("build", "no-such"), "issues/no-such: no such edition"),
    ("folder without issue.toml", write("issues/empty/notes.txt", "x"), ("build", "empty"), "missing issue.toml"),
    ("bad edition name", nothing, ("build", "bad name!"), "edition names are"),
    ("malformed issue.toml", write(TOML, 'subject = "unterminated\n'), BUILD, "issue.toml:1: malformed TOML"),
    ("unknown issue key", edit(TOML, "subject", "colour = 1\nsubject"), BUILD, "unknown key(s) colour"),
    ("no subject", edit(TOML, 'subject = "', 'summary_x = "'), BUILD, "unknown key"),
    ("empty subject", write(TOML, 'subject = ""\n'), BUILD, "'subject' is required"),
    ("articles not a list", write(TOML, 'subject = "S"\narticles = "a.md"\n'), BUILD, "'articles' must be"),
    ("listed article missing", write(TOML, 'subject = "S"\narticles = ["gone.md"]\n'), BUILD, "gone.md: no such file"),
    (
        "article outside edition",
        write(TOML, 'subject = "S"\narticles = ["../../newsletter.toml"]\n'),
        BUILD,
        "outside the edition folder",
    ),
    ("bad edition date", edit(TOML, "date = 2026-11-26", 'date = "next week"'), BUILD, "'date' must be a date"),
    ("front matter never closed", write(MD, '+++\ntitle = "x"\n\nBody\n'), BUILD, "never closed"),
    ("malformed front matter", write(MD, '+++\ntitle = "x"\nauthor = \n+++\nBody\n'), BUILD, f"{MD}:3: malformed TOML"),
    ("no title", write(MD, '+++\nauthor = "x"\n+++\nBody\n'), BUILD, "'title' is required"),
    ("unknown front matter key", write(MD, '+++\ntitle = "x"\ntags = []\n+++\nBody\n'), BUILD, "unknown key(s) tags"),
    ("title not a string", write(MD, "+++\ntitle = 42\n+++\nBody\n"), BUILD, "'title' must be a string"),
    ("empty article", write(MD, '+++\ntitle = "x"\n+++\n\n   \n'), BUILD, "article is empty"),
    ("article not UTF-8", write(MD, b'+++\ntitle = "caf\xe9"\n+++\nBody\n'), BUILD, f"{MD}:2: not UTF-8"),
    ("issue.toml not UTF-8", write(TOML, b'subject = "caf\xe9"\n'), BUILD, f"{TOML}:1: not UTF-8"),
    (
        "image without alt",
        write(MD, '+++\ntitle = "x"\nimage = "https://example.org/a.png"\n+++\nBody\n'),
        BUILD,
        "image needs image_alt",
    ),
    (
        "canonical url not http",
        write(MD, '+++\ntitle = "x"\ncanonical_url = "javascript:x"\n+++\nBody\n'),
        BUILD,
        "canonical_url must be",
    ),
    (
        "unknown template variable",
        write("templates/email.html", THEME.replace("{{ publication.name }}</a>", "{{ publication.nmae }}</a>")),
        BUILD,
        "templates/email.html:",
    ),
    (
        "unknown recipient field",
        write("templates/email.txt", TEXT_THEME.replace("recipient.name", "recipient.nmae")),
        BUILD,
        "unknown template variable",
    ),
    ("template syntax error", write("templates/email.html", "{% if %}"), BUILD, "template syntax error"),
    (
        "template drops disclaimer",
        write("templates/email.html", THEME.replace("{{ publication.disclaimer }}", "")),
        BUILD,
        "HTML part lacks the disclaimer",
    ),
    (
        "text template drops disclaimer",
        write("templates/email.txt", TEXT_THEME.replace("{{ publication.disclaimer | wrap }}", "")),
        BUILD,
        "text part lacks the disclaimer",
    ),
    (
        "disclaimer hidden in HTML",
        write(
            "templates/email.html",
            THEME.replace('<p class="disclaimer">', '<p class="disclaimer" style="display:none">'),
        ),
        BUILD,
        "HTML part lacks the disclaimer",
    ),
    ("html over gmail clip", write(MD, BIG), BUILD, "Gmail clips messages"),
    (
        "script in template",
        write("templates/email.html", THEME.replace("</body>", "<script>x()</script></body>")),
        BUILD,
        "unsafe HTML: <script> element",
    ),
    (
        "encoded newline in subject",
        edit(TOML, 'subject = "', 'subject = "=?UTF-8?Q?=0A?=Bcc: x@example.com '),
        BUILD,
        "decodes to a line break",
    ),
    ("raw newline in subject", edit(TOML, 'subject = "', 'subject = "Hi\\nBcc: x@example.com '), BUILD, "line break"),
    (
        "line separator in subject",
        edit(TOML, 'subject = "', 'subject = "Hi\u2028Bcc: x@example.com '),
        BUILD,
        "issue.toml: subject contains a line break",
    ),
    (
        "next line in title",
        write(MD, '+++\ntitle = "Hi\u0085there"\n+++\nBody\n'),
        BUILD,
        "title contains a line break",
    ),
    ("blank unsubscribe secret", setenv("NEWSLETTER_UNSUBSCRIBE_SECRET", "   "), EXPORT, "only white space"),
    ("short unsubscribe secret", setenv("NEWSLETTER_UNSUBSCRIBE_SECRET", "short"), EXPORT, "shorter than 16 bytes"),
    ("empty key in secret", setenv("NEWSLETTER_UNSUBSCRIBE_SECRET", ","), EXPORT, "key 1 of 2 is empty"),
    (
        "unsubscribe url without token",
        edit(CONFIG, "\nsite_url = ", '\nunsubscribe_url = "https://example.org/unsubscribe"\n# '),
        BUILD,
        "unsubscribe_url must contain {token}",
    ),
    ("malformed newsletter.toml", write(CONFIG, "[publication\n"), BUILD, "newsletter.toml: not valid TOML"),
    ("unknown setting", edit(CONFIG, "[publication]", '[publication]\ncolour = "red"'), BUILD, "unknown setting"),
    (
        "unsubscribe url not https",
        edit(CONFIG, "\nsite_url = ", '\nunsubscribe_url = "http://x/{token}"\n# '),
        BUILD,
        "unsubscribe_url must be an https:// URL",
    ),
    (
        "site url and unsubscribe url",
        edit(CONFIG, "[publication]", '[publication]\nunsubscribe_url = "https://example.org/u/{token}"'),
        BUILD,
        "site_url and unsubscribe_url are both set",
    ),
    ("no site url", edit(CONFIG, "\nsite_url = ", "\n# "), BUILD, "site_url is not set"),
    ("empty disclaimer", edit(CONFIG, "disclaimer = ", 'disclaimer = " "\n# '), BUILD, "disclaimer is required"),
    ("no name", edit(CONFIG, "\nname = ", "\n# "), BUILD, "[publication] name is required"),
    (
        "no from",
        both(edit(CONFIG, "\nfrom = ", "\n# "), setenv("NEWSLETTER_FROM", "")),
        BUILD,
        "[publication] from is required",
    ),
    ("from without address", setenv("NEWSLETTER_FROM", "Seattle Neuro Blog"), BUILD, "NEWSLETTER_FROM"),
    (
        "javascript website url",
        edit(CONFIG, "website_url = ", 'website_url = "javascript:alert(1)"\n# '),
        BUILD,
        "website_url must be an https://, http:// or mailto: URL",
    ),
    (
        "brand colour that is not a colour",
        edit(CONFIG, "brand_color = ", 'brand_color = "red;} body {background:url(https://evil.example/)"\n# '),
        BUILD,
        "is not a CSS colour",
    ),
    (
        "csv without email column",
        write("list.csv", "name,address\nA,a@example.org\n"),
        EXPORT,
        "list.csv:1: no 'email' column",
    ),
    ("empty csv", write("list.csv", ""), EXPORT, "list.csv:1: recipients file is empty"),
    ("missing csv", nothing, EXPORT, "list.csv: no such file"),
    ("csv not UTF-8", write("list.csv", b"email,name\na@example.org,Ren\xe9\n"), EXPORT, "list.csv:2: not UTF-8"),
    (
        "import into escaping edition",
        nothing,
        ("import", str(DATA / "imports" / "bullets.txt"), "--into", ".."),
        "escapes the output folder",
    ),
    ("import empty file", write("empty.txt", "\n\n"), ("import", "empty.txt"), "empty.txt: no article text found"),
    ("import not UTF-8", write("post.txt", b"Title\n\nCaf\xe9\n"), ("import", "post.txt"), "post.txt:3: not UTF-8"),
    ("import twice", nothing, ("import", str(DATA / "imports" / "post.html"), "--into", SAMPLE_EDITION), None),
]


# what a script is told (see `newsletter --help`): settings are EX_CONFIG, a recipients list EX_DATAERR, else 1
CONFIG_CASES = {
    "blank unsubscribe secret", "short unsubscribe secret", "empty key in secret", "unsubscribe url without token",
    "malformed newsletter.toml", "unknown setting", "unsubscribe url not https", "site url and unsubscribe url",
    "no site url", "empty disclaimer", "no name", "no from", "from without address", "javascript website url",
    "brand colour that is not a colour",
}  # fmt: skip
DATA_CASES = {c[0] for c in BAD_INPUT if c[0].startswith(("csv", "empty csv", "missing csv"))}


@pytest.mark.parametrize(
    ("breaker", "command", "expected", "status"),
    [(*c[1:], 78 if c[0] in CONFIG_CASES else 65 if c[0] in DATA_CASES else 1) for c in BAD_INPUT],
    ids=[c[0] for c in BAD_INPUT],
)
def test_bad_input_is_one_clear_line_and_keeps_previous_output(
    project: Path,
    cli,
    monkeypatch: pytest.MonkeyPatch,
    breaker: Breaker,
    command: tuple[str, ...],
    expected: str,
    status: int,
) -> None:
    assert cli(*BUILD).code == 0
    before = {p.name: p.read_bytes() for p in (project / "build" / SAMPLE_EDITION).iterdir()}
    monkeypatch.setenv("NEWSLETTER_FROM", os.environ.get("NEWSLETTER_FROM", "News <news@example.org>"))
    monkeypatch.setenv("NEWSLETTER_UNSUBSCRIBE_SECRET", "")  # so that a breaker's setting is undone
    breaker(project)
    if expected is None:  # the second identical import is the bad input
        assert cli(*command).code == 0
        expected = "already in the edition"
    result = cli(*command)
    assert result.code == status, result.err
    assert expected in result.err, result.err
    assert "Traceback" not in result.err
    assert all(line.startswith("newsletter: ") for line in result.err.splitlines())
    assert len(result.err.splitlines()) == 1 or "check(s) failed" not in result.err
    for line in result.err.splitlines():  # a path is named once, not twice
        words = line.split(": ")
        assert len(words) == len(set(words)), line
    after = {p.name: p.read_bytes() for p in (project / "build" / SAMPLE_EDITION).iterdir()}
    assert after == before


@pytest.mark.parametrize("command", [("export", SAMPLE_EDITION, "--recipients", "list.csv", "--out", "afile"),
                                     ("build", SAMPLE_EDITION, "--out", "afile/x")])  # fmt: skip
def test_output_folder_that_is_a_file_is_one_clear_line(project: Path, cli, command: tuple[str, ...]) -> None:
    write_recipients(project / "list.csv", [["email"], ["a@example.org"]])
    (project / "afile").write_text("keep me")
    result = cli(*command)
    assert result.code == 1 and "Traceback" not in result.err
    assert result.err.startswith("newsletter: afile") and result.err.count("\n") == 1, result.err
    assert "is a file, not a folder" in result.err
    assert (project / "afile").read_text() == "keep me"


def test_spreadsheet_formulas_are_neutralised_in_csv_output(project: Path, cli) -> None:
    evil = "=cmd|'/Ccalc'!A0@example.org"  # a valid address
    write_recipients(project / "list.csv", [["email"], [evil], ["+1@example.org"], ["a@example.org"]])
    assert cli("export", SAMPLE_EDITION, "--recipients", "list.csv", "--out", "out").code == 0
    with (project / "out" / "manifest.csv").open(encoding="utf-8") as handle:
        recipients = [row["recipient"] for row in csv.DictReader(handle)]
    assert recipients == ["'" + evil, "'+1@example.org", "a@example.org"]


def test_export_replaces_what_an_earlier_export_wrote_and_nothing_else(project: Path, cli) -> None:
    write_recipients(project / "list.csv", [["email"], ["a@example.org"], ["b@example.org"], ["c@example.org"]])
    assert cli("export", SAMPLE_EDITION, "--recipients", "list.csv", "--out", "out").code == 0
    (project / "out" / "notes.txt").write_text("mine")
    write_recipients(project / "list.csv", [["email"], ["b@example.org"]])
    assert cli("export", SAMPLE_EDITION, "--recipients", "list.csv", "--out", "out").code == 0
    assert sorted(p.name for p in (project / "out").iterdir()) == ["00001-b@example.org.eml", "manifest.csv",
                                                                  "notes.txt"]  # fmt: skip


def test_output_files_follow_the_umask(project: Path, cli) -> None:
    old = os.umask(0o022)
    try:
        assert cli("build", SAMPLE_EDITION).code == 0
    finally:
        os.umask(old)
    modes = {p.name: p.stat().st_mode & 0o777 for p in (project / "build" / SAMPLE_EDITION).iterdir()}
    assert set(modes.values()) == {0o644}, modes


def test_an_article_linked_from_outside_the_edition_is_refused(project: Path, cli, tmp_path: Path) -> None:
    outside = tmp_path / "secret.md"
    outside.write_text('+++\ntitle = "Secret"\n+++\n\nNot for the newsletter.\n', encoding="utf-8")
    edition = project / "issues" / "linked"
    shutil.copytree(project / "issues" / SAMPLE_EDITION, edition)
    toml = edition / "issue.toml"
    toml.write_text("\n".join(line for line in toml.read_text(encoding="utf-8").splitlines()
                              if not line.startswith("articles")) + "\n", encoding="utf-8")  # fmt: skip
    assert cli("build", "linked").code == 0
    os.symlink(outside, edition / "zz-link.md")
    result = cli("build", "linked")
    assert result.code == 1 and "'zz-link.md' is outside the edition folder" in result.err


def test_article_text_cannot_collide_with_recipient_placeholders(project: Path, cli) -> None:
    from newsletter.edition.placeholders import placeholder

    article = next((project / "issues" / SAMPLE_EDITION).glob("*.md"))
    tokens = " ".join(placeholder(i, "") for i in range(3))  # the tokens of the version before the key
    article.write_text(article.read_text(encoding="utf-8") + f"\nLiteral: {tokens} XNLF999FLNX\n", encoding="utf-8")
    write_recipients(project / "list.csv", [["email", "name"], ["a@example.org", "Ann"]])
    result = cli("export", SAMPLE_EDITION, "--recipients", "list.csv", "--out", "out")
    assert result.code == 0, result.err
    (eml,) = (project / "out").glob("*.eml")
    text, html = parts(parse_message(eml.read_bytes()))
    assert f"Literal: {tokens} XNLF999FLNX" in text
    assert "Literal: XNLF000FLNX" in html


def test_the_public_api_is_what_the_readme_lists() -> None:
    import newsletter

    for name in newsletter.__all__:
        assert getattr(newsletter, name) is not None, name
        if name != "__version__":
            assert f"`{name}`" in (REPO / "README.md").read_text(encoding="utf-8"), name
    with pytest.raises(AttributeError):
        newsletter.no_such_thing  # noqa: B018


@pytest.mark.parametrize("command", [["preview", "back-pain"], ["serve"], ["smtp-capture", "--maildir", "m"]])
@pytest.mark.parametrize("port", ["70000", "0", "http"])
def test_a_port_out_of_range_is_a_usage_error_not_a_traceback(cli, command: list[str], port: str) -> None:
    result = cli(*command, "--port", port)
    assert result.code == 2 and "--port" in result.err and "Traceback" not in result.err
    assert result.err.strip().splitlines()[-1].startswith("newsletter ")


def test_export_files_hold_addresses_so_they_are_owner_only(project: Path, cli) -> None:
    write_recipients(project / "list.csv", [["email"], ["a@example.org"], ["b@example.org"]])
    assert cli("export", SAMPLE_EDITION, "--recipients", "list.csv", "--out", "out").code == 0
    files = list((project / "out").iterdir())
    assert len(files) == 3 and all(stat.S_IMODE(f.stat().st_mode) == 0o600 for f in files), files


@pytest.mark.parametrize("out", ["", ".", "issues/..", "{root}"])
def test_archive_never_writes_into_the_newsletter_folder(project: Path, cli, out: str) -> None:
    before = sorted(p.name for p in project.iterdir())
    result = cli("archive", "--out", out.format(root=project), "--drafts")
    assert result.code == 1 and "is the newsletter's own folder (or holds issues/)" in result.err, result.err
    assert sorted(p.name for p in project.iterdir()) == before
    (project / "public" / "issues").mkdir(parents=True)
    assert cli("archive", "--out", "public").code == 1, "nor into any folder that holds editions"


def test_listing_suppressions_creates_nothing(project: Path, cli) -> None:
    result = cli("suppressions")
    assert result.code == 0 and "0 suppressed address(es)" in result.err
    assert not (project / ".newsletter").exists()


@pytest.mark.parametrize("command", ["serve", "smtp-capture"])
def test_an_empty_host_is_a_usage_error_not_every_interface(cli, command: str) -> None:
    result = cli(command, "--host", "")
    assert result.code == 2 and "give an address" in result.err


def test_a_passphrase_is_one_key_and_each_key_needs_sixteen_bytes(project: Path, cli, monkeypatch) -> None:
    from newsletter.audience.tokens import read_unsubscribe_token, unsubscribe_keys, unsubscribe_token
    from newsletter.base.config import load_publication

    monkeypatch.setenv("NEWSLETTER_UNSUBSCRIBE_SECRET", "correct horse battery staple")
    publication = load_publication(project)
    keys = unsubscribe_keys(publication.unsubscribe_secret)
    assert len(keys) == 1, "spaces are part of the key"
    forged = unsubscribe_token(unsubscribe_keys("horse" * 4), publication.list_id, "victim@example.org")
    assert read_unsubscribe_token(keys, publication.list_id, forged) is None
    for secret, said in ((",", "key 1 of 2 is empty"), ("a-long-enough-key-0,short", "key 2 of 2 is shorter")):
        monkeypatch.setenv("NEWSLETTER_UNSUBSCRIBE_SECRET", secret)
        for command in (("serve",), ("bounces", "--mbox", "none.mbox"), ("export", SAMPLE_EDITION, "--recipients",
                        "x.csv", "--out", "o")):  # fmt: skip
            result = cli(*command)
            assert result.code == 78 and said in result.err, (command, result.err)


@pytest.mark.parametrize("command", [("serve",), ("bounces", "--mbox", "none.mbox")])
def test_no_development_key_for_serve_or_bounces(project: Path, cli, command) -> None:
    result = cli(*command)
    assert result.code == 78 and f"NEWSLETTER_UNSUBSCRIBE_SECRET must be set for `{command[0]}`" in result.err
