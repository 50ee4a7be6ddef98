"""``--mode replace``: each target ends up with exactly the file's id overrides.

``POST`` replaces for gates, holdouts, experiments and layers (each kind's body
carries a different part of the overrides); a segment's id list is reset, or trimmed
and topped up when that takes fewer requests. Every step's undo restores what it
overwrote.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

from bulkops.job import Expect, InverseCall

from .shapes import SIDE_KEYS, ExperimentShape, LayerShape, Shape, Slot
from .target import Target, chunks, desired_ids, normalized

__all__ = ["plan_replace"]


def _plan_replace_gate(t: Target, desired: dict[Slot, list[str]]) -> None:
    """Gates: ``POST`` replaces only the variant it carries (user lists, or environments)."""
    shape, raw = t.shape, t.state.raw
    users = {s: ids for s, ids in desired.items() if s[0] == "A"}
    current_users = {s: ids for s, ids in t.state.slots.items() if s[0] in ("A", "C")}
    if normalized(users) != normalized(current_users):
        new = shape.body({("A", "pass"): [], ("A", "fail"): [], **users}, {}, add=False)
        for side, key in SIDE_KEYS["C"].items():
            if t.state.ids(("C", side)):
                new[key] = []
        old = {key: list(raw.get(key) or []) for key in new}
        t.add(
            "replace:A",
            "override-replace",
            "POST",
            new,
            before=Expect(fields=old),
            after=Expect(fields=new),
            inverse=[t.call("POST", old, "override-replace", idempotent=True)],
            idempotent=True,
            before_image=old,
        )
    envs = {s: ids for s, ids in desired.items() if s[0] == "B"}
    current_envs = {s: ids for s, ids in t.state.slots.items() if s[0] == "B"}
    if normalized(envs) != normalized(current_envs):
        new_envs = shape.body(envs, {}, add=False)["environmentOverrides"] if envs else []
        old_envs = list(raw.get("environmentOverrides") or [])
        t.add(
            "replace:B",
            "override-replace",
            "POST",
            {"environmentOverrides": new_envs},
            before=Expect(fields={"environmentOverrides": old_envs}),
            after=Expect(fields={"environmentOverrides": new_envs}),
            inverse=[
                t.call(
                    "POST", {"environmentOverrides": old_envs}, "override-replace", idempotent=True
                )
            ],
            idempotent=True,
            before_image={"environmentOverrides": old_envs},
        )


_HOLDOUT_KEYS = (*SIDE_KEYS["A"].values(), *SIDE_KEYS["C"].values(), "environmentOverrides")


def _holdout_calls(t: Target, image: Mapping[str, list[Any]]) -> list[InverseCall]:
    """Calls that set a holdout's overrides to ``image`` (a holdout ``POST`` replaces
    everything, and one body carries either the user lists or the environments)."""
    users = {k: list(image.get(k) or []) for k in _HOLDOUT_KEYS[:4]}
    envs = list(image.get("environmentOverrides") or [])
    whole = Expect(fields={**users, "environmentOverrides": envs})
    if not envs:
        body = {k: v for k, v in users.items() if v or k in _HOLDOUT_KEYS[:2]}
        return [t.call("POST", body, "override-replace", after=whole, idempotent=True)]
    if not any(users.values()):
        body = {"environmentOverrides": envs}
        return [t.call("POST", body, "override-replace", after=whole, idempotent=True)]
    body = {k: v for k, v in users.items() if v or k in _HOLDOUT_KEYS[:2]}
    return [
        t.call(
            "POST",
            body,
            "override-replace",
            after=Expect(fields={**users, "environmentOverrides": []}),
            idempotent=True,
        ),
        t.call(
            "PATCH",
            {"environmentOverrides": envs},
            t.shape.add_action,
            before=Expect(fields={"environmentOverrides": []}),
            after=Expect(fields={"environmentOverrides": envs}),
        ),
    ]


def _plan_replace_holdout(t: Target, desired: dict[Slot, list[str]]) -> None:
    """Holdouts: ``POST`` replaces all the overrides; the second variant is then added."""
    if normalized(desired) == t.state.normalized():
        return
    shape, raw = t.shape, t.state.raw
    old = {k: list(raw.get(k) or []) for k in _HOLDOUT_KEYS}
    users = {s: ids for s, ids in desired.items() if s[0] == "A"}
    envs = {s: ids for s, ids in desired.items() if s[0] == "B"}
    empty: dict[str, list[Any]] = {k: [] for k in _HOLDOUT_KEYS}
    if users or not envs:
        body = shape.body({("A", "pass"): [], ("A", "fail"): [], **users}, {}, add=False)
        after = Expect(fields={**empty, **body})
    else:
        body = shape.body(envs, {}, add=False)
        after = Expect(fields={**empty, **body})
    t.add(
        "replace",
        "override-replace",
        "POST",
        body,
        before=Expect(fields=old),
        after=after,
        inverse=_holdout_calls(t, old),
        idempotent=True,
        before_image=old,
    )
    if users and envs:
        for number, part in enumerate(chunks(envs, shape.limit), start=1):
            t.add_ids(f"replace:B{number}", part)


def _plan_replace_groups(t: Target, desired: dict[Slot, list[str]]) -> None:
    """Experiments and layers: ``POST`` replaces every id entry (conditions are sent back
    as they are); entries beyond the per-request limit are added in further requests."""
    if normalized(desired) == normalized(
        {s: ids for s, ids in t.state.slots.items() if s[0] in ("E", "L")}
    ):
        return
    shape, raw = t.shape, t.state.raw
    assert isinstance(shape, ExperimentShape | LayerShape)
    conditions_key, ids_key = (
        ("overrides", "userIDOverrides")
        if isinstance(shape, ExperimentShape)
        else ("conditionalOverrides", "idOverrides")
    )
    conditions = list(raw.get(conditions_key) or [])
    parts = chunks(desired, shape.limit)
    first = shape.entries(parts[0], t.refs)
    old_entries = list(raw.get(ids_key) or [])
    restore = _restore_group_calls(t, conditions_key, ids_key, conditions, old_entries)
    t.add(
        "replace",
        "override-replace",
        "POST",
        {conditions_key: conditions, ids_key: first},
        before=Expect(fields={ids_key: old_entries}),
        after=Expect(fields={ids_key: first}),
        inverse=restore,
        idempotent=True,
        before_image={ids_key: old_entries},
    )
    for number, part in enumerate(parts[1:], start=2):
        t.add_ids(f"replace:{number}", part)


def _restore_group_calls(
    t: Target,
    conditions_key: str,
    ids_key: str,
    conditions: list[Any],
    old_entries: list[dict[str, Any]],
) -> list[InverseCall]:
    """Calls that put back ``old_entries`` (a stored entry may exceed one request)."""
    limit = t.shape.limit
    first = [{**e, "ids": list(e.get("ids") or [])[:limit]} for e in old_entries]
    calls = [
        t.call(
            "POST",
            {conditions_key: conditions, ids_key: first},
            "override-replace",
            after=Expect(fields={ids_key: first}),
            idempotent=True,
        )
    ]
    rest = [(e, list(e.get("ids") or [])[limit:]) for e in old_entries]
    count = max((math.ceil(len(ids) / limit) for _, ids in rest), default=0)
    for i in range(count):
        part = [
            {**e, "ids": ids[i * limit : (i + 1) * limit]}
            for e, ids in rest
            if ids[i * limit : (i + 1) * limit]
        ]
        body: dict[str, Any] = {conditions_key: [], ids_key: part}
        if isinstance(t.shape, LayerShape):
            body = {"op": "add", **body}
        where: dict[str, list[Any]] = {}
        for entry in part:
            selector = _entry_selector(t.shape, entry)
            if selector is not None:
                where.setdefault(selector, []).extend(entry["ids"])
        calls.append(
            t.call(
                "PATCH",
                body,
                t.shape.add_action,
                before=Expect(excludes=where),
                after=Expect(contains=where),
            )
        )
    return calls


def _entry_selector(shape: Shape, entry: Mapping[str, Any]) -> str | None:
    """Where a stored experiment or layer entry's ids are read."""
    if isinstance(shape, LayerShape):
        slot: Slot = ("L", entry.get("environment"), entry.get("idType"), None)
        ref = {"groupName": entry.get("groupName"), "experimentName": entry.get("experimentName")}
    else:
        slot = ("E", entry.get("environment"), entry.get("unitType"), None)
        ref = {"groupID": entry.get("groupID")}
    return shape.selector(slot, ref)


