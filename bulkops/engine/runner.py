"""The runner: executes a plan under the quota, write-ahead journaled, resumable.

Structure (anyio on asyncio): one task group holds ``max_in_flight`` **workers** that
take ready mutations from one queue (no task per item up front, no dispatcher or channel
hop in between); beside them, the single **journal writer** appends in call order and
one syncer thread fsyncs (group commit). Per mutation:

1. unless the journal says it is settled: append the first attempt's ``intent`` and
   start its fsync, then read the object (``read``) while the fsync runs; already in
   the after-state → ``skipped`` (nothing sent); in neither state → ``conflict`` (never
   overwritten); either closes the intent with its outcome. An intent without outcome
   from an earlier run is settled by that read (:func:`bulkops.reconcile.settle`);
2. wait until the intent is on disk (the read took longer than the fsync, so this is
   rarely a wait), *then* ``QuotaLimiter.acquire`` and the request right after it; the
   in-flight cap is the number of workers;
3. ``outcome`` record. A failed attempt goes through :func:`bulkops.retry.decide`:
   retry (never-sent, 429, idempotent by value; the per-run :class:`RetryBudget`
   bounds them), ``ambiguous`` (settled by a read before anything is sent again), fail
   this item (the run goes on), or stop the run (401/403).

Order: a mutation starts when its dependencies are applied or skipped (a failed one
fails its dependents), and mutations on one object run one at a time in plan order.
Ctrl-C (SIGINT/SIGTERM) stops dispatching, lets requests in flight finish and their
outcomes reach the journal; a second one cancels them (their intents are reconciled on
resume). ``BULKOPS_FAILPOINT=step:N`` makes the process ``os._exit(137)`` at a protocol
step of the N-th mutation to reach it, for the crash tests.
"""

from __future__ import annotations

import asyncio
import contextlib
import enum
import logging
import os
import signal
import threading
import time
import uuid
from collections import Counter, deque
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

import anyio
import structlog
from anyio import CancelScope
from structlog.contextvars import bind_contextvars, bound_contextvars, reset_contextvars

from ..api.client import ConsoleClient
from ..api.retry import Action, RetryBudget, RetryPolicy, decide
from ..errors import (
    ApiError,
    ApiStatusError,
    Forbidden,
    JournalError,
    RateLimited,
    ServerError,
    TransportError,
    Unauthorized,
)
from .apply import created_id, send_mutation
from .journal import Journal
from .mutations import Mutation
from .plans import Plan
from .ratelimit import QuotaLimiter, SendLog
from .reconcile import FINAL_STATES, KeyState, Match, Verdict, judge, observe, replay, settle

__all__ = [
    "DEFAULT_MAX_IN_FLIGHT",
    "EVENT_AMBIGUOUS",
    "EVENT_APPLIED",
    "EVENT_CONFLICT",
    "EVENT_FAILED",
    "EVENT_RECONCILED",
    "EVENT_RETRY",
    "EVENT_RUN_END",
    "EVENT_RUN_START",
    "EVENT_SKIPPED",
    "FAILPOINT_ENV",
    "FAILPOINT_STEPS",
    "Failpoints",
    "NullObserver",
    "Observer",
    "RunOptions",
    "RunResult",
    "Stop",
    "history_from_records",
    "run_plan",
]

log = structlog.get_logger()

DEFAULT_MAX_IN_FLIGHT = 4
FAILPOINT_ENV = "BULKOPS_FAILPOINT"
FAILPOINT_STEPS = (
    "before-intent",
    "before-read",
    "after-intent",
    "after-send",
    "before-outcome",
    "after-outcome",
)

EVENT_RUN_START = "run.start"
EVENT_RUN_END = "run.end"
EVENT_RUN_STOPPING = "run.stopping"
EVENT_APPLIED = "mutation.applied"
EVENT_SKIPPED = "mutation.skipped"
EVENT_FAILED = "mutation.failed"
EVENT_CONFLICT = "mutation.conflict"
EVENT_AMBIGUOUS = "mutation.ambiguous"
EVENT_RECONCILED = "mutation.reconciled"
EVENT_RETRY = "mutation.retry"
EVENT_PENDING = "mutation.pending"

_EVENTS = {
    "applied": EVENT_APPLIED,
    "skipped": EVENT_SKIPPED,
    "failed": EVENT_FAILED,
    "conflict": EVENT_CONFLICT,
    "ambiguous": EVENT_AMBIGUOUS,
    "pending": EVENT_PENDING,
}
_SYNC_EVERY = 1.0  # seconds between fsyncs of outcome records (intents are always synced)
# How long the syncer thread lets intents gather before an fsync that nobody waits for
# yet (their reads are in flight): fewer fsyncs, and no send waits longer for it.
_GROUP_COMMIT_WINDOW = 0.0005
# The per-project send log is saved (in a thread, without fsync) about once a second
# and at the end of the run. It only paces a *different* checkpoint's run on the same
# project: a resume of this checkpoint rebuilds its windows from the journal, whose
# intents are durable before each send. A kill loses at most the last second of sends
# from it (the data already written survives a kill: no fsync needed for that); an OS
# crash may lose more, and then the next run on the project may see some 429s, which
# the limiter absorbs by backing off. Saving more often cost two fsyncs a save.
_SENDLOG_SECONDS = 1.0


