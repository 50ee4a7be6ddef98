"""Emulator handlers: data-warehouse ingestions (all 13 operations under ``/ingestion``).

Sources live in ``store("ingestions")`` as the API returns them,
``{id, type, enabled, data: {dataset, source_name, query, column_mapping, …}}``; a
source is addressed by ``type`` + ``dataset`` + ``source_name`` (the name may be
left out when only one source matches). Runs live in ``store("ingestion_runs")``
keyed by ``runID``; a backfill enqueues one. The schedule per dataset and the
Databricks connection are singletons in ``project.settings``
(``ingestion_schedule``, ``ingestion_connections``); the connection's token is
never stored or returned.

Nothing is really imported, so the read-only reports are deterministic but
plausible: ``/ingestion/status`` is derived from the runs, and the event
count/delta ledgers give every (date, Events source, event) a count computed from
a hash, for the event names in ``project.settings["ingestion_event_names"]``
(default ``page_view``, ``click``, ``purchase``) or the ``event_name`` asked for.
"""

from __future__ import annotations

import datetime as dt
import uuid
import zlib
from collections.abc import Iterator
from typing import Any

from aiohttp import web

from ..checks import enum_field, field_error, json_type, object_value, string_field
from ..http import (
    GENERIC_400,
    api_error,
    audit,
    clone,
    now_ms,
    ok,
    ok_page,
    project,
    read_body,
)
from ..state import Project

__all__ = [
    "CREATE_DATASETS",
    "DATASETS",
    "DEFAULT_EVENT_NAMES",
    "DEFAULT_SCHEDULED_HOUR",
    "MAX_DAYS",
    "SOURCE_TYPES",
    "routes",
]

SOURCE_TYPES = (
    "redshift",
    "bigquery-v2",
    "snowflake-v2",
    "databricks",
    "azure-synapse",
    "s3",
    "athena",
    "adls",
)
# Datasets of the read/delete/backfill/schedule operations, and of create/update.
DATASETS = ("Events", "Metrics", "export_exposures", "entity_properties")
CREATE_DATASETS = ("Metrics", "Events", "Exposures", "export_exposures")
INGESTION_STATUSES = (
    "IMPORT_SUCCESSFUL",
    "ROWS_INSERTED",
    "LOADED_EMPTY_DATA",
    "IMPORT_SCHEDULED",
    "IMPORT_RESCHEDULED",
    "IMPORT_STARTED",
    "FILE_CREATED",
    "DOWNLOAD_COMPLETED",
    "BACKFILL_REQUESTED",
    "CONNECTION_CONFIG_ERROR",
    "SSH_ERROR",
    "QUERY_CONSTRUCTION_ERROR",
    "INTERNAL_WRITE_ERROR_METRICS",
    "INTERNAL_WRITE_ERROR_EVENTS",
    "INTERNAL_WRITE_ERROR_EXPOSURES",
    "QUERY_ERROR",
    "SETUP_ERROR",
    "AUTHENTICATION_ERROR",
    "CONNECTION_ERROR",
    "BULK_LOAD_ERROR",
    "BULK_LOAD_SUCCESSFUL",
    "%Other",
)
DEFAULT_SCHEDULED_HOUR = 10
DEFAULT_EVENT_NAMES = ("page_view", "click", "purchase")
# The emulator's own cap on a date range, so a typo cannot ask for a century of rows.
MAX_DAYS = 366
# Required column-mapping keys per dataset (the spec's three source variants).
_MAPPING_REQUIRED = {
    "Metrics": ("unit_id", "id_type", "dateid", "metric_name"),
    "Events": ("event_name", "timestamp", "ids"),
    "Exposures": ("experiment", "group_id", "timestamp", "ids"),
}
_MAPPING_OBJECTS = ("ids", "metadata")
_SOURCE_FIELDS = ("query", "share", "schema", "table")
# Run status → the status the ingestion-status report shows.
_REPORTED_STATUS = {
    "enqueued": "IMPORT_SCHEDULED",
    "started": "IMPORT_STARTED",
    "download_started": "IMPORT_STARTED",
    "download_completed": "DOWNLOAD_COMPLETED",
    "download_error": "CONNECTION_ERROR",
    "query_error": "QUERY_ERROR",
    "succeeded": "IMPORT_SUCCESSFUL",
    "completed": "IMPORT_SUCCESSFUL",
}
_DATE_MESSAGE = "Expected valid date in the form of YYYY-MM-DD"


