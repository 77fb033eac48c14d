"""Group commit on an event loop: writes that arrive together share one call; errors reach every writer."""

from __future__ import annotations

import asyncio

import pytest

from newsletter.delivery.groupcommit import GroupCommit


def test_writes_submitted_together_share_one_call_and_each_gets_its_answer() -> None:
    calls: list[list[int]] = []

    def write(items: list[int]) -> list[int]:
        calls.append(items)
        return [item * 10 for item in items]

    async def main() -> list[int]:
        group = GroupCommit(write)
        first = await asyncio.gather(*(group.submit(i) for i in range(5)))
        later = await group.submit(7)  # alone: nobody is held back to fill a group
        return [*first, later]

    assert asyncio.run(main()) == [0, 10, 20, 30, 40, 70]
    assert calls == [[0, 1, 2, 3, 4], [7]]


def test_a_write_that_fails_fails_every_writer_of_its_group() -> None:
    def write(items: list[str]) -> list[None]:
        raise OSError("disk full")

    async def main() -> list[BaseException]:
        group = GroupCommit(write)
        return await asyncio.gather(group.submit("a"), group.submit("b"), return_exceptions=True)

    errors = asyncio.run(main())
    assert [str(e) for e in errors] == ["disk full", "disk full"]


def test_a_cancelled_writer_is_skipped_and_the_others_answered() -> None:
    async def main() -> str:
        group = GroupCommit(lambda items: [f"ok {item}" for item in items])
        gone, kept = group.submit("gone"), group.submit("kept")
        gone.cancel()
        with pytest.raises(asyncio.CancelledError):
            await gone
        return await kept

    assert asyncio.run(main()) == "ok kept"
