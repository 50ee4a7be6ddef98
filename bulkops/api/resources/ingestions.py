"""Ingestions: the 13 operations of the spec's "Ingestions" group (``/ingestion``).

A source is addressed by ``type`` (``bigquery-v2``, ``snowflake-v2``, ``databricks``,
…), ``dataset`` (``Events``, ``Metrics``, ``export_exposures``, …) and an optional
``source_name``. Responses are returned as plain data: a source is
``{id, type, enabled, data: {dataset, source_name, query, column_mapping, …}}``.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Sequence
from typing import Any

from ._base import Body, Resource, dump, encode_id

__all__ = ["Ingestions"]


class Ingestions(Resource):
    """``/ingestion``: warehouse sources, backfills, runs, schedule and reports."""

    async def get(
        self, type: str, dataset: str, *, source_name: str | None = None
    ) -> dict[str, Any]:
        """``GET /ingestion``: one source (the name may be left out if only one matches)."""
        params = {"type": type, "dataset": dataset, "source_name": source_name}
        return dict(await self._client.data("GET", "/ingestion", params=params))

    async def create(self, body: Body) -> dict[str, Any]:
        """``POST /ingestion``: a new source.

        ``body`` holds ``type``, ``dataset``, ``source_name`` and optionally
        ``query``, ``column_mapping`` (its required keys depend on the dataset),
        ``use_delta_sharing``, ``share``, ``schema``, ``table``, ``enabled``.
        """
        return dict(await self._client.data("POST", "/ingestion", json=dump(body)))

    async def update(self, body: Body) -> dict[str, Any]:
        """``PATCH /ingestion``: change the source named by ``type``/``dataset``/``source_name``."""
        return dict(await self._client.data("PATCH", "/ingestion", json=dump(body)))

    async def delete(
        self, type: str, dataset: str, *, source_name: str | None = None
    ) -> dict[str, Any]:
        """``DELETE /ingestion``: remove a source; returns what was deleted."""
        params = {"type": type, "dataset": dataset, "source_name": source_name}
        return dict(await self._client.data("DELETE", "/ingestion", params=params) or {})

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
        body: dict[str, Any] = {
            "datestamp_start": start,
            "datestamp_end": end,
            "type": type,
            "dataset": dataset,
        }
        if sources is not None:
            body["source"] = sources if isinstance(sources, str) else list(sources)
        data = await self._client.data("POST", "/ingestion/backfill", json=body)
        return str(data["runID"])

    async def connect_databricks(
        self,
        token: str,
        host: str,
        path: str,
        *,
        delta_sharing_credentials: str | None = None,
        verified: bool | None = None,
    ) -> dict[str, Any]:
        """``POST /ingestion/connection/databricks``: set up the Databricks connection."""
        body: dict[str, Any] = {"token": token, "host": host, "path": path}
        if delta_sharing_credentials is not None:
            body["deltaSharingCredentials"] = delta_sharing_credentials
        if verified is not None:
            body["verified"] = verified
        path_ = "/ingestion/connection/databricks"
        return dict(await self._client.data("POST", path_, json=body))

    async def event_count(
        self,
        start_date: str,
        end_date: str,
        *,
        source_name: str | None = None,
        event_name: str | None = None,
    ) -> list[dict[str, Any]]:
        """``GET /ingestion/events/count``: ingested events per date."""
        params = {
            "start_date": start_date,
            "end_date": end_date,
            "source_name": source_name,
            "event_name": event_name,
        }
        return list(await self._client.data("GET", "/ingestion/events/count", params=params))

    async def event_delta(
        self,
        start_date: str,
        end_date: str,
        *,
        source_name: str | None = None,
        event_name: str | None = None,
    ) -> list[dict[str, Any]]:
        """``GET /ingestion/events/delta``: ingested vs warehouse counts per date."""
        params = {
            "start_date": start_date,
            "end_date": end_date,
            "source_name": source_name,
            "event_name": event_name,
        }
        return list(await self._client.data("GET", "/ingestion/events/delta", params=params))

    async def runs(self, *, limit: int | None = None) -> AsyncIterator[dict[str, Any]]:
        """Yield every ingestion run, newest first."""
        async for item in self._client.paginate("/ingestion/runs", limit=limit):
            yield item

    async def get_run(self, run_id: str) -> dict[str, Any]:
        """``GET /ingestion/runs/{id}``."""
        return dict(await self._client.data("GET", f"/ingestion/runs/{encode_id(run_id)}"))

    async def get_schedule(self, dataset: str) -> dict[str, Any]:
        """``GET /ingestion/schedule``: ``{dataset, scheduled_hour_pst}``."""
        params = {"dataset": dataset}
        return dict(await self._client.data("GET", "/ingestion/schedule", params=params))

    async def set_schedule(
        self, dataset: str, scheduled_hour_pst: float | None = None
    ) -> dict[str, Any]:
        """``POST /ingestion/schedule``: the daily import hour (PST; the server default is 10)."""
        body: dict[str, Any] = {"dataset": dataset}
        if scheduled_hour_pst is not None:
            body["scheduled_hour_pst"] = scheduled_hour_pst
        return dict(await self._client.data("POST", "/ingestion/schedule", json=body))

    async def status(
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
            "statuses": list(statuses) if statuses is not None else None,
        }
        async for item in self._client.paginate("/ingestion/status", params=params, limit=limit):
            yield item
