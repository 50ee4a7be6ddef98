"""How each kind's id overrides look on the wire: slots, paths, selectors and bodies.

A *slot* is one list the API keeps (a gate's passing userIDs, one experiment group's
ids for one environment and unit type, a segment's id list…). A :class:`Shape` knows,
for one kind, how to read a target's overrides into slots, where a slot's ids are seen
by a read (an :class:`~bulkops.job.Expect` selector), and what body adds or removes
them, within the API's per-request limits. Nothing here does I/O.
"""

from __future__ import annotations

import abc
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from bulkops.job import ID_LIST_CLASS, MUTATION_CLASS, ROUTES

from .parser import DEFAULT_UNIT_TYPE, Catalog, GroupRef

__all__ = [
    "GATE_LIST_LIMIT",
    "GROUP_ENTRY_LIMIT",
    "ID_LIST_REQUEST_LIMIT",
    "SHAPES",
    "SIDE_KEYS",
    "ExperimentShape",
    "GateShape",
    "GroupShape",
    "LayerShape",
    "SegmentShape",
    "Shape",
    "Slot",
    "State",
]

Slot = tuple[Any, ...]

GATE_LIST_LIMIT = 2000  # ids per gate/holdout override list, per request and stored
GROUP_ENTRY_LIMIT = 1000  # ids per experiment/layer group entry, per request
ID_LIST_REQUEST_LIMIT = 1000  # ids per segment id-list request
# Characters that cannot appear in an Expect selector's filter value.
_UNSAFE = re.compile(r"[.,=\[\]]")
_ALL_ENVS = "all environments"


def fmt(value: Any) -> str:
    return "null" if value is None else str(value)


def safe(*values: Any) -> bool:
    return all(value is None or not _UNSAFE.search(str(value)) for value in values)


def _group_label(catalog: Catalog, kind: str, target: str, group_id: str) -> str:
    """How a new entry names its group: the name people read in the console, unless it
    is not unique in the experiment or cannot be put in a selector; then the id."""
    group = catalog.group(kind, target, group_id)
    if group is not None and group.name and safe(group.name):
        if catalog.group(kind, target, group.name) == group:
            return group.name
    return group_id


def where(environment: Any) -> str:
    return f"environment {environment}" if environment is not None else _ALL_ENVS


@dataclass
class State:
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


class Shape(abc.ABC):
    """How one kind's overrides look on the wire: slots, paths, selectors and bodies."""

    kind = ""
    collection = ""  # the client's collection (and route) of this kind's targets
    under = "overrides"  # where a target's id overrides are read and written
    limit = GATE_LIST_LIMIT
    capacity: int | None = GATE_LIST_LIMIT
    server_moves = False  # an add takes the ids out of the other slots of their scope
    quota_class = MUTATION_CLASS
    add_action, remove_action = "override-add", "override-remove"

    def path(self, target: str) -> str:
        return ROUTES[self.collection].path(target, self.under)

    @abc.abstractmethod
    def parse(self, raw: dict[str, Any], target: str, catalog: Catalog) -> State: ...

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


SIDE_KEYS = {
    "A": {"pass": "passingUserIDs", "fail": "failingUserIDs"},
    "C": {"pass": "passingCustomIDs", "fail": "failingCustomIDs"},
    "B": {"pass": "passingIDs", "fail": "failingIDs"},
}


