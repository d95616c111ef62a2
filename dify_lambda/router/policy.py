"""Failure policy: what is retried, how long to wait, which deployment cools down. Pure functions.

Rules (only ever applied *before the first event* of a response):

==========================================  =========  ==========================  ===============
Condition                                   kind       retry                       cooldown
==========================================  =========  ==========================  ===============
429, or ``TooManyRequestsException``        throttled  yes, after ``Retry-After``  ``Retry-After``
                                                       (or backoff)                or 60 s
502 / 503 / 504                             status     yes, after backoff          none
2xx with an ``x-amzn-ErrorType`` header     status     yes, after backoff          none
connection error (connect, reset, ...)      connect    yes, after backoff          10 s
401 / 403                                   auth       other deployments only      10 s
anything else non-2xx (400, 413, 500 ...)   fatal      no                          none
==========================================  =========  ==========================  ===============

Backoff before retry *n* (1-based): ``min(max_delay, base_delay * 2**(n-1))`` scaled by a jitter
factor in ``[0.5, 1.0)``, at least ``Retry-After``. Retries never wait longer than ``max_delay``:
a longer ``Retry-After`` fails the call instead (the deployment still cools down for that long).
"""

from __future__ import annotations

import email.utils
import math
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Literal

__all__ = [
    "CooldownTracker",
    "Failure",
    "FailureKind",
    "RetryPolicy",
    "classify_response",
    "classify_transport_error",
    "parse_retry_after",
]

FailureKind = Literal["throttled", "status", "connect", "auth", "fatal"]
THROTTLE_ERROR_TYPES = frozenset({"TooManyRequestsException", "ThrottlingException"})
GATEWAY_STATUSES = frozenset({502, 503, 504})


@dataclass(frozen=True, slots=True)
class Failure:
    """A classified failure before the first event."""

    kind: FailureKind
    status: int | None = None
    error_type: str = ""
    retry_after: float | None = None

    @property
    def retryable(self) -> bool:
        return self.kind in ("throttled", "status", "connect")

    @property
    def fail_over(self) -> bool:
        """True when trying *another* deployment may help (retryable kinds plus auth)."""
        return self.retryable or self.kind == "auth"


def parse_retry_after(value: str | None, *, now: float | None = None) -> float | None:
    """Seconds from a ``Retry-After`` header (delta-seconds or an HTTP date); None when absent/invalid."""
    if not value:
        return None
    value = value.strip()
    try:
        seconds = float(value)
    except ValueError:
        try:
            when = email.utils.parsedate_to_datetime(value)
        except (TypeError, ValueError):
            return None
        seconds = when.timestamp() - (time.time() if now is None else now)
    if math.isnan(seconds) or math.isinf(seconds):
        return None
    return max(0.0, seconds)


def classify_response(status: int, headers: Mapping[str, str], *, now: float | None = None) -> Failure | None:
    """None for a response whose body should be read as the event stream, else the failure."""
    error_type = headers.get("x-amzn-errortype", "").split(":", 1)[0].strip()
    retry_after = parse_retry_after(headers.get("retry-after"), now=now)
    if status == 429 or error_type in THROTTLE_ERROR_TYPES:
        return Failure("throttled", status, error_type, retry_after)
    if 200 <= status < 300:
        return Failure("status", status, error_type, retry_after) if error_type else None
    if status in GATEWAY_STATUSES:
        return Failure("status", status, error_type, retry_after)
    if status in (401, 403):
        return Failure("auth", status, error_type)
    return Failure("fatal", status, error_type)


def classify_transport_error(exc: BaseException) -> Failure:
    """A connection that failed or broke before the first event (connect, reset, protocol)."""
    return Failure("connect", error_type=type(exc).__name__)


@dataclass(frozen=True, slots=True)
class RetryPolicy:
    """Attempts (across deployments), backoff and cooldown durations; all configurable."""

    max_attempts: int = 3
    base_delay: float = 0.5
    max_delay: float = 30.0
    throttle_cooldown: float = 60.0
    auth_cooldown: float = 10.0
    connect_cooldown: float = 10.0

    def __post_init__(self) -> None:
        if self.max_attempts < 1:
            raise ValueError("max_attempts must be >= 1")
        if self.base_delay < 0 or self.max_delay < 0:
            raise ValueError("delays must be >= 0")

    def cooldown(self, failure: Failure) -> float:
        if failure.kind == "throttled":
            return failure.retry_after if failure.retry_after is not None else self.throttle_cooldown
        if failure.kind == "auth":
            return self.auth_cooldown
        if failure.kind == "connect":
            return self.connect_cooldown
        return 0.0

    def backoff(self, retry_number: int, failure: Failure, rng: Callable[[], float]) -> float | None:
        """Seconds to wait before retry ``retry_number`` (1-based); None when the wait is too long."""
        delay = min(self.max_delay, self.base_delay * 2 ** (retry_number - 1)) * (0.5 + rng() / 2)
        if failure.retry_after is not None:
            if failure.retry_after > self.max_delay:
                return None
            delay = max(delay, failure.retry_after)
        return float(delay)


@dataclass
class CooldownTracker:
    """Per-deployment cooldowns kept in memory by the router (thread and greenlet safe).

    Each cooldown remembers the kind of failure that caused it, so a call refused during the
    cooldown can report the same kind of error as the failure itself (a connection failure stays
    a daemon-level transport error for the host).
    """

    clock: Callable[[], float] = time.monotonic
    _until: dict[str, tuple[float, str]] = field(default_factory=dict)
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def cool(self, key: str, seconds: float, kind: FailureKind | None = None) -> None:
        if seconds <= 0:
            return
        until = self.clock() + seconds
        with self._lock:
            if until > self._until.get(key, (0.0, ""))[0]:
                self._until[key] = (until, kind or "")

    def remaining(self, key: str) -> float:
        with self._lock:
            entry = self._until.get(key)
            if entry is None:
                return 0.0
            left = entry[0] - self.clock()
            if left <= 0:
                del self._until[key]
                return 0.0
            return left

    def kind(self, key: str) -> str:
        """The failure kind behind ``key``'s current cooldown; ``""`` when none (or not given)."""
        with self._lock:
            entry = self._until.get(key)
            return entry[1] if entry is not None and entry[0] > self.clock() else ""
