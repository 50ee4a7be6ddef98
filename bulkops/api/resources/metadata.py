"""Project metadata: tags, target apps, unit id types, environments, project, audit logs.

Configs reference tags and target apps by name, so a copy creates these first
(see the copy order in the Console API notes).
"""

from __future__ import annotations

import datetime as dt
from collections.abc import AsyncIterator, Sequence
from typing import Any, TypedDict, Unpack

from ..models import AuditLogEntry, Environment, Tag, TargetApp, UnitIdType
from ..paths import TAGS, TARGET_APPS, UNIT_ID_TYPES, Route
from ._base import Body, Collection, Listing, Node, compact, dump, strings, wire

__all__ = [
    "Assignment",
    "AuditLogFilters",
    "AuditLogs",
    "Environments",
    "ProjectInfo",
    "TagFields",
    "Tags",
    "TargetApps",
    "UnitIdTypes",
]


class TagFields(TypedDict, total=False):
    """What a tag update may change."""

    name: str | None
    description: str | None
    is_core: bool | None


class Tags(Collection[Tag]):
    """``/tags`` (:meth:`get` takes the id; the emulator also accepts the name)."""

    route = TAGS
    model = Tag

    async def create(self, name: str, description: str, *, is_core: bool | None = None) -> Tag:
        """Create a tag (200 "Tag created successfully").

        Raises:
            BadRequest: the name is already in use, or the body is invalid.
        """
        body = {"name": name, "description": description, **compact(isCore=is_core)}
        return await self._model(Tag, "POST", self.path(), body)

    async def update(self, tag_id: str, **fields: Unpack[TagFields]) -> Tag:
        """``PATCH /tags/{id}``: change only the given fields (``name``, ``description``,
        ``is_core``)."""
        return await self._model(Tag, "PATCH", self.path(tag_id), compact(**wire(fields)))


class Assignment(TypedDict, total=False):
    """Configs a target app is assigned to, by id."""

    gates: Sequence[str] | None
    dynamic_configs: Sequence[str] | None
    experiments: Sequence[str] | None


class TargetApps(Collection[TargetApp]):
    """``/target_app``: the apps (and SDKs) configs are evaluated in.

    Configs name their target apps; :meth:`create` and :meth:`assign` also assign apps to
    configs in bulk (:class:`Assignment`).
    """

    route = TARGET_APPS
    model = TargetApp

    async def create(self, name: str, description: str, **configs: Unpack[Assignment]) -> TargetApp:
        """Create a target app, optionally assigning it to configs at once.

        Raises:
            BadRequest: the name is already in use.
            NotFound: a listed gate, dynamic config or experiment does not exist.
        """
        body = {"name": name, "description": description, **_assignment(configs)}
        return await self._model(TargetApp, "POST", self.path(), body)

    async def assign(self, target_apps: Sequence[str], **configs: Unpack[Assignment]) -> None:
        """``PATCH /target_app``: add the target apps (ids) to the listed configs.

        Raises:
            NotFound: an unknown target app or config id.
        """
        body = {"targetApps": strings(target_apps), **_assignment(configs)}
        await self._call("PATCH", self.path(), body)

    async def update(
        self, app_id: str, *, name: str | None = None, description: str | None = None
    ) -> None:
        """``PATCH /target_app/{id}``: rename or re-describe (the response has no data)."""
        await self._call("PATCH", self.path(app_id), compact(name=name, description=description))


def _assignment(configs: Assignment) -> dict[str, Any]:
    return compact(**{name: strings(ids) for name, ids in wire(configs).items()})


class UnitIdTypes(Collection[UnitIdType]):
    """``/unit_id_types`` (custom unit id types; ``{id}`` is the name).

    Listing leaves out the built-in ``userID``/``stableID``; an unknown name is a 400,
    not a 404 (the service reports every error as 400).
    """

    route = UNIT_ID_TYPES
    model = UnitIdType

    async def create(self, name: str, description: str | None = None) -> UnitIdType:
        """Create a unit id type (201).

        Raises:
            BadRequest: the name is taken.
        """
        body = {"name": name, **compact(description=description)}
        return await self._model(UnitIdType, "POST", self.path(), body)

    async def update(self, name: str, description: str) -> UnitIdType:
        """``PATCH /unit_id_types/{id}``: set the description."""
        return await self._model(UnitIdType, "PATCH", self.path(name), {"description": description})