# -- zod-style validation (400 "Bad Request Exception" + errors[]) ----------------------


def _date(value: Any, prop: str) -> dt.date:
    if value is None:
        field_error(prop, "Required")
    try:
        if not isinstance(value, str) or len(value) != 10:
            raise ValueError
        return dt.date.fromisoformat(value)
    except ValueError:
        field_error(prop, _DATE_MESSAGE)


def _date_range(start: Any, end: Any, names: tuple[str, str]) -> list[dt.date]:
    first, last = _date(start, names[0]), _date(end, names[1])
    if last < first:
        field_error(names[1], f"{names[1]} must not be before {names[0]}")
    days = (last - first).days + 1
    if days > MAX_DAYS:
        field_error(names[1], f"The date range must be at most {MAX_DAYS} days")
    return [first + dt.timedelta(days=n) for n in range(days)]


def _iso(ms: int) -> str:
    stamp = dt.datetime.fromtimestamp(ms / 1000, dt.UTC)
    return stamp.isoformat(timespec="milliseconds").replace("+00:00", "Z")


# -- sources --------------------------------------------------------------------------


def _sources(proj: Project) -> dict[str, dict[str, Any]]:
    return proj.store("ingestions")


def _source_id(proj: Project, source_type: str, dataset: str, name: str) -> str:
    return str(uuid.uuid5(uuid.NAMESPACE_URL, f"statsig:{proj.id}:{source_type}:{dataset}:{name}"))


def _matching(
    proj: Project, source_type: str, dataset: str | None, name: str | None
) -> list[dict[str, Any]]:
    return [
        s
        for s in _sources(proj).values()
        if s["type"] == source_type
        and (dataset is None or s["data"].get("dataset") == dataset)
        and (name is None or s["data"].get("source_name") == name)
    ]


def _find_source(proj: Project, source_type: str, dataset: str, name: str | None) -> dict[str, Any]:
    found = _matching(proj, source_type, dataset, name)
    if not found:
        api_error(404, "Not Found. The requested resource could not be found.")
    if len(found) > 1:
        field_error("source_name", f"{len(found)} {dataset} sources use {source_type}; name one")
    return found[0]


def _locator(request: web.Request) -> tuple[str, str, str | None]:
    query = request.rel_url.query
    source_type = enum_field(query.get("type"), "type", SOURCE_TYPES)
    dataset = enum_field(query.get("dataset"), "dataset", (*DATASETS, "Exposures"))
    return str(source_type), str(dataset), query.get("source_name")


def _column_mapping(value: Any, dataset: str) -> dict[str, Any]:
    mapping = object_value(value, "column_mapping")
    kind = "Exposures" if dataset in ("Exposures", "export_exposures") else dataset
    for key in _MAPPING_REQUIRED[kind]:
        if mapping.get(key) is None:
            field_error(f"column_mapping.{key}", "Required")
    for key, item in mapping.items():
        prop = f"column_mapping.{key}"
        if key in _MAPPING_OBJECTS:
            for sub, column in object_value(item, prop).items():
                if not isinstance(column, str):
                    field_error(f"{prop}.{sub}", f"Expected string, received {json_type(column)}")
        elif not isinstance(item, str):
            field_error(prop, f"Expected string, received {json_type(item)}")
    return dict(mapping)


