"""The generic base of every resource namespace, and its reusable pieces.

A namespace declares where its collection lives and what model its objects are, and
picks the pieces the API offers for it; only its genuinely special endpoints are
written out::

    class Gates(Editable[Gate], Switchable[Gate], Archivable[Gate], WithOverrides[Overrides]):
        route = GATES
        model = Gate

Reads come in two layers. The raw layer returns the wire JSON exactly as the API sent
it (:meth:`Listing.items`, :meth:`Node.fetch`, :meth:`Node.read`): jobs plan from it,
because a model round trip changes values (a rule's ``passPercentage`` 100 becomes
100.0) and builds objects a plan does not need. The typed methods (``list``, ``get``,
``create``, …) validate that same data into models.
"""

from __future__ import annotations

import builtins
from collections.abc import AsyncIterator, Mapping, Sequence
from typing import TYPE_CHECKING, Any, ClassVar, Generic, TypedDict, TypeVar

from pydantic import BaseModel

from .. import client as _client
from ..models import Rule, dump
from ..paths import Route

if TYPE_CHECKING:
    from ..client import ConsoleClient, Params, Query

__all__ = [
    "Archivable",
    "Body",
    "Collection",
    "Creatable",
    "Editable",
    "Listing",
    "Node",
    "Owned",
    "Resource",
    "Ruled",
    "Switchable",
    "Versioned",
    "WithAlerts",
    "WithOverrides",
    "compact",
    "dump",
    "strings",
    "validated",
    "wire",
]

Body = Any  # a pydantic model or a plain mapping; sent through ``dump``
T = TypeVar("T", bound=BaseModel)
M = TypeVar("M", bound=BaseModel)
OverridesT = TypeVar("OverridesT", bound=BaseModel)


def compact(**fields: Any) -> dict[str, Any]:
    """The fields that are not None, in the order given: a body of optional fields."""
    return {name: value for name, value in fields.items() if value is not None}


def strings(values: Sequence[str] | None) -> list[str] | None:
    """``values`` as a JSON list (None stays None, so :func:`compact` leaves it out)."""
    return None if values is None else builtins.list(values)


def wire(fields: Mapping[str, Any]) -> dict[str, Any]:
    """Keyword arguments as the API spells its parameters (``creator_id`` → ``creatorID``)."""
    out: dict[str, Any] = {}
    for name, value in fields.items():
        first, *rest = name.split("_")
        out[first + "".join("ID" if w == "id" else w.capitalize() for w in rest)] = value
    return out


class Owned(TypedDict, total=False):
    """List filters of objects with a creator and tags (``tags``: any of them)."""

    creator_name: str | None
    creator_id: str | None
    tags: str | Sequence[str] | None


async def validated(model: type[T], items: AsyncIterator[Any]) -> AsyncIterator[T]:
    """Each raw item as a ``model``."""
    async for item in items:
        yield model.model_validate(item)


class Resource:
    """A group of endpoints on one client."""

    def __init__(self, client: ConsoleClient) -> None:
        self._client = client

    def __repr__(self) -> str:
        return f"<{type(self).__name__}>"

    async def _call(
        self, method: str, path: str, json: Any = None, params: Params | None = None
    ) -> Any:
        """Send a request (a body only when ``json`` is not None); the envelope's data."""
        return await self._client.data(method, path, params=params, json=json)

    async def _model(
        self, model: type[T], method: str, path: str, json: Any = None, params: Params | None = None
    ) -> T:
        return model.model_validate(await self._call(method, path, json, params))

    async def _dict(
        self, method: str, path: str, json: Any = None, params: Params | None = None
    ) -> dict[str, Any]:
        return dict(await self._call(method, path, json, params) or {})

    def _pages(
        self, path: str, *, limit: int | None = None, params: Params | None = None
    ) -> AsyncIterator[dict[str, Any]]:
        return self._client.paginate(path, params=params, limit=limit)


