"""import-overrides: import gate, holdout, experiment, layer and segment id overrides from a file.

The file is CSV with the header ``kind,id,unit_id,value,environment,unit_type``, or
JSON lines with those fields::

    kind,id,unit_id,value,environment,unit_type
    gate,checkout_one_click,u_1001,pass,,
    gate,checkout_one_click,u_1002,fail,staging,
    experiment,checkout_button_color,u_1003,Test,,
    segment,beta_testers,u_1004,,,

``kind`` is gate, holdout, experiment, layer or segment (an ``id_list`` segment).
``value`` is pass or fail for gates and holdouts; a group for experiments and layers
(its id, or its name when no other experiment of the layer has a group of that
name); empty for segments. An empty ``environment`` means all environments, an
empty ``unit_type`` means userID. For gates and holdouts, userID rows for all
environments go to ``passingUserIDs``/``failingUserIDs``; any other environment or
unit type goes to ``environmentOverrides``.

Modes (``--mode``):

* ``add`` (default): send only the ids a target does not hold where the file puts
  them. An id the file moves (a user failing a gate the file says it passes, or in
  another group of the experiment) leaves its old place; undo puts it back.
* ``replace``: each target the file names ends up with exactly the file's id
  overrides (the gate and segment conditions of experiments and layers are kept):
  ``POST`` replaces for gates, holdouts, experiments and layers; a segment's id list
  is reset, or trimmed and topped up when that takes fewer requests.
* ``remove``: remove the listed ids where the target holds them.

The whole file is checked before anything is sent: unknown kind, empty id or unit
id, a target, group, environment or unit type the project does not have, one unit
id given two values in one scope, a segment that is not an id list, a list that
would exceed the API's limit. Any problem stops the job with every bad line listed
(exit 2); ``--skip-invalid`` sends the valid rows and lists the skipped lines.

Ids are grouped per target and chunked to the API's limits: 2,000 per gate or
holdout list, 1,000 per experiment or layer group entry, 1,000 per segment id-list
request (which spends the ``id_list`` quota). A target that already holds every id
gets no request, so importing a file a second time sends nothing. Undo removes
exactly the ids the run added and restores what a replace overwrote.
"""

from __future__ import annotations

import abc
import math
import re
from collections.abc import AsyncIterator, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal
from urllib.parse import quote

import anyio
from pydantic import BaseModel, ConfigDict, Field

from bulkops.api.client import ConsoleClient, read_object
from bulkops.engine.mutations import Expect, InverseCall, JobContext, Mutation
from bulkops.engine.quota import ID_LIST_CLASS, MUTATION_CLASS
from bulkops.errors import ApiError, InputError

from .parser import (
    DEFAULT_UNIT_TYPE,
    Catalog,
    GroupRef,
    RowProblem,
    TargetOverrides,
    read_overrides_file,
)

__all__ = [
    "GATE_LIST_LIMIT",
    "GROUP_ENTRY_LIMIT",
    "ID_LIST_REQUEST_LIMIT",
    "Params",
    "minimum_requests",
    "plan",
    "plan_chunks",
    "read_catalog",
    "read_current",
]

Mode = Literal["add", "replace", "remove"]
Slot = tuple[Any, ...]

GATE_LIST_LIMIT = 2000  # ids per gate/holdout override list, per request and stored
GROUP_ENTRY_LIMIT = 1000  # ids per experiment/layer group entry, per request
ID_LIST_REQUEST_LIMIT = 1000  # ids per segment id-list request
_READS_AT_ONCE = 8
# Characters that cannot appear in an Expect selector's filter value.
_UNSAFE = re.compile(r"[.,=\[\]]")
_ALL_ENVS = "all environments"


class Params(BaseModel):
    """Options of import-overrides."""

    model_config = ConfigDict(extra="forbid")

    file: Path = Field(
        description="CSV (kind,id,unit_id,value,environment,unit_type) or JSON-lines rows"
    )
    mode: Mode = Field(
        default="add", description="add (default), replace (exactly the file's), or remove"
    )
    skip_invalid: bool = Field(
        default=False, description="send the valid rows and list the skipped lines"
    )


def _fmt(value: Any) -> str:
    return "null" if value is None else str(value)


def _safe(*values: Any) -> bool:
    return all(value is None or not _UNSAFE.search(str(value)) for value in values)


