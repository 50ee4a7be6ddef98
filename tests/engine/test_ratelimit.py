"""The quota limiter in virtual time: windows, pacing, restart history, 429 feedback, ETA."""

from __future__ import annotations

import asyncio
import bisect
import json
import random
import selectors
import stat
from collections.abc import Awaitable, Callable, Sequence
from pathlib import Path
from typing import Any

import anyio
import pytest
from structlog.testing import capture_logs

from bulkops.api.retry import RetryPolicy
from bulkops.emulator.state import Quota
from bulkops.engine.quota import DEFAULT_ID_LIST_QUOTA, DEFAULT_QUOTA, QuotaWindow
from bulkops.engine.ratelimit import (
    DEFAULT_PAD,
    DEFAULT_SAFETY,
    QuotaLimiter,
    SendLog,
    schedule,
    theoretical_minimum,
)

MUTATION = "mutation"
ID_LIST = "id_list"
START = 1_700_000_000.0  # virtual wall-clock time, like time.time()
SPACING = (10 * (1 + DEFAULT_SAFETY) + DEFAULT_PAD) / 100  # 100/10 s, stretched by the margin


# --- virtual time -----------------------------------------------------------------------


class _VirtualSelector(selectors.DefaultSelector):
    """Never blocks: when nothing is ready it jumps the virtual clock by the timeout."""

    def __init__(self, start: float) -> None:
        super().__init__()
        self.now = start

    def select(self, timeout: float | None = None) -> list[Any]:
        ready = super().select(0)
        if not ready:
            if timeout is None:
                raise RuntimeError("virtual-time loop deadlocked: nothing scheduled")
            self.now += timeout
        return ready


class VirtualTimeLoop(asyncio.SelectorEventLoop):
    """An asyncio loop whose clock only moves when every task is waiting (no real sleeping).

    ``loop.time()`` is the fake clock and ``asyncio.sleep`` the fake sleep: timers fire
    in order, as they would in real time, but instantly.
    """

    def __init__(self, start: float = START) -> None:
        self._virtual = _VirtualSelector(start)
        super().__init__(self._virtual)
        # asyncio runs a timer when `when < time() + resolution`; at wall-clock magnitudes
        # (1.7e9) the default 1e-9 s vanishes in float rounding and the loop would spin.
        self._clock_resolution = 1e-6

    def time(self) -> float:
        return self._virtual.now


def run_virtual(main: Callable[[VirtualTimeLoop], Awaitable[Any]], start: float = START) -> Any:
    """Run ``main(loop)`` to completion on a fresh virtual-time loop."""
    loop = VirtualTimeLoop(start)
    try:
        return loop.run_until_complete(main(loop))
    finally:
        loop.run_until_complete(loop.shutdown_asyncgens())
        loop.close()


class FakeClock:
    """A clock plus a sleep that advances it, for single-task tests."""

    def __init__(self, now: float = START) -> None:
        self.now = now
        self.sleeps: list[float] = []

    def __call__(self) -> float:
        return self.now

    async def sleep(self, seconds: float) -> None:
        self.sleeps.append(seconds)
        self.now += seconds
        await asyncio.sleep(0)

    def limiter(self, windows: Any = None, **options: Any) -> QuotaLimiter:
        """A limiter on this clock (the mutation class at the default quota by default)."""
        return QuotaLimiter(
            windows or {MUTATION: DEFAULT_QUOTA}, clock=self, sleep=self.sleep, **options
        )


# --- checks -----------------------------------------------------------------------------


def max_in_window(times: Sequence[float], span: float) -> int:
    """The most sends in any *closed* window [t - span, t] (stricter than the server's)."""
    ordered = sorted(times)
    best = 0
    for i, t in enumerate(ordered):
        best = max(best, i + 1 - bisect.bisect_left(ordered, t - span))
    return best