class Node(Resource):
    """Endpoints under one :class:`~bulkops.api.paths.Route`, read as the API sends them."""

    route: ClassVar[Route]

    def path(self, *parts: str) -> str:
        """The path of the collection, or of an object and what lies under it (no I/O)."""
        return self.route.path(*parts)

    async def fetch(self, *parts: str) -> Any:
        """``GET`` :meth:`path` (``fetch(id)``, ``fetch(id, "overrides")``): the data as sent.

        Raises:
            NotFound: there is no such object.
        """
        return await self._call("GET", self.path(*parts))

    async def read(self, *parts: str) -> Any:
        """What ``GET`` :meth:`path` shows, None for a 404 (a paged list is read whole).

        The read a plan and a reconcile observe an object with
        (:func:`~bulkops.api.client.read_object`).
        """
        return await _client.read_object(self._client, self.path(*parts))


class Listing(Node, Generic[M]):
    """A paginated collection of ``model`` objects."""

    model: type[M]

    def items(self, *, limit: int | None = None, **filters: Query) -> AsyncIterator[dict[str, Any]]:
        """Yield every object as the API sent it, page by page.

        ``filters`` are the API's own query parameters (``includeArchived=True``,
        ``tags=["a", "b"]``); None values are left out.
        """
        return self._pages(self.path(), params=filters, limit=limit)

    def list(self, *, limit: int | None = None) -> AsyncIterator[M]:
        """Yield every object, page by page."""
        return self._select(limit, {})

    def _select(self, limit: int | None, filters: Mapping[str, Any]) -> AsyncIterator[M]:
        """The typed listing: ``filters`` are keyword arguments, sent as :func:`wire` names."""
        return validated(self.model, self.items(limit=limit, **wire(filters)))


class Collection(Listing[M]):
    """A collection whose objects are addressed by id: read and delete one."""

    async def get(self, object_id: str) -> M:
        """Read one object."""
        return self.model.model_validate(await self.fetch(object_id))

    async def delete(self, object_id: str) -> None:
        """Delete one object."""
        await self._call("DELETE", self.path(object_id))

    async def _put(self, object_id: str, action: str, body: Any = None) -> M:
        """``PUT {id}/{action}`` (a state change); the object as it is now."""
        return await self._model(self.model, "PUT", self.path(object_id, action), body)


class Creatable(Collection[M]):
    """A collection that creates objects from a body."""

    async def create(self, body: Body) -> M:
        """Create an object (an ``id`` in the body keeps an explicit id where the API allows)."""
        return await self._model(self.model, "POST", self.path(), dump(body))


class Editable(Creatable[M]):
    """A collection with full (``POST``) and partial (``PATCH``) updates."""

    async def update(self, object_id: str, body: Body) -> M:
        """Full update (``POST {id}``): the fields the API requires, each given one replaced."""
        return await self._model(self.model, "POST", self.path(object_id), dump(body))

    async def patch(self, object_id: str, body: Body) -> M:
        """Partial update (``PATCH {id}``): only the given fields change."""
        return await self._model(self.model, "PATCH", self.path(object_id), dump(body))


class Switchable(Collection[M]):
    """``PUT {id}/enable`` and ``PUT {id}/disable``."""

    async def enable(self, object_id: str) -> M:
        """``PUT {id}/enable``."""
        return await self._put(object_id, "enable")

    async def disable(self, object_id: str) -> M:
        """``PUT {id}/disable``: the object serves its default (a gate fails for everyone)."""
        return await self._put(object_id, "disable")


class Archivable(Collection[M]):
    """``PUT {id}/archive`` and ``PUT {id}/unarchive``, each with an optional reason."""

    async def archive(
        self, object_id: str, *, reason: str | None = None, force: bool | None = None
    ) -> M:
        """``PUT {id}/archive`` with an optional ``archiveReason`` (``force``: even if referenced)."""
        return await self._put(
            object_id, "archive", compact(archiveReason=reason, forceArchive=force)
        )

    async def unarchive(self, object_id: str, *, reason: str | None = None) -> M:
        """``PUT {id}/unarchive``."""
        return await self._put(object_id, "unarchive", compact(unarchiveReason=reason))