def _group_label(catalog: Catalog, kind: str, target: str, group_id: str) -> str:
    """How a new entry names its group: the name people read in the console, unless it
    is not unique in the experiment or cannot be put in a selector; then the id."""
    group = catalog.group(kind, target, group_id)
    if group is not None and group.name and _safe(group.name):
        if catalog.group(kind, target, group.name) == group:
            return group.name
    return group_id


def _where(environment: Any) -> str:
    return f"environment {environment}" if environment is not None else _ALL_ENVS


@dataclass
class _State:
    """One target's id overrides as read: the object, and its id lists by slot.

    A slot is one list the API keeps (a gate's passing userIDs, one experiment group's
    ids for one environment and unit type…); ``refs`` holds the fields that name a
    stored group entry on the wire (experiments and layers keep what was sent).
    """

    raw: dict[str, Any]
    slots: dict[Slot, list[str]]
    refs: dict[Slot, dict[str, Any]] = field(default_factory=dict)

    def ids(self, slot: Slot) -> list[str]:
        return self.slots.get(slot) or []

    def normalized(self) -> dict[Slot, frozenset[str]]:
        return {s: frozenset(ids) for s, ids in self.slots.items() if ids}


class _Shape(abc.ABC):
    """How one kind's overrides look on the wire: slots, paths, selectors and bodies."""

    kind = ""
    collection = ""
    limit = GATE_LIST_LIMIT
    capacity: int | None = GATE_LIST_LIMIT
    server_moves = False  # an add takes the ids out of the other slots of their scope
    quota_class = MUTATION_CLASS
    add_action, remove_action = "override-add", "override-remove"

    def path(self, target: str) -> str:
        return f"/{self.collection}/{quote(target, safe='')}/overrides"

    @abc.abstractmethod
    def parse(self, raw: dict[str, Any], target: str, catalog: Catalog) -> _State: ...

    @abc.abstractmethod
    def slot(self, bucket: tuple[str | None, str, str]) -> Slot: ...

    def new_ref(self, slot: Slot, target: str, catalog: Catalog) -> dict[str, Any]:
        return {}

    def scope(self, slot: Slot) -> Slot:
        return slot[:-1]

    def variant(self, slot: Slot) -> str:
        return ""

    @abc.abstractmethod
    def selector(self, slot: Slot, ref: Mapping[str, Any]) -> str | None: ...

    @abc.abstractmethod
    def body(
        self, entries: Mapping[Slot, list[str]], refs: Mapping[Slot, Mapping[str, Any]], add: bool
    ) -> Any: ...

    @abc.abstractmethod
    def describe(self, slot: Slot) -> str: ...


_SIDE_KEYS = {
    "A": {"pass": "passingUserIDs", "fail": "failingUserIDs"},
    "C": {"pass": "passingCustomIDs", "fail": "failingCustomIDs"},
    "B": {"pass": "passingIDs", "fail": "failingIDs"},
}


