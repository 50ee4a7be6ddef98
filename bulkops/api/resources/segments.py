"""Segments: all 13 operations of the spec's Segments group.

Two families of id-list endpoints exist, each for one segment type:

* ``id_list`` segments: :meth:`Segments.add_ids` (``PATCH …/id_list``, ≤100,000 ids),
  :meth:`Segments.remove_ids` (``DELETE …/id_list`` with an ``{ids}`` body, which the
  service requires although the spec omits it) and :meth:`Segments.reset_id_list`
  (``POST …/id_list/reset``, not atomic above 1,000 ids).
* ``user_store_id_list`` segments: :meth:`Segments.add_user_store_ids` /
  :meth:`Segments.remove_user_store_ids` (``PATCH …/add_ids`` / ``…/remove_ids``,
  ≤1,000 ids, optional ``version`` from :meth:`Segments.id_list_metadata`).

Calling one on a segment of another type raises :class:`~bulkops.errors.BadRequest`
("Segment must be of type 'id_list' to be modified on this endpoint").
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Sequence
from typing import Any

from ..models import Segment
from ._base import Body, Resource, dump, encode_id

__all__ = ["MAX_ID_LIST_IDS", "MAX_USER_STORE_IDS", "Segments"]

MAX_ID_LIST_IDS = 100_000
"""Most ids one ``PATCH``/``DELETE …/id_list`` or reset request may carry."""
MAX_USER_STORE_IDS = 1000
"""Most ids one ``add_ids``/``remove_ids`` request may carry."""


class Segments(Resource):
    """``/segments``: metadata, rules, id lists."""

    def _path(self, segment_id: str, *rest: str) -> str:
        return "/".join(["/segments", encode_id(segment_id), *rest])

    async def list(self, *, limit: int | None = None) -> AsyncIterator[Segment]:
        """Yield every segment, page by page."""
        async for item in self._client.paginate("/segments", limit=limit):
            yield Segment.model_validate(item)

    async def create(self, body: Body) -> Segment:
        """Create a segment (201).

        Args:
            body: ``name`` and ``type`` (``id_list``, ``rule_based``, ``analysis_list`` or
                ``user_store_id_list``) are required; ``id`` keeps an explicit id, ``rules``
                is accepted for ``rule_based`` segments only.

        Raises:
            BadRequest: invalid body, or the id or name is already in use.
        """
        data = await self._client.data("POST", "/segments", json=dump(body))
        return Segment.model_validate(data)

    async def get(self, segment_id: str) -> Segment:
        """Read one segment."""
        return Segment.model_validate(await self._client.data("GET", self._path(segment_id)))

    async def delete(self, segment_id: str) -> None:
        """Delete a segment (and its id list)."""
        await self._client.request("DELETE", self._path(segment_id))

    async def archive(self, segment_id: str) -> Segment:
        """``PUT /segments/{id}/archive``."""
        data = await self._client.data("PUT", self._path(segment_id, "archive"))
        return Segment.model_validate(data)

    async def set_rules(self, segment_id: str, rules: Sequence[Body]) -> Segment:
        """``POST /segments/{id}/conditional``: replace a ``rule_based`` segment's rules.

        The body is a top-level JSON array of rules. Rules carrying the ``id`` or
        ``baseID`` of an existing rule keep its ``baseID``.
        """
        body = [dump(r) for r in rules]
        data = await self._client.data("POST", self._path(segment_id, "conditional"), json=body)
        return Segment.model_validate(data)

    # -- id_list segments -----------------------------------------------------------------

    async def get_id_list(self, segment_id: str, *, limit: int | None = None) -> AsyncIterator[str]:
        """Yield every id of an ``id_list`` or ``user_store_id_list`` segment, in order."""
        async for page in self._client.paginate(self._path(segment_id, "id_list"), limit=limit):
            for value in page.get("ids") or ():
                yield str(value)

    async def add_ids(self, segment_id: str, ids: Sequence[str]) -> None:
        """``PATCH /segments/{id}/id_list``: add ids to an ``id_list`` segment (≤100,000)."""
        await self._client.request(
            "PATCH", self._path(segment_id, "id_list"), json={"ids": list(ids)}
        )

    async def remove_ids(self, segment_id: str, ids: Sequence[str]) -> None:
        """``DELETE /segments/{id}/id_list`` with ``{ids}``: remove ids from an ``id_list`` segment."""
        await self._client.request(
            "DELETE", self._path(segment_id, "id_list"), json={"ids": list(ids)}
        )

    async def reset_id_list(self, segment_id: str, ids: Sequence[str]) -> None:
        """``POST /segments/{id}/id_list/reset``: the id list becomes exactly ``ids``."""
        await self._client.request(
            "POST", self._path(segment_id, "id_list", "reset"), json={"ids": list(ids)}
        )

    async def id_list_metadata(self, segment_id: str) -> dict[str, Any]:
        """``GET /segments/{id}/idlist_metadata``: ``{currentVersion, isUpdating}``."""
        data = await self._client.data("GET", self._path(segment_id, "idlist_metadata"))
        return dict(data or {})

    # -- user_store_id_list segments -------------------------------------------------------

    async def add_user_store_ids(
        self, segment_id: str, ids: Sequence[str], *, version: int | None = None
    ) -> None:
        """``PATCH /segments/{id}/add_ids`` (≤1,000 ids; ``version`` must be current if given)."""
        await self._client.request(
            "PATCH", self._path(segment_id, "add_ids"), json=_user_store_body(ids, version)
        )

    async def remove_user_store_ids(
        self, segment_id: str, ids: Sequence[str], *, version: int | None = None
    ) -> None:
        """``PATCH /segments/{id}/remove_ids`` (≤1,000 ids; ``version`` must be current if given)."""
        await self._client.request(
            "PATCH", self._path(segment_id, "remove_ids"), json=_user_store_body(ids, version)
        )


def _user_store_body(ids: Sequence[str], version: int | None) -> dict[str, Any]:
    body: dict[str, Any] = {"ids": list(ids)}
    if version is not None:
        body["version"] = version
    return body
