"""The send policies as pure functions of their inputs: what a failure means, AIMD pacing, when to stop."""

from __future__ import annotations

import pytest

from newsletter.base.errors import (
    AuthenticationFailed,
    ConnectionFailed,
    OutcomeUnknown,
    PermanentFailure,
    TemporaryFailure,
)
from newsletter.delivery.journal import State
from newsletter.delivery.policy import FailureWatch, RetryPolicy, Throttle


def test_backoff_doubles_and_is_capped() -> None:
    policy = RetryPolicy(retry_delay=1.0, max_retry_delay=5.0)
    assert [policy.backoff(n) for n in range(1, 6)] == [1.0, 2.0, 4.0, 5.0, 5.0]


@pytest.mark.parametrize(
    ("error", "state", "charged", "retry_in"),
    [
        (PermanentFailure("550 no such user", 550), State.FAILED, True, 0.0),
        (OutcomeUnknown("lost after the final dot"), State.IN_DOUBT, True, 0.0),
        (TemporaryFailure("451 try later", 451), State.PENDING, True, 2.0),  # second attempt: 1 s doubled
        (ConnectionFailed("connection closed before MAIL"), State.PENDING, False, 0.0),
        (TemporaryFailure("421 4.7.0 too many connections", 421, slow_down=True), State.PENDING, False, 1.0),
        (AuthenticationFailed("535 bad password", 535), State.PENDING, False, 0.0),
    ],
    ids=["5xx", "in-doubt", "4xx", "connection", "slow-down", "setup"],
)
def test_what_a_failure_means_for_the_recipient(error, state, charged, retry_in) -> None:
    outcome = RetryPolicy(retry_delay=1.0).outcome(error, attempts_before=1)
    assert (outcome.state, outcome.charge_attempt, outcome.retry_in) == (state, charged, retry_in)
    assert outcome.reply == str(error)


def test_temporary_failures_give_up_after_max_attempts() -> None:
    policy = RetryPolicy(max_attempts=3)
    error = TemporaryFailure("451 later", 451)
    assert policy.outcome(error, attempts_before=1).state == State.PENDING
    final = policy.outcome(error, attempts_before=2)
    assert final.state == State.FAILED and final.reply == "gave up after 3 attempts: 451 later"


def test_throttle_halves_once_per_burst_and_recovers_one_at_a_time() -> None:
    throttle = Throttle(8, recovery=5.0, cooldown=1.0)
    assert throttle.slow_down(now=100.0) and throttle.allowed == 4
    assert not throttle.slow_down(now=100.5), "a burst of 421s from every lane counts once"
    assert throttle.allowed == 4
    assert throttle.slow_down(now=101.5) and throttle.allowed == 2
    assert not throttle.delivered(now=104.0), "no recovery before `recovery` quiet seconds"
    assert throttle.delivered(now=106.5) and throttle.allowed == 3
    assert not throttle.delivered(now=107.0)
    assert throttle.delivered(now=111.5) and throttle.allowed == 4
    for now in (120.0, 130.0, 140.0, 150.0, 160.0):
        throttle.delivered(now)
    assert throttle.allowed == 8 and not throttle.throttled
    assert not throttle.delivered(now=200.0), "never above the maximum"


def test_throttle_never_goes_below_one_connection() -> None:
    throttle = Throttle(2, cooldown=0.0)
    throttle.slow_down(1.0)
    assert not throttle.slow_down(2.0) and throttle.allowed == 1


def test_failure_watch_stops_after_consecutive_failures_and_resets_on_delivery() -> None:
    watch = FailureWatch(max_consecutive=3, give_up_after=1000.0)
    assert watch.failed(1.0, "451 a") is None
    assert watch.failed(2.0, "451 b") is None
    watch.delivered()
    assert watch.failed(3.0, "451 c") is None and watch.failed(4.0, "451 d") is None
    assert watch.failed(5.0, "451 e") == "stopped after 3 consecutive failed sends (last: 451 e)"


def test_failure_watch_gives_up_when_nothing_gets_through_for_long() -> None:
    watch = FailureWatch(max_consecutive=1000, give_up_after=60.0)
    assert watch.failed(10.0, "connection refused") is None
    assert watch.failed(69.0, "connection refused") is None
    stop = watch.failed(70.0, "connection refused")
    assert stop == "stopped: nothing delivered for 60 s while every attempt failed (last: connection refused)"
