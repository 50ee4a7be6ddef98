"""Ingestions: the 13 operations of the spec's "Ingestions" group (``/ingestion``).

A source is addressed by ``type`` (``bigquery-v2``, ``snowflake-v2``, ``databricks``,
…), ``dataset`` (``Events``, ``Metrics``, ``export_exposures``, …) and an optional
``source_name``. Responses are returned as plain data: a source is
``{id, type, enabled, data: {dataset, source_name, query, column_mapping, …}}``.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Sequence
from typing import Any, TypedDict, Unpack

from ..paths import Route
from ._base import Body, Node, compact, dump, strings, wire

__all__ = ["DatabricksOptions", "EventFilters", "Ingestions"]


class EventFilters(TypedDict, total=False):
    """Filters of the ingested-event reports (snake_case on the wire, as here)."""

    source_name: str | None
    event_name: str | None


class DatabricksOptions(TypedDict, total=False):
    """Optional settings of a Databricks connection."""

    delta_sharing_credentials: str | None
    verified: bool | None


class Ingestions(Node):
    """``/ingestion``: warehouse sources, backfills, runs, schedule and reports."""

    route = Route("/ingestion")

    async def get(
        self, type: str, dataset: str, *, source_name: str | None = None
    ) -> dict[str, Any]:
        """``GET /ingestion``: one source (the name may be left out if only one matches)."""
        params = {"type": type, "dataset": dataset, "source_name": source_name}
        return await self._dict("GET", self.path(), params=params)

    async def create(self, body: Body) -> dict[str, Any]:
        """``POST /ingestion``: a new source.

        ``body`` holds ``type``, ``dataset``, ``source_name`` and optionally
        ``query``, ``column_mapping`` (its required keys depend on the dataset),
        ``use_delta_sharing``, ``share``, ``schema``, ``table``, ``enabled``.
        """
        return await self._dict("POST", self.path(), dump(body))

    async def update(self, body: Body) -> dict[str, Any]:
        """``PATCH /ingestion``: change the source named by ``type``/``dataset``/``source_name``."""
        return await self._dict("PATCH", self.path(), dump(body))

    async def delete(
        self, type: str, dataset: str, *, source_name: str | None = None
    ) -> dict[str, Any]:
        """``DELETE /ingestion``: remove a source; returns what was deleted."""
        params = {"type": type, "dataset": dataset, "source_name": source_name}
        return await self._dict("DELETE", self.path(), params=params)

    async def backfill(
        self,
        type: str,
        dataset: str,
        start: str,
        end: str,
        *,
        sources: str | Sequence[str] | None = None,
    ) -> str:
        """``POST /ingestion/backfill`` for dates ``start``..``end`` (``YYYY-MM-DD``).

        Returns:
            The ``runID`` of the enqueued run (see :meth:`get_run`).
        """
        source = sources if isinstance(sources, str) else strings(sources)
        body = {"datestamp_start": start, "datestamp_end": end, "type": type, "dataset": dataset}
        data = await self._call("POST", self.path("backfill"), body | compact(source=source))
        return str(data["runID"])

    async def connect_databricks(
        self, token: str, host: str, path: str, **options: Unpack[DatabricksOptions]
    ) -> dict[str, Any]:
        """``POST /ingestion/connection/databricks``: set up the Databricks connection."""
        body = {"token": token, "host": host, "path": path} | compact(**wire(options))
        return await self._dict("POST", self.path("connection", "databricks"), body)

    async def event_count(
        self, start_date: str, end_date: str, **filters: Unpack[EventFilters]
    ) -> list[dict[str, Any]]:
        """``GET /ingestion/events/count``: ingested events per date."""
        return await self._events("count", start_date, end_date, filters)

    async def event_delta(
        self, start_date: str, end_date: str, **filters: Unpack[EventFilters]
    ) -> list[dict[str, Any]]:
        """``GET /ingestion/events/delta``: ingested vs warehouse counts per date."""
        return await self._events("delta", start_date, end_date, filters)

    async def _events(
        self, report: str, start: str, end: str, filters: EventFilters
    ) -> list[dict[str, Any]]:
        params: dict[str, Any] = {"start_date": start, "end_date": end, **filters}
        return list(await self._call("GET", self.path("events", report), params=params) or [])

    def runs(self, *, limit: int | None = None) -> AsyncIterator[dict[str, Any]]:
        """Yield every ingestion run, newest first."""
        return self._pages(self.path("runs"), limit=limit)

    async def get_run(self, run_id: str) -> dict[str, Any]:
        """``GET /ingestion/runs/{id}``."""
        return dict(await self.fetch("runs", run_id) or {})

    async def get_schedule(self, dataset: str) -> dict[str, Any]:
        """``GET /ingestion/schedule``: ``{dataset, scheduled_hour_pst}``."""
        return await self._dict("GET", self.path("schedule"), params={"dataset": dataset})

    async def set_schedule(
        self, dataset: str, scheduled_hour_pst: float | None = None
    ) -> dict[str, Any]:
        """``POST /ingestion/schedule``: the daily import hour (PST; the server default is 10)."""
        body = {"dataset": dataset, **compact(scheduled_hour_pst=scheduled_hour_pst)}
        return await self._dict("POST", self.path("schedule"), body)

    def status(
        self,
        start_date: str,
        end_date: str,
        *,
        source: str | None = None,
        dataset: str | None = None,
        status: str | None = None,
        statuses: Sequence[str] | None = None,
        limit: int | None = None,
    ) -> AsyncIterator[dict[str, Any]]:
        """Yield the per-(source, date) import statuses between two ``YYYY-MM-DD`` dates."""
        params = {
            "startDate": start_date,
            "endDate": end_date,
            "source": source,
            "dataset": dataset,
            "status": status,
            "statuses": strings(statuses),
        }
        return self._pages(self.path("status"), params=params, limit=limit)
