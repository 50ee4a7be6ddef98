"""One target being planned: what the file wants, what the API holds, and the requests
(as mutations, each with its undo) that close the gap, chunked to the API's limits."""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from bulkops.job import Expect, InverseCall, Mutation

from .parser import RowProblem
from .shapes import Shape, Slot, State

__all__ = ["Target", "by_variant", "chunks", "desired_ids", "normalized", "trim_to_capacity"]


@dataclass
class Target:
    """Planning one target: its shape, what the file wants and what the API holds."""

    shape: Shape
    id: str
    state: State
    want: dict[Slot, dict[str, int]]  # slot -> {unit id: line}, file order
    refs: dict[Slot, dict[str, Any]]
    project: str
    problems: list[RowProblem] = field(default_factory=list)
    mutations: list[Mutation] = field(default_factory=list)

    @property
    def kind(self) -> str:
        return self.shape.kind

    @property
    def path(self) -> str:
        return self.shape.path(self.id)

    def reject(self, slot: Slot, ids: Iterable[str], why: str) -> None:
        lines = self.want[slot]
        for unit_id in ids:
            self.problems.append(RowProblem(lines[unit_id], f"{self.kind} {self.id}: {why}"))

    def expect(
        self,
        *,
        contains: Mapping[Slot, Sequence[str]] | None = None,
        excludes: Mapping[Slot, Sequence[str]] | None = None,
        fields: Mapping[str, Any] | None = None,
    ) -> Expect:
        def paths(spec: Mapping[Slot, Sequence[str]] | None) -> dict[str, list[Any]]:
            out: dict[str, list[Any]] = {}
            for slot, ids in (spec or {}).items():
                where = self.shape.selector(slot, self.refs.get(slot, {}))
                if where is not None and ids:
                    out.setdefault(where, []).extend(ids)
            return out

        return Expect(fields=dict(fields or {}), contains=paths(contains), excludes=paths(excludes))

    def add(
        self,
        step: str,
        action: str,
        method: str,
        body: Any,
        before: Expect,
        after: Expect,
        inverse: Sequence[InverseCall],
        *,
        path: str | None = None,
        idempotent: bool = False,
        before_image: Any = None,
    ) -> None:
        self.mutations.append(
            Mutation(
                key=f"overrides:{self.kind}:{self.id}:{step}",
                project=self.project,
                action=action,
                object=f"{self.kind}/{self.id}",
                method=method,
                path=path or self.path,
                body=body,
                read=self.path,
                before=before,
                after=after,
                before_image=before_image,
                inverse=tuple(inverse),
                quota_class=self.shape.quota_class,
                idempotent=idempotent,
            )
        )

    def add_ids(self, step: str, part: Mapping[Slot, list[str]]) -> None:
        """A ``PATCH`` adding ``part``'s ids where they are missing; undone by removing them."""
        shape = self.shape
        self.add(
            step,
            shape.add_action,
            "PATCH",
            shape.body(part, self.refs, add=True),
            before=self.expect(excludes=part),
            after=self.expect(contains=part),
            inverse=[
                self.call("DELETE", shape.body(part, self.refs, add=False), shape.remove_action)
            ],
        )

    def remove_ids(
        self, step: str, part: Mapping[Slot, list[str]], action: str | None = None
    ) -> None:
        """A ``DELETE`` of ``part``'s ids where they are held; undone by adding them back."""
        shape = self.shape
        self.add(
            step,
            action or shape.remove_action,
            "DELETE",
            shape.body(part, self.refs, add=False),
            before=self.expect(contains=part),
            after=self.expect(excludes=part),
            inverse=[self.call("PATCH", shape.body(part, self.refs, add=True), shape.add_action)],
        )

    def call(
        self,
        method: str,
        body: Any,
        action: str,
        *,
        before: Expect | None = None,
        after: Expect | None = None,
        path: str | None = None,
        idempotent: bool = False,
    ) -> InverseCall:
        return InverseCall(
            method=method,
            path=path or self.path,
            body=body,
            before=before,
            after=after,
            idempotent=idempotent,
            quota_class=self.shape.quota_class,
            action=action,
        )


def chunks(entries: Mapping[Slot, Sequence[str]], limit: int) -> list[dict[Slot, list[str]]]:
    """Requests that carry ``entries``: request i takes the i-th ``limit`` ids of every slot."""
    count = max((math.ceil(len(ids) / limit) for ids in entries.values()), default=0)
    out = []
    for i in range(count):
        part = {s: list(ids[i * limit : (i + 1) * limit]) for s, ids in entries.items()}
        out.append({s: ids for s, ids in part.items() if ids})
    return out


def by_variant(shape: Shape, slots: Iterable[Slot]) -> dict[str, list[Slot]]:
    out: dict[str, list[Slot]] = {}
    for slot in slots:
        out.setdefault(shape.variant(slot), []).append(slot)
    return out


def trim_to_capacity(t: Target, slot: Slot, ids: list[str], room: int) -> list[str]:
    capacity = t.shape.capacity
    if capacity is None or len(ids) <= room:
        return ids
    room = max(room, 0)
    t.reject(
        slot,
        ids[room:],
        f"{t.shape.describe(slot)} would hold more than {capacity:,} ids, the API's limit per list",
    )
    return ids[:room]


def desired_ids(t: Target) -> dict[Slot, list[str]]:
    """The file's ids per slot, trimmed to what a list may hold (the rest are problems)."""
    out: dict[Slot, list[str]] = {}
    for slot, ids in t.want.items():
        kept = trim_to_capacity(t, slot, list(ids), t.shape.capacity or len(ids))
        if kept:
            out[slot] = kept
    return out


def normalized(slots: Mapping[Slot, Sequence[str]]) -> dict[Slot, frozenset[str]]:
    return {s: frozenset(ids) for s, ids in slots.items() if ids}