class Stop(enum.Enum):
    """Why a run ended."""

    COMPLETE = "complete"
    INTERRUPTED = "interrupted"
    UNAUTHORIZED = "unauthorized"
    BUDGET = "retry budget exhausted"


class Failpoints:
    """``BULKOPS_FAILPOINT=step:N[,step:N]``: ``os._exit(137)`` at ``step`` the N-th time.

    Steps: ``before-intent``, ``before-read`` (the intent appended before the re-read,
    nothing read or sent), ``after-intent`` (durable, not sent), ``after-send`` (the
    response arrived, nothing recorded), ``before-outcome`` (decided, not recorded),
    ``after-outcome`` (recorded). Counting is per process, per step.
    """

    def __init__(self, spec: str | None) -> None:
        self._at: dict[str, int] = {}
        self._seen: Counter[str] = Counter()
        for part in filter(None, (p.strip() for p in (spec or "").split(","))):
            step, _, count = part.partition(":")
            if step not in FAILPOINT_STEPS or not count.isdigit() or int(count) < 1:
                raise ValueError(
                    f"bad failpoint {part!r}: expected STEP:N with STEP one of "
                    f"{', '.join(FAILPOINT_STEPS)}"
                )
            self._at[step] = int(count)

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> Failpoints:
        """The failpoints named in ``$BULKOPS_FAILPOINT``."""
        env = os.environ if environ is None else environ
        return cls(env.get(FAILPOINT_ENV))

    def armed(self, step: str) -> bool:
        """Whether a crash is configured at ``step``."""
        return step in self._at

    def hit(self, step: str) -> None:
        """Count one arrival at ``step``; die at the configured one."""
        if step not in self._at:
            return
        self._seen[step] += 1
        if self._seen[step] == self._at[step]:
            os._exit(137)


class Observer(Protocol):
    """Progress callbacks (the CLI's progress bar; tests use :class:`NullObserver`)."""

    def start(self, total: int, done: int, remaining: Mapping[str, int]) -> None: ...

    def result(self, key: str, result: str, klass: str) -> None: ...

    def retry(self) -> None: ...

    def throttled(self) -> None: ...

    def stop(self) -> None: ...


class NullObserver:
    """An observer that ignores everything."""

    def start(self, total: int, done: int, remaining: Mapping[str, int]) -> None:
        return None

    def result(self, key: str, result: str, klass: str) -> None:
        return None

    def retry(self) -> None:
        return None

    def throttled(self) -> None:
        return None

    def stop(self) -> None:
        return None


@dataclass(frozen=True)
class RunOptions:
    """Knobs of one run (validated eagerly by :func:`run_plan`).

    Attributes:
        max_in_flight: Workers, hence writes (and their reads) in flight at once.
        policy: Retry limits and backoff.
        budget_ratio, budget_minimum: The per-run retry budget.
        handle_signals: Install SIGINT/SIGTERM handlers (the CLI does; tests usually not).
        failpoints: Crash points for the crash tests.
        run_id: Id of this run (bound in every log event).
    """

    max_in_flight: int = DEFAULT_MAX_IN_FLIGHT
    policy: RetryPolicy = field(default_factory=RetryPolicy)
    budget_ratio: float = 0.2
    budget_minimum: int = 20
    handle_signals: bool = False
    failpoints: Failpoints = field(default_factory=lambda: Failpoints(None))
    run_id: str = field(default_factory=lambda: uuid.uuid4().hex[:12])


@dataclass
class RunResult:
    """How a run ended, and every mutation's state afterwards."""

    run_id: str
    stop: Stop
    reason: str
    states: dict[str, KeyState]
    retries: int = 0
    throttled: int = 0
    elapsed: float = 0.0
    sent: int = 0
    fsyncs: int = 0

    def counts(self) -> Counter[str]:
        """Mutations per state (``applied``, ``skipped``, ``failed``, ``conflict``,
        ``in_doubt``, ``pending``)."""
        return Counter(st.state for st in self.states.values())

    @property
    def ok(self) -> bool:
        """Everything applied or skipped."""
        return self.stop is Stop.COMPLETE and all(
            st.state in ("applied", "skipped") for st in self.states.values()
        )


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


def _logs_info() -> bool:
    """Whether structlog's configured level lets ``info`` events through."""
    check = getattr(log.bind(), "is_enabled_for", None)
    return True if check is None else bool(check(logging.INFO))