class GateShape(Shape):
    """Gates and holdouts: slots ``("A", side)`` (userIDs, all environments),
    ``("C", side)`` (custom ids, read only) and ``("B", env, unit, side)``."""

    def __init__(self, kind: str, collection: str, *, server_moves: bool) -> None:
        self.kind = kind
        self.collection = collection
        self.server_moves = server_moves

    def parse(self, raw: dict[str, Any], target: str, catalog: Catalog) -> State:
        slots: dict[Slot, list[str]] = {}
        for variant in ("A", "C"):
            for side, key in SIDE_KEYS[variant].items():
                ids = raw.get(key) or []
                if ids or variant == "A":
                    slots[(variant, side)] = list(ids)
        for entry in raw.get("environmentOverrides") or []:
            if not isinstance(entry, dict):
                continue
            for side, key in SIDE_KEYS["B"].items():
                slot = ("B", entry.get("environment"), entry.get("unitID"), side)
                slots.setdefault(slot, []).extend(entry.get(key) or [])
        return State(raw, slots)

    def slot(self, bucket: tuple[str | None, str, str]) -> Slot:
        environment, unit_type, value = bucket
        if environment is None and unit_type == DEFAULT_UNIT_TYPE:
            return ("A", value)
        return ("B", environment, unit_type, value)

    def variant(self, slot: Slot) -> str:
        return "B" if slot[0] == "B" else "A"

    def selector(self, slot: Slot, ref: Mapping[str, Any]) -> str | None:
        if slot[0] in ("A", "C"):
            return SIDE_KEYS[slot[0]][slot[1]]
        _, environment, unit, side = slot
        if not safe(environment, unit):
            return None
        key = SIDE_KEYS["B"][side]
        return f"environmentOverrides[environment={fmt(environment)},unitID={fmt(unit)}].{key}"

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
                entry[SIDE_KEYS["B"][side]] = list(ids)
            return {"environmentOverrides": list(scopes.values())}
        # The user-list variant of UpdateOverridesContractDto needs both user lists.
        body: dict[str, Any] = {"passingUserIDs": [], "failingUserIDs": []}
        for slot, ids in entries.items():
            body[SIDE_KEYS[slot[0]][slot[1]]] = list(ids)
        return body

    def describe(self, slot: Slot) -> str:
        if slot[0] == "A":
            return f"{slot[1]}ing userID overrides ({_ALL_ENVS})"
        if slot[0] == "C":
            return f"{slot[1]}ing custom id overrides"
        _, environment, unit, side = slot
        return f"{side}ing {unit} overrides ({where(environment)})"


class GroupShape(Shape):
    """Experiments and layers: one slot ``(tag, env, unit type, group id)`` per id entry.

    A stored entry names its group as it was sent (an id or a name); ``group_ref``
    keeps those fields, ``group_id`` resolves them to the group's id.
    """

    tag = ""
    ids_key = ""  # the list of id entries in a read
    unit_key = ""  # the entry's unit type field
    entry_fields: tuple[str, ...] = ()  # an entry's fields, in the order the API shows them
    selector_fields: tuple[str, ...] = ()  # the fields that pick a stored entry; group first
    limit = GROUP_ENTRY_LIMIT
    server_moves = True

    @abc.abstractmethod
    def group_ref(self, entry: Mapping[str, Any]) -> dict[str, Any]: ...

    @abc.abstractmethod
    def group_id(self, ref: Mapping[str, Any], target: str, catalog: Catalog) -> str: ...

    def parse(self, raw: dict[str, Any], target: str, catalog: Catalog) -> State:
        state = State(raw, {})
        for entry in raw.get(self.ids_key) or []:
            if not isinstance(entry, dict):
                continue
            ref = self.group_ref(entry)
            group = self.group_id(ref, target, catalog)
            slot = (self.tag, entry.get("environment"), entry.get(self.unit_key), group)
            state.slots.setdefault(slot, []).extend(entry.get("ids") or [])
            state.refs.setdefault(slot, ref)
        return state

    def slot(self, bucket: tuple[str | None, str, str]) -> Slot:
        environment, unit_type, group = bucket
        return (self.tag, environment, unit_type, group)

    def scope(self, slot: Slot) -> Slot:
        return slot[1:3]

    def describe(self, slot: Slot) -> str:
        unit = slot[2] if slot[2] is not None else "default unit"
        return f"group {slot[3]} ({unit}, {where(slot[1])})"

    def _fields(self, slot: Slot, ref: Mapping[str, Any]) -> dict[str, Any]:
        return {**ref, "environment": slot[1], self.unit_key: slot[2]}

    def selector(self, slot: Slot, ref: Mapping[str, Any]) -> str | None:
        fields = self._fields(slot, ref)
        values = [fields.get(k) for k in self.selector_fields]
        if values[0] is None or not safe(*values):
            return None
        where = ",".join(f"{k}={fmt(v)}" for k, v in zip(self.selector_fields, values, strict=True))
        return f"{self.ids_key}[{where}].ids"

    def entries(
        self, entries: Mapping[Slot, list[str]], refs: Mapping[Slot, Mapping[str, Any]]
    ) -> list[dict[str, Any]]:
        out = []
        for slot, ids in entries.items():
            fields = {**self._fields(slot, refs[slot]), "ids": list(ids)}
            out.append({k: fields[k] for k in self.entry_fields})
        return out