class _GateShape(_Shape):
    """Gates and holdouts: slots ``("A", side)`` (userIDs, all environments),
    ``("C", side)`` (custom ids, read only) and ``("B", env, unit, side)``."""

    def __init__(self, kind: str, collection: str, *, server_moves: bool) -> None:
        self.kind = kind
        self.collection = collection
        self.server_moves = server_moves

    def parse(self, raw: dict[str, Any], target: str, catalog: Catalog) -> _State:
        slots: dict[Slot, list[str]] = {}
        for variant in ("A", "C"):
            for side, key in _SIDE_KEYS[variant].items():
                ids = raw.get(key) or []
                if ids or variant == "A":
                    slots[(variant, side)] = list(ids)
        for entry in raw.get("environmentOverrides") or []:
            if not isinstance(entry, dict):
                continue
            for side, key in _SIDE_KEYS["B"].items():
                slot = ("B", entry.get("environment"), entry.get("unitID"), side)
                slots.setdefault(slot, []).extend(entry.get(key) or [])
        return _State(raw, slots)

    def slot(self, bucket: tuple[str | None, str, str]) -> Slot:
        environment, unit_type, value = bucket
        if environment is None and unit_type == DEFAULT_UNIT_TYPE:
            return ("A", value)
        return ("B", environment, unit_type, value)

    def variant(self, slot: Slot) -> str:
        return "B" if slot[0] == "B" else "A"

    def selector(self, slot: Slot, ref: Mapping[str, Any]) -> str | None:
        if slot[0] in ("A", "C"):
            return _SIDE_KEYS[slot[0]][slot[1]]
        _, environment, unit, side = slot
        if not _safe(environment, unit):
            return None
        key = _SIDE_KEYS["B"][side]
        return f"environmentOverrides[environment={_fmt(environment)},unitID={_fmt(unit)}].{key}"

    def body(
        self, entries: Mapping[Slot, list[str]], refs: Mapping[Slot, Mapping[str, Any]], add: bool
    ) -> Any:
        if any(slot[0] == "B" for slot in entries):
            scopes: dict[tuple[Any, Any], dict[str, Any]] = {}
            for slot, ids in entries.items():
                _, environment, unit, side = slot
                entry = scopes.setdefault(
                    (environment, unit),
                    {
                        "environment": environment,
                        "unitID": unit,
                        "passingIDs": [],
                        "failingIDs": [],
                    },
                )
                entry[_SIDE_KEYS["B"][side]] = list(ids)
            return {"environmentOverrides": list(scopes.values())}
        # The user-list variant of UpdateOverridesContractDto needs both user lists.
        body: dict[str, Any] = {"passingUserIDs": [], "failingUserIDs": []}
        for slot, ids in entries.items():
            body[_SIDE_KEYS[slot[0]][slot[1]]] = list(ids)
        return body

    def describe(self, slot: Slot) -> str:
        if slot[0] == "A":
            return f"{slot[1]}ing userID overrides ({_ALL_ENVS})"
        if slot[0] == "C":
            return f"{slot[1]}ing custom id overrides"
        _, environment, unit, side = slot
        return f"{side}ing {unit} overrides ({_where(environment)})"


class _ExperimentShape(_Shape):
    """Experiments: one slot ``("E", env, unit type, group id)`` per userIDOverrides entry."""

    kind = "experiment"
    collection = "experiments"
    limit = GROUP_ENTRY_LIMIT
    capacity = GROUP_ENTRY_LIMIT
    server_moves = True

    def parse(self, raw: dict[str, Any], target: str, catalog: Catalog) -> _State:
        state = _State(raw, {})
        for entry in raw.get("userIDOverrides") or []:
            if not isinstance(entry, dict):
                continue
            literal = entry.get("groupID")
            group = catalog.group("experiment", target, str(literal))
            key = group.id if group is not None else f"?{literal}"
            slot = ("E", entry.get("environment"), entry.get("unitType"), key)
            state.slots.setdefault(slot, []).extend(entry.get("ids") or [])
            state.refs.setdefault(slot, {"groupID": literal})
        return state

    def slot(self, bucket: tuple[str | None, str, str]) -> Slot:
        environment, unit_type, group = bucket
        return ("E", environment, unit_type, group)

    def new_ref(self, slot: Slot, target: str, catalog: Catalog) -> dict[str, Any]:
        return {"groupID": _group_label(catalog, "experiment", target, slot[3])}

    def scope(self, slot: Slot) -> Slot:
        return slot[1:3]

    def selector(self, slot: Slot, ref: Mapping[str, Any]) -> str | None:
        group, environment, unit = ref.get("groupID"), slot[1], slot[2]
        if group is None or not _safe(group, environment, unit):
            return None
        return (
            f"userIDOverrides[groupID={group},environment={_fmt(environment)},"
            f"unitType={_fmt(unit)}].ids"
        )

    def entries(
        self, entries: Mapping[Slot, list[str]], refs: Mapping[Slot, Mapping[str, Any]]
    ) -> list[dict[str, Any]]:
        return [
            {
                "groupID": refs[slot]["groupID"],
                "ids": list(ids),
                "environment": slot[1],
                "unitType": slot[2],
            }
            for slot, ids in entries.items()
        ]

    def body(
        self, entries: Mapping[Slot, list[str]], refs: Mapping[Slot, Mapping[str, Any]], add: bool
    ) -> Any:
        return {"overrides": [], "userIDOverrides": self.entries(entries, refs)}

    def describe(self, slot: Slot) -> str:
        unit = slot[2] if slot[2] is not None else "default unit"
        return f"group {slot[3]} ({unit}, {_where(slot[1])})"


