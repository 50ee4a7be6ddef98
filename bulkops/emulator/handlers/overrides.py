"""Emulator handlers: the overrides of experiments, layers and holdouts.

Overrides live in ``project.overrides[kind][id]``. The three kinds share their four
operations (an :class:`OverrideKind` names what differs): ``GET`` reads them,
``POST`` replaces them, ``PATCH`` adds to them, ``DELETE`` removes the listed entries
and ids (everything when there is no body). A change that changes nothing is not
recorded; any other writes one audit-log entry (no version).

* **Experiments** ``{overrides, userIDOverrides}``: a gate/segment override for the
  same gate or segment (per environment) is overwritten; ids join their group's entry
  and leave any other group's (per environment and unit type). At most 1000
  overrides, and 1000 ids per group.
* **Layers** ``{conditionalOverrides, idOverrides}``: as for experiments, by gate or
  segment and by (experiment, group); ``PATCH`` must say ``op: "add"``.
* **Holdouts** (gate-style ``passingUserIDs``, …, ``environmentOverrides``): an id
  added to a passing list leaves the failing one, and back; at most 2000 per list.

Gate overrides keep their own semantics (:mod:`.gates`).
"""

from __future__ import annotations

from collections.abc import Callable, Hashable
from dataclasses import dataclass
from functools import partial
from typing import Any

from aiohttp import web

from ..checks import (
    Check,
    check_environment,
    expected,
    field_error,
    require_keys,
    string,
    string_list,
    validate_fields,
)
from ..common import OVERRIDE_LISTS, empty_list_overrides, get_or_404
from ..http import PREFIX, clone, ok, project, read_body, record_change
from ..state import Project
from .experiment_checks import experiments_in_layer, find_group

__all__ = ["EXPERIMENTS", "HOLDOUTS", "LAYERS", "OverrideKind", "routes"]

MAX_OVERRIDES = 1000
MAX_EXPERIMENT_IDS = 1000
MAX_HOLDOUT_IDS = 2000
_STR = string()
_NSTR = string(nullable=True)

# (request, object, body, required) → the parsed overrides; ``required`` for POST and
# PATCH (every list given, every reference checked), not for DELETE.
Parse = Callable[[web.Request, dict[str, Any], Any, bool], dict[str, Any]]
# (object, current, given) → the new overrides (PATCH merges, DELETE removes).
Combine = Callable[[dict[str, Any], dict[str, Any], dict[str, Any]], dict[str, Any]]


@dataclass(frozen=True)
class OverrideKind:
    """What one kind's overrides do differently from the others'."""

    kind: str  # the store and the ``project.overrides`` key
    label: str  # "<label> not found." and "<label> Overrides … successfully."
    action: str  # the audit actionType of a change
    empty: Callable[[], dict[str, Any]]
    parse: Parse
    merge: Combine
    remove: Combine
    fill_lists: bool = False  # stored overrides may lack lists (seeds): fill them in
    patch_op: bool = False  # PATCH must say ``op: "add"``

    def stored(self, proj: Project, obj_id: str) -> dict[str, Any]:
        """The overrides of ``obj_id`` (the empty ones when none are stored)."""
        current = proj.overrides.setdefault(self.kind, {}).get(obj_id)
        if self.fill_lists:
            return {**self.empty(), **(current or {})}
        return current or self.empty()


def _object(kind: OverrideKind, request: web.Request) -> dict[str, Any]:
    return get_or_404(request, kind.kind, request.match_info["id"], kind.label)


def _save(
    request: web.Request, kind: OverrideKind, obj: dict[str, Any], overrides: dict[str, Any]
) -> web.Response:
    proj = project(request)
    before = kind.stored(proj, obj["id"])
    if overrides != before:
        proj.overrides.setdefault(kind.kind, {})[obj["id"]] = overrides
        record_change(
            request,
            kind.kind,
            obj,
            kind.action,
            changes={"overrides": {"old": before, "new": overrides}},
            versioned=False,
        )
    return ok(overrides, f"{kind.label} Overrides updated successfully.")