def assert_within(times: Sequence[float], windows: Sequence[QuotaWindow]) -> None:
    for window in windows:
        count = max_in_window(times, window.seconds)
        assert count <= window.limit, f"{count} sends in a {window} window"


async def drive(
    limiter: QuotaLimiter, n: int, *, workers: int = 4, latency: float = 0.05, klass=MUTATION
) -> list[float]:
    """Send ``n`` requests through ``workers`` concurrent workers; return the send times."""
    times: list[float] = []
    items = iter(range(n))

    async def worker() -> None:
        for _ in items:
            async with limiter.slot(klass) as sent_at:
                times.append(sent_at)
                await asyncio.sleep(latency)

    async with anyio.create_task_group() as tg:
        for _ in range(workers):
            tg.start_soon(worker)
    return times


# --- the schedule -----------------------------------------------------------------------


def test_theoretical_minimum_values():
    """The lower bound is the bursty greedy schedule: 1,810 s for 2,000 at 100/10 s + 900/15 min."""
    assert theoretical_minimum(2000, DEFAULT_QUOTA) == 1810.0
    assert theoretical_minimum(0, DEFAULT_QUOTA) == 0.0
    assert theoretical_minimum(1, DEFAULT_QUOTA) == 0.0
    assert theoretical_minimum(100, DEFAULT_QUOTA) == 0.0
    assert theoretical_minimum(101, DEFAULT_QUOTA) == 10.0
    assert theoretical_minimum(901, DEFAULT_QUOTA) == 900.0
    assert theoretical_minimum(3, [QuotaWindow(1, 1.0)]) == 2.0


def test_window_checker_catches_a_burst():
    """The recount used below does flag a schedule that overruns a window."""
    bursty = schedule(200, DEFAULT_QUOTA, smooth=False)  # 100 at t=0, 100 at t=10
    assert max_in_window(bursty, 10) == 200
    with pytest.raises(AssertionError, match="200 sends"):
        assert_within(bursty, DEFAULT_QUOTA)


def test_2000_sends_four_workers_meet_the_quota_within_5_percent():
    """2,000 sends, 4 workers: no window overrun, no 429 at the server, ≤ 1.05x the minimum."""

    async def main(loop: VirtualTimeLoop):
        limiter = QuotaLimiter({MUTATION: DEFAULT_QUOTA}, clock=loop.time, sleep=asyncio.sleep)
        start = loop.time()
        eta = limiter.eta({MUTATION: 2000})
        times = await drive(limiter, 2000)
        return start, eta, times, loop.time(), limiter.stats

    start, eta, times, end, stats = run_virtual(main)
    minimum = theoretical_minimum(2000, DEFAULT_QUOTA)
    elapsed = end - start
    print(
        f"\n2,000 sends: {elapsed:.1f} s virtual; minimum {minimum:.0f} s; x{elapsed / minimum:.4f}"
    )
    assert len(times) == 2000
    assert times == sorted(times)
    assert_within(times, DEFAULT_QUOTA)
    assert elapsed <= 1.05 * minimum
    # No bursts: consecutive sends are at least span/limit apart.
    gaps = [b - a for a, b in zip(times, times[1:], strict=False)]
    assert min(gaps) >= 0.1
    # The ETA is the exact greedy schedule this run followed.
    assert times[-1] - start == pytest.approx(eta, abs=1e-6)
    assert stats.acquired == {MUTATION: 2000}
    assert stats.throttled == 0
    # The emulator's own quota counter (half-open windows), fed arrival times with up to
    # 20 ms of network jitter, never rejects one.
    server = Quota(DEFAULT_QUOTA, time_scale=1.0)
    jitter = random.Random(7)
    arrivals = sorted(t + jitter.uniform(0, 0.02) for t in times)
    assert [server.attempt(t) for t in arrivals] == [None] * 2000