class _LayerShape(_Shape):
    """Layers: one slot ``("L", env, id type, group id)`` per idOverrides entry."""

    kind = "layer"
    collection = "layers"
    limit = GROUP_ENTRY_LIMIT
    capacity = None
    server_moves = True

    def parse(self, raw: dict[str, Any], target: str, catalog: Catalog) -> _State:
        state = _State(raw, {})
        for entry in raw.get("idOverrides") or []:
            if not isinstance(entry, dict):
                continue
            experiment, literal = entry.get("experimentName"), entry.get("groupName")
            group = (
                catalog.group("experiment", str(experiment), str(literal))
                if experiment is not None
                else catalog.group("layer", target, str(literal))
            )
            key = group.id if group is not None else f"?{experiment}|{literal}"
            slot = ("L", entry.get("environment"), entry.get("idType"), key)
            state.slots.setdefault(slot, []).extend(entry.get("ids") or [])
            state.refs.setdefault(slot, {"groupName": literal, "experimentName": experiment})
        return state

    def slot(self, bucket: tuple[str | None, str, str]) -> Slot:
        environment, unit_type, group = bucket
        return ("L", environment, unit_type, group)

    def new_ref(self, slot: Slot, target: str, catalog: Catalog) -> dict[str, Any]:
        group: GroupRef | None = catalog.group("layer", target, slot[3])
        if group is None:
            return {"groupName": slot[3], "experimentName": None}
        label = _group_label(catalog, "experiment", group.experiment, group.id)
        return {"groupName": label, "experimentName": group.experiment}

    def scope(self, slot: Slot) -> Slot:
        return slot[1:3]

    def selector(self, slot: Slot, ref: Mapping[str, Any]) -> str | None:
        group, experiment = ref.get("groupName"), ref.get("experimentName")
        environment, unit = slot[1], slot[2]
        if group is None or not _safe(group, experiment, environment, unit):
            return None
        return (
            f"idOverrides[groupName={group},experimentName={_fmt(experiment)},"
            f"idType={_fmt(unit)},environment={_fmt(environment)}].ids"
        )

    def entries(
        self, entries: Mapping[Slot, list[str]], refs: Mapping[Slot, Mapping[str, Any]]
    ) -> list[dict[str, Any]]:
        return [
            {
                "groupName": refs[slot]["groupName"],
                "ids": list(ids),
                "idType": slot[2],
                "environment": slot[1],
                "experimentName": refs[slot]["experimentName"],
            }
            for slot, ids in entries.items()
        ]

    def body(
        self, entries: Mapping[Slot, list[str]], refs: Mapping[Slot, Mapping[str, Any]], add: bool
    ) -> Any:
        body: dict[str, Any] = {"op": "add"} if add else {}
        return {**body, "conditionalOverrides": [], "idOverrides": self.entries(entries, refs)}

    def describe(self, slot: Slot) -> str:
        unit = slot[2] if slot[2] is not None else "default unit"
        return f"group {slot[3]} ({unit}, {_where(slot[1])})"


class _SegmentShape(_Shape):
    """``id_list`` segments: one slot, the id list."""

    kind = "segment"
    collection = "segments"
    limit = ID_LIST_REQUEST_LIMIT
    capacity = None
    quota_class = ID_LIST_CLASS
    add_action, remove_action = "id-list-add", "id-list-remove"

    def path(self, target: str) -> str:
        return f"/segments/{quote(target, safe='')}/id_list"

    def parse(self, raw: dict[str, Any], target: str, catalog: Catalog) -> _State:
        return _State(raw, {("S",): list(raw.get("ids") or [])})

    def slot(self, bucket: tuple[str | None, str, str]) -> Slot:
        return ("S",)

    def scope(self, slot: Slot) -> Slot:
        return slot

    def selector(self, slot: Slot, ref: Mapping[str, Any]) -> str | None:
        return "ids"

    def body(
        self, entries: Mapping[Slot, list[str]], refs: Mapping[Slot, Mapping[str, Any]], add: bool
    ) -> Any:
        return {"ids": list(entries.get(("S",)) or [])}

    def describe(self, slot: Slot) -> str:
        return "the id list"


