"""Project metadata: tags, target apps, unit id types, environments, project, audit logs.

Configs reference tags and target apps by name, so a copy creates these first
(see the copy order in the Console API notes).
"""

from __future__ import annotations

import builtins
import datetime as dt
from collections.abc import AsyncIterator, Sequence
from typing import Any

from ..models import AuditLogEntry, Environment, Tag, TargetApp, UnitIdType
from ._base import Body, Resource, dump, encode_id

__all__ = ["AuditLogs", "Environments", "ProjectInfo", "Tags", "TargetApps", "UnitIdTypes"]


class Tags(Resource):
    """``/tags``."""

    async def list(self, *, limit: int | None = None) -> AsyncIterator[Tag]:
        """Yield every tag."""
        async for item in self._client.paginate("/tags", limit=limit):
            yield Tag.model_validate(item)

    async def create(self, name: str, description: str, *, is_core: bool | None = None) -> Tag:
        """Create a tag (200 "Tag created successfully").

        Raises:
            BadRequest: the name is already in use, or the body is invalid.
        """
        body: dict[str, Any] = {"name": name, "description": description}
        if is_core is not None:
            body["isCore"] = is_core
        return Tag.model_validate(await self._client.data("POST", "/tags", json=body))

    async def get(self, tag_id: str) -> Tag:
        """Read one tag by id (the emulator also accepts the name)."""
        return Tag.model_validate(await self._client.data("GET", f"/tags/{encode_id(tag_id)}"))

    async def update(
        self,
        tag_id: str,
        *,
        name: str | None = None,
        description: str | None = None,
        is_core: bool | None = None,
    ) -> Tag:
        """``PATCH /tags/{id}``: change only the given fields."""
        body: dict[str, Any] = {}
        if name is not None:
            body["name"] = name
        if description is not None:
            body["description"] = description
        if is_core is not None:
            body["isCore"] = is_core
        data = await self._client.data("PATCH", f"/tags/{encode_id(tag_id)}", json=body)
        return Tag.model_validate(data)

    async def delete(self, tag_id: str) -> None:
        """Delete a tag."""
        await self._client.request("DELETE", f"/tags/{encode_id(tag_id)}")


class TargetApps(Resource):
    """``/target_app``."""

    async def list(self, *, limit: int | None = None) -> AsyncIterator[TargetApp]:
        """Yield every target app."""
        async for item in self._client.paginate("/target_app", limit=limit):
            yield TargetApp.model_validate(item)

    async def create(
        self,
        name: str,
        description: str,
        *,
        gates: Sequence[str] | None = None,
        dynamic_configs: Sequence[str] | None = None,
        experiments: Sequence[str] | None = None,
    ) -> TargetApp:
        """Create a target app, optionally assigning it to configs at once.

        Raises:
            BadRequest: the name is already in use.
            NotFound: a listed gate, dynamic config or experiment does not exist.
        """
        body: dict[str, Any] = {"name": name, "description": description}
        body.update(_assignment(gates, dynamic_configs, experiments))
        return TargetApp.model_validate(await self._client.data("POST", "/target_app", json=body))

    async def assign(
        self,
        target_apps: Sequence[str],
        *,
        gates: Sequence[str] | None = None,
        dynamic_configs: Sequence[str] | None = None,
        experiments: Sequence[str] | None = None,
    ) -> None:
        """``PATCH /target_app``: add the target apps (ids) to the listed configs.

        Raises:
            NotFound: an unknown target app or config id.
        """
        body: dict[str, Any] = {"targetApps": builtins.list(target_apps)}
        body.update(_assignment(gates, dynamic_configs, experiments))
        await self._client.request("PATCH", "/target_app", json=body)

    async def get(self, app_id: str) -> TargetApp:
        """Read one target app."""
        data = await self._client.data("GET", f"/target_app/{encode_id(app_id)}")
        return TargetApp.model_validate(data)

    async def update(
        self, app_id: str, *, name: str | None = None, description: str | None = None
    ) -> None:
        """``PATCH /target_app/{id}``: rename or re-describe (the response has no data)."""
        body: dict[str, Any] = {}
        if name is not None:
            body["name"] = name
        if description is not None:
            body["description"] = description
        await self._client.request("PATCH", f"/target_app/{encode_id(app_id)}", json=body)

    async def delete(self, app_id: str) -> None:
        """Delete a target app."""
        await self._client.request("DELETE", f"/target_app/{encode_id(app_id)}")


def _assignment(
    gates: Sequence[str] | None,
    dynamic_configs: Sequence[str] | None,
    experiments: Sequence[str] | None,
) -> dict[str, list[str]]:
    body: dict[str, list[str]] = {}
    if gates is not None:
        body["gates"] = list(gates)
    if dynamic_configs is not None:
        body["dynamicConfigs"] = list(dynamic_configs)
    if experiments is not None:
        body["experiments"] = list(experiments)
    return body


