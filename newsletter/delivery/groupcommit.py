"""Group commit on an event loop: many tasks' writes share one durable transaction.

Both the send loop (journal steps) and `serve` (one-click suppressions) have many tasks on one asyncio loop that
each need a small write made durable before they go on. One fsync per write would be most of their time; this
gathers the writes into one transaction without holding anyone back to fill a batch: the transaction runs two
turns of the loop after the first write asks (microseconds, no timer), so whatever had already arrived in the
socket buffers reaches its task and joins, and no more. The transaction runs on the loop's own thread and blocks
it for one fsync, during which the next writers queue up for the following group. Two turns gather about twice
the writes of one; a helper thread for the transaction is slower, since it needs the GIL back after each fsync
(figures in docs/benchmarks.md).
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Sequence
from typing import Generic, TypeVar

Item = TypeVar("Item")
Answer = TypeVar("Answer")
TURNS = 2  # turns of the loop between the first write of a group and its transaction


class GroupCommit(Generic[Item, Answer]):
    """`submit(item)` returns a future for the item's answer; `write(items)` commits a group and returns one
    answer per item. An exception from `write` is every item's answer."""

    def __init__(self, write: Callable[[list[Item]], Sequence[Answer]]) -> None:
        self.write = write
        self.waiting: list[tuple[Item, asyncio.Future[Answer]]] = []

    def submit(self, item: Item) -> asyncio.Future[Answer]:
        """Called from a task of the running loop."""
        loop = asyncio.get_running_loop()
        future = loop.create_future()
        if not self.waiting:
            loop.call_soon(self._commit, loop, TURNS)
        self.waiting.append((item, future))
        return future

    def _commit(self, loop: asyncio.AbstractEventLoop, turns: int) -> None:
        if turns:  # let what already arrived reach its task and join this group
            loop.call_soon(self._commit, loop, turns - 1)
            return
        group, self.waiting = self.waiting, []
        try:
            answers: Sequence[Answer | BaseException] = self.write([item for item, _ in group])
        except Exception as error:
            answers = [error] * len(group)
        for (_, future), answer in zip(group, answers, strict=True):
            if future.done():  # its task was cancelled (a second Ctrl-C)
                continue
            if isinstance(answer, BaseException):
                future.set_exception(answer)
            else:
                future.set_result(answer)
