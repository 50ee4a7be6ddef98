"""How a run reports: its log events, and the :class:`Observer` progress callbacks.

Every mutation a run takes up ends in one log line named after the state it reaches
(``mutation.applied``, ``mutation.ambiguous`` for one left in doubt, …), bound to the
run id, the job and the mutation's key; the run itself logs ``run.start``,
``run.stopping`` and ``run.end``. The CLI's progress bar is an :class:`Observer`.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from typing import Protocol

import structlog

from .states import State

__all__ = [
    "EVENT_AMBIGUOUS",
    "EVENT_APPLIED",
    "EVENT_CONFLICT",
    "EVENT_FAILED",
    "EVENT_PENDING",
    "EVENT_PENDING_REVIEW",
    "EVENT_REJECTED",
    "EVENT_RECONCILED",
    "EVENT_RETRY",
    "EVENT_RUN_END",
    "EVENT_RUN_START",
    "EVENT_RUN_STOPPING",
    "EVENT_SKIPPED",
    "MUTATION_EVENTS",
    "NullObserver",
    "Observer",
    "logs_info",
]

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
EVENT_PENDING_REVIEW = "mutation.pending_review"
EVENT_REJECTED = "mutation.rejected"

# The one line per mutation, by the state the run left it in.
MUTATION_EVENTS: Mapping[State, str] = {
    State.APPLIED: EVENT_APPLIED,
    State.SKIPPED: EVENT_SKIPPED,
    State.FAILED: EVENT_FAILED,
    State.CONFLICT: EVENT_CONFLICT,
    State.IN_DOUBT: EVENT_AMBIGUOUS,
    State.PENDING: EVENT_PENDING,
    State.PENDING_REVIEW: EVENT_PENDING_REVIEW,
    State.REJECTED: EVENT_REJECTED,
}


def logs_info() -> bool:
    """Whether structlog's configured level lets ``info`` events through."""
    check = getattr(structlog.get_logger().bind(), "is_enabled_for", None)
    return True if check is None else bool(check(logging.INFO))


class Observer(Protocol):
    """Progress callbacks (the CLI's progress bar; tests use :class:`NullObserver`).

    ``result`` is called once per mutation the run took up, with the state the run left
    it in (``in_doubt`` or ``pending`` when a stop or a failed read left it unsettled).
    """

    def start(self, total: int, done: int, remaining: Mapping[str, int]) -> None: ...

    def result(self, key: str, result: State, klass: str) -> None: ...

    def retry(self) -> None: ...

    def throttled(self) -> None: ...

    def stop(self) -> None: ...


class NullObserver:
    """An observer that ignores everything."""

    def start(self, total: int, done: int, remaining: Mapping[str, int]) -> None:
        return None

    def result(self, key: str, result: State, klass: str) -> None:
        return None

    def retry(self) -> None:
        return None

    def throttled(self) -> None:
        return None

    def stop(self) -> None:
        return None