class ExperimentShape(GroupShape):
    """Experiments: slots ``("E", env, unit type, group id)``, one per userIDOverrides entry."""

    kind, collection, tag = "experiment", "experiments", "E"
    ids_key, unit_key = "userIDOverrides", "unitType"
    entry_fields = ("groupID", "ids", "environment", "unitType")
    selector_fields = ("groupID", "environment", "unitType")
    capacity = GROUP_ENTRY_LIMIT

    def group_ref(self, entry: Mapping[str, Any]) -> dict[str, Any]:
        return {"groupID": entry.get("groupID")}

    def group_id(self, ref: Mapping[str, Any], target: str, catalog: Catalog) -> str:
        literal = ref["groupID"]
        group = catalog.group("experiment", target, str(literal))
        return group.id if group is not None else f"?{literal}"

    def new_ref(self, slot: Slot, target: str, catalog: Catalog) -> dict[str, Any]:
        return {"groupID": _group_label(catalog, "experiment", target, slot[3])}

    def body(
        self, entries: Mapping[Slot, list[str]], refs: Mapping[Slot, Mapping[str, Any]], add: bool
    ) -> Any:
        return {"overrides": [], "userIDOverrides": self.entries(entries, refs)}


class LayerShape(GroupShape):
    """Layers: slots ``("L", env, id type, group id)``, one per idOverrides entry (a group
    of one of the layer's experiments)."""

    kind, collection, tag = "layer", "layers", "L"
    ids_key, unit_key = "idOverrides", "idType"
    entry_fields = ("groupName", "ids", "idType", "environment", "experimentName")
    selector_fields = ("groupName", "experimentName", "idType", "environment")
    capacity = None

    def group_ref(self, entry: Mapping[str, Any]) -> dict[str, Any]:
        return {"groupName": entry.get("groupName"), "experimentName": entry.get("experimentName")}

    def group_id(self, ref: Mapping[str, Any], target: str, catalog: Catalog) -> str:
        experiment, literal = ref["experimentName"], ref["groupName"]
        group = (
            catalog.group("experiment", str(experiment), str(literal))
            if experiment is not None
            else catalog.group("layer", target, str(literal))
        )
        return group.id if group is not None else f"?{experiment}|{literal}"

    def new_ref(self, slot: Slot, target: str, catalog: Catalog) -> dict[str, Any]:
        group: GroupRef | None = catalog.group("layer", target, slot[3])
        if group is None:
            return {"groupName": slot[3], "experimentName": None}
        label = _group_label(catalog, "experiment", group.experiment, group.id)
        return {"groupName": label, "experimentName": group.experiment}

    def body(
        self, entries: Mapping[Slot, list[str]], refs: Mapping[Slot, Mapping[str, Any]], add: bool
    ) -> Any:
        body: dict[str, Any] = {"op": "add"} if add else {}
        return {**body, "conditionalOverrides": [], "idOverrides": self.entries(entries, refs)}


class SegmentShape(Shape):
    """``id_list`` segments: one slot, the id list."""

    kind = "segment"
    collection = "segments"
    under = "id_list"
    limit = ID_LIST_REQUEST_LIMIT
    capacity = None
    quota_class = ID_LIST_CLASS
    add_action, remove_action = "id-list-add", "id-list-remove"

    def parse(self, raw: dict[str, Any], target: str, catalog: Catalog) -> State:
        return State(raw, {("S",): list(raw.get("ids") or [])})

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


SHAPES: dict[str, Shape] = {
    "gate": GateShape("gate", "gates", server_moves=False),
    "holdout": GateShape("holdout", "holdouts", server_moves=True),
    "experiment": ExperimentShape(),
    "layer": LayerShape(),
    "segment": SegmentShape(),
}
