"""`newsletter init` and the workspace: a newsletter of one's own from an empty folder, with nothing of the
sample's identity in it; commands find newsletter.toml from any subfolder and say what to do without one."""

from __future__ import annotations

import io
import stat
import sys
import tomllib
from pathlib import Path

import pytest
from conftest import ENV_KEYS, parse_message, parts

from newsletter.cli import main
from newsletter.init import SETTINGS

GARDEN = ["--name", "The Garden Letter", "--from", "Garden Letter <letter@garden.example>",
          "--postal-address", "4 Orchard Lane, Greenfield, GF1 2AB", "--site-url", "https://garden.example",
          "--yes"]  # fmt: skip
# every trace of the shipped sample a new user's newsletter must not carry
SAMPLE_IDENTITY = ["Seattle", "seattle", "911", "VoxMD", "123 Example Street", "example.org", "healthcare"]


@pytest.fixture
def empty(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """An empty folder as the working directory, no newsletter settings in the environment."""
    folder = tmp_path / "garden"
    folder.mkdir()
    for key in ENV_KEYS:
        monkeypatch.delenv(key, raising=False)
    monkeypatch.chdir(folder)
    return folder


def run(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str, str]:
    try:
        code = main([str(a) for a in args])
    except SystemExit as exit_:
        code = int(exit_.code or 0)
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def test_init_then_build_and_check_pass_with_none_of_the_sample_in_the_output(empty: Path, capsys) -> None:
    code, out, err = run(capsys, "init", *GARDEN)
    assert code == 0, err
    assert "wrote .env (readable by you only)" in out and "newsletter build welcome" in out
    code, out, err = run(capsys, "build", "welcome")
    assert code == 0, err
    code, out, err = run(capsys, "check", "welcome", "--quick")
    assert code == 0, err
    built = b"".join(path.read_bytes() for path in (empty / "build" / "welcome").iterdir())
    written = b"".join(path.read_bytes() for path in empty.rglob("*") if path.is_file())
    for trace in SAMPLE_IDENTITY:
        assert trace.encode() not in written, trace
    message = parse_message((empty / "build" / "welcome" / "email.eml").read_bytes())
    assert message["From"].addresses[0].addr_spec == "letter@garden.example"
    assert message["List-Id"] == "The Garden Letter <letter.garden.example>"
    assert message["List-Unsubscribe"].startswith("<https://garden.example/unsubscribe/")
    text, html = parts(message)
    for part in (text, html):
        assert "4 Orchard Lane, Greenfield, GF1 2AB" in part and "The Garden Letter" in part
    assert b"Welcome to The Garden Letter" in built


def test_init_writes_every_setting_a_private_env_and_a_gitignore(empty: Path, capsys) -> None:
    assert run(capsys, "init", *GARDEN)[0] == 0
    toml = (empty / "newsletter.toml").read_text(encoding="utf-8")
    for key, _, _ in SETTINGS:
        assert f"\n{key} = " in toml or f"\n# {key} = " in toml, key
    settings = tomllib.loads(toml)["publication"]
    assert settings["name"] == "The Garden Letter" and settings["site_url"] == "https://garden.example"
    for line in toml.splitlines():  # every key has its one-line comment just above it
        if "=" in line and not line.startswith("#"):
            assert toml.splitlines()[toml.splitlines().index(line) - 1].startswith("# "), line
    env = empty / ".env"
    assert stat.S_IMODE(env.stat().st_mode) == 0o600
    secret = next(line.split("=", 1)[1] for line in env.read_text().splitlines()
                  if line.startswith("NEWSLETTER_UNSUBSCRIBE_SECRET="))  # fmt: skip
    assert len(secret) >= 32
    assert "# SMTP_HOST=" in env.read_text() and "\nSMTP_HOST=" not in env.read_text()
    ignored = (empty / ".gitignore").read_text().splitlines()
    assert {".env", ".newsletter/", "build/"} <= set(ignored)
    assert not (empty / "templates").exists()
    other = empty.parent / "other"
    assert run(capsys, "init", other, *GARDEN)[0] == 0
    other_secret = (other / ".env").read_text()
    assert secret not in other_secret, "each newsletter gets a key of its own"


def test_init_never_overwrites_and_writes_nothing_then(empty: Path, capsys) -> None:
    (empty / ".gitignore").write_text("mine\n")
    code, _, err = run(capsys, "init", *GARDEN)
    assert code == 78 and err == (
        "newsletter: .gitignore: already exists; `init` never overwrites a file (move it away, or init another "
        "folder)\n"
    )
    assert sorted(p.name for p in empty.iterdir()) == [".gitignore"]
    assert (empty / ".gitignore").read_text() == "mine\n"


def test_init_theme_copies_the_templates_that_then_override(empty: Path, capsys) -> None:
    assert run(capsys, "init", *GARDEN, "--theme")[0] == 0
    assert sorted(p.name for p in (empty / "templates").iterdir()) == ["email.html", "email.txt", "page.html"]
    html = empty / "templates" / "email.html"
    html.write_text(html.read_text(encoding="utf-8").replace("Hi {{", "Hello {{"), encoding="utf-8")
    assert run(capsys, "build", "welcome")[0] == 0
    assert "Hello there," in (empty / "build" / "welcome" / "email.html").read_text(encoding="utf-8")


def test_init_without_a_terminal_names_the_answers_it_needs(empty: Path, capsys, monkeypatch) -> None:
    monkeypatch.setattr(sys, "stdin", io.StringIO(""))
    code, _, err = run(capsys, "init", "--name", "X")
    assert code == 2
    assert "give --from, --postal-address, --site-url, --disclaimer, or --yes for the defaults" in err
    assert not list(empty.iterdir())


def test_init_asks_on_a_terminal(empty: Path, capsys, monkeypatch) -> None:
    answers = io.StringIO("The Garden Letter\nGarden Letter <letter@garden.example>\n1 Lane\n\nBe kind.\n")
    answers.isatty = lambda: True  # type: ignore[method-assign]
    monkeypatch.setattr(sys, "stdin", answers)
    code, out, err = run(capsys, "init")
    assert code == 0, err
    assert "Newsletter name [Garden]:" in out and "Site URL where `newsletter serve` will answer" in out
    settings = tomllib.loads((empty / "newsletter.toml").read_text(encoding="utf-8"))["publication"]
    assert settings["from"] == "Garden Letter <letter@garden.example>" and settings["disclaimer"] == "Be kind."
    assert settings["site_url"] == "http://127.0.0.1:8080", "an empty answer takes the default"


def test_init_refuses_bad_answers_before_writing(empty: Path, capsys) -> None:
    code, _, err = run(capsys, "init", *GARDEN[:-3], "--site-url", "javascript:alert(1)", "--yes")
    assert code == 78 and "--site-url must be an https:// URL" in err
    code, _, err = run(capsys, "init", "--name", "G", "--from", "nobody", "--yes")
    assert code == 78 and "--from" in err
    assert not list(empty.iterdir())


def test_the_defaults_build_but_check_asks_for_a_real_sender_and_address(empty: Path, capsys) -> None:
    assert run(capsys, "init", "--yes")[0] == 0
    assert run(capsys, "build", "welcome")[0] == 0
    code, _, err = run(capsys, "check", "welcome", "--quick")
    assert code == 1
    assert "[publication] from is at example.com, a placeholder domain" in err
    assert "[publication] postal_address is missing" in err


def test_commands_find_the_workspace_from_a_subfolder(empty: Path, capsys, monkeypatch) -> None:
    assert run(capsys, "init", *GARDEN)[0] == 0
    monkeypatch.chdir(empty / "issues" / "welcome")
    code, _, err = run(capsys, "build", "welcome")
    assert code == 0, err
    assert (empty / "build" / "welcome" / "email.eml").is_file()
    assert run(capsys, "check", ".", "--quick")[0] == 0, "the edition as a folder, relative to where one stands"


def test_without_a_workspace_every_command_says_to_run_init(empty: Path, capsys) -> None:
    for command in (["build", "x"], ["check", "x"], ["suppressions"], ["archive", "--out", "a"], ["serve"]):
        code, _, err = run(capsys, *command)
        assert code == 78, command
        assert err == "newsletter: no newsletter.toml here or above: run `newsletter init` to start a newsletter\n"
    assert not list(empty.iterdir()), "nothing was created"
