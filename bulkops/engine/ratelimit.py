"""The quota limiter: sliding-window logs per quota class, smooth inside the short window.

Statsig counts *attempts* per project in sliding windows (about 100 per 10 s and 900 per
15 min for mutations; 12 per 10 s and 900 per 15 min for segment id-lists), 429s
included, and has an unpublished burst protection on top. A token bucket such as
``aiolimiter.AsyncLimiter(100, 10)`` lets close to twice the limit through in the first
window (reliability notes, section 3.2), so this module keeps an exact **sliding-window
log** (a sorted list of send times) per quota class and schedules each send at the
earliest time that keeps every window under its limit:

    t[k] = max(now, paused_until, t[k-1] + spacing, max over windows w of t[k - L_w] + S_w)

``spacing`` is ``S/L`` of the shortest window, so sends never bunch up inside it (the
leaky-bucket-as-a-queue pacing of ``AsyncLimiter(1, S/L)``), while the long window is
used greedily: its whole budget goes out at the short window's pace and then the
limiter waits for the oldest sends to leave it. Each span ``S`` is stretched by a safety
margin (``S * (1 + safety) + pad``) to absorb the skew between our send time and the
server's arrival time.

Every attempt goes through :meth:`QuotaLimiter.acquire`, retries and 429s included.
Send times are wall-clock seconds (``time.time``) so they can be persisted
(:class:`SendLog`) and fed back as ``history`` after a restart, which then starts with
the windows as full as the previous run left them instead of bursting; a resume adds
what its checkpoint says was sent (:func:`history_from_records`).
"""

from __future__ import annotations

import bisect
import json
import math
import random
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable, Mapping, Sequence
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import anyio
import structlog

from .. import files
from ..api.retry import RetryPolicy, backoff, clamp_retry_after
from .plans import Plan
from .quota import QuotaWindow

__all__ = [
    "DEFAULT_MAX_IN_FLIGHT",
    "DEFAULT_PAD",
    "DEFAULT_SAFETY",
    "SENDLOG_FORMAT",
    "LimiterStats",
    "QuotaLimiter",
    "SendLog",
    "history_from_records",
    "schedule",
    "theoretical_minimum",
]

log = structlog.get_logger()

DEFAULT_MAX_IN_FLIGHT = 4
# Each window is treated as 1% longer, plus 5 ms: the server counts arrival times, ours
# are send times, and network jitter between two sends can move them closer together.
# The pad is deliberately not time-scaled: loopback and network jitter are real time.
DEFAULT_SAFETY = 0.01
DEFAULT_PAD = 0.005
# AIMD on the effective limits (TCP congestion control; the AWS SDK "adaptive" retry mode):
# halve on a 429, win back 0.5% of the configured limit per success, never below 10%.
DEFAULT_DECREASE = 0.5
DEFAULT_INCREASE = 0.005
DEFAULT_MIN_FACTOR = 0.1

SENDLOG_FORMAT = "bulkops-sends/1"
# Queueing behind another class member's wait counts as waiting too, once it is noticeable.
_WAIT_NOTICE = 0.001

EVENT_THROTTLED = "ratelimit.throttled"
EVENT_SENDLOG_UNREADABLE = "ratelimit.sendlog_unreadable"


@dataclass(frozen=True)
class LimiterStats:
    """A snapshot of the limiter's counters.

    Attributes:
        acquired: Attempts admitted, per class.
        throttled: 429s reported through :meth:`QuotaLimiter.throttled`, all classes.
        waits: Acquisitions that had to wait (the window was full, paced or paused).
        waited: Total seconds spent waiting in :meth:`QuotaLimiter.acquire`.
        effective_limits: Current limits per class, one per window, after AIMD tightening.
        paused_until: Wall-clock time until which each paused class waits (only paused ones).
        in_flight: Requests currently holding a :meth:`QuotaLimiter.slot`.
    """

    acquired: dict[str, int]
    throttled: int
    waits: int
    waited: float
    effective_limits: dict[str, tuple[int, ...]]
    paused_until: dict[str, float] = field(default_factory=dict)
    in_flight: int = 0


