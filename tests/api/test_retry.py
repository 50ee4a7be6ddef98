"""The pure retry policies: every error class, idempotency, Retry-After, jitter, the budget,
and the client's own read retries."""

from __future__ import annotations

import math

import pytest
from hypothesis import given
from hypothesis import strategies as st

from bulkops.api.retry import (
    READ_RETRY,
    Action,
    Decision,
    RetryBudget,
    RetryPolicy,
    backoff,
    clamp_retry_after,
    decide,
    read_retry_delay,
)
from bulkops.errors import ApiError, TransportError, error_for_status

POLICY = RetryPolicy(max_attempts=5, base=0.5, cap=30.0, retry_after_cap=120.0)


def half() -> float:
    """A fixed jitter source: always the middle of the interval."""
    return 0.5


def status_error(status: int, retry_after: float | None = None):
    """The error the client raises for ``status`` (RateLimited for 429, ServerError for 5xx…)."""
    cls = error_for_status(status)
    return cls("boom", status=status, method="POST", path="/gates", retry_after=retry_after)


def transport_error(*, sent: bool) -> TransportError:
    return TransportError("connection reset", method="POST", path="/gates", sent=sent)


def run(error: BaseException, *, attempt: int = 1, method: str = "POST", idempotent: bool = False):
    return decide(attempt, error, method=method, idempotent=idempotent, policy=POLICY, rand=half)


@pytest.mark.parametrize("idempotent", [False, True])
@pytest.mark.parametrize("method", ["POST", "PATCH", "PUT", "DELETE", "GET"])
def test_not_sent_is_retried_for_any_method(method: str, idempotent: bool):
    """A request that never reached the server is retried whatever the method."""
    decision = run(transport_error(sent=False), method=method, idempotent=idempotent)
    assert decision.action is Action.RETRY
    assert decision.delay == pytest.approx(0.25)  # U(0, 0.5) at rand=0.5
    assert "never reached" in decision.reason


def test_sent_non_idempotent_is_ambiguous():
    """A transport failure after sending a non-idempotent write is ambiguous, never resent."""
    decision = run(transport_error(sent=True), method="POST", idempotent=False)
    assert decision.action is Action.AMBIGUOUS
    assert decision.delay == pytest.approx(0.25)  # wait before the reconciling read
    assert "reconcile" in decision.reason


def test_sent_idempotent_is_retried():
    """A transport failure after sending an idempotent-by-value write is retried."""
    decision = run(transport_error(sent=True), method="PUT", idempotent=True)
    assert decision.action is Action.RETRY


def test_sent_read_is_retried_even_if_not_marked_idempotent():
    """A GET is safe: a lost response is never ambiguous."""
    decision = run(transport_error(sent=True), method="GET", idempotent=False)
    assert decision.action is Action.RETRY


@pytest.mark.parametrize("status", [500, 502, 503, 504])
def test_server_error_non_idempotent_is_ambiguous(status: int):
    """A 5xx on a non-idempotent write may have been applied: ambiguous."""
    assert run(status_error(status)).action is Action.AMBIGUOUS


@pytest.mark.parametrize("method", ["PUT", "DELETE", "POST"])
def test_server_error_idempotent_is_retried(method: str):
    """A 5xx on an idempotent write (PUT, DELETE, POST marked idempotent) is retried."""
    decision = run(status_error(500), method=method, idempotent=True)
    assert decision.action is Action.RETRY
    assert decision.delay == pytest.approx(0.25)


def test_server_error_retry_after_is_honoured_when_retried():
    """A 503 with Retry-After on an idempotent write waits the server's time."""
    decision = run(status_error(503, retry_after=7), method="PUT", idempotent=True)
    assert decision == Decision(Action.RETRY, 7.0, decision.reason)


@pytest.mark.parametrize("idempotent", [False, True])
def test_rate_limited_is_retried_with_backoff(idempotent: bool):
    """A 429 without Retry-After is retried after full-jitter backoff, idempotent or not."""
    decision = run(status_error(429), attempt=3, idempotent=idempotent)
    assert decision.action is Action.RETRY
    assert decision.delay == pytest.approx(0.5 * 2.0)  # rand 0.5 of min(30, 0.5 * 2**2)