def _source_body(body: dict[str, Any], *, creating: bool) -> tuple[str, dict[str, Any]]:
    """Validate a create/update body; returns the type and the fields it sets."""
    dataset = str(enum_field(body.get("dataset"), "dataset", CREATE_DATASETS))
    source_type = str(enum_field(body.get("type"), "type", SOURCE_TYPES))
    fields: dict[str, Any] = {"dataset": dataset}
    name = string_field(body, "source_name", required=creating, nullable=True)
    if name is not None:
        if not name.strip():
            field_error("source_name", "String must contain at least 1 character(s)")
        fields["source_name"] = name
    for prop in _SOURCE_FIELDS:
        value = string_field(body, prop, nullable=True)
        if value is not None:
            fields[prop] = value
    if body.get("column_mapping") is not None:
        fields["column_mapping"] = _column_mapping(body["column_mapping"], dataset)
    if body.get("use_delta_sharing") is not None:
        if body["use_delta_sharing"] is not True:
            field_error("use_delta_sharing", "Invalid literal value, expected true")
        fields["use_delta_sharing"] = True
    enabled = body.get("enabled")
    if enabled is not None and not isinstance(enabled, bool):
        field_error("enabled", f"Expected boolean, received {json_type(enabled)}")
    if enabled is not None:
        fields["enabled"] = enabled
    return source_type, fields


async def get_ingestion(request: web.Request) -> web.Response:
    """``GET /ingestion?type&dataset[&source_name]``: one source."""
    source_type, dataset, name = _locator(request)
    source = _find_source(project(request), source_type, dataset, name)
    return ok(source, "Ingestion read successfully.")


async def create_ingestion(request: web.Request) -> web.Response:
    """``POST /ingestion`` (200): a new source; 400 if the name is taken for that dataset."""
    body = object_value(await read_body(request), "body")
    source_type, fields = _source_body(body, creating=True)
    proj = project(request)
    dataset, name = fields["dataset"], fields["source_name"]
    if _matching(proj, source_type, dataset, name):
        api_error(
            400,
            "Name is already in use",
            [{"property": "source_name", "errorMessage": f"{name} already exists"}],
        )
    ts = now_ms(request)
    source_id = _source_id(proj, source_type, dataset, name)
    enabled = fields.pop("enabled", True)
    source = {
        "id": source_id,
        "type": source_type,
        "enabled": enabled,
        "data": {**fields, "createdTime": ts, "lastModifiedTime": ts},
    }
    _sources(proj)[source_id] = source
    audit(request, "ingestion_source_create", source_id, name)
    return ok(source, "Ingestion created successfully.")


async def update_ingestion(request: web.Request) -> web.Response:
    """``PATCH /ingestion``: change the given fields of the source the body names."""
    body = object_value(await read_body(request), "body")
    source_type, fields = _source_body(body, creating=False)
    proj = project(request)
    source = _find_source(proj, source_type, fields["dataset"], fields.get("source_name"))
    changes: dict[str, Any] = {}
    if "enabled" in fields:
        enabled = fields.pop("enabled")
        if enabled != source["enabled"]:
            changes["enabled"] = {"old": source["enabled"], "new": enabled}
        source["enabled"] = enabled
    data = source["data"]
    for key, value in fields.items():
        if data.get(key) != value:
            changes[key] = {"old": clone(data.get(key)), "new": clone(value)}
        data[key] = value
    data["lastModifiedTime"] = now_ms(request)
    audit(request, "ingestion_source_update", source["id"], str(data["source_name"]), changes)
    return ok(source, "Ingestion updated successfully.")


async def delete_ingestion(request: web.Request) -> web.Response:
    """``DELETE /ingestion?type&dataset[&source_name]``."""
    source_type, dataset, name = _locator(request)
    proj = project(request)
    source = _find_source(proj, source_type, dataset, name)
    del _sources(proj)[source["id"]]
    audit(request, "ingestion_source_delete", source["id"], str(source["data"]["source_name"]))
    return ok(source, "Ingestion deleted successfully.")


# -- backfill, connection, schedule ---------------------------------------------------


def _new_run_id(proj: Project) -> str:
    runs = proj.store("ingestion_runs")
    n = len(runs) + 1
    while (run_id := str(uuid.uuid5(uuid.NAMESPACE_URL, f"statsig:{proj.id}:run:{n}"))) in runs:
        n += 1
    return run_id