def _next_send(
    sends: Sequence[float],
    now: float,
    spans: Sequence[float],
    limits: Sequence[int],
    spacing: float,
    paused_until: float,
) -> float:
    """The earliest time >= now at which one more send keeps every window under its limit.

    ``sends`` is sorted. A window of span S admits a send at t when fewer than L sends
    lie in (t - S, t], i.e. when the L-th most recent send is at or before t - S.
    """
    t = max(now, paused_until)
    if sends:
        t = max(t, sends[-1] + spacing)
    count = len(sends)
    for span, limit in zip(spans, limits, strict=True):
        if count >= limit:
            t = max(t, sends[count - limit] + span)
    return t


def _spacing(spans: Sequence[float], limits: Sequence[int]) -> float:
    # No bursts: pace at S/L of the shortest window (leaky bucket as a queue).
    if not spans:
        return 0.0
    shortest = min(range(len(spans)), key=spans.__getitem__)
    return spans[shortest] / limits[shortest]


def schedule(
    n: int,
    windows: Sequence[QuotaWindow],
    *,
    start: float = 0.0,
    history: Sequence[float] = (),
    smooth: bool = True,
    safety: float = 0.0,
    pad: float = 0.0,
) -> list[float]:
    """The greedy sliding-window schedule: the times of the next ``n`` sends.

    Args:
        n: Number of sends.
        windows: The quota windows (already time-scaled).
        start: The earliest time of the first send.
        history: Earlier send times (sorted or not) that still count in the windows.
        smooth: Pace sends ``S/L`` of the shortest window apart (no bursts).
        safety: Relative margin added to every span.
        pad: Absolute margin (seconds) added to every span.

    Returns:
        ``n`` non-decreasing send times.
    """
    spans = [w.seconds * (1 + safety) + pad for w in windows]
    limits = [w.limit for w in windows]
    spacing = _spacing(spans, limits) if smooth else 0.0
    sends = sorted(history)
    first = len(sends)
    for _ in range(n):
        sends.append(_next_send(sends, start, spans, limits, spacing, start))
    return sends[first:]


def theoretical_minimum(n: int, windows: Sequence[QuotaWindow]) -> float:
    """Time from the first to the ``n``-th send when every window is used to the full.

    This is the lower bound for *any* client that respects the windows: greedy, bursts
    allowed, no safety margin, empty windows at the start. For 2,000 sends at 100/10 s
    and 900/15 min it is 1,810 s. The benchmark compares real runs against it.
    """
    if n <= 0:
        return 0.0
    times = schedule(n, windows, smooth=False)
    return times[-1] - times[0]


class _ClassState:
    """Sliding-window log, pause and AIMD factor of one quota class."""

    def __init__(self, windows: Sequence[QuotaWindow], safety: float, pad: float) -> None:
        self.windows = tuple(windows)
        self.spans = tuple(w.seconds * (1 + safety) + pad for w in self.windows)
        self.longest = max(self.spans, default=0.0)
        self.sends: list[float] = []
        self.paused_until = -math.inf
        self.factor = 1.0
        self.acquired = 0
        self.throttled = 0
        self.lock = anyio.Lock()

    def limits(self) -> tuple[int, ...]:
        return tuple(max(1, math.floor(w.limit * self.factor + 1e-9)) for w in self.windows)

    def next_send(self, now: float) -> float:
        limits = self.limits()
        return _next_send(
            self.sends, now, self.spans, limits, _spacing(self.spans, limits), self.paused_until
        )

    def prune(self, now: float) -> None:
        # Sends at or before now - longest span cannot constrain any future send.
        horizon = now - self.longest
        if self.sends and self.sends[0] <= horizon:
            del self.sends[: bisect.bisect_right(self.sends, horizon)]