@pytest.mark.parametrize(
    ("retry_after", "expected"),
    [(3.0, 3.0), (0.0, 0.0), (1000.0, 120.0), (-5.0, 0.0), (120.0, 120.0)],
)
def test_rate_limited_honours_clamped_retry_after(retry_after: float, expected: float):
    """Retry-After is used as is, clamped to [0, retry_after_cap], with no jitter."""
    decision = run(status_error(429, retry_after=retry_after), attempt=4)
    assert decision.action is Action.RETRY
    assert decision.delay == expected


@pytest.mark.parametrize("bad", [math.nan, math.inf, -math.inf])
def test_non_finite_retry_after_falls_back_to_backoff(bad: float):
    """A nonsensical Retry-After is ignored in favour of jittered backoff."""
    decision = run(status_error(429, retry_after=bad), attempt=1)
    assert decision.delay == pytest.approx(0.25)
    assert clamp_retry_after(bad, POLICY) is None


@pytest.mark.parametrize("status", [401, 403])
@pytest.mark.parametrize("attempt", [1, 5, 9])
def test_auth_errors_stop_the_run(status: int, attempt: int):
    """401 and 403 stop the whole run, whatever the attempt count."""
    decision = run(status_error(status), attempt=attempt, idempotent=True)
    assert decision.action is Action.STOP
    assert decision.delay == 0.0


@pytest.mark.parametrize("status", [400, 404, 409, 422])
def test_other_statuses_fail_the_item(status: int):
    """400, 404, 409 and other non-retryable statuses fail this item only."""
    decision = run(status_error(status), idempotent=True)
    assert decision.action is Action.FAIL
    assert str(status) in decision.reason


def test_plain_api_error_fails_the_item():
    """An ApiError that is neither a transport nor a status error is not retried."""
    decision = run(ApiError("odd", method="POST", path="/gates"))
    assert decision.action is Action.FAIL


@pytest.mark.parametrize(
    ("error", "idempotent"),
    [
        (transport_error(sent=False), False),
        (status_error(429), False),
        (status_error(429, retry_after=1), True),
        (status_error(500), True),
        (transport_error(sent=True), True),
    ],
)
def test_exhausted_attempts_fail(error: ApiError, idempotent: bool):
    """Once max_attempts have been made, a retryable error fails the item."""
    assert run(error, attempt=4, idempotent=idempotent).action is Action.RETRY
    decision = run(error, attempt=5, idempotent=idempotent)
    assert decision.action is Action.FAIL
    assert "exhausted" in decision.reason


@pytest.mark.parametrize("error", [status_error(502), transport_error(sent=True)])
def test_exhausted_ambiguous_write_stays_ambiguous(error: ApiError):
    """A possibly-applied non-idempotent write is ambiguous even on the last attempt."""
    assert run(error, attempt=5).action is Action.AMBIGUOUS
    assert run(error, attempt=50).action is Action.AMBIGUOUS


@pytest.mark.parametrize("error", [ValueError("bug"), KeyboardInterrupt(), TypeError()])
def test_non_api_errors_are_refused(error: BaseException):
    """decide() only judges ApiErrors; anything else is the caller's to re-raise."""
    with pytest.raises(TypeError, match="ApiError"):
        run(error)


@pytest.mark.parametrize(
    ("attempt", "ceiling"),
    [(1, 0.5), (2, 1.0), (3, 2.0), (4, 4.0), (6, 16.0), (7, 30.0), (10_000, 30.0)],
)
def test_backoff_full_jitter_bounds(attempt: int, ceiling: float):
    """Backoff is U(0, min(cap, base * 2**(attempt-1))): 0 at rand 0, the ceiling at rand 1."""
    assert backoff(attempt, POLICY, lambda: 0.0) == 0.0
    assert backoff(attempt, POLICY, lambda: 1.0) == pytest.approx(ceiling)
    assert backoff(attempt, POLICY, lambda: 0.25) == pytest.approx(ceiling / 4)


@given(attempt=st.integers(min_value=0, max_value=5000), r=st.floats(0.0, 1.0, exclude_max=True))
def test_backoff_never_leaves_its_interval(attempt: int, r: float):
    """For any attempt and jitter draw the delay lies in [0, cap]."""
    delay = backoff(attempt, POLICY, lambda: r)
    assert 0.0 <= delay <= min(POLICY.cap, POLICY.base * 2.0 ** min(max(attempt - 1, 0), 62))


def test_backoff_uses_the_injected_random_source():
    """Successive draws come from ``rand``, so runs are reproducible."""
    draws = iter([0.1, 0.9])
    policy = RetryPolicy(base=1.0, cap=100.0)
    assert backoff(3, policy, lambda: next(draws)) == pytest.approx(0.4)
    assert backoff(3, policy, lambda: next(draws)) == pytest.approx(3.6)


