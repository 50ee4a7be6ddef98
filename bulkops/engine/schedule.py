"""Which mutation may start next: dependencies first, one object at a time, in plan order.

A mutation waits for each of its ``depends_on`` to be applied or skipped, and for the
mutation before it on the same object (a plan's changes to one object run one at a
time, in the order the job yielded them). A dependency that failed or conflicted fails
its dependents, and theirs, in turn; one that is left unsettled (pending, in doubt)
holds them back until a resume settles it. What a resumed run finds already settled
counts from the start.

The schedule only keeps the order: the runner's workers take :meth:`Schedule.next_key`,
report :meth:`Schedule.completed`, and journal the failures it hands back.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Mapping, Sequence

from .mutations import Mutation
from .states import FINAL_STATES, OK_STATES, KeyState, State

__all__ = ["Schedule"]


class Schedule:
    """The dependency and per-object order of one run over a plan.

    Args:
        mutations: The plan's mutations, in plan order.
        states: Every mutation's state at the start of the run (final ones are left out).

    Attributes:
        blocked: ``(key, reason)`` of the mutations whose dependency had already failed
            or conflicted before this run: the runner fails them (:meth:`fail`) first.
    """

    def __init__(self, mutations: Sequence[Mutation], states: Mapping[str, KeyState]) -> None:
        self._waiting: dict[str, int] = {}  # unsettled key -> prerequisites left
        self._dependents: dict[str, list[str]] = {}
        self._object_next: dict[str, str] = {}  # key -> the next key on its object
        self._ready: deque[str] = deque()
        self.blocked: list[tuple[str, str]] = []
        last_on_object: dict[str, str] = {}
        for m in mutations:
            if states[m.key].state in FINAL_STATES:
                continue
            count = 0
            for dep in dict.fromkeys(m.depends_on):
                dep_state = states[dep].state
                if dep_state in OK_STATES:
                    continue
                if dep_state in FINAL_STATES:
                    self.blocked.append((m.key, f"dependency {dep} {dep_state}"))
                    continue
                self._dependents.setdefault(dep, []).append(m.key)
                count += 1
            prev = last_on_object.get(m.object)
            if prev is not None:
                self._object_next[prev] = m.key
                count += 1
            last_on_object[m.object] = m.key
            self._waiting[m.key] = count
        self._ready.extend(m.key for m in mutations if self._waiting.get(m.key) == 0)

    @property
    def ready(self) -> int:
        """How many mutations are ready to start."""
        return len(self._ready)

    def next_key(self) -> str | None:
        """The next mutation ready to start (it stays scheduled until completed), or None."""
        while self._ready:
            key = self._ready.popleft()
            if key in self._waiting:
                return key
        return None

    def completed(self, key: str, state: State) -> list[tuple[str, str]]:
        """``key`` ended this run in ``state``: release what waited for it.

        Returns:
            ``(key, reason)`` of the mutations that fail because of it, in the order
            they fail (see :meth:`fail`); record each.
        """
        self._waiting.pop(key, None)
        if state not in FINAL_STATES:
            return []  # unsettled: whatever waits on it keeps waiting (resume picks it up)
        self._release_next_on_object(key)
        failed: list[tuple[str, str]] = []
        for child in self._dependents.get(key, []):
            if state in OK_STATES:
                self._release(child)
            else:
                failed += self.fail(child, f"dependency {key} {state}")
        return failed

    def fail(self, key: str, reason: str) -> list[tuple[str, str]]:
        """Fail ``key`` because a dependency did not apply, and its dependents with it.

        A failed mutation still releases the next one on its object (which has its own
        dependencies to wait for, or none).

        Returns:
            ``(key, reason)`` of every mutation failed, ``key`` first; those no longer
            scheduled (settled or failed already) are left out.
        """
        failed: list[tuple[str, str]] = []
        todo = [(key, reason)]
        while todo:
            k, why = todo.pop()
            if k not in self._waiting:
                continue
            del self._waiting[k]
            if k in self._ready:
                self._ready.remove(k)
            failed.append((k, why))
            todo.extend((child, f"dependency {k} failed") for child in self._dependents.get(k, []))
            self._release_next_on_object(k)
        return failed

    def _release_next_on_object(self, key: str) -> None:
        nxt = self._object_next.get(key)
        if nxt is not None:
            self._release(nxt)

    def _release(self, key: str) -> None:
        if key in self._waiting:
            self._waiting[key] -= 1
            if self._waiting[key] == 0:
                self._ready.append(key)