class QuotaLimiter:
    """Sliding-window logs per quota class, counting every attempt (429s included).

    Smooth inside the short window (no bursts: sends spaced at least span/limit apart),
    greedy against the long window, so 2,000 mutations at 100/10 s + 900/15 min finish
    within 1.05x of the theoretical minimum with 0 server 429s.

    One limiter serves one project and one event loop. Acquisitions of a class are
    served in FIFO order (an ``anyio.Lock``): the head waiter sleeps until its slot and
    records the time it was actually admitted, so the log holds real send times.
    """

    def __init__(
        self,
        windows: Mapping[str, Sequence[QuotaWindow]],
        *,
        max_in_flight: int = DEFAULT_MAX_IN_FLIGHT,
        clock: Callable[[], float] = time.time,
        sleep: Callable[[float], Awaitable[None]] = anyio.sleep,
        history: Mapping[str, Iterable[float]] | None = None,
        safety: float = DEFAULT_SAFETY,
        pad: float = DEFAULT_PAD,
        policy: RetryPolicy = RetryPolicy(),  # noqa: B008 - frozen dataclass, safe as a default
        rand: Callable[[], float] = random.random,
        decrease: float = DEFAULT_DECREASE,
        increase: float = DEFAULT_INCREASE,
        min_factor: float = DEFAULT_MIN_FACTOR,
    ) -> None:
        """Create a limiter.

        Args:
            windows: Quota windows per class, e.g. ``{"mutation": DEFAULT_QUOTA}``, already
                time-scaled by the caller. A class with no windows is only capped in flight.
            max_in_flight: Requests allowed in flight at once through :meth:`slot`.
            clock: Wall-clock seconds; inject a fake one in tests.
            sleep: Async sleep matching ``clock``; inject a fake one in tests.
            history: Send times of a previous run per class (wall clock), so a restart
                does not burst into windows the previous run filled.
            safety: Relative margin added to every window span.
            pad: Absolute margin in seconds added to every window span.
            policy: Backoff parameters for pauses after a 429 without ``Retry-After``.
            rand: Uniform ``[0, 1)`` source for the backoff jitter.
            decrease: Multiplicative decrease of the effective limits on a 429.
            increase: Additive recovery of the limit factor per success.
            min_factor: The effective limits never drop below this share of the configured ones.

        Raises:
            ValueError: A parameter is out of range.
        """
        if max_in_flight < 1:
            raise ValueError("max_in_flight must be at least 1")
        if safety < 0 or pad < 0:
            raise ValueError("safety and pad must not be negative")
        if not (0 < decrease <= 1 and 0 <= increase <= 1 and 0 < min_factor <= 1):
            raise ValueError("decrease and min_factor must be in (0, 1], increase in [0, 1]")
        self._clock = clock
        self._sleep = sleep
        self._policy = policy
        self._rand = rand
        self._decrease = decrease
        self._increase = increase
        self._min_factor = min_factor
        self._states: dict[str, _ClassState] = {}
        for klass, class_windows in windows.items():
            for window in class_windows:
                if window.limit < 1 or not window.seconds > 0:
                    raise ValueError(f"bad quota window {window} for class {klass!r}")
            self._states[klass] = _ClassState(class_windows, safety, pad)
        for klass, times in (history or {}).items():
            if klass in self._states:
                self._states[klass].sends = sorted(
                    float(t) for t in times if math.isfinite(float(t))
                )
        self._in_flight = anyio.CapacityLimiter(max_in_flight)
        self._last_now: float | None = None
        self._waits = 0
        self._waited = 0.0

    @property
    def classes(self) -> tuple[str, ...]:
        """The quota classes this limiter knows."""
        return tuple(self._states)

    def _state(self, klass: str) -> _ClassState:
        try:
            return self._states[klass]
        except KeyError:
            raise KeyError(f"no quota windows configured for class {klass!r}") from None

    def _now(self) -> float:
        now = self._clock()
        last = self._last_now
        if last is not None and now < last:
            # The wall clock stepped back (NTP step, VM resume). Shift every recorded time
            # by the same amount so the windows keep their real-time meaning instead of
            # making us wait for the size of the step.
            step = last - now
            for state in self._states.values():
                state.sends = [t - step for t in state.sends]
                state.paused_until -= step
        self._last_now = now
        return now

    def try_acquire(self, klass: str) -> float | None:
        """Take a slot of ``klass`` if one is free now and nobody is queued for it.

        The fast path of :meth:`acquire` (no wait, no trip through the event loop).

        Returns:
            The recorded send time, or None when the caller has to :meth:`acquire`.

        Raises:
            KeyError: ``klass`` has no configured windows.
        """
        state = self._state(klass)
        if state.lock.locked():
            return None
        now = self._now()
        if state.next_send(now) > now:
            return None
        state.prune(now)
        state.sends.append(now)
        state.acquired += 1
        return now

    async def acquire(self, klass: str) -> float:
        """Wait for a free slot in every window of ``klass`` and for its pause, then take it.

        Call before *every* attempt, retries too: the server counts rejected attempts.

        Args:
            klass: The quota class (``"mutation"``, ``"id_list"``).

        Returns:
            The recorded send time (``clock()`` when admitted).

        Raises:
            KeyError: ``klass`` has no configured windows.
        """
        admitted = self.try_acquire(klass)
        if admitted is not None:
            return admitted
        state = self._state(klass)
        started = self._now()
        waited = False
        async with state.lock:
            while True:
                now = self._now()
                at = state.next_send(now)
                if at <= now:
                    break
                waited = True
                await self._sleep(at - now)
            state.prune(now)
            state.sends.append(now)
            state.acquired += 1
        if waited or now - started > _WAIT_NOTICE:
            self._waits += 1
            self._waited += now - started
        return now

    def slot(self, klass: str) -> AbstractAsyncContextManager[float]:
        """Hold an in-flight slot, then :meth:`acquire`; the slot is released on exit.

        The in-flight slot is taken *before* the rate slot, so the recorded send time is
        the time the request really goes out.

        Args:
            klass: The quota class.

        Returns:
            An async context manager yielding the send time.
        """
        return self._slot(klass)

    @asynccontextmanager
    async def _slot(self, klass: str) -> AsyncIterator[float]:
        self._state(klass)  # fail before queueing for an unknown class
        async with self._in_flight:
            yield await self.acquire(klass)

    def throttled(self, klass: str, retry_after: float | None, attempt: int) -> None:
        """Report a 429: pause the class and tighten its effective limits.

        The pause is the server's ``Retry-After`` (clamped by the policy) or, without one,
        capped full-jitter backoff for ``attempt``. The limits are multiplied by
        ``decrease`` (AIMD's multiplicative decrease) because a 429 below our own limits
        means the server's burst protection or another key on the project is spending
        the quota too.

        Args:
            klass: The quota class that got the 429.
            retry_after: The server's ``Retry-After`` in seconds, if any.
            attempt: Attempts made so far for the item (1 after the first failure).
        """
        state = self._state(klass)
        delay = clamp_retry_after(retry_after, self._policy)
        if delay is None:
            delay = backoff(attempt, self._policy, self._rand)
        now = self._now()
        state.paused_until = max(state.paused_until, now + delay)
        state.factor = max(self._min_factor, state.factor * self._decrease)
        state.throttled += 1
        log.warning(
            EVENT_THROTTLED,
            klass=klass,
            pause=round(delay, 3),
            retry_after=retry_after,
            limits=state.limits(),
        )

    def succeeded(self, klass: str) -> None:
        """Report a success: win back a little of the limits (AIMD's additive increase)."""
        state = self._state(klass)
        state.factor = min(1.0, state.factor + self._increase)

    def history(self) -> dict[str, list[float]]:
        """Send times still inside a window, per class, for :class:`SendLog` to persist."""
        now = self._now()
        result: dict[str, list[float]] = {}
        for klass, state in self._states.items():
            state.prune(now)
            result[klass] = list(state.sends)
        return result

    def eta(self, counts: Mapping[str, int]) -> float:
        """Seconds from now until the last of ``counts[klass]`` sends per class can go out.

        An exact simulation of the greedy schedule :meth:`acquire` follows, from the
        current windows, pause and effective limits, assuming a worker is always ready
        (request latency and the in-flight cap are not modelled). Classes have separate
        quotas and proceed in parallel, so the result is the slowest class's time.

        Raises:
            KeyError: A class has no configured windows.
        """
        now = self._now()
        longest = 0.0
        for klass, n in counts.items():
            state = self._state(klass)
            if n <= 0:
                continue
            limits = state.limits()
            spacing = _spacing(state.spans, limits)
            # Only the most recent max(limits) sends can constrain the next one.
            keep = max(limits, default=1)
            sends = list(state.sends[-keep:])
            t = now
            for _ in range(n):
                t = _next_send(sends, now, state.spans, limits, spacing, state.paused_until)
                sends.append(t)
            longest = max(longest, t - now)
        return longest

    @property
    def stats(self) -> LimiterStats:
        """Counters: attempts, 429s, waits, effective limits and pauses."""
        now = self._clock()
        return LimiterStats(
            acquired={k: s.acquired for k, s in self._states.items()},
            throttled=sum(s.throttled for s in self._states.values()),
            waits=self._waits,
            waited=self._waited,
            effective_limits={k: s.limits() for k, s in self._states.items()},
            paused_until={
                k: s.paused_until for k, s in self._states.items() if s.paused_until > now
            },
            in_flight=int(self._in_flight.borrowed_tokens),
        )