class _Writer:
    """The single journal writer: appends in call order; fsyncs on one syncer thread.

    Records are appended straight away from the event loop's thread (one ``os.write``
    each; the loop runs one task at a time, so the order of calls is the order in the
    file). Durability is a separate step: :meth:`request` wakes a dedicated syncer
    thread, whose fsync covers every record appended before it starts (group commit:
    intents appended while an fsync runs share the next one), and :meth:`durable` waits
    for a record to be on disk. The thread tells the loop only when someone waits
    (``call_soon_threadsafe``); an fsync that nobody waits for costs the loop nothing
    but the wake-up of the thread. Outcomes are not waited for: the next intent's fsync
    or a periodic request (every ``_SYNC_EVERY`` s) covers them.

    The syncer thread is asyncio's business (aiohttp, and so the runner, runs on
    asyncio only); it keeps no reference to the loop beyond the run.
    """

    def __init__(self, journal: Journal) -> None:
        self.journal = journal
        self.fsyncs = 0
        self._lock = threading.Condition()
        self._wanted = -1  # fsync until every seq up to this one is on disk
        self._waiters: list[tuple[int, asyncio.Future[None]]] = []
        self._closing = False
        self._error: JournalError | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None
        self._last_sync = time.monotonic()

    @property
    def failed(self) -> bool:
        """A write or fsync failed: the journal is unusable (its JournalError propagates)."""
        return self.journal.failed

    def start(self) -> None:
        """Start the syncer thread (in the running event loop)."""
        self._loop = asyncio.get_running_loop()
        self._thread = threading.Thread(
            target=self._sync_forever, name="bulkops-journal-sync", daemon=True
        )
        self._thread.start()

    def append(self, record: dict[str, Any]) -> int:
        """Append ``record`` now; its seq. Durable only once :meth:`durable` says so."""
        seq = self.journal.append(record)
        if time.monotonic() - self._last_sync >= _SYNC_EVERY:
            self.request(seq)
        return seq

    def request(self, seq: int) -> None:
        """Have the syncer make everything through ``seq`` durable; do not wait."""
        if seq <= self._wanted or self.journal.synced_seq > seq:
            return  # already asked for (``_wanted`` only grows), or already on disk
        with self._lock:
            if seq > self._wanted:
                self._wanted = seq
                self._lock.notify()

    async def durable(self, seq: int) -> None:
        """Return once every record through ``seq`` is on disk.

        Raises:
            JournalError: The fsync failed (the journal is unusable).
        """
        if self.journal.synced_seq > seq:
            return
        assert self._loop is not None, "the writer was not started"
        future: asyncio.Future[None] = self._loop.create_future()
        with self._lock:
            if self._error is not None:
                raise self._error
            if self.journal.synced_seq > seq:
                return
            self._waiters.append((seq, future))
            if seq > self._wanted:
                self._wanted = seq
                self._lock.notify()
        await future

    async def write(self, record: dict[str, Any], *, sync: bool = False) -> None:
        """Append ``record``; with ``sync``, return only once it is on disk."""
        seq = self.append(record)
        if sync:
            await self.durable(seq)

    async def close(self) -> None:
        """Make everything appended durable, then stop the syncer thread."""
        try:
            if not self.failed and self.journal.synced_seq < self.journal.next_seq:
                await self.durable(self.journal.next_seq - 1)
        finally:
            self.stop()

    def stop(self) -> None:
        """Stop the syncer thread once it has done what was asked (safe to call twice)."""
        with self._lock:
            self._closing = True
            self._lock.notify()
        if self._thread is not None:
            self._thread.join()
            self._thread = None

    def _sync_forever(self) -> None:
        journal = self.journal
        while True:
            with self._lock:
                while journal.synced_seq > self._wanted and not self._closing:
                    self._lock.wait()
                if journal.synced_seq > self._wanted:
                    return  # closing, and nothing left to sync
                if not self._waiters and not self._closing:
                    # Nobody waits yet (the intents' reads are in flight): let the
                    # intents of the next moment join this fsync. A waiter wakes it.
                    self._lock.wait(_GROUP_COMMIT_WINDOW)
            try:
                journal.sync()  # covers every record appended before it starts
            except JournalError as exc:
                with self._lock:
                    self._error = exc
                    waiters, self._waiters = self._waiters, []
                self._notify([f for _, f in waiters], exc)
                return
            self.fsyncs += 1
            self._last_sync = time.monotonic()
            with self._lock:
                synced = journal.synced_seq
                done = [f for s, f in self._waiters if s < synced]
                if done:
                    self._waiters = [(s, f) for s, f in self._waiters if s >= synced]
            if done:
                self._notify(done, None)

    def _notify(self, futures: list[asyncio.Future[None]], error: JournalError | None) -> None:
        if not futures or self._loop is None:
            return
        with contextlib.suppress(RuntimeError):  # the loop is closed: nobody waits any more
            self._loop.call_soon_threadsafe(_settle_futures, futures, error)


def _settle_futures(futures: list[asyncio.Future[None]], error: JournalError | None) -> None:
    for future in futures:
        if not future.done():  # a waiter cancelled meanwhile
            if error is None:
                future.set_result(None)
            else:
                future.set_exception(error)