_SHAPES: dict[str, _Shape] = {
    "gate": _GateShape("gate", "gates", server_moves=False),
    "holdout": _GateShape("holdout", "holdouts", server_moves=True),
    "experiment": _ExperimentShape(),
    "layer": _LayerShape(),
    "segment": _SegmentShape(),
}


# -- reading the project --------------------------------------------------------------


async def read_catalog(client: ConsoleClient) -> Catalog:
    """What the rows are checked against: targets, groups, environments, unit types."""
    catalog = Catalog()
    catalog.gates = {str(g["id"]) async for g in client.paginate("/gates")}
    catalog.holdouts = {str(h["id"]) async for h in client.paginate("/holdouts")}
    catalog.segments = {
        str(s["id"]): str(s.get("type")) async for s in client.paginate("/segments")
    }
    catalog.layers = {str(layer["id"]): set() async for layer in client.paginate("/layers")}
    async for experiment in client.paginate("/experiments"):
        exp_id = str(experiment["id"])
        catalog.experiments.setdefault(exp_id, set())
        layer = experiment.get("layerID")
        for group in experiment.get("groups") or []:
            ref = GroupRef(exp_id, str(group.get("id") or ""), str(group.get("name") or ""))
            catalog.add_group("experiment", exp_id, ref)
            if layer in catalog.layers:
                catalog.add_group("layer", str(layer), ref)
    environments = await client.data("GET", "/environments")
    if isinstance(environments, dict):
        catalog.environments = {
            str(e["name"]) for e in environments.get("environments") or [] if e.get("name")
        }
    catalog.unit_types |= {
        str(u["name"]) async for u in client.paginate("/unit_id_types") if u.get("name")
    }
    return catalog


async def read_current(
    client: ConsoleClient, targets: Iterable[tuple[str, str]]
) -> dict[tuple[str, str], Any]:
    """Each target's overrides (a segment's whole id list), None for a target gone.

    Raises:
        ApiError: a read failed (the first one, after every read has finished).
    """
    out: dict[tuple[str, str], Any] = {}
    errors: list[ApiError] = []
    limiter = anyio.CapacityLimiter(_READS_AT_ONCE)

    async def read(key: tuple[str, str]) -> None:
        async with limiter:
            try:
                out[key] = await read_object(client, _SHAPES[key[0]].path(key[1]))
            except ApiError as exc:
                errors.append(exc)

    async with anyio.create_task_group() as tg:
        for key in targets:
            tg.start_soon(read, key)
    if errors:
        raise errors[0]
    return out


# -- planning -----------------------------------------------------------------------------


@dataclass
class _Target:
    """Planning one target: its shape, what the file wants and what the API holds."""

    shape: _Shape
    id: str
    state: _State
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


def _chunks(entries: Mapping[Slot, Sequence[str]], limit: int) -> list[dict[Slot, list[str]]]:
    """Requests that carry ``entries``: request i takes the i-th ``limit`` ids of every slot."""
    count = max((math.ceil(len(ids) / limit) for ids in entries.values()), default=0)
    out = []
    for i in range(count):
        part = {s: list(ids[i * limit : (i + 1) * limit]) for s, ids in entries.items()}
        out.append({s: ids for s, ids in part.items() if ids})
    return out


def _by_variant(shape: _Shape, slots: Iterable[Slot]) -> dict[str, list[Slot]]:
    out: dict[str, list[Slot]] = {}
    for slot in slots:
        out.setdefault(shape.variant(slot), []).append(slot)
    return out


def _trim_to_capacity(t: _Target, slot: Slot, ids: list[str], room: int) -> list[str]:
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


def _plan_add(t: _Target) -> None:
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
            fresh[slot] = _trim_to_capacity(t, slot, fresh[slot], room)
            kept = set(fresh[slot])
            moved[slot] = {u: old for u, old in moved.get(slot, {}).items() if u in kept}
    for variant, slots in _by_variant(shape, [s for s in fresh if fresh[s]]).items():
        entries = {s: fresh[s] for s in slots}
        if not shape.server_moves:
            _plan_move_out(t, variant, {s: moved.get(s, {}) for s in slots})
        for number, part in enumerate(_chunks(entries, shape.limit), start=1):
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