class SendLog:
    """Per-project persisted send times: ``<state_dir>/sends/<project_id>.json``.

    The file is mode 0600 and replaced atomically (temporary file, rename), so a killed
    process leaves either the old or the new version. Load it on start and pass it as
    ``history``; the runner saves it about once a second and on exit.

    It is deliberately **not** fsynced. It only paces the start of a *different*
    checkpoint's run on the same project: a resume of the same checkpoint rebuilds its
    windows from the journal, whose intents are fsynced before every send. A killed
    process loses nothing the kernel already has (the rename is atomic and the data is
    in the page cache); only an OS crash or power loss can lose the last saves, and then
    the next run merely starts with less history: it may draw some 429s, which the
    limiter handles by backing off. Two fsyncs per save cost more than the journal
    itself when unthrottled.
    """

    def __init__(self, path: Path) -> None:
        """Use ``path`` (need not exist yet)."""
        self.path = path

    def load(self) -> dict[str, list[float]]:
        """Read the persisted send times.

        Returns:
            Send times per class; empty if the file does not exist. An unreadable file
            is logged and treated as empty: the send times only pace the first sends after
            a restart, and a 429 caused by the missing history is still handled by backoff.
        """
        try:
            data = json.loads(self.path.read_bytes())
            sends = data["sends"]
            if data.get("format") != SENDLOG_FORMAT or not isinstance(sends, dict):
                raise ValueError("not a bulkops send log")
            return {
                str(klass): sorted(float(t) for t in times if math.isfinite(float(t)))
                for klass, times in sends.items()
            }
        except FileNotFoundError:
            return {}
        except (OSError, ValueError, TypeError, KeyError) as exc:
            log.warning(EVENT_SENDLOG_UNREADABLE, path=str(self.path), error=str(exc))
            return {}

    def save(self, history: Mapping[str, Sequence[float]]) -> None:
        """Replace the file with these send times atomically, mode 0600 (no fsync).

        Raises:
            NoSpaceError: No room left to write it.
            OSError: The directory or file could not be written otherwise.
        """
        files.private_directory(self.path.parent)
        payload = json.dumps(
            {
                "format": SENDLOG_FORMAT,
                "sends": {klass: list(times) for klass, times in history.items()},
            },
            separators=(",", ":"),
        ).encode()
        # No fsync of the file or the directory: see the class docstring.
        files.write_private(self.path, payload, durable=False)


