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
from ..paths import SEGMENTS
from ._base import Body, Creatable, dump

__all__ = ["MAX_ID_LIST_IDS", "MAX_USER_STORE_IDS", "Segments"]

MAX_ID_LIST_IDS = 100_000
"""Most ids one ``PATCH``/``DELETE …/id_list`` or reset request may carry."""
MAX_USER_STORE_IDS = 1000
"""Most ids one ``add_ids``/``remove_ids`` request may carry."""


class Segments(Creatable[Segment]):
    """``/segments``: metadata, rules, id lists.

    :meth:`create` takes ``name`` and ``type`` (``id_list``, ``rule_based``,
    ``analysis_list`` or ``user_store_id_list``); ``rules`` only for ``rule_based``.
    """

    route = SEGMENTS
    model = Segment

    async def archive(self, segment_id: str) -> Segment:
        """``PUT /segments/{id}/archive``."""
        return await self._put(segment_id, "archive")

    async def set_rules(self, segment_id: str, rules: Sequence[Body]) -> Segment:
        """``POST /segments/{id}/conditional``: replace a ``rule_based`` segment's rules.

        The body is a top-level JSON array of rules. Rules carrying the ``id`` or
        ``baseID`` of an existing rule keep its ``baseID``.
        """
        body = [dump(r) for r in rules]
        return await self._model(Segment, "POST", self.path(segment_id, "conditional"), body)

    # -- id_list segments -----------------------------------------------------------------

    async def get_id_list(self, segment_id: str, *, limit: int | None = None) -> AsyncIterator[str]:
        """Yield every id of an ``id_list`` or ``user_store_id_list`` segment, in order."""
        async for page in self._pages(self.path(segment_id, "id_list"), limit=limit):
            for value in page.get("ids") or ():
                yield str(value)

    async def add_ids(self, segment_id: str, ids: Sequence[str]) -> None:
        """``PATCH /segments/{id}/id_list``: add ids to an ``id_list`` segment (≤100,000)."""
        await self._ids("PATCH", segment_id, ids, "id_list")

    async def remove_ids(self, segment_id: str, ids: Sequence[str]) -> None:
        """``DELETE /segments/{id}/id_list`` with ``{ids}``: remove ids from an ``id_list`` segment."""
        await self._ids("DELETE", segment_id, ids, "id_list")

    async def reset_id_list(self, segment_id: str, ids: Sequence[str]) -> None:
        """``POST /segments/{id}/id_list/reset``: the id list becomes exactly ``ids``."""
        await self._ids("POST", segment_id, ids, "id_list", "reset")

    async def id_list_metadata(self, segment_id: str) -> dict[str, Any]:
        """``GET /segments/{id}/idlist_metadata``: ``{currentVersion, isUpdating}``."""
        return dict(await self.fetch(segment_id, "idlist_metadata") or {})

    # -- user_store_id_list segments -------------------------------------------------------

    async def add_user_store_ids(
        self, segment_id: str, ids: Sequence[str], *, version: int | None = None
    ) -> None:
        """``PATCH /segments/{id}/add_ids`` (≤1,000 ids; ``version`` must be current if given)."""
        await self._ids("PATCH", segment_id, ids, "add_ids", version=version)

    async def remove_user_store_ids(
        self, segment_id: str, ids: Sequence[str], *, version: int | None = None
    ) -> None:
        """``PATCH /segments/{id}/remove_ids`` (≤1,000 ids; ``version`` must be current if given)."""
        await self._ids("PATCH", segment_id, ids, "remove_ids", version=version)

    async def _ids(
        self,
        method: str,
        segment_id: str,
        ids: Sequence[str],
        *under: str,
        version: int | None = None,
    ) -> None:
        body: dict[str, Any] = {"ids": list(ids)}
        if version is not None:
            body["version"] = version
        await self._call(method, self.path(segment_id, *under), body)