class _Run:
    def __init__(
        self,
        plan: Plan,
        *,
        client: ConsoleClient,
        writer: _Writer,
        states: dict[str, KeyState],
        limiter: QuotaLimiter,
        sendlog: SendLog | None,
        options: RunOptions,
        observer: Observer,
    ) -> None:
        self.plan = plan
        self.client = client
        self.writer = writer
        self.states = states
        self.limiter = limiter
        self.sendlog = sendlog
        self.options = options
        self.observer = observer
        self.budget = RetryBudget(options.budget_ratio, options.budget_minimum)
        self.by_key = plan.by_key()
        self.stopping = False
        self.stop_event = anyio.Event()
        self.stop_reason = Stop.COMPLETE
        self.stop_detail = ""
        self.retries = 0
        self.throttled = 0
        self.sent = 0
        self._saving = False
        self.log_info = _logs_info()
        self.wait_scopes: set[anyio.CancelScope] = set()
        # Beyond every journal seq so far: records of this run come after them.
        self._settle_counter = max((st.settled_at for st in states.values()), default=0)
        self._settle_counter += 1_000_000
        self._saved_at = time.monotonic()
        self.task_group: Any = None
        # Scheduling: prerequisites left per key, who waits on whom.
        self.waiting: dict[str, int] = {}
        self.dependents: dict[str, list[str]] = {}
        self.object_next: dict[str, str] = {}
        self.ready: deque[str] = deque()
        self.in_flight = 0
        self.changed = anyio.Event()
        self.cascade: list[tuple[str, str]] = []

    def next_settle(self) -> int:
        """An order for settled mutations that continues the journal's sequence numbers
        (the single writer appends in this order), so undo sees newest first."""
        self._settle_counter += 1
        return self._settle_counter

    # -- scheduling -------------------------------------------------------------

    def build_graph(self) -> None:
        last_on_object: dict[str, str] = {}
        for m in self.plan.mutations:
            st = self.states[m.key]
            if st.state in FINAL_STATES:
                continue
            count = 0
            for dep in dict.fromkeys(m.depends_on):
                dep_state = self.states[dep].state
                if dep_state in ("applied", "skipped"):
                    continue
                if dep_state in ("failed", "conflict"):
                    self.cascade.append((m.key, f"dependency {dep} {dep_state}"))
                    continue
                self.dependents.setdefault(dep, []).append(m.key)
                count += 1
            prev = last_on_object.get(m.object)
            if prev is not None:
                self.object_next[prev] = m.key
                count += 1
            last_on_object[m.object] = m.key
            self.waiting[m.key] = count
        for m in self.plan.mutations:
            if self.waiting.get(m.key) == 0:
                self.ready.append(m.key)

    async def fail_dependents(self, key: str, reason: str) -> None:
        """Record ``key`` failed because a dependency did not apply, and its dependents too."""
        todo = [(key, reason)]
        while todo:
            k, why = todo.pop()
            st = self.states[k]
            if st.state in FINAL_STATES or k not in self.waiting:
                continue
            self.waiting.pop(k, None)
            try:
                self.ready.remove(k)
            except ValueError:
                pass
            m = self.by_key[k]
            await self.record_outcome(m, "failed", attempts=st.attempts, error=why)
            with bound_contextvars(key=k):
                log.info(EVENT_FAILED, action=m.action, object=m.object, error=why)
            self.observer.result(k, "failed", m.quota_class)
            todo.extend((child, f"dependency {k} failed") for child in self.dependents.get(k, []))
            nxt = self.object_next.get(k)
            if nxt is not None:
                self.release(nxt)

    def release(self, key: str) -> None:
        if key in self.waiting:
            self.waiting[key] -= 1
            if self.waiting[key] == 0:
                self.ready.append(key)

    async def completed(self, key: str, result: str) -> None:
        self.waiting.pop(key, None)
        if result in ("pending", "ambiguous"):
            return  # unsettled: whatever waits on it keeps waiting (resume picks it up)
        nxt = self.object_next.get(key)
        if nxt is not None:
            self.release(nxt)
        for child in self.dependents.get(key, []):
            if result in ("applied", "skipped"):
                self.release(child)
            else:
                await self.fail_dependents(child, f"dependency {key} {result}")

    def next_key(self) -> str | None:
        """The next ready mutation to start, or None (nothing ready, or stopping)."""
        while self.ready and not self.stopping:
            key = self.ready.popleft()
            if key in self.waiting:
                return key
        return None

    def wake(self) -> None:
        """Wake the workers waiting for work (new keys are ready, or the run is over)."""
        self.changed.set()
        self.changed = anyio.Event()

    async def worker(self) -> None:
        """Take ready mutations one at a time until nothing is left to start.

        Workers pull from the ready queue themselves (no dispatcher between them, no
        hop through a channel per mutation): a worker with nothing ready waits only
        while others are in flight, since one of them may release more work.
        """
        while True:
            key = self.next_key()
            if key is None:
                if self.in_flight == 0 or self.stopping:
                    self.wake()  # the run is over: let the waiting workers go too
                    return
                await self.changed.wait()
                continue
            self.in_flight += 1
            try:
                result = await self.run_one(key)
            finally:
                self.in_flight -= 1
            ready = len(self.ready)
            await self.completed(key, result)
            if len(self.ready) > ready or self.in_flight == 0:
                self.wake()

    async def run_one(self, key: str) -> str:
        """Process one mutation with its key bound in the log; report its result."""
        mutation = self.by_key[key]
        started = time.monotonic()
        tokens = bind_contextvars(key=key)
        try:
            result = await self.process(mutation)
            if self.log_info:  # skipped, kwargs and all, when info is filtered out
                st = self.states[key]
                log.info(
                    _EVENTS.get(result, EVENT_PENDING),
                    action=mutation.action,
                    object=mutation.object,
                    status=st.status,
                    attempts=st.attempts,
                    elapsed_ms=round((time.monotonic() - started) * 1000, 1),
                    error=st.error if result not in ("applied", "skipped") else None,
                )
        finally:
            reset_contextvars(**tokens)
        self.observer.result(key, result, mutation.quota_class)
        return result

    # -- stopping ---------------------------------------------------------------

    def stop(self, reason: Stop, detail: str) -> None:
        if not self.stopping:
            self.stopping = True
            self.stop_reason = reason
            self.stop_detail = detail
            self.stop_event.set()
            for scope in list(self.wait_scopes):
                scope.cancel()  # nobody waits out a quota window to send after a stop
            log.warning(EVENT_RUN_STOPPING, reason=reason.value, detail=detail)
            self.observer.stop()

    async def watch_signals(self, scope: CancelScope) -> None:
        with anyio.open_signal_receiver(signal.SIGINT, signal.SIGTERM) as signals:
            async for _signum in signals:
                if self.stopping and self.stop_reason is Stop.INTERRUPTED:
                    scope.cancel()
                    return
                self.stop(Stop.INTERRUPTED, "interrupted: finishing the requests in flight")

    async def pause(self, delay: float) -> bool:
        """Sleep ``delay`` unless the run stops first; True if it is stopping."""
        if delay > 0 and not self.stopping:
            with anyio.move_on_after(delay):
                await self.stop_event.wait()
        return self.stopping

    # -- journal records --------------------------------------------------------

    async def record_outcome(
        self,
        m: Mutation,
        result: str,
        *,
        attempts: int,
        status: int | None = None,
        error: str | None = None,
        created: str | None = None,
        sync: bool = False,
        sent_at: float | None = None,
    ) -> None:
        record: dict[str, Any] = {
            "t": "outcome",
            "key": m.key,
            "result": result,
            "status": status,
            "error": error,
            "attempts": attempts,
            "at": time.time(),
        }
        if created is not None:
            record["created_id"] = created
        if sent_at is not None:
            record["sent_at"] = sent_at
        await self.writer.write(record, sync=sync)
        st = self.states[m.key]
        st.attempts = max(st.attempts, attempts)
        st.status = status if status is not None else st.status
        st.error = error
        if created is not None:
            st.created_id = created
        if result in FINAL_STATES:
            st.state = result
            st.reason = error
            st.settled_at = self.next_settle()
        elif result == "ambiguous":
            st.state = "in_doubt"
        elif result == "not_applied":
            st.state = "pending"

    async def reconcile(self, m: Mutation) -> Verdict | None:
        """Settle ``m`` by a read and journal the verdict; None if the read failed."""
        try:
            verdict, reason = await settle(self.client, m)
        except (Unauthorized, Forbidden) as exc:
            self.stop(Stop.UNAUTHORIZED, str(exc))
            return None
        except ApiError as exc:
            log.warning(EVENT_AMBIGUOUS, reason="the reconciling read failed", error=str(exc))
            return None
        await self.writer.write(
            {
                "t": "reconciled",
                "key": m.key,
                "verdict": verdict.value,
                "reason": reason,
                "at": time.time(),
            }
        )
        log.info(EVENT_RECONCILED, verdict=verdict.value, reason=reason)
        st = self.states[m.key]
        if verdict is Verdict.APPLIED:
            st.state = "applied"
            st.settled_at = self.next_settle()
        elif verdict is Verdict.CONFLICT:
            st.state = "conflict"
            st.reason = st.error = reason
            st.settled_at = self.next_settle()
        else:
            st.state = "pending"
        return verdict

    # -- one mutation -------------------------------------------------------------

    async def process(self, m: Mutation) -> str:
        st = self.states[m.key]
        if self.stopping:
            return "pending" if st.state == "pending" else "ambiguous"
        if st.state == "in_doubt":
            verdict = await self.reconcile(m)
            if verdict is None:
                return "ambiguous"
            if verdict is Verdict.APPLIED:
                return "applied"
            if verdict is Verdict.CONFLICT:
                return "conflict"
        elif m.verifiable:
            # The first attempt's intent is appended before the re-read and fsynced
            # while the read is in flight, so the send after it rarely waits for the
            # disk. An intent says "this may be sent": every way out below closes it
            # with an outcome, and a kill before that is settled by a read on resume.
            intent = self.append_intent(m, st.attempts + 1)
            self.options.failpoints.hit("before-read")
            try:
                data = await observe(self.client, m)
            except (Unauthorized, Forbidden) as exc:
                await self.record_outcome(
                    m, "not_applied", attempts=st.attempts, error="stopped before sending"
                )
                self.stop(Stop.UNAUTHORIZED, str(exc))
                return "pending"
            except ApiError as exc:
                await self.record_outcome(
                    m, "failed", attempts=st.attempts, error=f"reading the object failed: {exc}"
                )
                return "failed"
            match = judge(m, data)
            if match is Match.AFTER:
                await self.record_outcome(m, "skipped", attempts=st.attempts)
                return "skipped"
            if match is Match.NEITHER:
                if data is None:
                    reason = f"the object does not exist (GET {m.read} answered 404)"
                else:
                    reason = (
                        f"changed since planning: expected {m.before.describe()}, "
                        "the object no longer shows it"
                    )
                await self.record_outcome(m, "conflict", attempts=st.attempts, error=reason)
                return "conflict"
            return await self.send_loop(m, intent)
        return await self.send_loop(m)

    def append_intent(self, m: Mutation, attempt: int) -> int:
        """Append ``m``'s intent for ``attempt`` and start its fsync; its seq."""
        self.options.failpoints.hit("before-intent")
        seq = self.writer.append(
            {"t": "intent", "key": m.key, "attempt": attempt, "at": time.time()}
        )
        self.writer.request(seq)
        return seq

    async def wait_for_slot(self, klass: str) -> float | None:
        """Wait for a quota slot; None if the run stopped meanwhile (Ctrl-C must not
        wait out a window)."""
        with anyio.CancelScope() as waiting:
            self.wait_scopes.add(waiting)
            try:
                return await self.limiter.acquire(klass)
            finally:
                self.wait_scopes.discard(waiting)
        return None

    async def send_loop(self, m: Mutation, intent: int | None = None) -> str:
        """Send ``m`` until it settles; ``intent``: the seq of the first attempt's intent
        if it is already appended (see :meth:`process`)."""
        st = self.states[m.key]
        fp = self.options.failpoints
        attempt = st.attempts
        first = True
        doubted = st.attempts > 0  # an earlier attempt may have reached the server
        while True:
            if self.stopping:
                if intent is not None:  # appended, never sent: close it
                    await self.record_outcome(
                        m, "not_applied", attempts=attempt, error="stopped before sending"
                    )
                    return "pending"
                return "pending" if st.state == "pending" else "ambiguous"
            attempt += 1
            if intent is None:
                intent = self.append_intent(m, attempt)
            await self.writer.durable(intent)  # the intent is on disk before the send
            intent = None
            st.state = "in_doubt"
            st.attempts = attempt
            fp.hit("after-intent")
            if first:
                self.budget.record_attempt()
                first = False
            # The quota slot is taken right before the send, so the limiter's log holds
            # real send times; the wait is interruptible (Ctrl-C must not wait out a window).
            sent_at = self.limiter.try_acquire(m.quota_class)
            if sent_at is None:
                sent_at = await self.wait_for_slot(m.quota_class)
            if sent_at is None:
                return await self.leave_unsettled(
                    m, doubted, attempt, None, None, "stopped before sending"
                )
            self.note_send()
            error: ApiError | None = None
            try:
                response = await send_mutation(self.client, m)
            except ApiError as exc:
                error = exc
            fp.hit("after-send")
            if error is None:
                self.limiter.succeeded(m.quota_class)
                fp.hit("before-outcome")
                await self.record_outcome(
                    m,
                    "applied",
                    sent_at=sent_at,
                    attempts=attempt,
                    status=response.status,
                    created=created_id(m, response),
                    sync=fp.armed("after-outcome"),  # "after the outcome is on disk"
                )
                fp.hit("after-outcome")
                return "applied"
            status = error.status if isinstance(error, ApiStatusError) else None
            message = str(error)
            if isinstance(error, RateLimited):
                self.limiter.throttled(m.quota_class, error.retry_after, attempt)
                self.throttled += 1
                self.observer.throttled()
            maybe_applied = isinstance(error, ServerError) or (
                isinstance(error, TransportError) and error.sent
            )
            decision = decide(
                attempt,
                error,
                method=m.method,
                idempotent=m.idempotent,
                policy=self.options.policy,
            )
            fp.hit("before-outcome")
            if decision.action is Action.STOP:
                await self.record_outcome(
                    m,
                    "not_applied",
                    sent_at=sent_at,
                    attempts=attempt,
                    status=status,
                    error=message,
                )
                self.stop(Stop.UNAUTHORIZED, message)
                return "pending"
            if decision.action is Action.FAIL:
                # Attempts ran out on 429s, 5xx or lost connections: nothing failed for
                # good, so what reads back as not applied is left for a resume (T11).
                transient = isinstance(error, RateLimited | ServerError | TransportError)
                if (doubted or maybe_applied) and m.verifiable:
                    # An attempt may have been applied (perhaps an earlier one, before a
                    # run of 429s): the read says whether this run made the change.
                    await self.record_outcome(
                        m,
                        "ambiguous",
                        sent_at=sent_at,
                        attempts=attempt,
                        status=status,
                        error=message,
                    )
                    verdict = await self.reconcile(m)
                    if verdict is None:
                        return "ambiguous"
                    if verdict is Verdict.APPLIED:
                        return "applied"
                    if verdict is Verdict.CONFLICT:
                        return "conflict"
                    if transient:
                        return await self.give_up_for_now(m, attempt, sent_at, status, message)
                elif transient and not maybe_applied:
                    return await self.give_up_for_now(m, attempt, sent_at, status, message)
                await self.record_outcome(
                    m, "failed", sent_at=sent_at, attempts=attempt, status=status, error=message
                )
                return "failed"
            if decision.action is Action.AMBIGUOUS:
                doubted = True
                await self.record_outcome(
                    m, "ambiguous", sent_at=sent_at, attempts=attempt, status=status, error=message
                )
                if await self.pause(min(decision.delay, 1.0)):
                    return "ambiguous"
                verdict = await self.reconcile(m)
                if verdict is None:
                    return "ambiguous"
                if verdict is Verdict.APPLIED:
                    return "applied"
                if verdict is Verdict.CONFLICT:
                    return "conflict"
                if attempt >= self.options.policy.max_attempts:
                    # Read back as not applied after transient errors only: nothing
                    # happened, so leave it for a resume (T11) instead of failing it.
                    return await self.give_up_for_now(m, attempt, sent_at, status, message)
                if not self.budget.try_spend():
                    self.stop(Stop.BUDGET, "too many retries for the requests made")
                    return "pending"
                self.retries += 1
                self.observer.retry()
                continue
            # Action.RETRY
            doubted = doubted or maybe_applied
            if not self.budget.try_spend():
                self.stop(Stop.BUDGET, "too many retries for the requests made")
                return await self.leave_unsettled(m, doubted, attempt, sent_at, status, message)
            self.retries += 1
            self.observer.retry()
            log.info(EVENT_RETRY, attempt=attempt, status=status, reason=decision.reason)
            # A 429 pauses the whole class in the limiter; other errors back off here.
            if not isinstance(error, RateLimited) and await self.pause(decision.delay):
                return await self.leave_unsettled(m, doubted, attempt, sent_at, status, message)

    async def leave_unsettled(
        self,
        m: Mutation,
        doubted: bool,
        attempt: int,
        sent_at: float | None,
        status: int | None,
        message: str,
    ) -> str:
        """Record ``m`` cut short by a stop: ``ambiguous`` if any of its attempts (not only
        the last) may have been applied, so a resume settles it by a read and finds it
        applied, else ``not_applied``. The run's result for it."""
        result = "ambiguous" if doubted else "not_applied"
        await self.record_outcome(
            m, result, sent_at=sent_at, attempts=attempt, status=status, error=message
        )
        return "ambiguous" if doubted else "pending"

    async def give_up_for_now(
        self, m: Mutation, attempt: int, sent_at: float, status: int | None, message: str
    ) -> str:
        """Record that ``m``'s attempts ran out on transient errors, read back as not
        applied: not a failure, the next resume sends it again."""
        await self.record_outcome(
            m,
            "not_applied",
            sent_at=sent_at,
            attempts=attempt,
            status=status,
            error=f"gave up for now after {attempt} attempts: {message}",
        )
        return "pending"

    async def finish(self) -> None:
        """Persist send times, write the run's end record and flush the journal."""
        self.save_sends()
        if self.writer.failed:
            return  # the journal failed; its JournalError is what propagates
        stop = self.stop_reason
        detail = self.stop_detail
        if stop is Stop.COMPLETE and any(
            st.state not in FINAL_STATES for st in self.states.values()
        ):
            detail = "some mutations are still unsettled"
        event = {Stop.COMPLETE: "complete", Stop.INTERRUPTED: "interrupted"}.get(stop, "stop")
        try:
            await self.writer.write(
                {
                    "t": "run",
                    "event": event,
                    "run_id": self.options.run_id,
                    "reason": detail or stop.value,
                    "at": time.time(),
                },
                sync=True,
            )
        finally:
            await self.writer.close()

    def note_send(self) -> None:
        self.sent += 1
        if self.sendlog is None or self._saving:
            return
        now = time.monotonic()
        if now - self._saved_at >= _SENDLOG_SECONDS:
            self._saving = True
            self._saved_at = now
            self.task_group.start_soon(self._save_in_thread, self.limiter.history())

    async def _save_in_thread(self, history: dict[str, list[float]]) -> None:
        try:
            with anyio.CancelScope(shield=True):
                await anyio.to_thread.run_sync(self._save, history)
        finally:
            self._saving = False

    def _save(self, history: Mapping[str, Sequence[float]]) -> None:
        if self.sendlog is not None:
            try:
                self.sendlog.save(history)
            except OSError as exc:  # pacing data only; the journal holds the intents
                log.warning("run.sendlog_failed", error=str(exc))

    def save_sends(self) -> None:
        """Persist the send times now (at the end of the run)."""
        self._save(self.limiter.history())