class UnitIdTypes(Resource):
    """``/unit_id_types`` (custom unit id types; ``{id}`` is the name)."""

    async def list(self, *, limit: int | None = None) -> AsyncIterator[UnitIdType]:
        """Yield every custom unit id type (the built-in ``userID``/``stableID`` are not listed)."""
        async for item in self._client.paginate("/unit_id_types", limit=limit):
            yield UnitIdType.model_validate(item)

    async def create(self, name: str, description: str | None = None) -> UnitIdType:
        """Create a unit id type (201).

        Raises:
            BadRequest: the name is taken (the service reports every error as 400).
        """
        body: dict[str, Any] = {"name": name}
        if description is not None:
            body["description"] = description
        data = await self._client.data("POST", "/unit_id_types", json=body)
        return UnitIdType.model_validate(data)

    async def get(self, name: str) -> UnitIdType:
        """Read one unit id type (an unknown name is a 400, not a 404)."""
        data = await self._client.data("GET", f"/unit_id_types/{encode_id(name)}")
        return UnitIdType.model_validate(data)

    async def update(self, name: str, description: str) -> UnitIdType:
        """``PATCH /unit_id_types/{id}``: set the description."""
        data = await self._client.data(
            "PATCH", f"/unit_id_types/{encode_id(name)}", json={"description": description}
        )
        return UnitIdType.model_validate(data)

    async def delete(self, name: str) -> None:
        """Delete a unit id type."""
        await self._client.request("DELETE", f"/unit_id_types/{encode_id(name)}")


class Environments(Resource):
    """``/environments``."""

    async def get(self) -> list[Environment]:
        """The project's environments, in order."""
        data = await self._client.data("GET", "/environments")
        return [Environment.model_validate(e) for e in (data or {}).get("environments", [])]

    async def update(self, environments: Sequence[Body]) -> list[Environment]:
        """``POST /environments``: the given list **replaces** the project's environments.

        Each item needs ``name``, ``isProduction``, ``requiresReview`` and
        ``requiresReleasePipeline``; an ``id`` keeps an existing environment, none
        creates one. Returns the environments as stored.
        """
        body = {"environments": [dump(e) for e in environments]}
        data = await self._client.data("POST", "/environments", json=body)
        return [Environment.model_validate(e) for e in (data or {}).get("environments", [])]


class ProjectInfo(Resource):
    """``/project`` and ``/settings/project``."""

    async def get(self) -> dict[str, Any]:
        """``GET /project``: ``{"id": <project id>}`` of the key's project."""
        return dict(await self._client.data("GET", "/project") or {})

    async def settings(self) -> dict[str, Any]:
        """``GET /settings/project``: ``{name, visibility, default_unit_type?}``."""
        return dict(await self._client.data("GET", "/settings/project") or {})

    async def update_settings(
        self, name: str, visibility: str, *, default_unit_type: str | None = None
    ) -> dict[str, Any]:
        """``POST /settings/project``: set the name and visibility (``OPEN``/``CLOSED``/``EXTERNAL``).

        Omitting ``default_unit_type`` clears it (the body replaces the settings).
        """
        body: dict[str, Any] = {"name": name, "visibility": visibility}
        if default_unit_type is not None:
            body["default_unit_type"] = default_unit_type
        return dict(await self._client.data("POST", "/settings/project", json=body) or {})


class AuditLogs(Resource):
    """``/audit_logs``."""

    async def list(
        self,
        *,
        id: str | None = None,
        action_type: str | None = None,
        action_types: Sequence[str] | None = None,
        tags: str | Sequence[str] | None = None,
        start_date: dt.date | str | None = None,
        end_date: dt.date | str | None = None,
        sort_key: str | None = None,
        sort_order: str | None = None,
        latest_id: str | None = None,
        limit: int | None = None,
    ) -> AsyncIterator[AuditLogEntry]:
        """Yield audit-log entries (newest first unless ``sort_order="asc"``).

        Args:
            id: Only entries about this object id.
            action_type: Only entries of this action (``gate_create``, ``ID_list_update``, …).
            action_types: Several actions at once.
            tags: Only entries whose object carries one of these tags.
            start_date: First day (UTC), a date or ``YYYY-MM-DD``.
            end_date: Last day (UTC), inclusive.
            sort_key: ``id``, ``name``, ``changeLog``, ``actionType``, ``date``, ``time``,
                ``updatedBy`` or ``updatedByUserID``.
            sort_order: ``asc`` or ``desc``.
            latest_id: Ignore entries newer than this one (stable paging while others write).
            limit: Page size.
        """
        params = {
            "id": id,
            "actionType": action_type,
            "actionTypes": action_types,
            "tags": tags,
            "startDate": _day(start_date),
            "endDate": _day(end_date),
            "sortKey": sort_key,
            "sortOrder": sort_order,
            "latestID": latest_id,
        }
        async for item in self._client.paginate("/audit_logs", params=params, limit=limit):
            yield AuditLogEntry.model_validate(item)


def _day(value: dt.date | str | None) -> str | None:
    if isinstance(value, dt.datetime):
        value = value.date()
    if isinstance(value, dt.date):
        return value.isoformat()
    return value
