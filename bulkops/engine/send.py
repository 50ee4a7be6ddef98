"""One mutation through the write-ahead protocol: intent, re-read, send, outcome.

Per mutation (:meth:`Sender.process`), in this order, which the crash tests and the
failpoints (:mod:`~bulkops.engine.failpoints`) pin down:

1. unless the journal says it is settled: append the first attempt's ``intent`` and
   start its fsync, then read the object (``before-read``) while the fsync runs;
   already in the after-state → ``skipped`` (nothing sent); in neither state →
   ``conflict`` (never overwritten); either closes the intent with its outcome. An
   intent without outcome from an earlier run is settled by a read first
   (:func:`bulkops.engine.reconcile.settle`);
2. wait until the intent is on disk (``after-intent``; the read took longer than the
   fsync, so this is rarely a wait), *then* take the quota slot and send right after
   it (``after-send``);
3. the ``outcome`` record (``before-outcome``, ``after-outcome``). A failed attempt
   goes through :func:`bulkops.api.retry.decide`: retry (never-sent, 429, idempotent
   by value; the per-run :class:`~bulkops.api.retry.RetryBudget` bounds them),
   ``ambiguous`` (settled by a read before anything is sent again), fail this
   mutation (the run goes on), or stop the run (401/403).

Every step returns the :class:`~bulkops.engine.states.State` it leaves the mutation
in, or None to go on with the next attempt.

**Reviews.** With the review header on, a write to a gate, dynamic config, experiment
or segment may open a review instead of applying (:mod:`bulkops.engine.reviews`). Such
a write carries its review's description (``x-review-description``, with the marker
that finds it again) and is never resent blind: a 5xx or a lost answer is settled by
a read, which looks for the review too. Before it is sent, an object with an open
review is looked at: our change already under review is taken up (``pending_review``,
nothing sent), another one is a conflict. An answer that shows a review (the
``activeReview`` it names, or the review found by its marker) leaves the mutation
``pending_review`` with the review id in its outcome. A later run follows the review
(:meth:`Sender.follow_review`): still open → it waits; rejected → ``rejected`` with the
reason, never retried; approved → its **commit** goes through the same protocol as
any write (an intent naming the review, fsynced before the send, the quota slot, the
outcome); committed by someone → applied, once the object shows it.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import structlog

from ..api.client import ConsoleClient
from ..api.retry import Action, Decision, RetryBudget, RetryPolicy, decide
from ..api.reviews import ReviewStatus, ReviewTarget, review_target
from ..api.transport import ApiResponse
from ..errors import (
    ApiError,
    ApiStatusError,
    Forbidden,
    RateLimited,
    ServerError,
    TransportError,
    Unauthorized,
)
from .apply import created_id, send_mutation
from .failpoints import Failpoints
from .mutations import Mutation
from .plans import ABSENT
from .progress import EVENT_AMBIGUOUS, EVENT_RECONCILED, EVENT_RETRY, Observer
from .ratelimit import QuotaLimiter
from .reconcile import Match, Verdict, judge, note_review, observe, settle, settle_verdict
from .reviews import Review, ReviewLookup, ReviewNotes, review_of
from .states import KeyState, Result, State
from .stopping import Stop, Stopping
from .writer import JournalWriter

__all__ = ["Sender"]

log = structlog.get_logger()

_STOPPED = "stopped before sending"


@dataclass
class _Attempts:
    """One mutation's attempts in this run: what the steps of the send loop share."""

    m: Mutation
    st: KeyState
    attempt: int  # attempts made so far, earlier runs' included
    doubted: bool  # one of them (not only the last) may have been applied
    counted: bool = False  # the first attempt of this run is in the retry budget
    sent_at: float | None = None  # the last attempt's send time
    status: int | None = None  # the last attempt's HTTP status
    message: str = ""  # the last attempt's error
    commit: str | None = None  # these attempts commit this review of the mutation
    free: bool = False  # the object had no open review when it was last looked at


