"""The runner: executes a plan under the quota, write-ahead journaled, resumable.

Structure (anyio on asyncio): one task group holds ``max_in_flight`` **workers** that
take ready mutations from one :class:`~bulkops.engine.schedule.Schedule` (no task per
item up front, no dispatcher or channel hop in between) and take each through the
write-ahead protocol (:class:`~bulkops.engine.send.Sender`); beside them, the single
**journal writer** (:class:`~bulkops.engine.writer.JournalWriter`) appends in call
order and one syncer thread fsyncs (group commit). The in-flight cap is the number of
workers.

Order: a mutation starts when its dependencies are applied or skipped (a failed one
fails its dependents), and mutations on one object run one at a time in plan order.
Ctrl-C (SIGINT/SIGTERM) stops dispatching, lets requests in flight finish and their
outcomes reach the journal; a second one cancels them (their intents are reconciled on
resume; :mod:`~bulkops.engine.stopping`). ``BULKOPS_FAILPOINT=step:N`` makes the
process ``os._exit(137)`` at a protocol step of the N-th mutation to reach it, for the
crash tests (:mod:`~bulkops.engine.failpoints`).
"""

from __future__ import annotations

import os
import time
import uuid
from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import anyio
import structlog
from anyio.abc import TaskGroup
from structlog.contextvars import bind_contextvars, bound_contextvars, reset_contextvars

from ..api.client import ConsoleClient
from ..api.retry import RetryBudget, RetryPolicy
from ..errors import JournalError, NoSpaceError
from .failpoints import Failpoints
from .journal import Journal
from .mutations import Mutation
from .plans import Plan
from .progress import (
    EVENT_FAILED,
    EVENT_RUN_END,
    EVENT_RUN_START,
    MUTATION_EVENTS,
    NullObserver,
    Observer,
    logs_info,
)
from .ratelimit import DEFAULT_MAX_IN_FLIGHT, QuotaLimiter, SendLog
from .reconcile import replay
from .reviews import ReviewNotes
from .schedule import Schedule
from .send import Sender
from .states import FINAL_STATES, OK_STATES, KeyState, Result, State
from .stopping import Stop, Stopping
from .writer import JournalWriter

__all__ = ["RunOptions", "RunResult", "run_plan"]

log = structlog.get_logger()

