"""Holdouts: ``/holdouts``, their gate-style overrides and pulse results."""

from __future__ import annotations

from collections.abc import AsyncIterator, Sequence
from typing import Any

from ..models import Holdout, Overrides
from ._base import Body, Resource, dump, encode_id

__all__ = ["Holdouts"]


def _overrides_body(body: Body) -> dict[str, Any]:
    """The body in one of the spec's two variants: ``environmentOverrides`` or the id lists."""
    data = dump(body)
    if "environmentOverrides" not in data:
        data.setdefault("passingUserIDs", [])
        data.setdefault("failingUserIDs", [])
    return data


class Holdouts(Resource):
    """``/holdouts`` and their overrides."""

    def _path(self, holdout_id: str, *rest: str) -> str:
        return "/".join(["/holdouts", encode_id(holdout_id), *rest])

    async def list(
        self,
        *,
        creator_name: str | None = None,
        creator_id: str | None = None,
        tags: str | Sequence[str] | None = None,
        limit: int | None = None,
    ) -> AsyncIterator[Holdout]:
        """Yield every holdout matching the filters."""
        params = {"creatorName": creator_name, "creatorID": creator_id, "tags": tags}
        async for item in self._client.paginate("/holdouts", params=params, limit=limit):
            yield Holdout.model_validate(item)

    async def create(self, body: Body) -> Holdout:
        """Create a holdout (200) from ``{name, description?, idType?, teamID?}`` only.

        Targets, ``passPercentage`` and the rest are set afterwards with :meth:`patch`.
        """
        return Holdout.model_validate(await self._client.data("POST", "/holdouts", json=dump(body)))

    async def get(self, holdout_id: str) -> Holdout:
        """Read one holdout."""
        return Holdout.model_validate(await self._client.data("GET", self._path(holdout_id)))

    async def update(self, holdout_id: str, body: Body) -> Holdout:
        """Full update (``POST /holdouts/{id}``): every targeting field is required."""
        data = await self._client.data("POST", self._path(holdout_id), json=dump(body))
        return Holdout.model_validate(data)

    async def patch(self, holdout_id: str, body: Body) -> Holdout:
        """Partial update: ``passPercentage`` (0–10), ``gateIDs``, ``experimentIDs``, …"""
        data = await self._client.data("PATCH", self._path(holdout_id), json=dump(body))
        return Holdout.model_validate(data)

    async def delete(self, holdout_id: str) -> None:
        """Delete a holdout."""
        await self._client.request("DELETE", self._path(holdout_id))

    async def pulse_results(
        self, holdout_id: str, *, cuped: bool | None = None, confidence: str | None = None
    ) -> dict[str, Any]:
        """``GET /holdouts/{id}/pulse_results``: ``{ds, monitoringMetrics}``."""
        params = {"cuped": cuped, "confidence": confidence}
        path = self._path(holdout_id, "pulse_results")
        return dict(await self._client.data("GET", path, params=params) or {})

    # -- overrides: POST replaces, PATCH adds, DELETE removes -------------------------------

    async def get_overrides(self, holdout_id: str) -> Overrides:
        """Read the holdout's overrides."""
        return Overrides.model_validate(
            await self._client.data("GET", self._path(holdout_id, "overrides"))
        )

    async def set_overrides(self, holdout_id: str, body: Body) -> Overrides:
        """Replace the holdout's overrides."""
        path = self._path(holdout_id, "overrides")
        return Overrides.model_validate(
            await self._client.data("POST", path, json=_overrides_body(body))
        )

    async def add_overrides(self, holdout_id: str, body: Body) -> Overrides:
        """Add ids to the holdout's overrides (an id leaves the opposite list)."""
        path = self._path(holdout_id, "overrides")
        return Overrides.model_validate(
            await self._client.data("PATCH", path, json=_overrides_body(body))
        )

    async def remove_overrides(self, holdout_id: str, body: Body | None = None) -> Overrides:
        """Remove the listed ids; with no ``body``, remove every override."""
        path = self._path(holdout_id, "overrides")
        if body is None:
            data = await self._client.data("DELETE", path)
        else:
            data = await self._client.data("DELETE", path, json=dump(body))
        return Overrides.model_validate(data)
