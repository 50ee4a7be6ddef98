"""The retry policies: pure functions from (attempt, error) to a decision, plus a retry budget.

No I/O and no sleeping happen here: :func:`decide` says *what* the runner does after a
failed mutation and *how long* it waits first; :func:`read_retry_delay` says whether and
when the client sends a failed read again. The runner's rules follow the reliability
notes (section 3.5):

* a request that never reached the server (``TransportError(sent=False)``) is safe to
  send again, whatever the method;
* a 429 was refused by the server, so it is safe to send again after waiting, honouring
  ``Retry-After`` (clamped) or else capped exponential backoff with full jitter;
* a 5xx or a failure after the request was sent may have been applied: it is sent again
  only when the operation is idempotent by value (a PUT of a target state, a DELETE, a
  full-document update the mutation marks idempotent); otherwise it is *ambiguous* and
  must be settled by a read before anything is sent again;
* 401/403 stop the whole run; any other status fails this one item.

The client's reads are simpler: a GET changes nothing, so it is repeated after a
transport failure (unless it is lasting: an unknown host, TLS), a 429 or a 5xx, up to
``Settings.read_retries`` times.
"""

from __future__ import annotations

import enum
import math
import random
from collections.abc import Callable
from dataclasses import dataclass

from ..errors import (
    ApiError,
    ApiStatusError,
    Forbidden,
    RateLimited,
    ServerError,
    TransportError,
    Unauthorized,
)

__all__ = [
    "READ_RETRY",
    "SAFE_METHODS",
    "Action",
    "Decision",
    "RetryBudget",
    "RetryPolicy",
    "backoff",
    "clamp_retry_after",
    "decide",
    "read_retry_delay",
]

# RFC 9110 "safe" methods: they change nothing, so a lost response is never ambiguous.
SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})

# 2**62 * base already exceeds any sane cap; bounding the exponent avoids OverflowError
# for absurd attempt numbers.
_MAX_EXPONENT = 62


@dataclass(frozen=True)
class RetryPolicy:
    """Limits for retrying one mutation.

    Attributes:
        max_attempts: Attempts per mutation, the first one included.
        base: Backoff base in seconds (the ceiling of the first retry's delay).
        cap: Ceiling of any backoff delay, in seconds.
        retry_after_cap: A server's ``Retry-After`` is clamped to this many seconds.
    """

    max_attempts: int = 5
    base: float = 0.5
    cap: float = 30.0
    retry_after_cap: float = 120.0

    def __post_init__(self) -> None:
        if self.max_attempts < 1:
            raise ValueError("max_attempts must be at least 1")
        if self.base < 0 or self.cap < 0 or self.retry_after_cap < 0:
            raise ValueError("base, cap and retry_after_cap must not be negative")


READ_RETRY = RetryPolicy(base=0.25, cap=8.0, retry_after_cap=30.0)
"""Backoff of the client's own read retries (how many: ``Settings.read_retries``)."""


class Action(enum.Enum):
    """What the runner does after a failed attempt."""

    RETRY = "retry"
    """Send again after ``delay``: it did not reach the server, was a 429, or is idempotent."""
    AMBIGUOUS = "ambiguous"
    """It may have been applied: reconcile by a read before anything is sent again."""
    FAIL = "fail"
    """Record this item as failed and go on (400/404/409, or attempts exhausted)."""
    STOP = "stop"
    """Stop the whole run cleanly (401/403): no other item can succeed either."""


@dataclass(frozen=True)
class Decision:
    """The policy's answer for one failed attempt.

    Attributes:
        action: What to do.
        delay: Seconds to wait first: before the next attempt for ``RETRY``, before the
            reconciling read for ``AMBIGUOUS`` (gives the server time to settle); 0 otherwise.
        reason: A short human explanation for logs and the journal (no secrets).
    """

    action: Action
    delay: float = 0.0
    reason: str = ""


def backoff(attempt: int, policy: RetryPolicy, rand: Callable[[], float]) -> float:
    """Capped exponential backoff with full jitter: ``U(0, min(cap, base * 2**(attempt-1)))``.

    Full jitter (AWS Architecture Blog, "Exponential Backoff and Jitter") spreads
    competing clients over the whole interval instead of synchronising their retries.

    Args:
        attempt: Attempts already made (1 after the first failure).
        policy: Supplies ``base`` and ``cap``.
        rand: A uniform ``[0, 1)`` source; inject a fixed one in tests.

    Returns:
        The delay in seconds, in ``[0, min(cap, base * 2**(attempt-1))]``.
    """
    exponent = min(max(attempt - 1, 0), _MAX_EXPONENT)
    ceiling = min(policy.cap, policy.base * 2.0**exponent)
    return rand() * ceiling


def clamp_retry_after(retry_after: float | None, policy: RetryPolicy) -> float | None:
    """A usable ``Retry-After`` in seconds, clamped to ``[0, retry_after_cap]``.

    Returns None when there is none or it is not a finite number, so the caller falls
    back to jittered backoff.
    """
    if retry_after is None or not math.isfinite(retry_after):
        return None
    return min(max(retry_after, 0.0), policy.retry_after_cap)


def _may_have_applied(error: ApiError) -> bool:
    # A 5xx, or a transport failure after bytes were on the wire: the server may have
    # applied the change and only the response was lost (Jepsen's ":info" outcome).
    return isinstance(error, ServerError) or (isinstance(error, TransportError) and error.sent)


def _retry_delay(
    attempt: int, error: ApiError, policy: RetryPolicy, rand: Callable[[], float]
) -> float:
    if isinstance(error, ApiStatusError):
        honoured = clamp_retry_after(error.retry_after, policy)
        if honoured is not None:
            return honoured
    return backoff(attempt, policy, rand)