def test_restart_with_history_does_not_burst():
    """A run killed with both windows full and restarted at once respects the persisted windows."""

    async def main(loop: VirtualTimeLoop, remember: bool):
        first = QuotaLimiter({MUTATION: DEFAULT_QUOTA}, clock=loop.time, sleep=asyncio.sleep)
        before = await drive(first, 900)  # 900/15 min spent, 100/10 s nearly spent
        await asyncio.sleep(0.5)  # killed, restarted
        restarted_at = loop.time()
        second = QuotaLimiter(
            {MUTATION: DEFAULT_QUOTA},
            clock=loop.time,
            sleep=asyncio.sleep,
            history=first.history() if remember else None,
        )
        after = await drive(second, 300)
        return before, restarted_at, after

    before, restarted_at, after = run_virtual(lambda loop: main(loop, True))
    assert_within(before + after, DEFAULT_QUOTA)
    # The first new send waits for the oldest remembered one to leave the 15-minute window.
    assert after[0] >= before[0] + 900
    assert after[0] - restarted_at > 800
    # Control: the same restart without history overruns the 15-minute window at once.
    before, restarted_at, after = run_virtual(lambda loop: main(loop, False))
    assert after[0] == restarted_at
    assert max_in_window(before + after, 900) > 900


async def test_without_history_the_first_send_is_immediate_but_with_it_waits():
    """History from a previous run (both windows full) makes the first send wait."""
    clock = FakeClock()
    fresh = clock.limiter()
    assert await fresh.acquire(MUTATION) == START
    assert clock.sleeps == []

    # Previous run: 100 sends in the last 5 s.
    previous = [START - 5 + i * 0.05 for i in range(100)]
    clock = FakeClock(START)
    limiter = clock.limiter(history={MUTATION: previous})
    sent = await limiter.acquire(MUTATION)
    assert sent == pytest.approx(previous[0] + 10 * (1 + DEFAULT_SAFETY) + DEFAULT_PAD)
    assert_within([*previous, sent], DEFAULT_QUOTA)


async def test_history_ignores_old_and_unknown_entries():
    """Send times older than every window and unknown classes do not delay anything."""
    clock = FakeClock()
    limiter = clock.limiter(history={MUTATION: [START - 5000.0] * 900, "other": [START] * 10})
    assert await limiter.acquire(MUTATION) == START
    assert limiter.history() == {MUTATION: [START]}


async def test_sends_are_paced_not_burst():
    """Inside the short window sends go out span/limit apart, starting at once."""
    clock = FakeClock()
    limiter = clock.limiter()
    times = [await limiter.acquire(MUTATION) for _ in range(5)]
    assert times[0] == START
    assert [b - a for a, b in zip(times, times[1:], strict=False)] == pytest.approx([SPACING] * 4)
    assert limiter.stats.waits == 4
    assert limiter.stats.waited == pytest.approx(4 * SPACING)


async def test_try_acquire_takes_only_a_free_slot_nobody_is_queued_for():
    """The no-wait path: a free slot is taken and logged; a paced or queued one is not."""
    clock = FakeClock()
    limiter = clock.limiter()
    assert limiter.try_acquire(MUTATION) == START
    assert limiter.try_acquire(MUTATION) is None  # the next one is SPACING away
    assert limiter.history() == {MUTATION: [START]}
    clock.now += SPACING
    async with anyio.create_task_group() as tg:
        tg.start_soon(limiter.acquire, MUTATION)  # takes the free slot
        tg.start_soon(limiter.acquire, MUTATION)  # queued behind it, holding the lock
        await anyio.lowlevel.checkpoint()
        # The slot after next is free by the clock, but a waiter is first in line.
        clock.now += 5 * SPACING
        assert limiter.try_acquire(MUTATION) is None
    assert limiter.stats.acquired == {MUTATION: 3}
    with pytest.raises(KeyError):
        limiter.try_acquire("unknown")