def history_from_records(
    records: Iterable[Mapping[str, Any]], plan: Plan, *, now: float | None = None
) -> dict[str, list[float]]:
    """Send times per quota class from a journal, never earlier than the real ones.

    An outcome carries its attempt's ``sent_at``. An attempt without one (the process
    died, or it was retried) was sent no later than the key's next intent, or the next
    run's start, or now; that bound is used, so a restart never bursts into a window
    the previous run filled.
    """
    klass = {m.key: m.quota_class for m in plan.mutations}
    out: dict[str, list[float]] = {}
    open_attempts: dict[str, float] = {}  # key -> intent time, send time not yet known

    def add(key: str, at: float) -> None:
        k = klass.get(key)
        if k is not None:
            out.setdefault(k, []).append(at)

    for record in records:
        kind = record.get("t")
        key = str(record.get("key"))
        at = record.get("at")
        if kind == "run" and record.get("event") == "start" and isinstance(at, int | float):
            for open_key in open_attempts:
                add(open_key, float(at))
            open_attempts.clear()
        elif kind == "intent" and isinstance(at, int | float):
            if key in open_attempts:
                add(key, float(at))  # the previous attempt went out before this intent
            open_attempts[key] = float(at)
        elif kind == "outcome" and key in open_attempts:
            del open_attempts[key]
            sent = record.get("sent_at")
            if isinstance(sent, int | float):
                add(key, float(sent))
    latest = time.time() if now is None else now
    for open_key in open_attempts:
        add(open_key, latest)
    return {k: sorted(v) for k, v in out.items()}