@pytest.mark.parametrize(
    "kwargs", [{"max_attempts": 0}, {"base": -1.0}, {"cap": -0.1}, {"retry_after_cap": -1.0}]
)
def test_policy_rejects_nonsense(kwargs: dict[str, float]):
    """A policy with no attempts or negative delays is a programming error."""
    with pytest.raises(ValueError, match="must"):
        RetryPolicy(**kwargs)  # type: ignore[arg-type]


def test_budget_allows_the_minimum_before_any_attempt():
    """With no first attempts, exactly ``minimum`` retries are allowed."""
    budget = RetryBudget(ratio=0.2, minimum=3)
    assert [budget.try_spend() for _ in range(4)] == [True, True, True, False]
    assert budget.retries == 3


def test_budget_grows_with_first_attempts():
    """Every first attempt adds ``ratio`` retries to the budget."""
    budget = RetryBudget(ratio=0.2, minimum=20)
    for _ in range(100):
        budget.record_attempt()
    assert budget.allowed == 40
    spent = sum(budget.try_spend() for _ in range(60))
    assert spent == 40
    assert not budget.try_spend()
    for _ in range(5):
        budget.record_attempt()
    assert budget.try_spend()  # 105 * 0.2 = 21 → one more retry
    assert not budget.try_spend()


def test_budget_ratio_is_not_lost_to_float_noise():
    """0.29 * 100 first attempts allow 29 retries, not 28."""
    budget = RetryBudget(ratio=0.29, minimum=0)
    for _ in range(100):
        budget.record_attempt()
    assert budget.allowed == 29


def test_budget_rejects_negative_parameters():
    """A negative ratio or minimum is a programming error."""
    with pytest.raises(ValueError, match="negative"):
        RetryBudget(ratio=-0.1)
    with pytest.raises(ValueError, match="negative"):
        RetryBudget(minimum=-1)


# -- the client's read retries ------------------------------------------------------------


def read_delay(error: BaseException, *, attempt: int = 1, retries: int = 3) -> float | None:
    return read_retry_delay(attempt, error, retries=retries, rand=half)


@pytest.mark.parametrize(
    "error",
    [
        transport_error(sent=False),
        transport_error(sent=True),
        status_error(429),
        status_error(500),
        status_error(503),
    ],
)
@pytest.mark.parametrize(("attempt", "ceiling"), [(1, 0.25), (2, 0.5), (3, 1.0)])
def test_transient_read_failures_are_retried_with_jitter(error, attempt, ceiling):
    """A transport failure, a 429 or a 5xx is read again after U(0, 0.25 * 2**(attempt-1))."""
    assert read_delay(error, attempt=attempt) == pytest.approx(ceiling / 2)


def test_read_backoff_is_capped_at_eight_seconds():
    """However many retries are allowed, one wait is at most 8 s."""
    delay = read_retry_delay(20, status_error(500), retries=50, rand=lambda: 1.0)
    assert delay == READ_RETRY.cap == 8.0


@pytest.mark.parametrize(("retry_after", "expected"), [(3.0, 3.0), (0.0, 0.0), (120.0, 30.0)])
def test_read_retry_after_is_honoured_and_capped(retry_after, expected):
    """A server's Retry-After is waited exactly, at most 30 s."""
    assert read_delay(status_error(429, retry_after=retry_after)) == expected
    assert read_delay(status_error(503, retry_after=retry_after)) == expected


@pytest.mark.parametrize(
    "error",
    [
        status_error(400),
        status_error(401),
        status_error(403),
        status_error(404),
        status_error(409),
        status_error(302),
        TransportError("unknown host", method="GET", path="/p", sent=False, lasting=True),
        ValueError("a bug"),
    ],
)
def test_final_read_errors_are_not_retried(error):
    """A 3xx, a 4xx other than 429, a lasting transport failure (a host that does not
    resolve, TLS) or anything that is not an API error is raised at once."""
    assert read_delay(error) is None


def test_reads_are_retried_at_most_retries_times():
    """The attempt after the last allowed retry is final; no retries allowed means none."""
    error = status_error(500)
    assert read_delay(error, attempt=3, retries=3) is not None
    assert read_delay(error, attempt=4, retries=3) is None
    assert read_delay(error, attempt=1, retries=0) is None
