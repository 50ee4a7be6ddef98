"""Ingestions end to end: every ``/ingestion`` operation through the client, over HTTP."""

from __future__ import annotations

import json

import pytest

from bulkops.emulator.seed import EMPTY_READ_ONLY_KEY
from bulkops.errors import BadRequest, Forbidden, NotFound

EVENTS = {
    "type": "bigquery-v2",
    "dataset": "Events",
    "source_name": "web events",
    "query": "SELECT * FROM events",
    "column_mapping": {"event_name": "name", "timestamp": "ts", "ids": {"userID": "user_id"}},
}
METRICS = {
    "type": "bigquery-v2",
    "dataset": "Metrics",
    "source_name": "daily metrics",
    "column_mapping": {
        "unit_id": "uid",
        "id_type": "userID",
        "dateid": "ds",
        "metric_name": "name",
        "metric_value": "value",
    },
}
DATE_ERROR = "Expected valid date in the form of YYYY-MM-DD"


def _actions(project) -> list[str]:
    return [entry["actionType"] for entry in project.audit_log]


async def test_source_round_trip(client, project):
    """Create, read (with and without a name), update and delete a source; one audit entry each."""
    created = await client.ingestions.create(EVENTS)
    assert (created["type"], created["enabled"]) == ("bigquery-v2", True)
    assert created["data"]["source_name"] == "web events"
    assert await client.ingestions.get("bigquery-v2", "Events") == created
    assert await client.ingestions.get("bigquery-v2", "Events", source_name="web events") == created
    updated = await client.ingestions.update(
        {
            "type": "bigquery-v2",
            "dataset": "Events",
            "source_name": "web events",
            "enabled": False,
            "query": "SELECT 1",
        }
    )
    assert updated["enabled"] is False
    assert updated["data"]["query"] == "SELECT 1"
    assert updated["data"]["column_mapping"] == EVENTS["column_mapping"]
    deleted = await client.ingestions.delete("bigquery-v2", "Events", source_name="web events")
    assert deleted["id"] == created["id"]
    with pytest.raises(NotFound):
        await client.ingestions.get("bigquery-v2", "Events")
    assert _actions(project) == [
        "ingestion_source_create",
        "ingestion_source_update",
        "ingestion_source_delete",
    ]


async def test_source_addressing_and_duplicates(client):
    """A taken name is 400; with two sources the name is needed; sources differ by dataset."""
    await client.ingestions.create(EVENTS)
    await client.ingestions.create(METRICS)
    with pytest.raises(BadRequest, match="Name is already in use"):
        await client.ingestions.create(EVENTS)
    await client.ingestions.create({**EVENTS, "source_name": "app events"})
    with pytest.raises(BadRequest) as info:
        await client.ingestions.get("bigquery-v2", "Events")
    assert info.value.errors[0]["property"] == "source_name"
    metrics = await client.ingestions.get("bigquery-v2", "Metrics")
    assert metrics["data"]["source_name"] == "daily metrics"
    with pytest.raises(NotFound):
        await client.ingestions.get("snowflake-v2", "Metrics")


async def test_source_validation(client, project):
    """Bad enums, a column mapping missing a dataset's required key, and wrong types are 400s."""
    with pytest.raises(BadRequest) as info:
        await client.ingestions.create({**EVENTS, "type": "oracle"})
    assert info.value.message == "Bad Request Exception"
    assert info.value.errors[0]["property"] == "type"
    assert info.value.errors[0]["errorMessage"].endswith("received 'oracle'")
    mapping = {k: v for k, v in METRICS["column_mapping"].items() if k != "dateid"}
    with pytest.raises(BadRequest) as info:
        await client.ingestions.create({**METRICS, "column_mapping": mapping})
    assert info.value.errors == [{"property": "column_mapping.dateid", "errorMessage": "Required"}]
    with pytest.raises(BadRequest) as info:
        await client.ingestions.create({**EVENTS, "enabled": "yes"})
    assert info.value.errors[0]["errorMessage"] == "Expected boolean, received string"
    with pytest.raises(BadRequest) as info:
        await client.call("POST", "/ingestion", {"type": "s3", "dataset": "Events"})
    assert info.value.errors == [{"property": "source_name", "errorMessage": "Required"}]
    with pytest.raises(BadRequest) as info:
        await client.call("GET", "/ingestion", params={"type": "s3"})
    assert info.value.errors == [{"property": "dataset", "errorMessage": "Required"}]
    assert project.store("ingestions") == {}
    assert project.audit_log == []