async def test_classes_have_separate_windows():
    """Id-list sends neither wait for nor delay mutation sends."""
    clock = FakeClock()
    limiter = clock.limiter({MUTATION: DEFAULT_QUOTA, ID_LIST: DEFAULT_ID_LIST_QUOTA})
    assert await limiter.acquire(MUTATION) == START
    assert await limiter.acquire(ID_LIST) == START
    # The id-list class paces at 10/12 s (plus margin), the mutation class at 0.1 s.
    assert await limiter.acquire(ID_LIST) == pytest.approx(START + (10 * 1.01 + 0.005) / 12)
    assert clock.now - START == pytest.approx((10 * 1.01 + 0.005) / 12)


async def test_every_attempt_is_recorded_including_rejected_ones():
    """Attempts answered by a 429 stay in the windows: the server counted them."""
    clock = FakeClock()
    limiter = clock.limiter(rand=lambda: 0.0)
    first = await limiter.acquire(MUTATION)
    limiter.throttled(MUTATION, retry_after=None, attempt=1)
    second = await limiter.acquire(MUTATION)  # the retry
    assert limiter.history()[MUTATION] == [first, second]
    assert limiter.stats.acquired == {MUTATION: 2}


# --- 429 feedback -----------------------------------------------------------------------


async def test_throttled_pauses_for_retry_after_and_tightens():
    """A 429 with Retry-After pauses the class that long and halves its limits."""
    clock = FakeClock()
    limiter = clock.limiter()
    await limiter.acquire(MUTATION)
    limiter.throttled(MUTATION, retry_after=5.0, attempt=1)
    stats = limiter.stats
    assert stats.throttled == 1
    assert stats.effective_limits == {MUTATION: (50, 450)}
    assert stats.paused_until == {MUTATION: START + 5.0}
    after = [await limiter.acquire(MUTATION) for _ in range(3)]
    assert after[0] == START + 5.0
    # Half the limit in the short window: twice the spacing.
    assert after[2] - after[1] == pytest.approx(2 * SPACING)


async def test_throttled_retry_after_is_clamped():
    """An absurd Retry-After is clamped by the policy's retry_after_cap."""
    clock = FakeClock()
    limiter = clock.limiter(policy=RetryPolicy(retry_after_cap=60.0))
    limiter.throttled(MUTATION, retry_after=3600.0, attempt=1)
    assert await limiter.acquire(MUTATION) == START + 60.0


async def test_throttled_without_retry_after_uses_jittered_backoff():
    """Without Retry-After the pause is capped full-jitter backoff for the attempt."""
    clock = FakeClock()
    limiter = clock.limiter(policy=RetryPolicy(base=0.5, cap=30.0), rand=lambda: 0.5)
    limiter.throttled(MUTATION, retry_after=None, attempt=4)  # U(0, 4) at 0.5 → 2 s
    assert await limiter.acquire(MUTATION) == START + 2.0


async def test_repeated_429s_keep_a_floor_and_successes_recover_slowly():
    """Limits halve per 429 down to the floor, then win back 0.5% per success."""
    clock = FakeClock()
    limiter = clock.limiter()
    for attempt in range(1, 10):
        limiter.throttled(MUTATION, retry_after=0.0, attempt=attempt)
    assert limiter.stats.effective_limits[MUTATION] == (10, 90)  # min_factor 0.1
    limiter.succeeded(MUTATION)
    assert limiter.stats.effective_limits[MUTATION] == (10, 94)
    for _ in range(10):
        limiter.succeeded(MUTATION)
    assert limiter.stats.effective_limits[MUTATION] == (15, 139)  # still far from full
    for _ in range(200):
        limiter.succeeded(MUTATION)
    assert limiter.stats.effective_limits[MUTATION] == (100, 900)  # never above the config


async def test_a_pause_does_not_shrink_when_a_shorter_one_follows():
    """A second 429 with a shorter Retry-After does not cut the first pause short."""
    clock = FakeClock()
    limiter = clock.limiter()
    limiter.throttled(MUTATION, retry_after=8.0, attempt=1)
    limiter.throttled(MUTATION, retry_after=1.0, attempt=1)
    assert await limiter.acquire(MUTATION) == START + 8.0