def _plan_replace_segment(t: Target, desired: dict[Slot, list[str]]) -> None:
    """Segments: reset to the first 1,000 ids and add the rest, or remove what the file
    lacks and add what the list lacks, whichever takes fewer requests."""
    slot: Slot = ("S",)
    want = desired.get(slot, [])
    have = t.state.ids(slot)
    have_set, want_set = set(have), set(want)
    drop = [i for i in have if i not in want_set]
    gain = [i for i in want if i not in have_set]
    limit = t.shape.limit
    by_reset = math.ceil(len(want) / limit)
    by_diff = math.ceil(len(drop) / limit) + math.ceil(len(gain) / limit)
    if by_diff == 0:
        return
    if by_reset < by_diff:
        reset_path = f"{t.path}/reset"
        first = want[:limit]
        restore = [
            t.call(
                "POST",
                {"ids": have[:limit]},
                "id-list-reset",
                path=reset_path,
                after=Expect(fields={"ids": have[:limit]}),
                idempotent=True,
            )
        ]
        restore.extend(
            t.call(
                "PATCH",
                {"ids": part[slot]},
                "id-list-add",
                before=t.expect(excludes=part),
                after=t.expect(contains=part),
            )
            for part in chunks({slot: have[limit:]}, limit)
        )
        t.add(
            "reset",
            "id-list-reset",
            "POST",
            {"ids": first},
            path=reset_path,
            before=Expect(fields={"ids": have}),
            after=Expect(fields={"ids": first}),
            inverse=restore,
            idempotent=True,
            before_image={"count": len(have)},
        )
        gain = want[limit:]
    else:
        for number, part in enumerate(chunks({slot: drop}, limit), start=1):
            t.remove_ids(f"remove:{number}", part)
    for number, part in enumerate(chunks({slot: gain}, limit), start=1):
        t.add_ids(f"add:{number}", part)


def plan_replace(t: Target) -> None:
    desired = desired_ids(t)
    if t.kind == "gate":
        _plan_replace_gate(t, desired)
    elif t.kind == "holdout":
        _plan_replace_holdout(t, desired)
    elif t.kind == "segment":
        _plan_replace_segment(t, desired)
    else:
        _plan_replace_groups(t, desired)