async def backfill(request: web.Request) -> web.Response:
    """``POST /ingestion/backfill``: enqueue a run over the given dates and sources."""
    body = object_value(await read_body(request), "body")
    dates = _date_range(
        body.get("datestamp_start"), body.get("datestamp_end"), ("datestamp_start", "datestamp_end")
    )
    source_type = str(enum_field(body.get("type"), "type", SOURCE_TYPES))
    dataset = str(enum_field(body.get("dataset"), "dataset", DATASETS))
    raw = body.get("source")
    wanted = [raw] if isinstance(raw, str) else raw
    if wanted is not None and (
        not isinstance(wanted, list) or not all(isinstance(s, str) for s in wanted)
    ):
        field_error("source", f"Expected string or array of strings, received {json_type(raw)}")
    proj = project(request)
    known = [str(s["data"]["source_name"]) for s in _matching(proj, source_type, dataset, None)]
    unknown = [s for s in wanted or () if s not in known]
    if unknown:
        field_error(
            "source", f"Unknown {dataset} source(s) for {source_type}: {', '.join(unknown)}"
        )
    names = list(dict.fromkeys(wanted)) if wanted else known
    if not names:
        api_error(
            400,
            GENERIC_400,
            [{"property": "source", "errorMessage": f"No {dataset} source uses {source_type}"}],
        )
    stamp = _iso(now_ms(request))
    stamps = [d.isoformat() for d in dates]
    enqueued = {"statusTimestamp": stamp, "status": "enqueued"}
    run_id = _new_run_id(proj)
    run = {
        "runID": run_id,
        "latestStatus": "enqueued",
        "lastUpdatedAt": stamp,
        "createdAt": stamp,
        "trigger": "backfill",
        "sources": names,
        "dateStamps": stamps,
        "runHistory": [dict(enqueued)],
        "granularHistory": [
            {
                "source": name,
                "latestSourceStatus": "enqueued",
                "statusByDate": [{"dateStamp": s, "statuses": [dict(enqueued)]} for s in stamps],
            }
            for name in names
        ],
    }
    proj.store("ingestion_runs")[run_id] = run
    audit(
        request,
        "ingestion_backfill",
        run_id,
        ", ".join(names),
        {"dateStamps": {"old": None, "new": [stamps[0], stamps[-1]]}},
    )
    return ok({"runID": run_id}, "Ingestion backfilled successfully.")


async def connect_databricks(request: web.Request) -> web.Response:
    """``POST /ingestion/connection/databricks``: store the connection (never its token)."""
    body = object_value(await read_body(request), "body")
    for prop in ("token", "host", "path"):
        value = string_field(body, prop, required=True, nullable=True)
        if not value:
            field_error(prop, "String must contain at least 1 character(s)")
    credentials = string_field(body, "deltaSharingCredentials", nullable=True)
    verified = body.get("verified", False)
    if not isinstance(verified, bool):
        field_error("verified", f"Expected boolean, received {json_type(verified)}")
    proj = project(request)
    connection_id = str(uuid.uuid5(uuid.NAMESPACE_URL, f"statsig:{proj.id}:connection:databricks"))
    connection = {
        "id": connection_id,
        "type": "databricks",
        "enabled": True,
        "data": {
            "host": body["host"],
            "path": body["path"],
            "verified": verified,
            "hasDeltaSharingCredentials": bool(credentials),
        },
    }
    proj.settings.setdefault("ingestion_connections", {})["databricks"] = connection
    audit(request, "ingestion_connection_update", connection_id, "databricks")
    return ok(connection, "Ingestion databricks connection created successfully.")


async def get_schedule(request: web.Request) -> web.Response:
    """``GET /ingestion/schedule?dataset``: the daily hour (PST) the dataset is imported."""
    dataset = str(enum_field(request.rel_url.query.get("dataset"), "dataset", DATASETS))
    hours = project(request).settings.get("ingestion_schedule") or {}
    data = {"dataset": dataset, "scheduled_hour_pst": hours.get(dataset, DEFAULT_SCHEDULED_HOUR)}
    return ok(data, "Ingestion schedule read successfully.")