@dataclass
class Sender:
    """Takes mutations through the protocol, journaling through the run's single writer.

    Attributes:
        notes: What the reviews this run opens say.
        retries, throttled, sent: Counters of this run (retries decided, 429s, sends).
    """

    client: ConsoleClient
    writer: JournalWriter
    states: dict[str, KeyState]
    limiter: QuotaLimiter
    stopping: Stopping
    observer: Observer
    policy: RetryPolicy
    budget: RetryBudget
    failpoints: Failpoints
    on_send: Callable[[], None]
    notes: ReviewNotes
    retries: int = 0
    throttled: int = 0
    sent: int = 0

    def __post_init__(self) -> None:
        self.lookup = ReviewLookup(self.client)

    def target(self, m: Mutation) -> ReviewTarget | None:
        """The reviewable object ``m`` writes, when its write may open a review (the
        review header is on); None otherwise."""
        return review_target(m.path) if self.client.settings.respect_reviews else None

    async def process(self, m: Mutation) -> State:
        """Take ``m`` as far as this run can: settled, or left for a resume."""
        st = self.states[m.key]
        if self.stopping.requested:
            return State(st.state)  # pending, or in doubt: a resume picks it up
        target = review_target(m.path)
        if st.review_id is not None and target is not None:
            # Its write opened a review (perhaps it was being committed): follow it.
            return await self.follow_review(m, target, st.review_id)
        if st.state == State.IN_DOUBT:
            settled = await self.settle_by_read(m)
            if settled is not None:
                return settled
        elif m.verifiable:
            return await self.reread_then_send(m)
        return await self.send_loop(m)

    async def reread_then_send(self, m: Mutation) -> State:
        """Read ``m``'s object first: send only if it still shows the before-state."""
        st = self.states[m.key]
        # The first attempt's intent is appended before the re-read and fsynced
        # while the read is in flight, so the send after it rarely waits for the
        # disk. An intent says "this may be sent": every way out below closes it
        # with an outcome, and a kill before that is settled by a read on resume.
        intent = self.append_intent(m, st.attempts + 1)
        self.failpoints.hit("before-read")
        try:
            data = await observe(self.client, m)
        except (Unauthorized, Forbidden) as exc:
            state = await self.record_outcome(
                m, Result.NOT_APPLIED, attempts=st.attempts, error=_STOPPED
            )
            self.stopping.request(Stop.UNAUTHORIZED, str(exc))
            return state
        except ApiError as exc:
            error = f"reading the object failed: {exc}"
            return await self.record_outcome(m, Result.FAILED, attempts=st.attempts, error=error)
        match = judge(m, data)
        if match is Match.AFTER:
            reason = ABSENT if m.absent else None
            return await self.record_outcome(m, Result.SKIPPED, attempts=st.attempts, error=reason)
        if match is Match.NEITHER:
            error = _conflict(m, data)
            return await self.record_outcome(m, Result.CONFLICT, attempts=st.attempts, error=error)
        target = self.target(m)
        free = target is not None and m.read == target.path and review_of(data) is None
        if target is not None and (m.review or review_of(data) is not None):
            held = await self.under_review(m, target)
            if held is not None:
                return held
            free = True
        return await self.send_loop(m, intent, free=free)

    async def under_review(self, m: Mutation, target: ReviewTarget) -> State | None:
        """Before ``m`` is sent (its intent appended): the object's open review, if any,
        settles it (ours: ``pending_review``, nothing sent; another: conflict). None:
        nothing is under review, send it."""
        st = self.states[m.key]
        try:
            mine, held = await self.lookup.find(target, m)
        except ApiError as exc:
            error = f"reading the object's reviews failed: {exc}"
            return await self.record_outcome(m, Result.FAILED, attempts=st.attempts, error=error)
        if mine is not None and mine.open:
            log.info(EVENT_RECONCILED, verdict="pending_review", review_id=mine.id)
            return await self.record_outcome(
                m, Result.PENDING_REVIEW, attempts=st.attempts, review_id=mine.id
            )
        if held is not None:
            error = (
                f"{target.kind}/{target.object_id} has a review in progress that is not this "
                f"change ({held.id}, {held.status}: {held.description[:200]}); not sent"
            )
            return await self.record_outcome(m, Result.CONFLICT, attempts=st.attempts, error=error)
        return None

    async def send_loop(
        self, m: Mutation, intent: int | None = None, *, free: bool = False
    ) -> State:
        """Send ``m`` until it settles; ``intent``: the seq of the first attempt's intent
        if it is already appended (see :meth:`reread_then_send`); ``free``: its object had
        no open review just before."""
        st = self.states[m.key]
        # An attempt of an earlier run may have reached the server.
        tries = _Attempts(m, st, attempt=st.attempts, doubted=st.attempts > 0, free=free)
        while (state := await self.attempt(tries, intent)) is None:
            intent = None
        return state

    async def attempt(self, t: _Attempts, intent: int | None) -> State | None:
        """One attempt: its intent on disk, then the quota slot, the send and its outcome."""
        if self.stopping.requested:
            if intent is not None:  # appended, never sent: close it
                return await self.record_outcome(
                    t.m, Result.NOT_APPLIED, attempts=t.attempt, error=_STOPPED
                )
            return State(t.st.state)  # pending, or in doubt if an earlier attempt was sent
        t.attempt += 1
        t.sent_at = t.status = None
        if intent is None:
            intent = self.append_intent(t.m, t.attempt, commit=t.commit)
        await self.writer.durable(intent)  # the intent is on disk before the send
        t.st.state = State.IN_DOUBT
        t.st.attempts = t.attempt
        self.failpoints.hit("after-intent")
        if not t.counted:
            self.budget.record_attempt()
            t.counted = True
        # The quota slot is taken right before the send, so the limiter's log holds
        # real send times; the wait is interruptible (Ctrl-C must not wait out a window).
        t.sent_at = self.limiter.try_acquire(t.m.quota_class)
        if t.sent_at is None:
            t.sent_at = await self.wait_for_slot(t.m.quota_class)
        if t.sent_at is None:
            return await self.leave_unsettled(t, _STOPPED)
        self.sent += 1
        self.on_send()
        error: ApiError | None = None
        described = self.target(t.m) is not None and t.commit is None
        try:
            response = await send_mutation(
                self.client, t.m, self.notes.description(t.m) if described else None
            )
        except ApiError as exc:
            error = exc
        self.failpoints.hit("after-send")
        if error is None:
            return await self.succeeded(t, response)
        return await self.failed(t, error)

    async def wait_for_slot(self, klass: str) -> float | None:
        """Wait for a quota slot; None if the run stopped meanwhile."""
        with self.stopping.interruptible():
            return await self.limiter.acquire(klass)
        return None

    async def succeeded(self, t: _Attempts, response: ApiResponse) -> State:
        """The write took effect, or opened a review: record which (with a create's new
        id, or the review's)."""
        self.limiter.succeeded(t.m.quota_class)
        result, review = Result.APPLIED, None
        target = self.target(t.m) if t.commit is None else None
        if target is not None:
            found = await self.opened_review(t, target, response)
            if found is None:
                # A 2xx, but whether it applied or opened a review is not known: a
                # read settles it before anything is sent again.
                t.doubted = True
                self.failpoints.hit("before-outcome")
                return await self.close(t, Result.AMBIGUOUS, "its reviews could not be read")
            result, review = found
        self.failpoints.hit("before-outcome")
        state = await self.record_outcome(
            t.m,
            result,
            sent_at=t.sent_at,
            attempts=t.attempt,
            status=response.status,
            created=created_id(t.m, response),
            sync=self.failpoints.armed("after-outcome"),  # "after the outcome is on disk"
            review_id=review.id if review is not None else None,
            error=_rejected(review) if result is Result.REJECTED else None,
        )
        self.failpoints.hit("after-outcome")
        return state

    async def opened_review(
        self, t: _Attempts, target: ReviewTarget, response: ApiResponse
    ) -> tuple[Result, Review | None] | None:
        """Whether a 2xx to ``t.m`` opened a review: ``(pending_review, review)``, or
        ``(applied, None)``; None when that could not be learnt.

        The answer's ``activeReview`` names the review when it carries this change's
        marker, or when the object had no open review before the send (so this request
        opened it, even if the service dropped the description). Otherwise, and for a
        write the plan expected to need review or an answer whose message speaks of a
        review, the review is looked up by its marker.
        """
        m = t.m
        content = response.content
        # The hot path stays cheap: no JSON parse unless the answer mentions a review
        # (an activeReview, or near its start, where the message is).
        if not m.review and b"activeReview" not in content and b"eview" not in content[:400]:
            return Result.APPLIED, None
        try:
            body: Any = response.json()
        except ValueError:
            body = None
        data = body.get("data") if isinstance(body, dict) else None
        message = str(body.get("message") or "") if isinstance(body, dict) else ""
        shown = review_of(data)
        if shown is not None and shown.open and (t.free or shown.matches(m)):
            return Result.PENDING_REVIEW, shown
        if shown is None and not (m.review or "review" in message.lower()):
            return Result.APPLIED, None
        try:
            mine, _held = await self.lookup.find(target, m)
        except ApiError as exc:
            log.warning(
                EVENT_AMBIGUOUS, reason="the object's reviews could not be read", error=str(exc)
            )
            return None
        if mine is None and shown is not None and shown.open:
            return None  # a review this change cannot be told from: settled by a read
        if mine is None or mine.status == ReviewStatus.COMMITTED:
            return Result.APPLIED, None
        if mine.status == ReviewStatus.REJECTED:
            return Result.REJECTED, mine
        return Result.PENDING_REVIEW, mine

    async def failed(self, t: _Attempts, error: ApiError) -> State | None:
        """The attempt failed: :func:`~bulkops.api.retry.decide` says what happens next."""
        t.status = error.status if isinstance(error, ApiStatusError) else None
        t.message = str(error)
        if isinstance(error, RateLimited):
            self.limiter.throttled(t.m.quota_class, error.retry_after, t.attempt)
            self.throttled += 1
            self.observer.throttled()
        maybe_applied = isinstance(error, ServerError) or (
            isinstance(error, TransportError) and error.sent
        )
        # A write that may open a review is never resent by value: a second send
        # could open a second review. A read (which looks for the review) settles it.
        idempotent = t.m.idempotent and t.commit is None and self.target(t.m) is None
        decision = decide(
            t.attempt, error, method=t.m.method, idempotent=idempotent, policy=self.policy
        )
        self.failpoints.hit("before-outcome")
        if decision.action is Action.STOP:
            state = await self.close(t, Result.NOT_APPLIED)
            self.stopping.request(Stop.UNAUTHORIZED, t.message)
            return state
        if decision.action is Action.FAIL:
            return await self.out_of_attempts(t, error, maybe_applied)
        if decision.action is Action.AMBIGUOUS:
            return await self.ambiguous(t, decision)
        return await self.retry(t, error, decision, maybe_applied)

    async def out_of_attempts(self, t: _Attempts, error: ApiError, maybe_applied: bool) -> State:
        """Action.FAIL: failed for good, unless a read finds it applied after all, or
        only transient errors stood in its way."""
        # Attempts ran out on 429s, 5xx or lost connections: nothing failed for
        # good, so what reads back as not applied is left for a resume (T11).
        transient = isinstance(error, RateLimited | ServerError | TransportError)
        if (t.doubted or maybe_applied) and t.m.verifiable:
            # An attempt may have been applied (perhaps an earlier one, before a
            # run of 429s): the read says whether this run made the change.
            await self.close(t, Result.AMBIGUOUS)
            settled = await self.settle_by_read(t.m)
            if settled is not None:
                return settled
            if transient:
                return await self.give_up_for_now(t)
        elif transient and not maybe_applied:
            return await self.give_up_for_now(t)
        return await self.close(t, Result.FAILED)

    async def ambiguous(self, t: _Attempts, decision: Decision) -> State | None:
        """Action.AMBIGUOUS: it may have been applied; a read settles it before any resend."""
        t.doubted = True
        await self.close(t, Result.AMBIGUOUS)
        if await self.stopping.pause(min(decision.delay, 1.0)):
            return State.IN_DOUBT
        settled = await self.settle_by_read(t.m)
        if settled is not None:
            return settled
        if t.attempt >= self.policy.max_attempts:
            # Read back as not applied after transient errors only: nothing
            # happened, so leave it for a resume (T11) instead of failing it.
            return await self.give_up_for_now(t)
        return None if self.spend_retry() else State.PENDING

    async def retry(
        self, t: _Attempts, error: ApiError, decision: Decision, maybe_applied: bool
    ) -> State | None:
        """Action.RETRY: send it again, after a backoff, if the retry budget allows."""
        t.doubted = t.doubted or maybe_applied
        if not self.spend_retry():
            return await self.leave_unsettled(t, t.message)
        log.info(EVENT_RETRY, attempt=t.attempt, status=t.status, reason=decision.reason)
        # A 429 pauses the whole class in the limiter; other errors back off here.
        if not isinstance(error, RateLimited) and await self.stopping.pause(decision.delay):
            return await self.leave_unsettled(t, t.message)
        return None

    def spend_retry(self) -> bool:
        """Take a retry from the run's budget; an empty budget stops the run."""
        if not self.budget.try_spend():
            self.stopping.request(Stop.BUDGET, "too many retries for the requests made")
            return False
        self.retries += 1
        self.observer.retry()
        return True

    async def settle_by_read(self, m: Mutation) -> State | None:
        """Reconcile ``m`` (after an ambiguous attempt, or one a crash left open): the
        state the read leaves it in, or None if it reads back as not applied (send it).

        A write that may have opened a review, and did not apply, is looked up among the
        object's reviews by its marker before anything is sent again.
        """
        target = self.target(m)
        verdict = await self.reconcile(m, reviews=target)
        if verdict is None:
            return State.IN_DOUBT  # the read failed: still in doubt
        if verdict is Verdict.NOT_APPLIED:
            return None
        return verdict.result.state

    async def follow_review(self, m: Mutation, target: ReviewTarget, review_id: str) -> State:
        """Where ``m``'s review stands now: still open → it waits; approved → commit it
        (journaled like any write); rejected → ``rejected``; committed, or gone → read
        the object."""
        st = self.states[m.key]
        try:
            review = await self.lookup.get(target, review_id)
        except (Unauthorized, Forbidden) as exc:
            self.stopping.request(Stop.UNAUTHORIZED, str(exc))
            return State(st.state)
        except ApiError as exc:
            log.warning(EVENT_AMBIGUOUS, reason="the review could not be read", error=str(exc))
            return State(st.state)
        if review is not None and ReviewStatus.committable(review.status):
            commit = m.model_copy(
                update={
                    "method": "PUT",
                    "path": target.commit_path(review_id),
                    "body": None,
                    "idempotent": False,
                }
            )
            tries = _Attempts(commit, st, attempt=st.attempts, doubted=True, commit=review_id)
            while (state := await self.attempt(tries, None)) is None:
                pass
            return state
        if review is not None and review.status == ReviewStatus.REJECTED:
            return await self.review_verdict(m, Verdict.REJECTED, review_id, _rejected(review))
        if review is not None and review.open:
            if st.state == State.PENDING_REVIEW:
                return State.PENDING_REVIEW  # nothing new: no record
            return await self.review_verdict(
                m, Verdict.PENDING_REVIEW, review_id, f"review {review_id} is {review.status}"
            )
        # Committed (here or in the console), or gone: the object says what landed.
        try:
            data = await observe(self.client, m) if m.read is not None else None
        except ApiError as exc:
            log.warning(EVENT_AMBIGUOUS, reason="the reconciling read failed", error=str(exc))
            return State(st.state)
        if m.read is not None and judge(m, data) is Match.AFTER:
            how = "committed" if review is not None else "gone, and the object shows the change"
            return await self.review_verdict(
                m, Verdict.APPLIED, review_id, f"review {review_id} {how}"
            )
        if review is None:
            reason = (
                f"review {review_id} no longer exists (withdrawn in the console?) and the "
                "object does not show the change; not sent again"
            )
            return await self.review_verdict(m, Verdict.REJECTED, review_id, reason)
        reason = (
            f"review {review_id} was committed, but the object no longer shows "
            f"{m.after.describe()}: changed since"
        )
        return await self.review_verdict(m, Verdict.CONFLICT, review_id, reason)

    async def review_verdict(
        self, m: Mutation, verdict: Verdict, review_id: str, reason: str
    ) -> State:
        """Journal what following ``m``'s review found (a ``reconciled`` record)."""
        record = {
            "t": "reconciled",
            "key": m.key,
            "verdict": verdict.value,
            "reason": reason,
            "review_id": review_id,
            "at": time.time(),
        }
        seq = await self.writer.write(record)
        log.info(EVENT_RECONCILED, verdict=verdict.value, reason=reason, review_id=review_id)
        st = self.states[m.key]
        note_review(st, record)
        settle_verdict(st, verdict, reason, seq)
        if verdict in (Verdict.CONFLICT, Verdict.REJECTED):
            st.error = reason
        return verdict.result.state

    async def leave_unsettled(self, t: _Attempts, message: str) -> State:
        """Record ``t`` cut short by a stop: ``ambiguous`` if any of its attempts (not only
        the last) may have been applied, so a resume settles it by a read and finds it
        applied, else ``not_applied``."""
        return await self.close(t, Result.AMBIGUOUS if t.doubted else Result.NOT_APPLIED, message)

    async def give_up_for_now(self, t: _Attempts) -> State:
        """Record that ``t``'s attempts ran out on transient errors, read back as not
        applied: not a failure, the next resume sends it again."""
        message = f"gave up for now after {t.attempt} attempts: {t.message}"
        return await self.close(t, Result.NOT_APPLIED, message)

    # -- journal records ------------------------------------------------------------

    def append_intent(self, m: Mutation, attempt: int, *, commit: str | None = None) -> int:
        """Append ``m``'s intent for ``attempt`` (of the commit of review ``commit``, if
        given) and start its fsync; its seq."""
        self.failpoints.hit("before-intent")
        record: dict[str, Any] = {"t": "intent", "key": m.key, "attempt": attempt}
        if commit is not None:
            record["commit"] = commit
        record["at"] = time.time()
        seq = self.writer.append(record)
        self.writer.request(seq)
        return seq

    async def close(self, t: _Attempts, result: Result, message: str | None = None) -> State:
        """Record the outcome of ``t``'s last attempt (with its error, or ``message``)."""
        return await self.record_outcome(
            t.m,
            result,
            sent_at=t.sent_at,
            attempts=t.attempt,
            status=t.status,
            error=t.message if message is None else message,
        )

    async def record_outcome(
        self,
        m: Mutation,
        result: Result,
        *,
        attempts: int,
        status: int | None = None,
        error: str | None = None,
        created: str | None = None,
        sync: bool = False,
        sent_at: float | None = None,
        review_id: str | None = None,
    ) -> State:
        """Append ``m``'s outcome record and move its state accordingly; the new state."""
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
        if review_id is not None:
            record["review_id"] = review_id
        seq = await self.writer.write(record, sync=sync)
        st = self.states[m.key]
        note_review(st, record)
        st.attempts = max(st.attempts, attempts)
        st.status = status if status is not None else st.status
        st.error = error
        if created is not None:
            st.created_id = created
        st.settle(result, reason=error, seq=seq)
        return result.state

    async def reconcile(
        self, m: Mutation, *, reviews: ReviewTarget | None = None
    ) -> Verdict | None:
        """Settle ``m`` by a read and journal the verdict; None if the read failed.

        With ``reviews`` (its write may have opened a review), a read that does not show
        the change is followed by a look at the object's reviews: ours still open →
        ``pending_review``; ours, from this plan, rejected → ``rejected``.
        """
        review: Review | None = None
        try:
            verdict, reason = await settle(self.client, m)
            if reviews is not None and verdict is not Verdict.APPLIED:
                mine, held = await self.lookup.find(reviews, m)
                if mine is not None and mine.open:
                    verdict, review = Verdict.PENDING_REVIEW, mine
                    reason = f"its review {mine.id} is {mine.status}"
                elif (
                    mine is not None
                    and mine.status == ReviewStatus.REJECTED
                    and mine.from_plan(self.notes.plan_id)
                ):
                    verdict, review, reason = Verdict.REJECTED, mine, _rejected(mine)
                elif held is not None and verdict is Verdict.NOT_APPLIED:
                    # Perhaps ours, if the service dropped our description: not provably
                    # not sent, so never sent again.
                    verdict = Verdict.CONFLICT
                    reason = (
                        f"{reviews.kind}/{reviews.object_id} has a review in progress that is "
                        f"not recognisably this change ({held.id}, {held.status}: "
                        f"{held.description[:200]}); not sent again: check by hand"
                    )
        except (Unauthorized, Forbidden) as exc:
            self.stopping.request(Stop.UNAUTHORIZED, str(exc))
            return None
        except ApiError as exc:
            log.warning(EVENT_AMBIGUOUS, reason="the reconciling read failed", error=str(exc))
            return None
        if review is not None:
            await self.review_verdict(m, verdict, review.id, reason)
            return verdict
        seq = await self.writer.write(
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
        settle_verdict(st, verdict, reason, seq)
        if verdict is Verdict.CONFLICT:
            st.error = reason
        return verdict


def _rejected(review: Review | None) -> str:
    """What a rejected review is reported with."""
    if review is None:
        return "its review was rejected"
    return f"review {review.id} was rejected" + (f": {review.reason}" if review.reason else "")


def _conflict(m: Mutation, data: Any) -> str:
    """Why the re-read found neither of ``m``'s states."""
    if data is None:
        return f"the object does not exist (GET {m.read} answered 404)"
    return f"changed since planning: expected {m.before.describe()}, the object no longer shows it"
