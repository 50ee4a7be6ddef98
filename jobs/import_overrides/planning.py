"""From the file's rows and the targets' current overrides to mutations (pure: no I/O).

``add`` sends only the ids a target lacks (moving an id out of its old place where the
API keeps it in both), ``remove`` only the ids it holds, ``replace`` what makes it
exactly the file's (:mod:`.replace`).
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any, Literal

from bulkops.job import Mutation

from .parser import Catalog, RowProblem, TargetOverrides
from .replace import plan_replace
from .shapes import SHAPES, Slot
from .target import Target, by_variant, chunks, trim_to_capacity

__all__ = ["Mode", "minimum_requests", "plan_chunks"]

Mode = Literal["add", "replace", "remove"]


def _plan_add(t: Target) -> None:
    shape = t.shape
    fresh: dict[Slot, list[str]] = {}
    for slot, lines in t.want.items():
        have = set(t.state.ids(slot))
        fresh[slot] = [i for i in lines if i not in have]
    # Where each new id sits now in its scope (another group, the opposite list).
    moved: dict[Slot, dict[str, Slot]] = {}
    scopes = {shape.scope(s) for s, ids in fresh.items() if ids}
    index: dict[Slot, dict[str, Slot]] = {scope: {} for scope in scopes}
    for slot, held in t.state.slots.items():
        where = index.get(shape.scope(slot))
        if where is not None:
            for unit_id in held:
                where.setdefault(unit_id, slot)
    leaving: dict[Slot, int] = {}
    for slot, new_ids in fresh.items():
        where = index.get(shape.scope(slot), {})
        for unit_id in new_ids:
            old = where.get(unit_id)
            if old is not None and old != slot:
                moved.setdefault(slot, {})[unit_id] = old
                leaving[old] = leaving.get(old, 0) + 1
    for slot in list(fresh):
        if shape.capacity is not None:
            room = shape.capacity - len(t.state.ids(slot)) + leaving.get(slot, 0)
            fresh[slot] = trim_to_capacity(t, slot, fresh[slot], room)
            kept = set(fresh[slot])
            moved[slot] = {u: old for u, old in moved.get(slot, {}).items() if u in kept}
    for variant, slots in by_variant(shape, [s for s in fresh if fresh[s]]).items():
        entries = {s: fresh[s] for s in slots}
        if not shape.server_moves:
            _plan_move_out(t, variant, {s: moved.get(s, {}) for s in slots})
        for number, part in enumerate(chunks(entries, shape.limit), start=1):
            out: dict[Slot, list[str]] = {}
            if shape.server_moves:
                for slot, chunk in part.items():
                    for unit_id in chunk:
                        old = moved.get(slot, {}).get(unit_id)
                        if old is not None:
                            out.setdefault(old, []).append(unit_id)
            undo = [
                t.call(
                    "DELETE",
                    shape.body(part, t.refs, add=False),
                    shape.remove_action,
                    after=t.expect(excludes=part),
                )
            ]
            if out:
                undo.append(
                    t.call(
                        "PATCH",
                        shape.body(out, t.refs, add=True),
                        shape.add_action,
                        before=t.expect(excludes=out),
                        after=t.expect(contains=out),
                    )
                )
            t.add(
                f"add:{variant}{number}",
                shape.add_action,
                "PATCH",
                shape.body(part, t.refs, add=True),
                before=t.expect(excludes=part, contains=out),
                after=t.expect(contains=part, excludes=out),
                inverse=undo,
            )


def _plan_move_out(t: Target, variant: str, moved: Mapping[Slot, Mapping[str, Slot]]) -> None:
    """Gates keep an id on both lists when it is added to one: take it off the other first."""
    out: dict[Slot, list[str]] = {}
    for ids in moved.values():
        for unit_id, old in ids.items():
            out.setdefault(old, []).append(unit_id)
    for number, part in enumerate(chunks(out, t.shape.limit), start=1):
        t.remove_ids(f"move:{variant}{number}", part, "override-move")


def _plan_remove(t: Target) -> None:
    shape = t.shape
    present: dict[Slot, list[str]] = {}
    for slot, ids in t.want.items():
        have = set(t.state.ids(slot))
        hit = [i for i in ids if i in have]
        if hit:
            present[slot] = hit
    for variant, slots in by_variant(shape, present).items():
        entries = {s: present[s] for s in slots}
        for number, part in enumerate(chunks(entries, shape.limit), start=1):
            t.remove_ids(f"remove:{variant}{number}", part)


def _target(
    key: tuple[str, str], rows: TargetOverrides, raw: Any, catalog: Catalog, project: str
) -> Target:
    shape = SHAPES[key[0]]
    state = shape.parse(raw if isinstance(raw, dict) else {}, key[1], catalog)
    want: dict[Slot, dict[str, int]] = {}
    for bucket, ids in rows.buckets.items():
        slot = shape.slot(bucket)
        merged = want.setdefault(slot, {})
        for unit_id, line in ids.items():
            merged.setdefault(unit_id, line)
    refs = dict(state.refs)
    for slot in want:
        refs.setdefault(slot, shape.new_ref(slot, key[1], catalog))
    t = Target(shape, key[1], state, want, refs, project)
    if raw is None:
        for slot, ids in list(want.items()):
            t.reject(slot, ids, "not found when its overrides were read")
            del want[slot]
        return t
    for slot, ids in list(want.items()):
        if shape.selector(slot, refs[slot]) is None:
            t.reject(
                slot,
                ids,
                f"{shape.describe(slot)}: a name holds one of . , = [ ] and cannot be "
                "checked; use ids without them",
            )
            del want[slot]
    return t


def plan_chunks(
    targets: Mapping[tuple[str, str], TargetOverrides],
    current: Mapping[tuple[str, str], Any],
    catalog: Catalog,
    *,
    mode: Mode,
    project: str,
) -> tuple[list[Mutation], list[RowProblem]]:
    """The mutations that bring every target to what the file asks (pure: no I/O).

    Args:
        targets: The file's valid rows per target (:func:`read_overrides_file`).
        current: Each target's overrides as read (``GET …/overrides`` data, a
            segment's ``{ids}``), None for a target that is gone.
        catalog: The project's groups (experiment and layer values are group ids).
        mode: ``add``, ``replace`` or ``remove``.
        project: The target project's id, stamped on every mutation.

    Returns:
        The mutations in file order of their targets, and the rows that cannot be
        applied (a list that would exceed the API's limit, a target gone…).
    """
    mutations: list[Mutation] = []
    problems: list[RowProblem] = []
    for key, rows in targets.items():
        t = _target(key, rows, current.get(key), catalog, project)
        if t.want:
            if mode == "add":
                _plan_add(t)
            elif mode == "remove":
                _plan_remove(t)
            else:
                plan_replace(t)
        mutations += t.mutations
        problems += t.problems
    return mutations, problems


def minimum_requests(targets: Mapping[tuple[str, str], TargetOverrides]) -> int:
    """The fewest requests an ``add`` of ``targets`` into empty overrides can take.

    Per target and request variant (gate user lists, gate environments, experiment
    and layer entries, a segment's list): the largest list over its per-request limit.
    """
    total = 0
    for (kind, _target_id), rows in targets.items():
        shape = SHAPES[kind]
        sizes: dict[str, dict[Slot, int]] = {}
        for bucket, ids in rows.buckets.items():
            slot = shape.slot(bucket)
            per = sizes.setdefault(shape.variant(slot), {})
            per[slot] = per.get(slot, 0) + len(ids)
        total += sum(
            max(math.ceil(n / shape.limit) for n in per.values()) for per in sizes.values()
        )
    return total