async def set_schedule(request: web.Request) -> web.Response:
    """``POST /ingestion/schedule``: set the hour (0–23, default 10) for one dataset."""
    body = object_value(await read_body(request), "body")
    dataset = str(enum_field(body.get("dataset"), "dataset", DATASETS))
    hour = body.get("scheduled_hour_pst", DEFAULT_SCHEDULED_HOUR)
    if isinstance(hour, bool) or not isinstance(hour, int | float):
        field_error("scheduled_hour_pst", f"Expected number, received {json_type(hour)}")
    if not 0 <= hour < 24:
        field_error("scheduled_hour_pst", "scheduled_hour_pst must be between 0 and 23")
    hours = project(request).settings.setdefault("ingestion_schedule", {})
    old = hours.get(dataset, DEFAULT_SCHEDULED_HOUR)
    hours[dataset] = hour
    audit(
        request,
        "ingestion_schedule_update",
        dataset,
        dataset,
        {"scheduled_hour_pst": {"old": old, "new": hour}},
    )
    return ok(
        {"dataset": dataset, "scheduled_hour_pst": hour}, "Ingestion schedule updated successfully."
    )


# -- runs and reports -----------------------------------------------------------------


async def list_runs(request: web.Request) -> web.Response:
    """``GET /ingestion/runs``: every run, newest first, paginated."""
    runs = sorted(
        project(request).store("ingestion_runs").values(),
        key=lambda r: str(r.get("createdAt")),
        reverse=True,
    )
    return ok_page(request, runs, "Ingestion Runs Listed Successfully.")


async def get_run(request: web.Request) -> web.Response:
    """``GET /ingestion/runs/{id}``."""
    run = project(request).store("ingestion_runs").get(request.match_info["id"])
    if run is None:
        api_error(404, "Not Found. The requested resource could not be found.")
    return ok(run, "Ingestion Run Read Successfully")


def _status_rows(proj: Project, run: dict[str, Any]) -> Iterator[dict[str, Any]]:
    by_name = {str(s["data"].get("source_name")): s for s in _sources(proj).values()}
    backfill_run = run.get("trigger") == "backfill"
    for history in run.get("granularHistory") or []:
        source = by_name.get(str(history.get("source")))
        for day in history.get("statusByDate") or []:
            statuses = day.get("statuses") or [{}]
            latest = max(statuses, key=lambda s: str(s.get("statusTimestamp")))
            raw = str(latest.get("status") or run.get("latestStatus"))
            status = _REPORTED_STATUS.get(raw, raw.upper())
            if status == "IMPORT_SCHEDULED" and backfill_run:
                status = "BACKFILL_REQUESTED"
            dataset = source["data"].get("dataset") if source else None
            yield {
                "ds": f"{day.get('dateStamp')}T00:00:00.000Z",
                "ingestion_dataset": dataset,
                "ingestion_source": source["type"] if source else None,
                "source_name": history.get("source"),
                "message": f"{status.replace('_', ' ').capitalize()} for {history.get('source')}",
                "status": status,
                "timestamp": latest.get("statusTimestamp") or run.get("lastUpdatedAt"),
            }


async def list_status(request: web.Request) -> web.Response:
    """``GET /ingestion/status``: per (source, date) statuses of the runs in the date range."""
    query = request.rel_url.query
    dates = {
        d.isoformat()
        for d in _date_range(query.get("startDate"), query.get("endDate"), ("startDate", "endDate"))
    }
    source = query.get("source")
    dataset = enum_field(query.get("dataset"), "dataset", DATASETS, required=False)
    wanted = set(query.getall("statuses", []))
    if query.get("status") is not None:
        wanted.add(query["status"])
    for index, value in enumerate(sorted(wanted)):
        enum_field(value, f"statuses[{index}]", INGESTION_STATUSES)
    proj = project(request)
    rows = [
        row
        for run in proj.store("ingestion_runs").values()
        for row in _status_rows(proj, run)
        if row["ds"][:10] in dates
        and (source is None or row["source_name"] == source)
        and (dataset is None or row["ingestion_dataset"] == dataset)
        and (not wanted or row["status"] in wanted)
    ]
    rows.sort(key=lambda r: (str(r["timestamp"]), r["ds"]), reverse=True)
    return ok_page(request, rows, "Ingestions status listed successfully.")


