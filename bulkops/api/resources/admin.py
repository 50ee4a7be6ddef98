"""Topline alerts (``/alerts``) and API keys (``/keys``).

A key is addressed by its value (the Key object has no other id), so the value
travels in the path of ``get``/``update``/``delete``/``deactivate``/``rotate``;
:class:`bulkops.api.models.Key` hides it from its repr.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Sequence
from typing import Any, TypedDict, Unpack

from ..models import Key
from ..paths import Route
from ._base import Body, Collection, Node, Owned, compact, dump, strings, wire

__all__ = ["Alerts", "KeyFilters", "Keys"]


class Alerts(Node):
    """``/alerts``: topline alerts (read-only in the API; items are plain data)."""

    route = Route("/alerts")

    def list(
        self, *, limit: int | None = None, **filters: Unpack[Owned]
    ) -> AsyncIterator[dict[str, Any]]:
        """Yield every alert matching the filters, page by page."""
        return self._pages(self.path(), params=wire(filters), limit=limit)


class KeyFilters(TypedDict, total=False):
    """List filters of keys."""

    primary_target_app: str | None
    environment: str | None


class Keys(Collection[Key]):
    """``/keys``: server, client and console keys of the project."""

    route = Route("/keys")
    model = Key

    def list(
        self, *, limit: int | None = None, **filters: Unpack[KeyFilters]
    ) -> AsyncIterator[Key]:
        """Yield every key, optionally only those of one target app or environment."""
        return self._select(limit, filters)

    async def create(
        self,
        type: str,
        description: str,
        *,
        scopes: Sequence[str] | None = None,
        environments: Sequence[str] | None = None,
        target_app_id: str | None = None,
        secondary_target_app_ids: Sequence[str] | None = None,
    ) -> Key:
        """``POST /keys``: a new ``SERVER``/``CLIENT``/``CONSOLE``/``SCIM``/``ORG`` key.

        A ``CONSOLE`` key with scope ``omni_read_write`` may write through this API;
        with ``omni_read_only`` it may only read. The returned model holds the value.
        """
        body = {"type": type, "description": description} | compact(
            scopes=strings(scopes),
            environments=strings(environments),
            targetAppID=target_app_id,
            secondaryTargetAppIDs=strings(secondary_target_app_ids),
        )
        return await self._model(Key, "POST", self.path(), body)

    async def update(self, key: str, body: Body) -> Key:
        """``PATCH /keys/{id}``: change the key's settings.

        ``body`` may hold ``description``, ``scopes``, ``environments``,
        ``targetAppID`` and ``secondaryTargetAppIDs``.
        """
        return await self._model(Key, "PATCH", self.path(key), dump(body))

    async def deactivate(self, key: str) -> Key:
        """``PATCH /keys/{id}/deactivate``: the key stays listed but no longer works."""
        return await self._model(Key, "PATCH", self.path(key, "deactivate"))

    async def rotate(self, key: str) -> Key:
        """``PATCH /keys/{id}/rotate``: the key with a new value; the old one stops working."""
        return await self._model(Key, "PATCH", self.path(key, "rotate"))