async def get_overrides(kind: OverrideKind, request: web.Request) -> web.Response:
    """``GET /<kind>/{id}/overrides``."""
    obj = _object(kind, request)
    overrides = kind.stored(project(request), obj["id"])
    return ok(overrides, f"{kind.label} Overrides read successfully.")


async def set_overrides(kind: OverrideKind, request: web.Request) -> web.Response:
    """``POST /<kind>/{id}/overrides``: replace all overrides."""
    obj = _object(kind, request)
    parsed = kind.parse(request, obj, await read_body(request), True)
    return _save(request, kind, obj, kind.merge(obj, kind.empty(), parsed))


async def add_overrides(kind: OverrideKind, request: web.Request) -> web.Response:
    """``PATCH /<kind>/{id}/overrides``: add to the overrides."""
    obj = _object(kind, request)
    body = await read_body(request)
    if kind.patch_op:
        body = require_keys(body, ("op",))
        if body["op"] != "add":
            field_error("op", f"Invalid enum value. Expected 'add', received '{body['op']}'")
    parsed = kind.parse(request, obj, body, True)
    current = kind.stored(project(request), obj["id"])
    return _save(request, kind, obj, kind.merge(obj, current, parsed))


async def remove_overrides(kind: OverrideKind, request: web.Request) -> web.Response:
    """``DELETE /<kind>/{id}/overrides``: remove the listed entries and ids; no body → all."""
    obj = _object(kind, request)
    body = await read_body(request, required=False)
    if body is None:
        return _save(request, kind, obj, kind.empty())
    parsed = kind.parse(request, obj, body, False)
    current = kind.stored(project(request), obj["id"])
    return _save(request, kind, obj, kind.remove(obj, current, parsed))


# -- shared by experiments and layers -------------------------------------------------------


def _array(value: Any, prop: str) -> list[Any]:
    if not isinstance(value, list):
        expected(prop, "array", value)
    return value


def _check_target(proj: Project, target_type: str, ref: str, prop: str) -> None:
    """400 unless the gate (``target_type`` "gate") or segment ``ref`` exists."""
    kind = "gates" if target_type == "gate" else "segments"
    if ref not in proj.store(kind):
        label = "Gate" if kind == "gates" else "Segment"
        field_error(prop, f"{label} {ref} not found.")


def _replace_entry(
    entries: list[dict[str, Any]], entry: dict[str, Any], key: Callable[[dict[str, Any]], Any]
) -> list[dict[str, Any]]:
    """``entries`` with ``entry`` instead of any entry of the same ``key``."""
    return [o for o in entries if key(o) != key(entry)] + [entry]


def _join_group(
    entries: list[dict[str, Any]],
    entry: dict[str, Any],
    scope: Callable[[dict[str, Any]], Hashable],
    group: Callable[[dict[str, Any]], Hashable],
) -> None:
    """Add ``entry``'s ids to its group's entry in ``entries``, taking them out of any other
    group's entry of the same ``scope`` (an id is in one group at a time)."""
    ids = dict.fromkeys(entry["ids"])
    target = None
    for existing in entries:
        if scope(existing) != scope(entry):
            continue
        if group(existing) == group(entry):
            target = existing
        else:
            existing["ids"] = [i for i in existing["ids"] if i not in ids]
    if target is None:
        entries.append({**entry, "ids": list(ids)})
    else:
        target["ids"] = list(dict.fromkeys([*target["ids"], *ids]))


def _drop_ids(
    entries: list[dict[str, Any]],
    removed: list[dict[str, Any]],
    matches: Callable[[dict[str, Any], dict[str, Any]], bool],
) -> list[dict[str, Any]]:
    """``entries`` without the ids of each removed entry they ``match``; empty ones go."""
    for entry in removed:
        ids = set(entry["ids"])
        for existing in entries:
            if matches(existing, entry):
                existing["ids"] = [i for i in existing["ids"] if i not in ids]
    return [e for e in entries if e["ids"]]


