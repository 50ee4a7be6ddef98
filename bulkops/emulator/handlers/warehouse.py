"""Emulator handlers: the warehouse-native sources under ``/experiments``.

Assignment sources, entity property sources and qualifying events are named SQL
sources stored by ``name`` (``store("assignment_sources")`` and so on). The three
families share one set of operations, told apart by a :class:`Source`: its fields
(zod-style checks), the fields a create or a full update requires, the audit action
types and the messages. ``dryRun: true`` validates without storing. A ``PATCH``
may not change ``sql`` (only a full update may); renaming to a taken name is a 400.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from functools import partial
from typing import Any

from aiohttp import web

from ..checks import (
    Check,
    boolean,
    field_error,
    object_list,
    optional_object,
    string,
    string_list,
    validate_fields,
)
from ..http import PREFIX, api_error, audit, ok, ok_page, project, read_body
from .experiment_checks import diff

__all__ = ["ASSIGNMENT_SOURCES", "ENTITY_PROPERTIES", "QUALIFYING_EVENTS", "Source", "routes"]

_STR = string()
_NSTR = string(nullable=True)
_BOOL = boolean()
_ID_MAPPING = object_list(
    {"statsigUnitID": _STR, "column": _STR}, required=("statsigUnitID", "column")
)


@dataclass(frozen=True)
class Source:
    """One family of named warehouse-native sources stored under ``kind``."""

    kind: str
    label: str
    fields: dict[str, Check]
    create_required: tuple[str, ...]
    update_required: tuple[str, ...]
    actions: tuple[str, str, str]  # create, update, delete audit action types
    messages: dict[str, str] = field(default_factory=dict)


_COMMON_SOURCE_FIELDS: dict[str, Check] = {
    "name": _STR,
    "description": _STR,
    "tags": string_list(),
    "sql": _STR,
    "timestampColumn": _STR,
    "idTypeMapping": _ID_MAPPING,
    "isReadOnly": _BOOL,
    "team": _NSTR,
    "teamID": _NSTR,
    "owner": optional_object,
}

ASSIGNMENT_SOURCES = Source(
    kind="assignment_sources",
    label="Assignment source",
    fields={
        **_COMMON_SOURCE_FIELDS,
        "isVerified": _BOOL,
        "experimentIDColumn": _STR,
        "groupIDColumn": _STR,
    },
    create_required=(
        "name",
        "sql",
        "timestampColumn",
        "experimentIDColumn",
        "groupIDColumn",
        "idTypeMapping",
    ),
    update_required=(
        "sql",
        "timestampColumn",
        "experimentIDColumn",
        "groupIDColumn",
        "idTypeMapping",
    ),
    actions=(
        "create_echidna_assignment_source",
        "update_echidna_assignment_source",
        "delete_echidna_assignment_source",
    ),
    messages={
        "list": "Assignment Sources listed successfully.",
        "create": "Assignment Source created successfully",
        "read": "Assignment Source read successfully.",
        "update": "Assignment Source updated successfully",
        "patch": "Assignment Source updated successfully",
        "delete": "Assignment source deleted successfully.",
    },
)
ENTITY_PROPERTIES = Source(
    kind="entity_properties",
    label="Entity property source",
    fields={**_COMMON_SOURCE_FIELDS, "timestampAsDay": _BOOL},
    create_required=("name", "sql", "idTypeMapping"),
    update_required=("sql", "idTypeMapping"),
    actions=(
        "create_echidna_entity_property_source",
        "update_echidna_entity_property_source",
        "delete_echidna_entity_property_source",
    ),
    messages={
        "list": "Entity Property Sources listed successfully.",
        "create": "Entity Property Source created successfully",
        "read": "Entity Property Source read successfully.",
        "update": "Entity Property Sources updated successfully.",
        "patch": "Entity Property Source updated successfully",
        "delete": "Entity property source deleted successfully.",
    },
)
QUALIFYING_EVENTS = Source(
    kind="qualifying_events",
    label="Qualifying event",
    fields={
        **_COMMON_SOURCE_FIELDS,
        "timestampAsDay": _BOOL,
        "sourceType": string(enum=("table", "query")),
        "tableName": _STR,
        "datePartitionColumn": _STR,
        "customFieldMapping": object_list(
            {"key": _STR, "formula": _STR}, required=("key", "formula")
        ),
        "isVerified": _BOOL,
    },
    create_required=("name", "sql", "timestampColumn", "idTypeMapping"),
    update_required=("sql", "timestampColumn", "idTypeMapping"),
    actions=(
        "create_echidna_metric_source",
        "update_echidna_metric_source",
        "delete_echidna_metric_source",
    ),
    messages={
        "list": "Qualifying events listed successfully.",
        "create": "Qualifying event created successfully.",
        "read": "Qualifying event read successfully.",
        "update": "Qualifying event updated successfully.",
        "delete": "Qualifying event deleted successfully.",
    },
)


def _source_or_404(request: web.Request, spec: Source) -> dict[str, Any]:
    obj = project(request).store(spec.kind).get(request.match_info["name"])
    if obj is None:
        api_error(404, f"{spec.label} not found.")
    return obj


def _source_fields(
    body: Any, spec: Source, required: tuple[str, ...]
) -> tuple[dict[str, Any], bool]:
    fields = validate_fields(body, spec.fields, required=required)
    dry_run = boolean()(body["dryRun"], "dryRun") if "dryRun" in body else False
    if "name" in fields and not fields["name"].strip():
        field_error("name", "name must not be empty")
    if "idTypeMapping" in fields and not fields["idTypeMapping"]:
        field_error("idTypeMapping", "Array must contain at least 1 element(s)")
    return fields, bool(dry_run)


async def list_sources(spec: Source, request: web.Request) -> web.Response:
    """``GET /experiments/<family>``: every source of the family, paginated."""
    items = list(project(request).store(spec.kind).values())
    return ok_page(request, items, spec.messages["list"])


async def create_source(spec: Source, request: web.Request) -> web.Response:
    """``POST /experiments/<family>`` (201); ``dryRun`` validates without storing."""
    store = project(request).store(spec.kind)
    fields, dry_run = _source_fields(await read_body(request), spec, spec.create_required)
    if fields["name"] in store:
        api_error(400, "Name is already in use")
    source = {"name": fields["name"], "description": "", "tags": [], **fields}
    if not dry_run:
        store[source["name"]] = source
        audit(request, spec.actions[0], source["name"], source["name"], {})
    return ok(source, spec.messages["create"], status=201)


async def update_source(spec: Source, request: web.Request, *, full: bool) -> web.Response:
    """``POST`` (full) or ``PATCH /experiments/<source>/{name}`` (``sql`` read-only here)."""
    store = project(request).store(spec.kind)
    current = _source_or_404(request, spec)
    body = await read_body(request)
    if not full and isinstance(body, dict) and "sql" in body:
        field_error("sql", "sql is read-only here; change it with a full update (POST)")
    fields, dry_run = _source_fields(body, spec, spec.update_required if full else ())
    updated = {**current, **fields}
    renamed = updated["name"] != current["name"]
    if renamed and updated["name"] in store:
        api_error(400, "Name is already in use")
    if not dry_run and updated != current:
        if renamed:
            del store[current["name"]]
        store[updated["name"]] = updated
        audit(request, spec.actions[1], updated["name"], updated["name"], diff(current, updated))
    return ok(updated, spec.messages["update" if full else "patch"])


async def read_source(spec: Source, request: web.Request) -> web.Response:
    """``GET /experiments/<source>/{name}``."""
    return ok(_source_or_404(request, spec), spec.messages["read"])


async def delete_source(spec: Source, request: web.Request) -> web.Response:
    """``DELETE /experiments/<source>/{name}``."""
    source = _source_or_404(request, spec)
    del project(request).store(spec.kind)[source["name"]]
    audit(request, spec.actions[2], source["name"], source["name"], {})
    return ok(message=spec.messages["delete"], with_data=False)


_BASE = f"{PREFIX}/experiments"
_ASSIGNMENT_SOURCE = f"{_BASE}/assignment_source/{{name}}"
_ENTITY_PROPERTY = f"{_BASE}/entity_property/{{name}}"
_QUALIFYING_EVENT = f"{_BASE}/qualifying_events/{{name}}"

routes = [
    web.get(f"{_BASE}/assignment_sources", partial(list_sources, ASSIGNMENT_SOURCES)),
    web.post(f"{_BASE}/assignment_sources", partial(create_source, ASSIGNMENT_SOURCES)),
    web.post(_ASSIGNMENT_SOURCE, partial(update_source, ASSIGNMENT_SOURCES, full=True)),
    web.patch(_ASSIGNMENT_SOURCE, partial(update_source, ASSIGNMENT_SOURCES, full=False)),
    web.delete(_ASSIGNMENT_SOURCE, partial(delete_source, ASSIGNMENT_SOURCES)),
    web.get(f"{_BASE}/entity_properties", partial(list_sources, ENTITY_PROPERTIES)),
    web.post(f"{_BASE}/entity_properties", partial(create_source, ENTITY_PROPERTIES)),
    web.get(_ENTITY_PROPERTY, partial(read_source, ENTITY_PROPERTIES)),
    web.post(_ENTITY_PROPERTY, partial(update_source, ENTITY_PROPERTIES, full=True)),
    web.patch(_ENTITY_PROPERTY, partial(update_source, ENTITY_PROPERTIES, full=False)),
    web.delete(_ENTITY_PROPERTY, partial(delete_source, ENTITY_PROPERTIES)),
    web.get(f"{_BASE}/qualifying_events", partial(list_sources, QUALIFYING_EVENTS)),
    web.post(f"{_BASE}/qualifying_events", partial(create_source, QUALIFYING_EVENTS)),
    web.get(_QUALIFYING_EVENT, partial(read_source, QUALIFYING_EVENTS)),
    web.post(_QUALIFYING_EVENT, partial(update_source, QUALIFYING_EVENTS, full=True)),
    web.delete(_QUALIFYING_EVENT, partial(delete_source, QUALIFYING_EVENTS)),
]
"""The warehouse-native source routes: one :class:`Source` and its operations per family.

The spec has no ``GET`` of one assignment source and no ``PATCH`` of a qualifying event.
"""
