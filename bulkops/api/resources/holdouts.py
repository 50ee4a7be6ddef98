"""Holdouts: ``/holdouts``, their gate-style overrides and pulse results."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any, Unpack

from ..models import Holdout, Overrides
from ..paths import HOLDOUTS
from ._base import Body, Editable, Owned, WithOverrides, dump

__all__ = ["Holdouts"]


class Holdouts(Editable[Holdout], WithOverrides[Overrides]):
    """``/holdouts`` and their overrides.

    :meth:`create` (200) takes ``{name, description?, idType?, teamID?}`` only: targets,
    ``passPercentage`` (0–10), ``gateIDs``, ``experimentIDs`` and the rest are set
    afterwards with :meth:`patch`; a full :meth:`update` requires every targeting field.
    Adding an id to one override list takes it off the opposite one.
    """

    route = HOLDOUTS
    model = Holdout
    overrides_model = Overrides

    def _overrides_body(self, body: Body, method: str) -> dict[str, Any]:
        # One of the spec's two body variants: ``environmentOverrides``, or both user
        # lists (a removal names only what it removes).
        data = dump(body)
        if method != "DELETE" and "environmentOverrides" not in data:
            data.setdefault("passingUserIDs", [])
            data.setdefault("failingUserIDs", [])
        return data

    def list(self, *, limit: int | None = None, **filters: Unpack[Owned]) -> AsyncIterator[Holdout]:
        """Yield every holdout matching the filters."""
        return self._select(limit, filters)

    async def pulse_results(
        self, holdout_id: str, *, cuped: bool | None = None, confidence: str | None = None
    ) -> dict[str, Any]:
        """``GET /holdouts/{id}/pulse_results``: ``{ds, monitoringMetrics}``."""
        params = {"cuped": cuped, "confidence": confidence}
        return await self._dict("GET", self.path(holdout_id, "pulse_results"), params=params)