# -- experiments ----------------------------------------------------------------------------


def _empty_experiment() -> dict[str, Any]:
    return {"overrides": [], "userIDOverrides": []}


def _parse_experiment(
    request: web.Request, experiment: dict[str, Any], body: Any, required: bool
) -> dict[str, Any]:
    """Validate an ``ExperimentOverridesDto`` body against the experiment and the project.

    ``required`` (POST, PATCH): both arrays must be given and every referenced gate,
    segment and group must exist. A DELETE body may name objects that are gone.
    """
    proj = project(request)
    body = require_keys(body, ("overrides", "userIDOverrides") if required else ())
    entries = body.get("overrides") or []
    id_entries = body.get("userIDOverrides") or []
    if not isinstance(entries, list):
        expected("overrides", "array", entries)
    if not isinstance(id_entries, list):
        expected("userIDOverrides", "array", id_entries)
    if len(entries) > MAX_OVERRIDES:
        field_error("overrides", f"Array must contain at most {MAX_OVERRIDES} element(s)")
    out: dict[str, Any] = _empty_experiment()
    for i, raw in enumerate(entries):
        prop = f"overrides[{i}]"
        if not isinstance(raw, dict):
            expected(prop, "object", raw)
        entry = validate_fields(
            raw,
            {"type": string(enum=("gate", "segment")), "id": _STR, "groupID": _STR},
            required=("type", "id", "groupID"),
            prefix=f"{prop}.",
        )
        entry["environment"] = check_environment(
            proj, raw.get("environment"), f"{prop}.environment"
        )
        if required:
            _check_target(proj, entry["type"], entry["id"], f"{prop}.id")
            _check_group(experiment, entry["groupID"], f"{prop}.groupID")
        out["overrides"].append(entry)
    for i, raw in enumerate(id_entries):
        prop = f"userIDOverrides[{i}]"
        if not isinstance(raw, dict):
            expected(prop, "object", raw)
        entry = validate_fields(
            raw,
            {
                "groupID": _STR,
                "ids": string_list(max_items=MAX_EXPERIMENT_IDS, non_empty_items=True),
                "unitType": _NSTR,
            },
            required=("groupID", "ids"),
            prefix=f"{prop}.",
        )
        entry["environment"] = check_environment(
            proj, raw.get("environment"), f"{prop}.environment"
        )
        entry.setdefault("unitType", None)
        if required:
            _check_group(experiment, entry["groupID"], f"{prop}.groupID")
        out["userIDOverrides"].append(entry)
    return out


def _check_group(experiment: dict[str, Any], ref: str, prop: str) -> None:
    if find_group(experiment, ref) is None:
        field_error(prop, f"Group {ref} is not a group of experiment {experiment['id']}")


def _group_key(experiment: dict[str, Any], ref: Any) -> Any:
    group = find_group(experiment, ref)
    return group["id"] if group else ref


def _gate_or_segment(entry: dict[str, Any]) -> Any:
    return (entry["type"], entry["id"], entry.get("environment"))


def _merge_experiment(
    experiment: dict[str, Any], current: dict[str, Any], added: dict[str, Any]
) -> dict[str, Any]:
    """PATCH semantics: same gate/segment (per environment) → overwritten; ids join their group."""
    merged: dict[str, Any] = clone(current)
    for entry in added["overrides"]:
        merged["overrides"] = _replace_entry(merged["overrides"], entry, _gate_or_segment)
    for entry in added["userIDOverrides"]:
        _join_group(
            merged["userIDOverrides"],
            entry,
            scope=lambda e: (e.get("environment"), e.get("unitType")),
            group=lambda e: _group_key(experiment, e["groupID"]),
        )
    merged["userIDOverrides"] = [e for e in merged["userIDOverrides"] if e["ids"]]
    if len(merged["overrides"]) > MAX_OVERRIDES:
        field_error("overrides", f"An experiment can have at most {MAX_OVERRIDES} overrides")
    for i, entry in enumerate(merged["userIDOverrides"]):
        if len(entry["ids"]) > MAX_EXPERIMENT_IDS:
            field_error(
                f"userIDOverrides[{i}].ids",
                f"A group can have at most {MAX_EXPERIMENT_IDS} id overrides",
            )
    return merged