# The per-project send log is saved (in a thread, without fsync) about once a second
# and at the end of the run. It only paces a *different* checkpoint's run on the same
# project: a resume of this checkpoint rebuilds its windows from the journal, whose
# intents are durable before each send. A kill loses at most the last second of sends
# from it (the data already written survives a kill: no fsync needed for that); an OS
# crash may lose more, and then the next run on the project may see some 429s, which
# the limiter absorbs by backing off. Saving more often cost two fsyncs a save.
_SENDLOG_SECONDS = 1.0


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
        checkpoint: The checkpoint's path, named in the reviews the run opens.
        review_note: The user's words for those reviews (``--review-description``).
    """

    max_in_flight: int = DEFAULT_MAX_IN_FLIGHT
    policy: RetryPolicy = field(default_factory=RetryPolicy)
    budget_ratio: float = 0.2
    budget_minimum: int = 20
    handle_signals: bool = False
    failpoints: Failpoints = field(default_factory=lambda: Failpoints(None))
    run_id: str = field(default_factory=lambda: uuid.uuid4().hex[:12])
    checkpoint: str = ""
    review_note: str = ""


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
        ``rejected``, ``pending_review``, ``in_doubt``, ``pending``)."""
        return Counter[str](st.state for st in self.states.values())

    @property
    def ok(self) -> bool:
        """Everything applied or skipped."""
        return self.stop is Stop.COMPLETE and all(
            st.state in OK_STATES for st in self.states.values()
        )

    @property
    def waiting_for_review(self) -> bool:
        """The run completed and only reviews stand between it and done: some
        mutations wait for their review, the rest applied or skipped, or wait behind
        them (a dependency or an earlier change of the same object under review)."""
        states = {st.state for st in self.states.values()}
        return (
            self.stop is Stop.COMPLETE
            and State.PENDING_REVIEW in states
            and states <= {*OK_STATES, State.PENDING_REVIEW, State.PENDING}
        )


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
        write raises :class:`~bulkops.errors.JournalError`, except for lack of room
        (:class:`~bulkops.errors.NoSpaceError`: a full disk, a file-size limit), which
        stops the run (:attr:`Stop.NO_SPACE`, with the message as its reason) so that
        what it did can still be told and reported; a resume continues it.

    Raises:
        ValueError: a knob is out of range.
    """
    options = options or RunOptions()
    if options.max_in_flight < 1:
        raise ValueError("max_in_flight must be at least 1")
    if options.budget_ratio < 0 or options.budget_minimum < 0:
        raise ValueError("the retry budget must not be negative")
    states = replay(records, keys=[m.key for m in plan.mutations])
    started = time.monotonic()
    writer = JournalWriter(journal)
    run = _Run.wire(
        plan,
        client=client,
        writer=writer,
        states=states,
        limiter=limiter,
        sendlog=sendlog,
        options=options,
        observer=observer or NullObserver(),
    )
    writer.start()
    try:
        with bound_contextvars(run_id=options.run_id, job=plan.header.job):
            try:
                await run.execute()
            except BaseExceptionGroup as group:
                raise _single(group) from None
            return run.result(started)
    except NoSpaceError as exc:
        # The requests in flight were cancelled: their intents are settled on resume.
        run.stopping.ended(Stop.NO_SPACE, exc.message)
        return run.result(started)
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


class _SendTimes:
    """Saves the limiter's send times to the project's send log, about once a second."""

    def __init__(self, sendlog: SendLog | None, limiter: QuotaLimiter) -> None:
        self._sendlog = sendlog
        self._limiter = limiter
        self._saving = False
        self._saved_at = time.monotonic()
        self.task_group: TaskGroup | None = None  # where the saves run (set by the run)

    def note_send(self) -> None:
        """A request went out: save in a thread if the last save is a second old."""
        if self._sendlog is None or self._saving or self.task_group is None:
            return
        now = time.monotonic()
        if now - self._saved_at >= _SENDLOG_SECONDS:
            self._saving = True
            self._saved_at = now
            self.task_group.start_soon(self._save_in_thread, self._limiter.history())

    def save_now(self) -> None:
        """Persist the send times now (at the end of the run)."""
        self._save(self._limiter.history())

    async def _save_in_thread(self, history: dict[str, list[float]]) -> None:
        try:
            with anyio.CancelScope(shield=True):
                await anyio.to_thread.run_sync(self._save, history)
        finally:
            self._saving = False

    def _save(self, history: Mapping[str, Sequence[float]]) -> None:
        if self._sendlog is not None:
            try:
                self._sendlog.save(history)
            except (
                OSError,
                NoSpaceError,
            ) as exc:  # pacing data only; the journal holds the intents
                log.warning("run.sendlog_failed", error=str(exc))


@dataclass
class _Run:
    """One run: its workers over the schedule, and its first and last journal records."""

    plan: Plan
    options: RunOptions
    writer: JournalWriter
    states: dict[str, KeyState]
    schedule: Schedule
    sender: Sender
    stopping: Stopping
    send_times: _SendTimes
    observer: Observer
    by_key: dict[str, Mutation] = field(init=False)
    in_flight: int = 0
    changed: anyio.Event = field(default_factory=anyio.Event)
    log_info: bool = field(default_factory=logs_info)

    def __post_init__(self) -> None:
        self.by_key = self.plan.by_key()

    @classmethod
    def wire(
        cls,
        plan: Plan,
        *,
        client: ConsoleClient,
        writer: JournalWriter,
        states: dict[str, KeyState],
        limiter: QuotaLimiter,
        sendlog: SendLog | None,
        options: RunOptions,
        observer: Observer,
    ) -> _Run:
        """Build a run and its parts over ``states`` (replayed from the journal)."""
        stopping = Stopping(observer)
        send_times = _SendTimes(sendlog, limiter)
        sender = Sender(
            client=client,
            writer=writer,
            states=states,
            limiter=limiter,
            stopping=stopping,
            observer=observer,
            policy=options.policy,
            budget=RetryBudget(options.budget_ratio, options.budget_minimum),
            failpoints=options.failpoints,
            on_send=send_times.note_send,
            notes=ReviewNotes(
                job=plan.header.job,
                plan_id=plan.header.plan_id,
                run_id=options.run_id,
                checkpoint=options.checkpoint,
                note=options.review_note,
            ),
        )
        schedule = Schedule(plan.mutations, states)
        return cls(plan, options, writer, states, schedule, sender, stopping, send_times, observer)

    async def execute(self) -> None:
        """Start, run the workers until nothing is left to start, then finish."""
        self.announce()
        try:
            await self.record_run("start", pid=os.getpid())
            for key, reason in self.schedule.blocked:
                await self.fail(self.schedule.fail(key, reason))
            async with anyio.create_task_group() as tg:
                self.send_times.task_group = tg
                if self.options.handle_signals:
                    tg.start_soon(self.stopping.watch_signals, tg.cancel_scope)
                async with anyio.create_task_group() as workers:
                    for _ in range(self.options.max_in_flight):
                        workers.start_soon(self.worker)
                tg.cancel_scope.cancel()  # the signal watcher
        finally:
            with anyio.move_on_after(5, shield=True):
                await self.finish()

    def announce(self) -> None:
        """Log the start and tell the observer how much is done and left."""
        remaining = Counter(
            m.quota_class
            for m in self.plan.mutations
            if self.states[m.key].state not in FINAL_STATES
        )
        done = sum(1 for st in self.states.values() if st.state in FINAL_STATES)
        log.info(
            EVENT_RUN_START,
            total=len(self.plan.mutations),
            done=done,
            resumed=any(st.state != State.PENDING or st.attempts for st in self.states.values()),
        )
        self.observer.start(len(self.plan.mutations), done, dict(remaining))

    async def worker(self) -> None:
        """Take ready mutations one at a time until nothing is left to start.

        Workers pull from the schedule themselves (no dispatcher between them, no
        hop through a channel per mutation): a worker with nothing ready waits only
        while others are in flight, since one of them may release more work.
        """
        while True:
            key = None if self.stopping.requested else self.schedule.next_key()
            if key is None:
                if self.in_flight == 0 or self.stopping.requested:
                    self.wake()  # the run is over: let the waiting workers go too
                    return
                await self.changed.wait()
                continue
            self.in_flight += 1
            try:
                state = await self.run_one(key)
            finally:
                self.in_flight -= 1
            ready = self.schedule.ready
            await self.fail(self.schedule.completed(key, state))
            if self.schedule.ready > ready or self.in_flight == 0:
                self.wake()

    def wake(self) -> None:
        """Wake the workers waiting for work (new keys are ready, or the run is over)."""
        self.changed.set()
        self.changed = anyio.Event()

    async def run_one(self, key: str) -> State:
        """Process one mutation with its key bound in the log; report its state."""
        mutation = self.by_key[key]
        started = time.monotonic()
        tokens = bind_contextvars(key=key)
        try:
            state = await self.sender.process(mutation)
            if self.log_info:  # skipped, kwargs and all, when info is filtered out
                st = self.states[key]
                log.info(
                    MUTATION_EVENTS[state],
                    action=mutation.action,
                    object=mutation.object,
                    status=st.status,
                    attempts=st.attempts,
                    elapsed_ms=round((time.monotonic() - started) * 1000, 1),
                    error=st.error if state not in OK_STATES else None,
                )
        finally:
            reset_contextvars(**tokens)
        self.observer.result(key, state, mutation.quota_class)
        return state

    async def fail(self, failed: list[tuple[str, str]]) -> None:
        """Record the mutations the schedule failed because a dependency did not apply."""
        for key, reason in failed:
            m = self.by_key[key]
            attempts = self.states[key].attempts
            await self.sender.record_outcome(m, Result.FAILED, attempts=attempts, error=reason)
            with bound_contextvars(key=key):
                log.info(EVENT_FAILED, action=m.action, object=m.object, error=reason)
            self.observer.result(key, State.FAILED, m.quota_class)

    async def record_run(self, event: str, **fields: Any) -> None:
        """Append a ``run`` record (start or end) and wait until it is on disk."""
        record = {"t": "run", "event": event, "run_id": self.options.run_id, **fields}
        await self.writer.write({**record, "at": time.time()}, sync=True)

    async def finish(self) -> None:
        """Persist send times, write the run's end record and flush the journal."""
        self.send_times.save_now()
        if self.writer.failed:
            return  # the journal failed; its JournalError is what propagates
        stop = self.stopping.reason
        detail = self.stopping.detail
        waiting = sum(1 for st in self.states.values() if st.state == State.PENDING_REVIEW)
        if stop is Stop.COMPLETE and any(
            st.state not in FINAL_STATES for st in self.states.values()
        ):
            detail = "some mutations are still unsettled"
            if waiting:
                detail = f"{waiting} change(s) waiting for review"
        event = {
            Stop.COMPLETE: "complete",
            Stop.INTERRUPTED: "interrupted",
            Stop.TERMINATED: "interrupted",
        }.get(stop, "stop")
        try:
            await self.record_run(event, reason=detail or stop.value)
        finally:
            await self.writer.close()

    def result(self, started: float) -> RunResult:
        """The run's result (and its ``run.end`` log line)."""
        sender = self.sender
        result = RunResult(
            run_id=self.options.run_id,
            stop=self.stopping.reason,
            reason=self.stopping.detail,
            states=self.states,
            retries=sender.retries,
            throttled=sender.throttled,
            elapsed=time.monotonic() - started,
            sent=sender.sent,
            fsyncs=self.writer.fsyncs,
        )
        log.info(
            EVENT_RUN_END,
            stop=result.stop.value,
            elapsed_s=round(result.elapsed, 3),
            sent=sender.sent,
            retries=sender.retries,
            throttled=sender.throttled,
            **dict(result.counts()),
        )
        return result
