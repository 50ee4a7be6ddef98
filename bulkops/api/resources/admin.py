"""Topline alerts (``/alerts``) and API keys (``/keys``).

A key is addressed by its value (the Key object has no other id), so the value
travels in the path of ``get``/``update``/``delete``/``deactivate``/``rotate``;
:class:`bulkops.models.Key` hides it from its repr.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Sequence
from typing import Any

from ..models import Key
from ._base import Body, Resource, dump, encode_id

__all__ = ["Alerts", "Keys"]


class Alerts(Resource):
    """``/alerts``: topline alerts (read-only in the API)."""

    async def list(
        self,
        *,
        creator_name: str | None = None,
        creator_id: str | None = None,
        tags: str | Sequence[str] | None = None,
        limit: int | None = None,
    ) -> AsyncIterator[dict[str, Any]]:
        """Yield every alert matching the filters (``tags``: any of them), page by page."""
        params = {"creatorName": creator_name, "creatorID": creator_id, "tags": tags}
        async for item in self._client.paginate("/alerts", params=params, limit=limit):
            yield item


class Keys(Resource):
    """``/keys``: server, client and console keys of the project."""

    def _path(self, key: str, *rest: str) -> str:
        return "/".join(["/keys", encode_id(key), *rest])

    async def list(
        self,
        *,
        primary_target_app: str | None = None,
        environment: str | None = None,
        limit: int | None = None,
    ) -> AsyncIterator[Key]:
        """Yield every key, optionally only those of one target app or environment."""
        params = {"primaryTargetApp": primary_target_app, "environment": environment}
        async for item in self._client.paginate("/keys", params=params, limit=limit):
            yield Key.model_validate(item)

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
        body: dict[str, Any] = {"type": type, "description": description}
        if scopes is not None:
            body["scopes"] = list(scopes)
        if environments is not None:
            body["environments"] = list(environments)
        if target_app_id is not None:
            body["targetAppID"] = target_app_id
        if secondary_target_app_ids is not None:
            body["secondaryTargetAppIDs"] = list(secondary_target_app_ids)
        return Key.model_validate(await self._client.data("POST", "/keys", json=body))

    async def get(self, key: str) -> Key:
        """Read one key by its value."""
        return Key.model_validate(await self._client.data("GET", self._path(key)))

    async def update(self, key: str, body: Body) -> Key:
        """``PATCH /keys/{id}``: change the key's settings.

        ``body`` may hold ``description``, ``scopes``, ``environments``,
        ``targetAppID`` and ``secondaryTargetAppIDs``.
        """
        return Key.model_validate(
            await self._client.data("PATCH", self._path(key), json=dump(body))
        )

    async def delete(self, key: str) -> None:
        """Delete a key; it stops working at once."""
        await self._client.request("DELETE", self._path(key))

    async def deactivate(self, key: str) -> Key:
        """``PATCH /keys/{id}/deactivate``: the key stays listed but no longer works."""
        return Key.model_validate(await self._client.data("PATCH", self._path(key, "deactivate")))

    async def rotate(self, key: str) -> Key:
        """``PATCH /keys/{id}/rotate``: the key with a new value; the old one stops working."""
        return Key.model_validate(await self._client.data("PATCH", self._path(key, "rotate")))