def _remove_experiment(
    experiment: dict[str, Any], current: dict[str, Any], removed: dict[str, Any]
) -> dict[str, Any]:
    out: dict[str, Any] = clone(current)
    gone = {(o["type"], o["id"]) for o in removed["overrides"]}
    out["overrides"] = [o for o in out["overrides"] if (o["type"], o["id"]) not in gone]
    out["userIDOverrides"] = _drop_ids(
        out["userIDOverrides"],
        removed["userIDOverrides"],
        lambda existing, entry: (
            _group_key(experiment, existing["groupID"]) == _group_key(experiment, entry["groupID"])
        ),
    )
    return out


EXPERIMENTS = OverrideKind(
    kind="experiments",
    label="Experiment",
    action="experiment_overrides_edit",
    empty=_empty_experiment,
    parse=_parse_experiment,
    merge=_merge_experiment,
    remove=_remove_experiment,
)


# -- layers ---------------------------------------------------------------------------------

_CONDITIONAL: dict[str, Check] = {
    "type": string(enum=("gate", "segment")),
    "name": _STR,
    "experimentName": _STR,
    "groupName": _STR,
}
_ID_OVERRIDE: dict[str, Check] = {
    "groupName": _STR,
    "ids": string_list(non_empty_items=True),
    "idType": _NSTR,
    "experimentName": _NSTR,
}


def _layer_experiment(proj: Project, layer_id: str, ref: Any, prop: str) -> dict[str, Any]:
    for experiment in experiments_in_layer(proj, layer_id):
        if ref in (experiment["id"], experiment.get("name")):
            return experiment
    field_error(prop, f"Experiment {ref} is not in layer {layer_id}")


def _parse_layer(
    request: web.Request, layer: dict[str, Any], body: Any, required: bool
) -> dict[str, Any]:
    """Validate a ``LayerOverridesDto`` body; ``required`` (POST, PATCH) also checks every reference."""
    proj, layer_id, check_refs = project(request), str(layer["id"]), required
    body = require_keys(body, ("conditionalOverrides", "idOverrides") if required else ())
    out = _empty_layer()
    entries = body.get("conditionalOverrides") or []
    for i, raw in enumerate(_array(entries, "conditionalOverrides")):
        prop = f"conditionalOverrides[{i}]"
        entry = validate_fields(raw, _CONDITIONAL, required=tuple(_CONDITIONAL), prefix=f"{prop}.")
        if check_refs:
            _check_target(proj, entry["type"], entry["name"], f"{prop}.name")
            experiment = _layer_experiment(
                proj, layer_id, entry["experimentName"], f"{prop}.experimentName"
            )
            if find_group(experiment, entry["groupName"]) is None:
                field_error(f"{prop}.groupName", f"Group {entry['groupName']} not found.")
        out["conditionalOverrides"].append(entry)
    for i, raw in enumerate(_array(body.get("idOverrides") or [], "idOverrides")):
        prop = f"idOverrides[{i}]"
        entry = validate_fields(raw, _ID_OVERRIDE, required=("groupName", "ids"), prefix=f"{prop}.")
        entry["environment"] = check_environment(
            proj, raw.get("environment"), f"{prop}.environment"
        )
        entry.setdefault("idType", None)
        entry.setdefault("experimentName", None)
        if check_refs:
            candidates = (
                [
                    _layer_experiment(
                        proj, layer_id, entry["experimentName"], f"{prop}.experimentName"
                    )
                ]
                if entry["experimentName"] is not None
                else experiments_in_layer(proj, layer_id)
            )
            if not any(find_group(e, entry["groupName"]) for e in candidates):
                field_error(f"{prop}.groupName", f"Group {entry['groupName']} not found.")
        out["idOverrides"].append(entry)
    return out