async def test_backfill_runs_and_status(client, project):
    """A backfill enqueues a run that the runs list, the run read and the status report show."""
    await client.ingestions.create(EVENTS)
    await client.ingestions.create({**EVENTS, "source_name": "app events"})
    first = await client.ingestions.backfill("bigquery-v2", "Events", "2024-01-01", "2024-01-03")
    run = await client.ingestions.get_run(first)
    assert run["sources"] == ["web events", "app events"]
    assert run["dateStamps"] == ["2024-01-01", "2024-01-02", "2024-01-03"]
    assert (run["trigger"], run["latestStatus"]) == ("backfill", "enqueued")
    second = await client.ingestions.backfill(
        "bigquery-v2", "Events", "2024-01-05", "2024-01-05", sources="app events"
    )
    assert second != first
    assert {r["runID"] async for r in client.ingestions.runs(limit=1)} == {first, second}
    rows = [r async for r in client.ingestions.status("2024-01-02", "2024-01-05", limit=2)]
    assert len(rows) == 5  # two sources x two days of the first run, one of the second
    assert {r["status"] for r in rows} == {"BACKFILL_REQUESTED"}
    assert {r["ingestion_source"] for r in rows} == {"bigquery-v2"}
    only = client.ingestions.status(
        "2024-01-01", "2024-01-31", source="app events", statuses=["BACKFILL_REQUESTED"]
    )
    assert sorted([r["ds"][:10] async for r in only]) == [
        "2024-01-01",
        "2024-01-02",
        "2024-01-03",
        "2024-01-05",
    ]
    none = client.ingestions.status("2024-01-01", "2024-01-31", status="IMPORT_SUCCESSFUL")
    assert [r async for r in none] == []
    assert _actions(project)[-2:] == ["ingestion_backfill", "ingestion_backfill"]


async def test_backfill_and_run_errors(client, project):
    """Unknown sources, no sources, bad dates and unknown runs get the real 400/404."""
    with pytest.raises(BadRequest) as info:
        await client.ingestions.backfill("bigquery-v2", "Events", "2024-01-01", "2024-01-01")
    assert info.value.message == "Invalid request. Please check the request input and try again."
    await client.ingestions.create(EVENTS)
    with pytest.raises(BadRequest, match="Unknown Events source"):
        await client.ingestions.backfill(
            "bigquery-v2", "Events", "2024-01-01", "2024-01-01", sources=["nope"]
        )
    with pytest.raises(BadRequest) as info:
        await client.ingestions.backfill("bigquery-v2", "Events", "2024-1-1", "2024-01-02")
    assert info.value.errors == [{"property": "datestamp_start", "errorMessage": DATE_ERROR}]
    with pytest.raises(BadRequest) as info:
        await client.ingestions.backfill("bigquery-v2", "Events", "2024-01-02", "2024-01-01")
    assert info.value.errors[0]["property"] == "datestamp_end"
    with pytest.raises(NotFound):
        await client.ingestions.get_run("no-such-run")
    assert project.store("ingestion_runs") == {}
    assert _actions(project) == ["ingestion_source_create"]


async def test_schedule(client, project):
    """The schedule defaults to 10 PST per dataset; setting it changes only that dataset."""
    assert await client.ingestions.get_schedule("Metrics") == {
        "dataset": "Metrics",
        "scheduled_hour_pst": 10,
    }
    set_to = await client.ingestions.set_schedule("Metrics", 3)
    assert set_to == {"dataset": "Metrics", "scheduled_hour_pst": 3}
    assert (await client.ingestions.get_schedule("Metrics"))["scheduled_hour_pst"] == 3
    assert (await client.ingestions.get_schedule("Events"))["scheduled_hour_pst"] == 10
    with pytest.raises(BadRequest) as info:
        await client.ingestions.set_schedule("Metrics", 24)
    assert info.value.errors[0]["property"] == "scheduled_hour_pst"
    with pytest.raises(BadRequest) as info:
        await client.call(
            "POST", "/ingestion/schedule", {"dataset": "Metrics", "scheduled_hour_pst": "3"}
        )
    assert info.value.errors[0]["errorMessage"] == "Expected number, received string"
    with pytest.raises(BadRequest):
        await client.ingestions.get_schedule("Logs")
    assert _actions(project) == ["ingestion_schedule_update"]