async def run_plan(
    plan: Plan,
    *,
    client: ConsoleClient,
    journal: Journal,
    records: Sequence[Mapping[str, Any]] = (),
    limiter: QuotaLimiter,
    sendlog: SendLog | None = None,
    options: RunOptions | None = None,
    observer: Observer | None = None,
) -> RunResult:
    """Execute ``plan`` (or what is left of it), journaling into ``journal``.

    Args:
        plan: The verified plan; its first journal record must already be written.
        client: A client on the plan's target project.
        journal: The open checkpoint journal (exclusively locked by the caller).
        records: What the journal already holds (a resume); settled keys are skipped,
            in-doubt ones reconciled by a read first.
        limiter: The project's quota limiter.
        sendlog: Where send times are persisted (None: not persisted).
        options: Knobs; see :class:`RunOptions`.
        observer: Progress callbacks.

    Returns:
        The :class:`RunResult`. Bugs and cancellation propagate; a failed journal
        write raises :class:`~bulkops.errors.JournalError`.

    Raises:
        ValueError: a knob is out of range.
    """
    options = options or RunOptions()
    if options.max_in_flight < 1:
        raise ValueError("max_in_flight must be at least 1")
    if options.budget_ratio < 0 or options.budget_minimum < 0:
        raise ValueError("the retry budget must not be negative")
    observer = observer or NullObserver()
    states = replay(records, keys=[m.key for m in plan.mutations])
    started = time.monotonic()
    writer = _Writer(journal)
    run = _Run(
        plan,
        client=client,
        writer=writer,
        states=states,
        limiter=limiter,
        sendlog=sendlog,
        options=options,
        observer=observer,
    )
    run.build_graph()
    writer.start()
    try:
        return await _run_plan(run, plan, states, writer, options, observer, started)
    except BaseExceptionGroup as group:
        raise _single(group) from None
    finally:
        writer.stop()


