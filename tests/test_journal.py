"""The send journal's parts on their own: window, intake, rate limiter, durable store, reader; real SQLite files."""

from __future__ import annotations

import sqlite3
import stat
from pathlib import Path

import pytest

from newsletter.audience.recipients import Position
from newsletter.base.errors import ContentError, JournalError
from newsletter.base.model import Recipient
from newsletter.delivery.journal import (
    Claim,
    Journal,
    JournalReader,
    JournalStore,
    Outcome,
    Pending,
    PendingWindow,
    RateLimit,
    RateLimiter,
    State,
    Step,
    open_existing,
)


def rows(count: int) -> list[tuple[Recipient, str, str]]:
    """(recipient, mailbox key, Message-ID) rows, as the intake adds them."""
    return [(Recipient(f"r{i}@example.org", f"Reader {i}", line=i + 2), f"r{i}@example.org", f"<{i}@example.org>")
            for i in range(count)]  # fmt: skip


@pytest.fixture
def store(tmp_path: Path):
    store = JournalStore(tmp_path / "journal" / "edition.sqlite")
    store.start("edition-print", "recipients-print", tmp_path / "list.csv")
    store.add(rows(5), Position(500, 6), read_all=True)
    yield store
    store.close()


def pending(row_id: int, not_before: float = 0.0, attempts: int = 0) -> Pending:
    return Pending(row_id, f"r{row_id}@example.org", Recipient(f"r{row_id}@example.org"), "<m>", attempts, not_before)


def test_window_gives_rows_in_order_and_retries_when_due() -> None:
    window = PendingWindow(size=4)
    window.add([pending(1), pending(2), pending(3, not_before=50.0, attempts=1)], now=10.0, read_to=3)
    first = window.next_due(10.0)
    assert first.id == 1
    window.retry(first, due=20.0, charged=True)
    assert window.next_due(11.0).id == 2
    assert window.next_due(12.0) is None and window.wait(12.0) == 8.0
    again = window.next_due(20.0)
    assert again.id == 1 and again.attempts == 1
    assert window.next_due(49.0) is None
    assert window.next_due(50.0).id == 3 and window.wait(50.0) is None and window.held == 0


def test_window_past_its_retry_limit_leaves_retries_in_the_journal_for_a_second_pass() -> None:
    window = PendingWindow(size=4, retry_limit=1)
    window.add([pending(1, not_before=50.0), pending(2, not_before=60.0)], now=10.0, read_to=2)
    assert window.held == 1 and window.wait(10.0) == 40.0
    assert not window.rewind(), "no second pass while a retry is still held"
    assert window.next_due(50.0).id == 1
    assert window.rewind() and window.cursor == 0
    window.add([pending(2, not_before=60.0)], now=50.0, read_to=2)
    assert window.next_due(60.0).id == 2 and window.wait(60.0) is None


def test_rate_limiter_counts_the_history_of_earlier_runs() -> None:
    limiter = RateLimiter((RateLimit(2, 1.0, slack=0.0),), history=[9.5, 9.8])
    assert limiter.wait(10.0) == pytest.approx(0.5)
    assert limiter.wait(10.5) == 0.0
    limiter.record(10.5)
    assert limiter.wait(10.6) == pytest.approx(0.2)


def test_rate_limiter_without_limits_never_waits() -> None:
    limiter = RateLimiter(())
    limiter.record(1.0)
    assert limiter.wait(1.0) == 0.0


def test_files_with_subscriber_data_are_owner_only_whatever_the_umask(tmp_path: Path, store: JournalStore) -> None:
    journal = Journal(store, ())
    journal.advance([Step()])
    files = [store.path, store.path.with_name(store.path.name + "-wal"), store.path.with_name(store.path.name + "-shm")]
    for path in files:
        assert path.exists(), path
        assert stat.S_IMODE(path.stat().st_mode) == 0o600, path
    assert stat.S_IMODE(store.path.parent.stat().st_mode) == 0o700


def test_an_older_world_readable_journal_is_tightened_when_opened(tmp_path: Path) -> None:
    path = tmp_path / "old.sqlite"
    sqlite3.connect(path).close()
    path.chmod(0o644)
    JournalStore(path).close()
    assert stat.S_IMODE(path.stat().st_mode) == 0o600


