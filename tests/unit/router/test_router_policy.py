"""The pure failure policy: classification, Retry-After, backoff, cooldowns."""

from __future__ import annotations

import email.utils
import threading

import pytest

from dify_lambda.router.policy import (
    CooldownTracker,
    Failure,
    RetryPolicy,
    classify_response,
    parse_retry_after,
)


@pytest.mark.parametrize(
    ("status", "headers", "kind"),
    [
        (200, {}, None),
        (200, {"x-amzn-errortype": "Runtime.ExitError"}, "status"),
        (200, {"x-amzn-errortype": "TooManyRequestsException"}, "throttled"),
        (429, {}, "throttled"),
        (502, {}, "status"),
        (503, {}, "status"),
        (504, {}, "status"),
        (401, {}, "auth"),
        (403, {"x-amzn-errortype": "AccessDeniedException"}, "auth"),
        (400, {}, "fatal"),
        (413, {"x-amzn-errortype": "RequestEntityTooLargeException"}, "fatal"),
        (500, {}, "fatal"),
    ],
)
def test_classify_response(status: int, headers: dict[str, str], kind: str | None) -> None:
    failure = classify_response(status, headers)
    assert (failure.kind if failure else None) == kind


def test_error_type_with_suffix_is_trimmed() -> None:
    failure = classify_response(429, {"x-amzn-errortype": "TooManyRequestsException:http://x"})
    assert failure == Failure("throttled", 429, "TooManyRequestsException", None)


def test_retryable_and_fail_over_flags() -> None:
    assert Failure("throttled").retryable and Failure("connect").retryable and Failure("status").retryable
    assert not Failure("auth").retryable and Failure("auth").fail_over
    assert not Failure("fatal").fail_over


def test_parse_retry_after_seconds_and_date() -> None:
    assert parse_retry_after("7") == 7.0
    assert parse_retry_after(None) is None
    assert parse_retry_after("soon") is None
    assert parse_retry_after("-3") == 0.0
    now = 1_700_000_000.0
    date = email.utils.formatdate(now + 20, usegmt=True)
    assert parse_retry_after(date, now=now) == pytest.approx(20)


def test_backoff_doubles_with_jitter_bounds() -> None:
    policy = RetryPolicy(base_delay=0.5, max_delay=30)
    f = Failure("status", 502)
    assert policy.backoff(1, f, lambda: 0.0) == 0.25
    assert policy.backoff(1, f, lambda: 1.0) == 0.5
    assert policy.backoff(3, f, lambda: 1.0) == 2.0
    assert policy.backoff(20, f, lambda: 1.0) == 30.0  # capped


def test_backoff_honours_retry_after() -> None:
    policy = RetryPolicy()
    assert policy.backoff(1, Failure("throttled", 429, retry_after=4), lambda: 0.0) == 4
    assert policy.backoff(1, Failure("throttled", 429, retry_after=31), lambda: 0.0) is None


def test_cooldown_durations() -> None:
    policy = RetryPolicy()
    assert policy.cooldown(Failure("throttled")) == 60
    assert policy.cooldown(Failure("throttled", retry_after=5)) == 5
    assert policy.cooldown(Failure("auth")) == 10
    assert policy.cooldown(Failure("connect")) == 10
    assert policy.cooldown(Failure("status", 502)) == 0
    custom = RetryPolicy(throttle_cooldown=1, auth_cooldown=2, connect_cooldown=3)
    assert [custom.cooldown(Failure(k)) for k in ("throttled", "auth", "connect")] == [1, 2, 3]  # type: ignore[arg-type]


def test_policy_validation() -> None:
    with pytest.raises(ValueError, match="max_attempts"):
        RetryPolicy(max_attempts=0)


def test_cooldown_tracker_keeps_the_longest_and_expires() -> None:
    now = [0.0]
    tracker = CooldownTracker(clock=lambda: now[0])
    tracker.cool("a", 10)
    tracker.cool("a", 5)
    assert tracker.remaining("a") == 10
    now[0] = 9.0
    assert tracker.remaining("a") == 1
    now[0] = 10.0
    assert tracker.remaining("a") == 0
    tracker.cool("b", 0)
    assert tracker.remaining("b") == 0


def test_cooldown_tracker_remembers_the_kind_of_the_longest_cooldown() -> None:
    now = [0.0]
    tracker = CooldownTracker(clock=lambda: now[0])
    tracker.cool("a", 10, "connect")
    tracker.cool("a", 5, "throttled")  # shorter: neither the deadline nor the kind changes
    assert tracker.kind("a") == "connect"
    tracker.cool("a", 60, "throttled")
    assert tracker.kind("a") == "throttled"
    now[0] = 60.0
    assert tracker.kind("a") == ""
    assert tracker.kind("never") == ""


def test_cooldown_tracker_is_thread_safe() -> None:
    tracker = CooldownTracker(clock=lambda: 0.0)

    def work(i: int) -> None:
        for j in range(200):
            tracker.cool(f"k{j % 10}", float(i + j))
            tracker.remaining(f"k{j % 10}")

    threads = [threading.Thread(target=work, args=(i,)) for i in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert tracker.remaining("k9") == 7 + 199
