"""Reconciliation: what the journal says happened, and what a read says happened.

The journal is a hint, the remote is the truth (reliability notes, section 2.6).
:func:`replay` folds the journal's records into one :class:`KeyState` per mutation;
:func:`settle` decides an uncertain mutation by reading its object back:

* the read matches the after-state: it was applied (never sent again);
* it matches the before-state: it was not applied, and may be sent (new intent);
* it matches neither: someone else changed the object; ``conflict``, for a human.

A mutation that cannot be observed (``read`` is None) is settled only if it is
idempotent (sending it again is safe); otherwise it is a conflict, "check by hand".
A write that may have opened a review is settled by the object's reviews too
(:mod:`bulkops.engine.reviews`): ``pending_review``, or ``rejected``.
The states and results themselves, and how one leads to the other, are in
:mod:`~bulkops.engine.states`.
"""

from __future__ import annotations

import enum
from collections.abc import Iterable, Mapping
from typing import Any, TypeVar

from ..api.client import ConsoleClient, read_object
from ..errors import PlanError
from .mutations import Mutation
from .states import KeyState, Result, State

__all__ = [
    "Match",
    "Verdict",
    "judge",
    "note_review",
    "observe",
    "replay",
    "settle",
    "settle_verdict",
    "undo_mutations",
]


class Match(enum.Enum):
    """Which of a mutation's states an object shows."""

    AFTER = "after"
    BEFORE = "before"
    NEITHER = "neither"


class Verdict(enum.Enum):
    """How an uncertain mutation was settled (the journal's ``reconciled`` verdict)."""

    APPLIED = "applied"
    NOT_APPLIED = "not_applied"
    CONFLICT = "conflict"
    PENDING_REVIEW = "pending_review"
    REJECTED = "rejected"

    @property
    def result(self) -> Result:
        """The outcome result of the same name (what the verdict does to its key)."""
        return Result(self.value)


def judge(mutation: Mutation, data: Any) -> Match:
    """Compare a read with the mutation's states (the after-state wins a tie)."""
    if mutation.after.matches(data):
        return Match.AFTER
    if mutation.before.matches(data):
        return Match.BEFORE
    return Match.NEITHER


async def observe(client: ConsoleClient, mutation: Mutation) -> Any:
    """Read the mutation's object (None for 404). The mutation must have a ``read``."""
    assert mutation.read is not None, "observe() needs a read path"
    return await read_object(client, mutation.read)


async def settle(client: ConsoleClient, mutation: Mutation) -> tuple[Verdict, str]:
    """Settle an uncertain mutation by a read; returns the verdict and a reason.

    Raises:
        ApiError: the read itself failed (the mutation stays uncertain).
    """
    if not mutation.verifiable:
        if mutation.idempotent:
            return Verdict.NOT_APPLIED, "cannot be read back, but sending it again is safe"
        return Verdict.CONFLICT, "cannot verify; check by hand"
    data = await observe(client, mutation)
    match = judge(mutation, data)
    if match is Match.AFTER:
        return Verdict.APPLIED, f"read shows {mutation.after.describe()}"
    if match is Match.BEFORE:
        return Verdict.NOT_APPLIED, f"read shows {mutation.before.describe()}"
    return (
        Verdict.CONFLICT,
        f"read shows neither {mutation.before.describe()} nor {mutation.after.describe()}",
    )


_EXPLAINED = frozenset({Verdict.CONFLICT, Verdict.REJECTED})


def settle_verdict(st: KeyState, verdict: Verdict, reason: str | None, seq: int) -> None:
    """Move ``st`` as the outcome of the verdict's name does; only a conflict or a
    rejection keeps the ``reason`` (an applied mutation needs no explanation)."""
    st.settle(verdict.result, reason=reason if verdict in _EXPLAINED else None, seq=seq)


def note_review(st: KeyState, record: Mapping[str, Any]) -> None:
    """Keep the review a record names (``review_id``), and when it was opened."""
    review_id = record.get("review_id")
    if isinstance(review_id, str) and review_id != st.review_id:
        st.review_id = review_id
        at = record.get("at")
        st.review_at = float(at) if isinstance(at, int | float) else None


