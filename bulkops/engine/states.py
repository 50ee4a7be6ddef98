"""Where a mutation stands (:class:`State`) and what the journal says of an attempt (:class:`Result`).

Both are ``StrEnum``: every member *is* its string (``State.APPLIED == "applied"``,
``str(State.APPLIED) == "applied"``), so the journal's records, the JSON and CSV reports
and ``bulkops status`` read exactly as plain strings, and comparisons with strings work.

Each ``outcome`` record carries a :class:`Result`, and moves its key to the
:class:`State` named by :attr:`Result.state`:

==============  ==============  ================================================
Result          State           meaning
==============  ==============  ================================================
applied         applied         the write took effect (final)
skipped         skipped         the re-read already showed the after-state: nothing sent (final)
failed          failed          refused for good, or a dependency did not apply (final)
conflict        conflict        the object shows neither state: never overwritten (final)
ambiguous       in_doubt        it may have been applied: a read settles it before any resend
not_applied     pending         provably not applied: it may be sent (again)
pending_review  pending_review  the write opened a review (``review_id``): never sent
                                again while it is open; a resume commits it once approved
rejected        rejected        its review was rejected (final, never retried)
==============  ==============  ================================================

An ``intent`` record alone makes its key ``in_doubt`` (the request may have gone out;
one with ``commit`` is the commit of the key's review); a ``reconciled`` record's
verdict (:class:`~bulkops.engine.reconcile.Verdict`: applied, not_applied, conflict,
pending_review or rejected) moves it as the outcome of the same name does. A key with
no record is ``pending``.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass

__all__ = ["FINAL_STATES", "OK_STATES", "KeyState", "Result", "State"]


class State(enum.StrEnum):
    """Where one mutation stands (``KeyState.state``, the report's ``state`` column)."""

    PENDING = "pending"
    IN_DOUBT = "in_doubt"
    APPLIED = "applied"
    SKIPPED = "skipped"
    FAILED = "failed"
    CONFLICT = "conflict"
    PENDING_REVIEW = "pending_review"
    REJECTED = "rejected"


# States a resumed run does not touch again.
FINAL_STATES = frozenset(
    {State.APPLIED, State.SKIPPED, State.FAILED, State.CONFLICT, State.REJECTED}
)
# States that satisfy a dependency (and make a run ``ok``).
OK_STATES = frozenset({State.APPLIED, State.SKIPPED})


class Result(enum.StrEnum):
    """What an ``outcome`` record says of the attempt(s) it closes."""

    APPLIED = "applied"
    SKIPPED = "skipped"
    FAILED = "failed"
    CONFLICT = "conflict"
    AMBIGUOUS = "ambiguous"
    NOT_APPLIED = "not_applied"
    PENDING_REVIEW = "pending_review"
    REJECTED = "rejected"

    @property
    def state(self) -> State:
        """The state this result leaves its mutation in (see the module's table)."""
        return _STATE_AFTER[self]


_STATE_AFTER = {
    Result.APPLIED: State.APPLIED,
    Result.SKIPPED: State.SKIPPED,
    Result.FAILED: State.FAILED,
    Result.CONFLICT: State.CONFLICT,
    Result.AMBIGUOUS: State.IN_DOUBT,
    Result.NOT_APPLIED: State.PENDING,
    Result.PENDING_REVIEW: State.PENDING_REVIEW,
    Result.REJECTED: State.REJECTED,
}


@dataclass
class KeyState:
    """What the journal says about one mutation.

    Attributes:
        state: ``pending`` (nothing sent, or provably not applied), ``in_doubt`` (an
            intent or an ambiguous outcome not yet settled), ``pending_review`` (waiting
            for people), or a final state: ``applied``, ``skipped``, ``failed``,
            ``conflict``, ``rejected``.
        attempts: Attempts made so far (the last outcome's count, else the last intent's
            number).
        status: The last HTTP status seen, if any.
        error: The last error message (redacted), if any.
        created_id: The id the server assigned on a create, from its response.
        settled_at: Journal sequence number of the record that made it final.
        reason: Why it ended as it did.
        review_id: The review its write opened, once known.
        review_at: When that review was opened (Unix time of the record), for its age.
    """

    # Always a State; typed to admit plain strings too, so that code comparing it with
    # them (``counts.get("in_doubt")`` over a Counter of states) keeps type-checking.
    state: State | str = State.PENDING
    attempts: int = 0
    status: int | None = None
    error: str | None = None
    created_id: str | None = None
    settled_at: int = -1
    reason: str | None = None
    review_id: str | None = None
    review_at: float | None = None

    def settle(self, result: Result, *, reason: str | None, seq: int) -> None:
        """Move to the state ``result`` leaves it in; a final one keeps ``reason`` and
        the ``seq`` of the record that made it final."""
        self.state = result.state
        if self.state in FINAL_STATES:
            self.reason = reason
            self.settled_at = seq