# --- ETA --------------------------------------------------------------------------------


def test_eta_is_exact_with_history_pause_and_tightening():
    """eta() predicts the finish of a run that starts with history, a pause and a 429 factor."""

    async def main(loop: VirtualTimeLoop):
        history = [loop.time() - 300 + i * 0.5 for i in range(600)]
        limiter = QuotaLimiter(
            {MUTATION: DEFAULT_QUOTA, ID_LIST: DEFAULT_ID_LIST_QUOTA},
            clock=loop.time,
            sleep=asyncio.sleep,
            history={MUTATION: history},
        )
        limiter.throttled(MUTATION, retry_after=3.0, attempt=1)
        start = loop.time()
        eta = limiter.eta({MUTATION: 700, ID_LIST: 20})
        mutation_only = limiter.eta({MUTATION: 700})
        async with anyio.create_task_group() as tg:
            results: dict[str, list[float]] = {}

            async def run(klass: str, n: int) -> None:
                results[klass] = await drive(limiter, n, workers=2, latency=0.01, klass=klass)

            tg.start_soon(run, MUTATION, 700)
            tg.start_soon(run, ID_LIST, 20)
        return start, eta, mutation_only, results, history

    start, eta, mutation_only, results, history = run_virtual(main)
    assert results[MUTATION][-1] - start == pytest.approx(mutation_only, abs=1e-6)
    assert eta == pytest.approx(max(results[MUTATION][-1], results[ID_LIST][-1]) - start, abs=1e-6)
    assert eta > 600  # the 900/15 min window was 2/3 full at the start
    assert_within(history + results[MUTATION], DEFAULT_QUOTA)
    assert_within(results[ID_LIST], DEFAULT_ID_LIST_QUOTA)


async def test_eta_of_nothing_is_zero_and_unknown_class_is_an_error():
    """No sends take no time; an unknown class is a programming error."""
    limiter = QuotaLimiter({MUTATION: DEFAULT_QUOTA}, clock=FakeClock())
    assert limiter.eta({}) == 0.0
    assert limiter.eta({MUTATION: 0}) == 0.0
    assert limiter.eta({MUTATION: 1}) == 0.0
    with pytest.raises(KeyError, match="segments"):
        limiter.eta({"segments": 3})
    with pytest.raises(KeyError, match="segments"):
        await limiter.acquire("segments")


# --- in-flight cap ----------------------------------------------------------------------


class Spy:
    """Counts concurrent holders of a slot (aiometer's TestMaxAtOnce.Spy)."""

    def __init__(self) -> None:
        self.running = 0
        self.max_running = 0

    async def hold(self, limiter: QuotaLimiter, seconds: float) -> None:
        async with limiter.slot(MUTATION):
            self.running += 1
            self.max_running = max(self.max_running, self.running)
            # Holders still waiting for their rate slot count as in flight too.
            assert self.running <= limiter.stats.in_flight <= 3
            await asyncio.sleep(seconds)
            self.running -= 1


def test_in_flight_cap_is_respected():
    """No more than max_in_flight requests hold a slot at once, even when the rate allows more."""

    async def main(loop: VirtualTimeLoop):
        limiter = QuotaLimiter(
            {MUTATION: [QuotaWindow(1000, 1.0)]},
            max_in_flight=3,
            clock=loop.time,
            sleep=asyncio.sleep,
        )
        spy = Spy()
        async with anyio.create_task_group() as tg:
            for _ in range(12):
                tg.start_soon(spy.hold, limiter, 1.0)
        return spy, loop.time() - START, limiter.stats

    spy, elapsed, stats = run_virtual(main)
    assert spy.max_running == 3
    assert elapsed == pytest.approx(4.0, abs=0.05)  # 12 holders, 3 at a time, 1 s each
    assert stats.in_flight == 0