def _single(group: BaseExceptionGroup[BaseException]) -> BaseException:
    """The one reason a run stopped, else the group itself.

    Workers share the stop reasons that end a run (a failed journal, a bug): when the
    fsync under two waiting intents fails, both workers raise the journal's error in
    the same tick. A group whose leaves are all one kind of :class:`JournalError`
    stands for one stop, so the caller sees one error ("fsync failed; stopping"), not a
    group; so does a group holding one exception. Anything else (two different bugs)
    stays a group: hiding one of them would hide a bug.
    """
    leaves = _leaves(group)
    first = leaves[0]
    if len(leaves) == 1 or all(
        isinstance(e, JournalError) and type(e) is type(first) and str(e) == str(first)
        for e in leaves
    ):
        return first
    return group


def _leaves(exc: BaseException) -> list[BaseException]:
    if isinstance(exc, BaseExceptionGroup):
        return [leaf for inner in exc.exceptions for leaf in _leaves(inner)]
    return [exc]


async def _run_plan(
    run: _Run,
    plan: Plan,
    states: dict[str, KeyState],
    writer: _Writer,
    options: RunOptions,
    observer: Observer,
    started: float,
) -> RunResult:
    remaining = Counter(
        m.quota_class for m in plan.mutations if states[m.key].state not in FINAL_STATES
    )
    done = sum(1 for st in states.values() if st.state in FINAL_STATES)
    with bound_contextvars(run_id=options.run_id, job=plan.header.job):
        log.info(
            EVENT_RUN_START,
            total=len(plan.mutations),
            done=done,
            resumed=any(st.state != "pending" or st.attempts for st in states.values()),
        )
        observer.start(len(plan.mutations), done, dict(remaining))
        try:
            await writer.write(
                {
                    "t": "run",
                    "event": "start",
                    "run_id": options.run_id,
                    "pid": os.getpid(),
                    "at": time.time(),
                },
                sync=True,
            )
            for key, reason in run.cascade:
                await run.fail_dependents(key, reason)
            async with anyio.create_task_group() as tg:
                run.task_group = tg
                if options.handle_signals:
                    tg.start_soon(run.watch_signals, tg.cancel_scope)
                async with anyio.create_task_group() as workers:
                    for _ in range(options.max_in_flight):
                        workers.start_soon(run.worker)
                tg.cancel_scope.cancel()  # the signal watcher
        finally:
            with anyio.move_on_after(5, shield=True):
                await run.finish()
        result = RunResult(
            run_id=options.run_id,
            stop=run.stop_reason,
            reason=run.stop_detail,
            states=states,
            retries=run.retries,
            throttled=run.throttled,
            elapsed=time.monotonic() - started,
            sent=run.sent,
            fsyncs=writer.fsyncs,
        )
        counts = result.counts()
        log.info(
            EVENT_RUN_END,
            stop=result.stop.value,
            elapsed_s=round(result.elapsed, 3),
            sent=run.sent,
            retries=run.retries,
            throttled=run.throttled,
            **dict(counts),
        )
        return result