def test_advance_records_outcomes_and_claims_in_one_commit(store: JournalStore) -> None:
    journal = Journal(store, ())
    first, second = journal.advance([Step(), Step()])
    assert isinstance(first, Claim) and isinstance(second, Claim)
    assert (first.recipient.email, second.recipient.email) == ("r0@example.org", "r1@example.org")
    assert first.message_id == "<0@example.org>"
    with JournalReader(store.path) as reader:  # a separate connection sees only committed state
        assert reader.counts()["sending"] == 2
    answers = journal.advance([
        Step(first, Outcome(State.SENT, "250 ok")),
        Step(second, Outcome(State.PENDING, "451 later", retry_in=60.0), claim_next=False),
    ])  # fmt: skip
    assert answers[1] is None and isinstance(answers[0], Claim) and answers[0].recipient.email == "r2@example.org"
    with JournalReader(store.path) as reader:
        counts = reader.counts()
    assert (counts["sent"], counts["sending"], counts["pending"]) == (1, 1, 3)


def test_recover_turns_sending_into_in_doubt_and_release_brings_them_back(store: JournalStore) -> None:
    Journal(store, ()).advance([Step()])
    assert store.recover() == 1
    (problem,) = store.problems()
    assert problem[:2] == ("r0@example.org", "in-doubt") and "may or may not have it" in problem[3]
    assert store.release_in_doubt() == 1
    assert store.counts()["pending"] == 5


def test_suppressed_recipients_are_skipped(store: JournalStore) -> None:
    assert store.skip(["r1@example.org", "nobody@example.org"]) == [2]
    assert store.counts()["skipped"] == 1


def test_a_mailbox_already_in_the_journal_is_not_added_again(store: JournalStore) -> None:
    again = Recipient("R1@example.org", line=40)
    assert store.add([(again, "r1@example.org", "<x>")], Position(600, 40), read_all=True) == [(again, 3)]
    assert sum(store.counts().values()) == 5


def test_counts_kept_beside_the_rows_match_a_full_count(store: JournalStore) -> None:
    journal = Journal(store, ())
    first, second, third = journal.advance([Step(), Step(), Step()])
    assert journal.skip({"r4@example.org"}) == 1
    retry = Outcome(State.PENDING, "451", retry_in=60.0)
    answers = journal.advance([Step(first, Outcome(State.SENT)), Step(second, Outcome(State.FAILED, "550 no")),
                               Step(third, retry, claim_next=False)])  # fmt: skip
    assert answers[0].recipient.email == "r3@example.org" and answers[1:] == [None, None], "r4 left the list"
    store.recover()
    by_scan = dict(store._db.execute("SELECT state, count(*) FROM recipients GROUP BY state"))
    assert {state: n for state, n in store.counts().items() if n} == by_scan
    assert by_scan == {"sent": 1, "failed": 1, "pending": 1, "in-doubt": 1, "skipped": 1}


def test_only_one_writer_at_a_time(store: JournalStore) -> None:
    with pytest.raises(ContentError, match="another `newsletter send` of this edition is running"):
        JournalStore(store.path)


def test_the_same_send_is_recognised_and_a_different_one_refused(store: JournalStore, tmp_path: Path) -> None:
    assert store.check_same_send("edition-print", "recipients-print", tmp_path / "list.csv")
    with pytest.raises(ContentError, match="different recipients list"):
        store.check_same_send("edition-print", "other", tmp_path / "other.csv")
    with pytest.raises(ContentError, match="the edition changed after this send started"):
        store.check_same_send("other", "recipients-print", tmp_path / "list.csv")


@pytest.mark.parametrize("content", [b"this is not a database at all" * 40, b""], ids=["garbage", "empty"])
def test_a_corrupt_or_empty_file_is_one_journal_error(tmp_path: Path, content: bytes) -> None:
    path = tmp_path / "broken.sqlite"
    path.write_bytes(content)
    with pytest.raises(JournalError) as raised:
        JournalReader(path)
    assert str(raised.value).startswith(f"{path}: cannot read the send journal: ")
    assert "\n" not in str(raised.value)


def test_another_programs_database_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "foreign.sqlite"
    with sqlite3.connect(path) as db:
        db.execute("CREATE TABLE meta (something TEXT)")
    with pytest.raises(JournalError, match="is it a newsletter send journal"):
        JournalReader(path)
    with pytest.raises(JournalError, match="is it a newsletter send journal"):
        JournalStore(path)


def test_status_of_an_edition_never_sent_is_a_clear_error(tmp_path: Path) -> None:
    with pytest.raises(ContentError, match="this edition has not been sent yet"):
        open_existing(tmp_path, "back-pain")


def test_a_restart_reads_only_the_claim_times_its_rate_limits_need(store: JournalStore) -> None:
    journal = Journal(store, ())
    claims = journal.advance([Step()] * 5)
    journal.advance([Step(claim, Outcome(State.SENT)) for claim in claims])
    assert store.claim_history(0.0, 2) == sorted(store.claim_history(0.0, 100))[-2:]
    assert store.claim_history(0.0, 0) == [], "no limits, no history held"
    limiter = RateLimiter((RateLimit(3, 60.0), RateLimit(1, 1.0)))
    assert limiter.keeps == 3