def _event_rows(
    request: web.Request, start_name: str = "start_date", end_name: str = "end_date"
) -> Iterator[tuple[str, list[tuple[str, str, int, str]]]]:
    """Yield ``(date, [(source, event, count, last_updated_time)…])`` for the date range."""
    query = request.rel_url.query
    dates = _date_range(query.get(start_name), query.get(end_name), (start_name, end_name))
    source_name = query.get("source_name")
    event_name = query.get("event_name")
    proj = project(request)
    sources = [
        str(s["data"].get("source_name"))
        for s in _sources(proj).values()
        if s["data"].get("dataset") == "Events"
        and (source_name is None or s["data"].get("source_name") == source_name)
    ]
    names = proj.settings.get("ingestion_event_names") or DEFAULT_EVENT_NAMES
    events = [event_name] if event_name else [str(n) for n in names]
    for day in dates:
        updated = f"{(day + dt.timedelta(days=1)).isoformat()}T02:00:00.000Z"
        rows = [
            (src, ev, 1000 + _hash(proj.id, src, ev, day.isoformat()) % 9000, updated)
            for src in sources
            for ev in events
        ]
        yield day.isoformat(), rows


def _hash(*parts: str) -> int:
    return zlib.crc32("|".join(parts).encode())


async def event_count(request: web.Request) -> web.Response:
    """``GET /ingestion/events/count``: per date, how many of each event were ingested."""
    data = []
    for day, rows in _event_rows(request):
        totals: dict[str, list[Any]] = {}
        for _src, event, count, updated in rows:
            entry = totals.setdefault(event, [0, updated])
            entry[0] += count
        data.append(
            {
                "date": day,
                "events": [
                    {"event": event, "count": count, "last_updated_time": updated}
                    for event, (count, updated) in totals.items()
                ],
            }
        )
    return ok(data, "Ingestion event count read successfully.")


async def event_delta(request: web.Request) -> web.Response:
    """``GET /ingestion/events/delta``: our counts against the warehouse's, per date."""
    threshold = 0.01
    data = []
    for day, rows in _event_rows(request):
        events = []
        for src, event, count, updated in rows:
            h = _hash("delta", src, event, day)
            # Most days agree within a few events; about one in ten drifts by ~5%.
            drift = count // 20 if h % 10 == 0 else h % 5
            external = count + drift
            events.append(
                {
                    "source": src,
                    "event": event,
                    "internal_count": count,
                    "external_count": external,
                    "has_diff": abs(external - count) > threshold * external,
                    "threshold": threshold,
                    "last_updated_time": updated,
                }
            )
        data.append({"date": day, "events": events})
    return ok(data, "Ingestion event delta ledger read successfully.")


routes = [
    web.get("/console/v1/ingestion", get_ingestion),
    web.post("/console/v1/ingestion", create_ingestion),
    web.patch("/console/v1/ingestion", update_ingestion),
    web.delete("/console/v1/ingestion", delete_ingestion),
    web.post("/console/v1/ingestion/backfill", backfill),
    web.post("/console/v1/ingestion/connection/databricks", connect_databricks),
    web.get("/console/v1/ingestion/schedule", get_schedule),
    web.post("/console/v1/ingestion/schedule", set_schedule),
    web.get("/console/v1/ingestion/runs", list_runs),
    web.get("/console/v1/ingestion/runs/{id}", get_run),
    web.get("/console/v1/ingestion/status", list_status),
    web.get("/console/v1/ingestion/events/count", event_count),
    web.get("/console/v1/ingestion/events/delta", event_delta),
]