def _plan_move_out(t: _Target, variant: str, moved: Mapping[Slot, Mapping[str, Slot]]) -> None:
    """Gates keep an id on both lists when it is added to one: take it off the other first."""
    out: dict[Slot, list[str]] = {}
    for ids in moved.values():
        for unit_id, old in ids.items():
            out.setdefault(old, []).append(unit_id)
    for number, part in enumerate(_chunks(out, t.shape.limit), start=1):
        body = t.shape.body(part, t.refs, add=False)
        t.add(
            f"move:{variant}{number}",
            "override-move",
            "DELETE",
            body,
            before=t.expect(contains=part),
            after=t.expect(excludes=part),
            inverse=[t.call("PATCH", t.shape.body(part, t.refs, add=True), t.shape.add_action)],
        )


def _plan_remove(t: _Target) -> None:
    shape = t.shape
    present: dict[Slot, list[str]] = {}
    for slot, ids in t.want.items():
        have = set(t.state.ids(slot))
        hit = [i for i in ids if i in have]
        if hit:
            present[slot] = hit
    for variant, slots in _by_variant(shape, present).items():
        entries = {s: present[s] for s in slots}
        for number, part in enumerate(_chunks(entries, shape.limit), start=1):
            t.add(
                f"remove:{variant}{number}",
                shape.remove_action,
                "DELETE",
                shape.body(part, t.refs, add=False),
                before=t.expect(contains=part),
                after=t.expect(excludes=part),
                inverse=[t.call("PATCH", shape.body(part, t.refs, add=True), shape.add_action)],
            )


def _desired(t: _Target) -> dict[Slot, list[str]]:
    """The file's ids per slot, trimmed to what a list may hold (the rest are problems)."""
    out: dict[Slot, list[str]] = {}
    for slot, ids in t.want.items():
        kept = _trim_to_capacity(t, slot, list(ids), t.shape.capacity or len(ids))
        if kept:
            out[slot] = kept
    return out


def _normalized(slots: Mapping[Slot, Sequence[str]]) -> dict[Slot, frozenset[str]]:
    return {s: frozenset(ids) for s, ids in slots.items() if ids}


def _plan_replace_gate(t: _Target, desired: dict[Slot, list[str]]) -> None:
    """Gates: ``POST`` replaces only the variant it carries (user lists, or environments)."""
    shape, raw = t.shape, t.state.raw
    users = {s: ids for s, ids in desired.items() if s[0] == "A"}
    current_users = {s: ids for s, ids in t.state.slots.items() if s[0] in ("A", "C")}
    if _normalized(users) != _normalized(current_users):
        new = shape.body({("A", "pass"): [], ("A", "fail"): [], **users}, {}, add=False)
        for side, key in _SIDE_KEYS["C"].items():
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
    if _normalized(envs) != _normalized(current_envs):
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


_HOLDOUT_KEYS = (*_SIDE_KEYS["A"].values(), *_SIDE_KEYS["C"].values(), "environmentOverrides")


def _holdout_calls(t: _Target, image: Mapping[str, list[Any]]) -> list[InverseCall]:
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


def _plan_replace_holdout(t: _Target, desired: dict[Slot, list[str]]) -> None:
    """Holdouts: ``POST`` replaces all the overrides; the second variant is then added."""
    if _normalized(desired) == t.state.normalized():
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
        for number, part in enumerate(_chunks(envs, shape.limit), start=1):
            t.add(
                f"replace:B{number}",
                shape.add_action,
                "PATCH",
                shape.body(part, {}, add=True),
                before=t.expect(excludes=part),
                after=t.expect(contains=part),
                inverse=[t.call("DELETE", shape.body(part, {}, add=False), shape.remove_action)],
            )


def _plan_replace_groups(t: _Target, desired: dict[Slot, list[str]]) -> None:
    """Experiments and layers: ``POST`` replaces every id entry (conditions are sent back
    as they are); entries beyond the per-request limit are added in further requests."""
    if _normalized(desired) == _normalized(
        {s: ids for s, ids in t.state.slots.items() if s[0] in ("E", "L")}
    ):
        return
    shape, raw = t.shape, t.state.raw
    assert isinstance(shape, _ExperimentShape | _LayerShape)
    conditions_key, ids_key = (
        ("overrides", "userIDOverrides")
        if isinstance(shape, _ExperimentShape)
        else ("conditionalOverrides", "idOverrides")
    )
    conditions = list(raw.get(conditions_key) or [])
    chunks = _chunks(desired, shape.limit)
    first = shape.entries(chunks[0], t.refs)
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
    for number, part in enumerate(chunks[1:], start=2):
        t.add(
            f"replace:{number}",
            shape.add_action,
            "PATCH",
            shape.body(part, t.refs, add=True),
            before=t.expect(excludes=part),
            after=t.expect(contains=part),
            inverse=[t.call("DELETE", shape.body(part, t.refs, add=False), shape.remove_action)],
        )