class Versioned(Collection[M]):
    """``GET {id}/versions``."""

    def versions(self, object_id: str, *, limit: int | None = None) -> AsyncIterator[M]:
        """Yield the object's historic versions, newest first."""
        return validated(self.model, self._pages(self.path(object_id, "versions"), limit=limit))


class Ruled(Collection[M]):
    """An object's rules: read them all, add one, change or delete one by id or base id.

    ``rule_path`` is the segment one rule is addressed under (gates ``rules``, dynamic
    configs ``rule``).
    """

    rule_path: ClassVar[str] = "rules"

    async def get_rules(self, object_id: str) -> builtins.list[Rule]:
        """Read the rules (accepts both the ``{rules}`` and ``[{rules}]`` shapes)."""
        data = await self.fetch(object_id, "rules")
        if isinstance(data, builtins.list):
            data = data[0] if data else {"rules": []}
        return [Rule.model_validate(r) for r in (data or {}).get("rules", [])]

    async def add_rule(self, object_id: str, rule: Body) -> M:
        """``POST {id}/rule``: append one rule."""
        return await self._model(self.model, "POST", self.path(object_id, "rule"), dump(rule))

    async def update_rule(self, object_id: str, rule_id: str, body: Body) -> M:
        """``PATCH {id}/{rule_path}/{ruleID}``: change the given fields of one rule."""
        path = self.path(object_id, self.rule_path, rule_id)
        return await self._model(self.model, "PATCH", path, dump(body))

    async def delete_rule(self, object_id: str, rule_id: str) -> M:
        """``DELETE {id}/{rule_path}/{ruleID}``."""
        return await self._model(
            self.model, "DELETE", self.path(object_id, self.rule_path, rule_id)
        )


class WithOverrides(Node, Generic[OverridesT]):
    """``{id}/overrides``: ``GET`` reads, ``POST`` replaces, ``PATCH`` adds, ``DELETE`` removes.

    ``overrides_lists`` are the lists every body carries (empty when not given): the
    API's body schemas require them.
    """

    overrides_model: type[OverridesT]
    overrides_lists: ClassVar[tuple[str, ...]] = ()

    def _overrides_body(self, body: Body, method: str) -> dict[str, Any]:
        data = dump(body)
        for name in self.overrides_lists:
            data.setdefault(name, [])
        return data

    async def _overrides(self, method: str, object_id: str, body: Body | None) -> OverridesT:
        json = None if body is None else self._overrides_body(body, method)
        path = self.path(object_id, "overrides")
        return await self._model(self.overrides_model, method, path, json)

    async def get_overrides(self, object_id: str) -> OverridesT:
        """Read the overrides."""
        return await self._overrides("GET", object_id, None)

    async def set_overrides(self, object_id: str, body: Body) -> OverridesT:
        """Replace the overrides with ``body``."""
        return await self._overrides("POST", object_id, body)

    async def add_overrides(self, object_id: str, body: Body) -> OverridesT:
        """Add the overrides in ``body`` (an entry for the same target is extended)."""
        return await self._overrides("PATCH", object_id, body)

    async def remove_overrides(self, object_id: str, body: Body | None = None) -> OverridesT:
        """Remove the listed overrides and ids; with no ``body``, every override."""
        return await self._overrides("DELETE", object_id, body)


class WithAlerts(Node):
    """``POST {id}/alerts/{metricId}/resolve``."""

    async def resolve_alert(
        self, object_id: str, metric_id: str, *, reasoning: str | None = None
    ) -> dict[str, Any]:
        """Resolve the alert on one metric: ``{resolvedAt}``."""
        path = self.path(object_id, "alerts", metric_id, "resolve")
        return await self._dict("POST", path, compact(reasoning=reasoning))