class Environments(Node):
    """``/environments`` (:meth:`fetch` reads them as sent: ``{environments: […]}``)."""

    route = Route("/environments")

    async def get(self) -> list[Environment]:
        """The project's environments, in order."""
        return _environments(await self.fetch())

    async def names(self) -> list[str]:
        """The environments' names as the API sent them, in order."""
        data = await self.fetch()
        envs = data.get("environments") if isinstance(data, dict) else None
        return [str(e["name"]) for e in envs or () if isinstance(e, dict) and e.get("name")]

    async def update(self, environments: Sequence[Body]) -> list[Environment]:
        """``POST /environments``: the given list **replaces** the project's environments.

        Each item needs ``name``, ``isProduction``, ``requiresReview`` and
        ``requiresReleasePipeline``; an ``id`` keeps an existing environment, none
        creates one. Returns the environments as stored.
        """
        body = {"environments": [dump(e) for e in environments]}
        return _environments(await self._call("POST", self.path(), body))


def _environments(data: Any) -> list[Environment]:
    return [Environment.model_validate(e) for e in (data or {}).get("environments", [])]


class ProjectInfo(Node):
    """``/project`` and ``/settings/project``."""

    route = Route("/project")
    _settings = Route("/settings/project")

    async def get(self) -> dict[str, Any]:
        """``GET /project``: ``{"id": <project id>}`` of the key's project."""
        return dict(await self.fetch() or {})

    async def settings(self) -> dict[str, Any]:
        """``GET /settings/project``: ``{name, visibility, default_unit_type?}``."""
        return await self._dict("GET", self._settings.path())

    async def update_settings(
        self, name: str, visibility: str, *, default_unit_type: str | None = None
    ) -> dict[str, Any]:
        """``POST /settings/project``: set the name and visibility (``OPEN``/``CLOSED``/``EXTERNAL``).

        Omitting ``default_unit_type`` clears it (the body replaces the settings).
        """
        body = {"name": name, "visibility": visibility}
        return await self._dict(
            "POST", self._settings.path(), body | compact(default_unit_type=default_unit_type)
        )


class AuditLogFilters(TypedDict, total=False):
    """List filters of the audit log (see :meth:`AuditLogs.list`)."""

    id: str | None
    action_type: str | None
    action_types: Sequence[str] | None
    tags: str | Sequence[str] | None
    start_date: dt.date | str | None
    end_date: dt.date | str | None
    sort_key: str | None
    sort_order: str | None
    latest_id: str | None


class AuditLogs(Listing[AuditLogEntry]):
    """``/audit_logs``: who changed what, and when (read-only).

    An entry names the object (``id``, ``name``), the action (``actionType``, e.g.
    ``gate_create``) and the change; listing filters are :class:`AuditLogFilters`.
    """

    route = Route("/audit_logs")
    model = AuditLogEntry

    def list(
        self, *, limit: int | None = None, **filters: Unpack[AuditLogFilters]
    ) -> AsyncIterator[AuditLogEntry]:
        """Yield audit-log entries (newest first unless ``sort_order="asc"``).

        Filters (:class:`AuditLogFilters`): ``id`` (entries about this object id),
        ``action_type`` / ``action_types`` (``gate_create``, ``ID_list_update``, …),
        ``tags`` (the object carries one), ``start_date`` / ``end_date`` (UTC days,
        inclusive; a date or ``YYYY-MM-DD``), ``sort_key`` (``id``, ``name``,
        ``changeLog``, ``actionType``, ``date``, ``time``, ``updatedBy`` or
        ``updatedByUserID``), ``sort_order`` (``asc``/``desc``) and ``latest_id``
        (ignore newer entries: stable paging while others write).
        """
        days: dict[str, Any] = {
            k: _day(filters.get(k)) for k in ("start_date", "end_date") if k in filters
        }
        return self._select(limit, {**filters, **days})


def _day(value: dt.date | str | None) -> str | None:
    if isinstance(value, dt.datetime):
        value = value.date()
    if isinstance(value, dt.date):
        return value.isoformat()
    return value