def _empty_layer() -> dict[str, Any]:
    return {"conditionalOverrides": [], "idOverrides": []}


def _merge_layer(
    _layer: dict[str, Any], current: dict[str, Any], added: dict[str, Any]
) -> dict[str, Any]:
    merged: dict[str, Any] = clone(current)
    for entry in added["conditionalOverrides"]:
        merged["conditionalOverrides"] = _replace_entry(
            merged["conditionalOverrides"], entry, lambda o: (o["type"], o["name"])
        )
    for entry in added["idOverrides"]:
        _join_group(
            merged["idOverrides"],
            entry,
            scope=lambda e: (e.get("idType"), e.get("environment")),
            group=lambda e: (e.get("experimentName"), e["groupName"]),
        )
    merged["idOverrides"] = [e for e in merged["idOverrides"] if e["ids"]]
    return merged


def _remove_layer(
    _layer: dict[str, Any], current: dict[str, Any], removed: dict[str, Any]
) -> dict[str, Any]:
    out: dict[str, Any] = clone(current)
    gone = {(o["type"], o["name"]) for o in removed["conditionalOverrides"]}
    out["conditionalOverrides"] = [
        o for o in out["conditionalOverrides"] if (o["type"], o["name"]) not in gone
    ]
    out["idOverrides"] = _drop_ids(
        out["idOverrides"],
        removed["idOverrides"],
        lambda existing, entry: (
            existing["groupName"] == entry["groupName"]
            and entry["experimentName"] in (None, existing.get("experimentName"))
        ),
    )
    return out


LAYERS = OverrideKind(
    kind="layers",
    label="Layer",
    action="layer_overrides_edit",
    empty=_empty_layer,
    parse=_parse_layer,
    merge=_merge_layer,
    remove=_remove_layer,
    patch_op=True,
)


# -- holdouts (gate-style) ------------------------------------------------------------------

_OPPOSITE = {
    "passingUserIDs": "failingUserIDs",
    "failingUserIDs": "passingUserIDs",
    "passingCustomIDs": "failingCustomIDs",
    "failingCustomIDs": "passingCustomIDs",
    "passingIDs": "failingIDs",
    "failingIDs": "passingIDs",
}
_IDS = string_list(non_empty_items=True)


def _parse_holdout(
    request: web.Request, _holdout: dict[str, Any], body: Any, required: bool
) -> dict[str, Any]:
    """Validate an ``UpdateOverridesContractDto`` body (either variant, or both leniently)."""
    proj = project(request)
    body = require_keys(body, ())
    if required and "environmentOverrides" not in body:
        require_keys(body, ("passingUserIDs", "failingUserIDs"))
    out = empty_list_overrides()
    for key in OVERRIDE_LISTS:
        if body.get(key) is not None:
            out[key] = list(dict.fromkeys(_IDS(body[key], key)))
    envs = body.get("environmentOverrides") or []
    for i, raw in enumerate(_array(envs, "environmentOverrides")):
        prop = f"environmentOverrides[{i}]"
        entry = validate_fields(
            raw,
            {"unitID": string(nullable=True), "passingIDs": _IDS, "failingIDs": _IDS},
            required=("unitID", "passingIDs", "failingIDs") if required else (),
            prefix=f"{prop}.",
        )
        out["environmentOverrides"].append(
            {
                "environment": check_environment(
                    proj, raw.get("environment"), f"{prop}.environment"
                ),
                "unitID": entry.get("unitID"),
                "passingIDs": entry.get("passingIDs", []),
                "failingIDs": entry.get("failingIDs", []),
            }
        )
    return out


