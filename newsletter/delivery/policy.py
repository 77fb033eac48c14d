"""How a send reacts to failures and to a server that asks it to slow down: pure decisions, no I/O, no clock.

Every function takes the time it needs as an argument, so tests/test_policy.py checks each rule directly.
- `RetryPolicy`: what a failed delivery means for its recipient (retry when, give up when).
- `Throttle`: how many connections may work, additive increase / multiplicative decrease (AIMD), the way TCP
  shares a link: a "slow down" reply halves them, every quiet `recovery` seconds give one back.
- `FailureWatch`: when a run should stop rather than keep failing (N failures in a row, or failing without
  a single delivery for `give_up_after` seconds).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from ..base.errors import (
    ConfigError,
    ConnectionFailed,
    DeliveryError,
    OutcomeUnknown,
    PermanentFailure,
    SetupFailed,
)
from .journal import Outcome, RateLimit, State


@dataclass(frozen=True)
class RetryPolicy:
    max_attempts: int = 5
    retry_delay: float = 1.0  # first backoff; doubles per attempt
    max_retry_delay: float = 60.0

    def backoff(self, attempt: int) -> float:
        """Exponential: retry_delay, doubling per attempt, capped at max_retry_delay."""
        return min(self.retry_delay * 2 ** max(attempt - 1, 0), self.max_retry_delay)

    def outcome(self, error: DeliveryError, attempts_before: int) -> Outcome:
        """What a failed delivery means for its recipient, who had `attempts_before` charged attempts."""
        reason = str(error)
        if isinstance(error, SetupFailed):  # our settings, not the recipient: back in the queue, uncharged
            return Outcome(State.PENDING, reason, charge_attempt=False)
        if isinstance(error, OutcomeUnknown):
            return Outcome(State.IN_DOUBT, reason)  # the server may have stored it (RFC 1047)
        if isinstance(error, PermanentFailure) or error.permanent:
            return Outcome(State.FAILED, reason)
        if error.slow_down:  # the server is busy, not this recipient: again after a pause, uncharged
            return Outcome(State.PENDING, reason, charge_attempt=False, retry_in=self.backoff(1))
        if isinstance(error, ConnectionFailed):  # the connection broke before the message went out
            return Outcome(State.PENDING, reason, charge_attempt=False)
        attempts = attempts_before + 1
        if attempts >= self.max_attempts:
            return Outcome(State.FAILED, f"gave up after {attempts} attempts: {reason}")
        return Outcome(State.PENDING, reason, retry_in=self.backoff(attempts))


class Throttle:
    """How many of a run's connections may send now: `allowed`, between 1 and `maximum`."""

    def __init__(self, maximum: int, recovery: float = 5.0, cooldown: float = 1.0) -> None:
        self.maximum = maximum
        self.allowed = maximum
        self.recovery = recovery  # quiet seconds per connection given back
        self.cooldown = cooldown  # slow-down replies within this many seconds of a cut count as one
        self._changed = -math.inf

    def slow_down(self, now: float) -> bool:
        """The server asked us to slow down: halve the connections (once per burst); True when it changed."""
        if now - self._changed < self.cooldown:
            return False
        self._changed = now
        before, self.allowed = self.allowed, max(1, self.allowed // 2)
        return self.allowed != before

    def delivered(self, now: float) -> bool:
        """A message went through: after `recovery` quiet seconds, one more connection; True when it changed."""
        if self.allowed >= self.maximum or now - self._changed < self.recovery:
            return False
        self._changed = now
        self.allowed += 1
        return True

    @property
    def throttled(self) -> bool:
        return self.allowed < self.maximum


class FailureWatch:
    """Says when a run must stop: `max_consecutive` failures in a row, or failing for `give_up_after` seconds
    since the last delivery without one getting through (a server that cannot be reached)."""

    def __init__(self, max_consecutive: int, give_up_after: float) -> None:
        self.max_consecutive = max_consecutive
        self.give_up_after = give_up_after
        self.consecutive = 0
        self.failing_since: float | None = None

    def delivered(self) -> None:
        self.consecutive = 0
        self.failing_since = None

    def failed(self, now: float, reason: str) -> str | None:
        """Count a failure; returns why the run must stop, or None to go on."""
        self.consecutive += 1
        if self.failing_since is None:
            self.failing_since = now
        if self.consecutive >= self.max_consecutive:
            return f"stopped after {self.consecutive} consecutive failed sends (last: {reason})"
        if now - self.failing_since >= self.give_up_after:
            return (
                f"stopped: nothing delivered for {self.give_up_after:g} s while every attempt failed (last: {reason})"
            )
        return None


@dataclass(frozen=True)
class SendOptions:
    """How a send goes: its connections, its pace, how it retries and when it gives up."""

    connections: int = 1
    rate: float | None = None  # messages per second
    per_hour: int | None = None
    resend_in_doubt: bool = False
    max_consecutive_failures: int = 20
    max_attempts: int = 5
    retry_delay: float = 1.0  # first backoff; doubles per consecutive temporary failure
    max_retry_delay: float = 60.0
    give_up_after: float = 60.0  # stop when every attempt has failed for this long (server unreachable)
    limit: int | None = None  # send at most this many messages in this run (warming up a new sender)
    verbose: bool = False

    def __post_init__(self) -> None:
        """Library callers get the same refusals as the command line: before anything is created."""
        for name in ("connections", "rate", "per_hour", "retry_delay", "give_up_after", "limit"):
            value = getattr(self, name)
            if value is not None and not (math.isfinite(value) and value > 0):
                raise ConfigError(f"send option {name} must be a positive number, got {value!r}")

    def limits(self) -> tuple[RateLimit, ...]:
        limits = []
        if self.rate:
            count = max(1, int(self.rate))
            limits.append(RateLimit(count, count / self.rate))
        if self.per_hour:
            limits.append(RateLimit(self.per_hour, 3600.0))
        return tuple(limits)

    def describe_rate(self) -> str:
        parts = ([f"{self.rate:g}/s"] if self.rate else []) + ([f"{self.per_hour}/hour"] if self.per_hour else [])
        return " and ".join(parts) or "unlimited"

    def retry_policy(self) -> RetryPolicy:
        return RetryPolicy(self.max_attempts, self.retry_delay, self.max_retry_delay)