async def test_databricks_connection_keeps_no_token(client, project):
    """The connection is stored and returned without its token; missing fields are 400s."""
    connection = await client.ingestions.connect_databricks(
        "dapi-secret-token", "adb-1.azuredatabricks.net", "/sql/1.0/warehouses/abc", verified=True
    )
    assert connection["type"] == "databricks"
    assert connection["data"]["verified"] is True
    assert "dapi-secret-token" not in json.dumps(connection)
    assert "dapi-secret-token" not in json.dumps([project.settings, project.audit_log])
    with pytest.raises(BadRequest) as info:
        await client.call("POST", "/ingestion/connection/databricks", {"token": "t", "host": "h"})
    assert info.value.errors == [{"property": "path", "errorMessage": "Required"}]
    assert _actions(project) == ["ingestion_connection_update"]


async def test_event_count_and_delta(client, project):
    """The ledgers cover every date, per Events source and event, deterministically."""
    await client.ingestions.create(EVENTS)
    await client.ingestions.create(METRICS)  # not an Events source: no rows
    counts = await client.ingestions.event_count("2024-02-01", "2024-02-03")
    assert [d["date"] for d in counts] == ["2024-02-01", "2024-02-02", "2024-02-03"]
    assert [e["event"] for e in counts[0]["events"]] == ["page_view", "click", "purchase"]
    assert all(e["count"] > 0 for d in counts for e in d["events"])
    assert {frozenset(e) for d in counts for e in d["events"]} == {
        frozenset({"event", "count", "last_updated_time"})
    }
    assert counts == await client.ingestions.event_count("2024-02-01", "2024-02-03")
    project.settings["ingestion_event_names"] = ["signup"]
    delta = await client.ingestions.event_delta("2024-02-01", "2024-02-01")
    (entry,) = delta[0]["events"]
    assert set(entry) == {
        "source",
        "event",
        "internal_count",
        "external_count",
        "has_diff",
        "threshold",
        "last_updated_time",
    }
    assert (entry["source"], entry["event"]) == ("web events", "signup")
    assert entry["has_diff"] == (
        abs(entry["external_count"] - entry["internal_count"])
        > entry["threshold"] * entry["external_count"]
    )
    one = await client.ingestions.event_count("2024-02-01", "2024-02-01", event_name="click")
    assert [e["event"] for e in one[0]["events"]] == ["click"]
    other = await client.ingestions.event_count("2024-02-01", "2024-02-01", source_name="missing")
    assert other == [{"date": "2024-02-01", "events": []}]
    with pytest.raises(BadRequest) as info:
        await client.ingestions.event_count("2024-02-30", "2024-03-01")
    assert info.value.errors == [{"property": "start_date", "errorMessage": DATE_ERROR}]
    with pytest.raises(BadRequest, match="Bad Request Exception"):
        await client.ingestions.event_delta("2020-01-01", "2024-01-01")


async def test_read_only_key_cannot_change_ingestions(make_client, project):
    """A read-only key reads the schedule but gets 403 on every ingestion mutation."""
    reader = make_client(EMPTY_READ_ONLY_KEY)
    assert (await reader.ingestions.get_schedule("Events"))["scheduled_hour_pst"] == 10
    with pytest.raises(Forbidden):
        await reader.ingestions.create(EVENTS)
    with pytest.raises(Forbidden):
        await reader.ingestions.backfill("bigquery-v2", "Events", "2024-01-01", "2024-01-01")
    with pytest.raises(Forbidden):
        await reader.ingestions.delete("bigquery-v2", "Events")
    assert project.audit_log == []


async def test_malformed_and_non_object_bodies(client):
    """A JSON body that is not an object, or no body at all, is a typed 400."""
    with pytest.raises(BadRequest) as info:
        await client.call("POST", "/ingestion/backfill", "2024-01-01")
    assert info.value.errors == [
        {"property": "body", "errorMessage": "Expected object, received string"}
    ]
    with pytest.raises(BadRequest) as info:
        await client.request("PATCH", "/ingestion", has_body=False)
    assert info.value.errors == [{"property": "body", "errorMessage": "Request body is required"}]