def _add_ids(target: dict[str, Any], key: str, ids: list[str]) -> None:
    """Add ``ids`` to ``target[key]``, taking them out of the opposite list."""
    added = set(ids)
    opposite = _OPPOSITE[key]
    target[opposite] = [i for i in target.get(opposite) or [] if i not in added]
    target[key] = list(dict.fromkeys([*(target.get(key) or []), *ids]))


def _merge_holdout(
    _holdout: dict[str, Any], current: dict[str, Any], added: dict[str, Any]
) -> dict[str, Any]:
    """PATCH semantics: an id added to a passing list leaves the failing one, and back."""
    merged: dict[str, Any] = clone(current)
    for key in OVERRIDE_LISTS:
        if added[key]:
            _add_ids(merged, key, added[key])
    for entry in added["environmentOverrides"]:
        scope = (entry["environment"], entry["unitID"])
        target = next(
            (
                e
                for e in merged["environmentOverrides"]
                if (e.get("environment"), e.get("unitID")) == scope
            ),
            None,
        )
        if target is None:
            target = {
                "environment": scope[0],
                "unitID": scope[1],
                "passingIDs": [],
                "failingIDs": [],
            }
            merged["environmentOverrides"].append(target)
        for key in ("passingIDs", "failingIDs"):
            _add_ids(target, key, entry[key])
    _check_holdout_limits(merged)
    return merged


def _check_holdout_limits(overrides: dict[str, Any]) -> None:
    for key in OVERRIDE_LISTS:
        if len(overrides[key]) > MAX_HOLDOUT_IDS:
            field_error(key, f"Array must contain at most {MAX_HOLDOUT_IDS} element(s)")
    for i, entry in enumerate(overrides["environmentOverrides"]):
        for key in ("passingIDs", "failingIDs"):
            if len(entry[key]) > MAX_HOLDOUT_IDS:
                field_error(
                    f"environmentOverrides[{i}].{key}",
                    f"Array must contain at most {MAX_HOLDOUT_IDS} element(s)",
                )


def _remove_holdout(
    _holdout: dict[str, Any], current: dict[str, Any], removed: dict[str, Any]
) -> dict[str, Any]:
    out: dict[str, Any] = clone(current)
    for key in OVERRIDE_LISTS:
        gone = set(removed[key])
        out[key] = [i for i in out[key] if i not in gone]
    for entry in removed["environmentOverrides"]:
        scope = (entry["environment"], entry["unitID"])
        for existing in out["environmentOverrides"]:
            if (existing.get("environment"), existing.get("unitID")) == scope:
                for key in ("passingIDs", "failingIDs"):
                    gone = set(entry[key])
                    existing[key] = [i for i in existing[key] if i not in gone]
    out["environmentOverrides"] = [
        e for e in out["environmentOverrides"] if e["passingIDs"] or e["failingIDs"]
    ]
    return out


HOLDOUTS = OverrideKind(
    kind="holdouts",
    label="Holdout",
    action="holdout_update",
    empty=empty_list_overrides,
    parse=_parse_holdout,
    merge=_merge_holdout,
    remove=_remove_holdout,
    fill_lists=True,
)


def _routes(kind: OverrideKind) -> list[web.RouteDef]:
    path = f"{PREFIX}/{kind.kind}/{{id}}/overrides"
    return [
        web.get(path, partial(get_overrides, kind)),
        web.post(path, partial(set_overrides, kind)),
        web.patch(path, partial(add_overrides, kind)),
        web.delete(path, partial(remove_overrides, kind)),
    ]


routes = [*_routes(EXPERIMENTS), *_routes(LAYERS), *_routes(HOLDOUTS)]
"""The four override routes of experiments, layers and holdouts."""