def decide(
    attempt: int,
    error: BaseException,
    *,
    method: str,
    idempotent: bool,
    policy: RetryPolicy = RetryPolicy(),
    rand: Callable[[], float] = random.random,
) -> Decision:
    """Decide what to do after a failed attempt.

    Args:
        attempt: Attempts already made for this item (1 after the first failure).
        error: The failure; must be an :class:`~bulkops.errors.ApiError`.
        method: The HTTP method. Safe methods (GET, HEAD, OPTIONS) are treated as
            idempotent and are never ambiguous.
        idempotent: True when sending the request twice has the same effect as once
            (idempotent *by value*, as the mutation declares it).
        policy: Attempt limit and backoff parameters.
        rand: Uniform ``[0, 1)`` source for the jitter.

    Returns:
        The :class:`Decision`. ``STOP`` for 401/403 whatever the attempt count; ``FAIL``
        when attempts are exhausted, except that an error which may have been applied on a
        non-idempotent write stays ``AMBIGUOUS`` (only a read can settle it).

    Raises:
        TypeError: ``error`` is not an ``ApiError``; bugs and cancellation are the
            caller's to re-raise, never a retry decision.
    """
    if not isinstance(error, ApiError):
        raise TypeError(f"decide() takes an ApiError, not {type(error).__name__}")
    is_write = method.upper() not in SAFE_METHODS
    repeatable = idempotent or not is_write

    if isinstance(error, Unauthorized | Forbidden):
        return Decision(Action.STOP, reason=f"{error.status}: the key cannot do this; stopping")

    if isinstance(error, TransportError) and not error.sent:
        reason = "the request never reached the server"
    elif isinstance(error, RateLimited):
        reason = "429: over the quota; the server refused the request"
    elif _may_have_applied(error):
        what = f"{error.status}" if isinstance(error, ApiStatusError) else "sent, no response"
        if not repeatable:
            return Decision(
                Action.AMBIGUOUS,
                delay=backoff(attempt, policy, rand),
                reason=f"{what}: a non-idempotent write may have been applied; reconcile by a read",
            )
        reason = f"{what}: may have been applied, but the request is idempotent"
    elif isinstance(error, ApiStatusError):
        return Decision(Action.FAIL, reason=f"{error.status}: not retryable")
    else:
        return Decision(Action.FAIL, reason=f"{type(error).__name__}: not retryable")

    if attempt >= policy.max_attempts:
        return Decision(
            Action.FAIL, reason=f"attempts exhausted ({attempt}/{policy.max_attempts}): {reason}"
        )
    return Decision(Action.RETRY, delay=_retry_delay(attempt, error, policy, rand), reason=reason)


def read_retry_delay(
    attempt: int,
    error: BaseException,
    *,
    retries: int,
    policy: RetryPolicy = READ_RETRY,
    rand: Callable[[], float] = random.random,
) -> float | None:
    """Whether and when the client sends a failed read again.

    A transport failure (but not a lasting one: an unknown host, TLS), a 429 or a 5xx
    is retried while ``attempt <= retries``: after
    the server's ``Retry-After`` (capped at ``policy.retry_after_cap``), else after
    :func:`backoff`. Writes are never retried by the client (``retries=0``): whether a
    failed mutation may be repeated is :func:`decide`'s question, asked by the runner.

    Args:
        attempt: Attempts already made (1 after the first failure).
        error: The failure.
        retries: Retries allowed after the first attempt.
        policy: Backoff parameters (``max_attempts`` is not used: ``retries`` is).
        rand: Uniform ``[0, 1)`` source for the jitter.

    Returns:
        Seconds to wait before the next attempt, or None when the error is final.
    """
    if attempt > retries:
        return None
    if isinstance(error, ApiStatusError):
        if error.status != 429 and error.status < 500:
            return None
        if error.retry_after is not None:
            return min(error.retry_after, policy.retry_after_cap)
    elif not isinstance(error, TransportError) or error.lasting:
        return None  # a host that does not resolve, a TLS failure: no sooner fixed than asked
    return backoff(attempt, policy, rand)


class RetryBudget:
    """Per-run budget: retries may be at most ``ratio`` of first attempts plus ``minimum``.

    A retry budget (Finagle's ``RetryBudget``, Google SRE's per-client retry ratio) keeps a
    sick or throttling server from being hammered: when most attempts fail, retries stop
    growing with them and the run stops cleanly instead, leaving a resumable journal.
    """

    def __init__(self, ratio: float = 0.2, minimum: int = 20) -> None:
        """Create an empty budget.

        Args:
            ratio: Retries allowed per first attempt (0.2 = 20%).
            minimum: Retries always allowed, so a small run is not starved.
        """
        if ratio < 0 or minimum < 0:
            raise ValueError("ratio and minimum must not be negative")
        self.ratio = ratio
        self.minimum = minimum
        self.first_attempts = 0
        self.retries = 0

    def record_attempt(self) -> None:
        """Count one first attempt (call once per item, not per retry)."""
        self.first_attempts += 1

    @property
    def allowed(self) -> int:
        """Retries allowed so far: ``floor(ratio * first_attempts) + minimum``."""
        # The epsilon keeps float noise (0.29 * 100 = 28.999…) from losing a retry.
        return math.floor(self.ratio * self.first_attempts + 1e-9) + self.minimum

    def try_spend(self) -> bool:
        """Take one retry from the budget.

        Returns:
            True if the retry may go ahead; False if the budget is exhausted, in which
            case the run should stop (exit 1, resumable).
        """
        if self.retries >= self.allowed:
            return False
        self.retries += 1
        return True

    def __repr__(self) -> str:
        return (
            f"RetryBudget(ratio={self.ratio}, minimum={self.minimum}, "
            f"retries={self.retries}/{self.allowed})"
        )
