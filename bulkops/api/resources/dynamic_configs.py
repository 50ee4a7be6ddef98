"""Dynamic configs: every operation of the spec's "Dynamic Configs" tag (15).

Plus the rule endpoints the Terraform provider uses that the current spec no longer
lists (``POST /dynamic_configs/{id}/rule``, ``PATCH``/``DELETE
/dynamic_configs/{id}/rule/name/{ruleName}``): they may or may not exist on the live
service, so prefer the by-id methods.
"""

from __future__ import annotations

import builtins
from collections.abc import AsyncIterator, Sequence
from typing import Any

from ..models import DynamicConfig, Rule
from ._base import Body, Resource, dump, encode_id

__all__ = ["DynamicConfigs"]


class DynamicConfigs(Resource):
    """``/dynamic_configs`` and everything under it."""

    def _path(self, config_id: str, *rest: str) -> str:
        return "/".join(["/dynamic_configs", encode_id(config_id), *rest])

    async def list(
        self,
        *,
        tags: str | Sequence[str] | None = None,
        creator_name: str | None = None,
        creator_id: str | None = None,
        release_pipeline_id: str | None = None,
        include_archived: bool | None = None,
        limit: int | None = None,
    ) -> AsyncIterator[DynamicConfig]:
        """Yield every dynamic config matching the server-side filters, page by page.

        Archived configs are listed only with ``include_archived=True``.
        """
        params = {
            "tags": tags,
            "creatorName": creator_name,
            "creatorID": creator_id,
            "releasePipelineID": release_pipeline_id,
            "includeArchived": include_archived,
        }
        async for item in self._client.paginate("/dynamic_configs", params=params, limit=limit):
            yield DynamicConfig.model_validate(item)

    async def create(self, body: Body) -> DynamicConfig:
        """Create a dynamic config (201). ``name`` is required; ``id`` keeps an explicit id."""
        data = await self._client.data("POST", "/dynamic_configs", json=dump(body))
        return DynamicConfig.model_validate(data)

    async def get(self, config_id: str) -> DynamicConfig:
        """Read one dynamic config."""
        return DynamicConfig.model_validate(await self._client.data("GET", self._path(config_id)))

    async def update(self, config_id: str, body: Body) -> DynamicConfig:
        """Full update (``POST /dynamic_configs/{id}``); ``isEnabled``, ``description``, ``rules`` required."""
        data = await self._client.data("POST", self._path(config_id), json=dump(body))
        return DynamicConfig.model_validate(data)

    async def patch(self, config_id: str, body: Body) -> DynamicConfig:
        """Partial update (``PATCH /dynamic_configs/{id}``): only the given fields change."""
        data = await self._client.data("PATCH", self._path(config_id), json=dump(body))
        return DynamicConfig.model_validate(data)

    async def delete(self, config_id: str) -> None:
        """Delete a dynamic config."""
        await self._client.request("DELETE", self._path(config_id))

    async def enable(self, config_id: str) -> DynamicConfig:
        """``PUT /dynamic_configs/{id}/enable``."""
        data = await self._client.data("PUT", self._path(config_id, "enable"))
        return DynamicConfig.model_validate(data)

    async def disable(self, config_id: str) -> DynamicConfig:
        """``PUT /dynamic_configs/{id}/disable``: every caller gets the default value."""
        data = await self._client.data("PUT", self._path(config_id, "disable"))
        return DynamicConfig.model_validate(data)

    async def archive(
        self, config_id: str, *, reason: str | None = None, force: bool | None = None
    ) -> DynamicConfig:
        """``PUT /dynamic_configs/{id}/archive`` with an optional ``archiveReason``."""
        body: dict[str, Any] = {}
        if reason is not None:
            body["archiveReason"] = reason
        if force is not None:
            body["forceArchive"] = force
        data = await self._client.data("PUT", self._path(config_id, "archive"), json=body)
        return DynamicConfig.model_validate(data)

    async def unarchive(self, config_id: str, *, reason: str | None = None) -> DynamicConfig:
        """``PUT /dynamic_configs/{id}/unarchive``."""
        body: dict[str, Any] = {} if reason is None else {"unarchiveReason": reason}
        data = await self._client.data("PUT", self._path(config_id, "unarchive"), json=body)
        return DynamicConfig.model_validate(data)

    async def versions(
        self, config_id: str, *, limit: int | None = None
    ) -> AsyncIterator[DynamicConfig]:
        """Yield the config's historic versions, newest first."""
        async for item in self._client.paginate(self._path(config_id, "versions"), limit=limit):
            yield DynamicConfig.model_validate(item)

    # -- rules ------------------------------------------------------------------------

    async def get_rules(self, config_id: str) -> builtins.list[Rule]:
        """Read the config's rules (accepts both the ``[{rules}]`` and ``{rules}`` shapes)."""
        data = await self._client.data("GET", self._path(config_id, "rules"))
        if isinstance(data, list):
            data = data[0] if data else {"rules": []}
        return [Rule.model_validate(r) for r in (data or {}).get("rules", [])]

    async def get_rule(self, config_id: str, rule_id: str) -> Rule:
        """``GET /dynamic_configs/{id}/rule/{ruleId}`` (rule id or base id)."""
        path = self._path(config_id, "rule", encode_id(rule_id))
        return Rule.model_validate(await self._client.data("GET", path))

    async def update_rule(self, config_id: str, rule_id: str, body: Body) -> DynamicConfig:
        """``PATCH /dynamic_configs/{id}/rule/{ruleId}``: change the given fields of one rule."""
        path = self._path(config_id, "rule", encode_id(rule_id))
        return DynamicConfig.model_validate(await self._client.data("PATCH", path, json=dump(body)))

    async def delete_rule(self, config_id: str, rule_id: str) -> DynamicConfig:
        """``DELETE /dynamic_configs/{id}/rule/{ruleId}``."""
        path = self._path(config_id, "rule", encode_id(rule_id))
        return DynamicConfig.model_validate(await self._client.data("DELETE", path))

    async def add_rule(self, config_id: str, rule: Body) -> DynamicConfig:
        """``POST /dynamic_configs/{id}/rule`` (Terraform provider's endpoint): append one rule."""
        data = await self._client.data("POST", self._path(config_id, "rule"), json=dump(rule))
        return DynamicConfig.model_validate(data)

    async def update_rule_by_name(self, config_id: str, name: str, body: Body) -> DynamicConfig:
        """``PATCH /dynamic_configs/{id}/rule/name/{ruleName}`` (Terraform provider's endpoint)."""
        path = self._path(config_id, "rule", "name", encode_id(name))
        return DynamicConfig.model_validate(await self._client.data("PATCH", path, json=dump(body)))

    async def delete_rule_by_name(self, config_id: str, name: str) -> DynamicConfig:
        """``DELETE /dynamic_configs/{id}/rule/name/{ruleName}`` (Terraform provider's endpoint)."""
        path = self._path(config_id, "rule", "name", encode_id(name))
        return DynamicConfig.model_validate(await self._client.data("DELETE", path))