def test_a_class_without_windows_is_only_capped_in_flight():
    """A class configured with no windows sends as fast as the in-flight cap allows."""

    async def main(loop: VirtualTimeLoop):
        limiter = QuotaLimiter({MUTATION: ()}, max_in_flight=2, clock=loop.time)
        return await drive(limiter, 6, workers=6, latency=1.0)

    times = run_virtual(main)
    assert times == pytest.approx([START, START, START + 1, START + 1, START + 2, START + 2])


# --- robustness -------------------------------------------------------------------------


async def test_clock_stepping_back_does_not_stall():
    """If the wall clock steps back an hour, the next send does not wait an hour."""
    clock = FakeClock()
    limiter = clock.limiter()
    await limiter.acquire(MUTATION)
    clock.now -= 3600
    sent = await limiter.acquire(MUTATION)
    assert sent - clock.now <= SPACING
    assert sum(clock.sleeps) <= SPACING + 1e-9


@pytest.mark.parametrize(
    "kwargs",
    [{"max_in_flight": 0}, {"safety": -0.1}, {"pad": -1.0}, {"decrease": 0.0}, {"increase": 2.0}],
)
def test_limiter_rejects_nonsense(kwargs: dict[str, Any]):
    """Out-of-range knobs are refused at construction."""
    with pytest.raises(ValueError, match="must"):
        QuotaLimiter({MUTATION: DEFAULT_QUOTA}, **kwargs)


def test_limiter_rejects_an_empty_window():
    """A window admitting nothing is a configuration error."""
    with pytest.raises(ValueError, match="bad quota window"):
        QuotaLimiter({MUTATION: [QuotaWindow(0, 10.0)]})


# --- SendLog ----------------------------------------------------------------------------


def test_sendlog_round_trip_is_private_and_atomic(tmp_path: Path):
    """Send times survive a save/load, in a 0600 file, with no temporary file left behind."""
    path = tmp_path / "state" / "sends" / "proj.json"
    sendlog = SendLog(path)
    assert sendlog.load() == {}
    history = {MUTATION: [START, START + 0.1], ID_LIST: []}
    sendlog.save(history)
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert sendlog.load() == history
    sendlog.save({MUTATION: [START + 1.0]})
    assert sendlog.load() == {MUTATION: [START + 1.0]}
    assert sorted(p.name for p in path.parent.iterdir()) == ["proj.json"]
    assert json.loads(path.read_text())["format"] == "bulkops-sends/1"


@pytest.mark.parametrize(
    "content",
    [
        b"{not json",
        b"[]",
        b'{"format": "x", "sends": {}}',
        b'{"format": "bulkops-sends/1", "sends": {"mutation": ["a"]}}',
        b'{"format": "bulkops-sends/1", "sends": []}',
    ],
)
def test_sendlog_unreadable_file_is_treated_as_empty(tmp_path: Path, content: bytes):
    """A damaged send log only costs pacing, so it is logged and ignored, not fatal."""
    path = tmp_path / "proj.json"
    path.write_bytes(content)
    with capture_logs() as logs:
        assert SendLog(path).load() == {}
    assert [entry["event"] for entry in logs] == ["ratelimit.sendlog_unreadable"]


async def test_sendlog_feeds_a_restarted_limiter(tmp_path: Path):
    """history() saved through SendLog and loaded again makes the restarted limiter wait."""
    clock = FakeClock()
    limiter = clock.limiter({MUTATION: [QuotaWindow(3, 10.0)]})
    sent = [await limiter.acquire(MUTATION) for _ in range(3)]
    sendlog = SendLog(tmp_path / "sends.json")
    sendlog.save(limiter.history())
    restarted = clock.limiter({MUTATION: [QuotaWindow(3, 10.0)]}, history=sendlog.load())
    assert await restarted.acquire(MUTATION) == pytest.approx(sent[0] + 10 * 1.01 + 0.005)