def replay(
    records: Iterable[Mapping[str, Any]], keys: Iterable[str] | None = None
) -> dict[str, KeyState]:
    """Fold journal records into one :class:`KeyState` per mutation key.

    ``intent`` makes a key ``in_doubt``; an ``outcome`` of applied/skipped/failed/
    conflict/rejected makes it final, ``ambiguous`` keeps it in doubt, ``not_applied``
    returns it to pending, ``pending_review`` leaves it waiting for its review; a
    ``reconciled`` verdict settles a doubt the same way. Records naming a review keep
    its id.
    """
    states: dict[str, KeyState] = {k: KeyState() for k in keys or ()}
    for record in records:
        kind = record.get("t")
        key = record.get("key")
        if kind not in ("intent", "outcome", "reconciled") or not isinstance(key, str):
            continue
        st = states.setdefault(key, KeyState())
        seq = int(record.get("seq", -1))
        if kind == "intent":
            st.state = State.IN_DOUBT
            st.attempts = max(st.attempts, int(record.get("attempt") or 0))
        elif kind == "outcome":
            st.status = record.get("status", st.status)
            st.error = record.get("error")
            if "attempts" in record:
                # The outcome knows whether its intent was sent: an intent appended
                # before the re-read that then found nothing to send is no attempt.
                st.attempts = int(record.get("attempts") or 0)
            if record.get("created_id"):
                st.created_id = str(record["created_id"])
            note_review(st, record)
            result = _member(Result, record.get("result"))
            if result is not None:
                st.settle(result, reason=record.get("error"), seq=seq)
        else:
            note_review(st, record)
            verdict = _member(Verdict, record.get("verdict"))
            if verdict is not None:
                settle_verdict(st, verdict, record.get("reason"), seq)
    return states


_E = TypeVar("_E", bound=enum.Enum)


def _member(kind: type[_E], value: Any) -> _E | None:
    """The member of ``kind`` whose value is ``value`` (None for anything else)."""
    try:
        return kind(value)
    except ValueError:
        return None


def undo_mutations(
    plan_mutations: Iterable[Mutation] | Any, states: Mapping[str, KeyState]
) -> tuple[list[Mutation], list[tuple[str, str]]]:
    """The undo of every applied mutation, newest first, and what cannot be undone.

    ``plan_mutations`` is a :class:`~bulkops.engine.plans.Plan` or its mutations. When B
    depended on A, the undo of A waits for the undo of B (dependencies reversed). A
    change still waiting for its review has nothing to undo, and an undo cannot
    withdraw a review: it is named among what cannot be undone.

    Returns:
        The undo mutations, and ``(key, reason)`` for applied mutations without an undo
        and for changes still under review.
    """
    mutations = list(getattr(plan_mutations, "mutations", plan_mutations))
    waiting = [
        (m.key, states[m.key].review_id)
        for m in mutations
        if m.key in states and states[m.key].state == State.PENDING_REVIEW
    ]
    applied = [m for m in mutations if states.get(m.key, KeyState()).state == State.APPLIED]
    applied.sort(key=lambda m: states[m.key].settled_at, reverse=True)
    undo_keys: dict[str, list[str]] = {}
    out: list[Mutation] = []
    skipped: list[tuple[str, str]] = [
        (
            key,
            f"its review {review_id} is still open, so nothing was applied and an undo cannot "
            "withdraw it: reject it in the console (or undo this checkpoint again once it "
            "is committed)",
        )
        for key, review_id in waiting
    ]
    for m in applied:
        if not m.inverse:
            skipped.append((m.key, f"{m.action} has no inverse"))
            continue
        try:
            reverse = m.reverse(states[m.key].created_id)
        except PlanError as exc:
            skipped.append((m.key, exc.message))
            continue
        undo_keys[m.key] = [r.key for r in reverse]
        out.extend(reverse)
    waits: dict[str, set[str]] = {}
    for m in applied:
        for dep in m.depends_on:
            if dep in undo_keys and m.key in undo_keys:
                for first in undo_keys[dep]:
                    waits.setdefault(first, set()).update(undo_keys[m.key])
    return [
        r.model_copy(update={"depends_on": tuple(sorted(waits[r.key]))}) if r.key in waits else r
        for r in out
    ], skipped