def _restore_group_calls(
    t: _Target,
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
        if isinstance(t.shape, _LayerShape):
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


def _entry_selector(shape: _Shape, entry: Mapping[str, Any]) -> str | None:
    """Where a stored experiment or layer entry's ids are read."""
    if isinstance(shape, _LayerShape):
        slot: Slot = ("L", entry.get("environment"), entry.get("idType"), None)
        ref = {"groupName": entry.get("groupName"), "experimentName": entry.get("experimentName")}
    else:
        slot = ("E", entry.get("environment"), entry.get("unitType"), None)
        ref = {"groupID": entry.get("groupID")}
    return shape.selector(slot, ref)


def _plan_replace_segment(t: _Target, desired: dict[Slot, list[str]]) -> None:
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
            for part in _chunks({slot: have[limit:]}, limit)
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
        for number, part in enumerate(_chunks({slot: drop}, limit), start=1):
            t.add(
                f"remove:{number}",
                "id-list-remove",
                "DELETE",
                {"ids": part[slot]},
                before=t.expect(contains=part),
                after=t.expect(excludes=part),
                inverse=[t.call("PATCH", {"ids": part[slot]}, "id-list-add")],
            )
    for number, part in enumerate(_chunks({slot: gain}, limit), start=1):
        t.add(
            f"add:{number}",
            "id-list-add",
            "PATCH",
            {"ids": part[slot]},
            before=t.expect(excludes=part),
            after=t.expect(contains=part),
            inverse=[t.call("DELETE", {"ids": part[slot]}, "id-list-remove")],
        )


def _plan_replace(t: _Target) -> None:
    desired = _desired(t)
    if t.kind == "gate":
        _plan_replace_gate(t, desired)
    elif t.kind == "holdout":
        _plan_replace_holdout(t, desired)
    elif t.kind == "segment":
        _plan_replace_segment(t, desired)
    else:
        _plan_replace_groups(t, desired)


def _target(
    key: tuple[str, str], rows: TargetOverrides, raw: Any, catalog: Catalog, project: str
) -> _Target:
    shape = _SHAPES[key[0]]
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
    t = _Target(shape, key[1], state, want, refs, project)
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
                _plan_replace(t)
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
        shape = _SHAPES[kind]
        sizes: dict[str, dict[Slot, int]] = {}
        for bucket, ids in rows.buckets.items():
            slot = shape.slot(bucket)
            per = sizes.setdefault(shape.variant(slot), {})
            per[slot] = per.get(slot, 0) + len(ids)
        total += sum(
            max(math.ceil(n / shape.limit) for n in per.values()) for per in sizes.values()
        )
    return total


# -- the job ------------------------------------------------------------------------------


def _problem_lines(problems: Sequence[RowProblem]) -> list[str]:
    return [str(p) for p in sorted(problems, key=lambda p: (p.line, p.message))]


async def plan(ctx: JobContext, params: Params) -> AsyncIterator[Mutation]:
    """Check the whole file, read each target's overrides, yield the chunked writes.

    Raises:
        InputError: any bad row (all of them listed, by line) unless ``skip_invalid``.
    """
    catalog = await read_catalog(ctx.client)
    targets, problems = read_overrides_file(params.file, catalog)
    current = await read_current(ctx.client, list(targets))
    mutations, more = plan_chunks(
        targets, current, catalog, mode=params.mode, project=ctx.project_id
    )
    lines = _problem_lines([*problems, *more])
    if lines and not params.skip_invalid:
        raise InputError(
            f"{params.file}: {len(lines)} bad row(s); nothing was sent:\n  " + "\n  ".join(lines),
            hint="fix those rows, or pass --skip-invalid to send the valid ones",
        )
    if lines:
        ctx.note(f"{params.file}: skipped {len(lines)} invalid row(s):\n  " + "\n  ".join(lines))
    for mutation in mutations:
        yield mutation
