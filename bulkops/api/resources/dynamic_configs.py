"""Dynamic configs: every operation of the spec's "Dynamic Configs" tag (15).

Plus the rule endpoints the Terraform provider uses that the current spec no longer
lists (``POST /dynamic_configs/{id}/rule``, ``PATCH``/``DELETE
/dynamic_configs/{id}/rule/name/{ruleName}``): they may or may not exist on the live
service, so prefer the by-id methods.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Unpack

from ..models import DynamicConfig, Rule
from ..paths import DYNAMIC_CONFIGS
from ._base import Archivable, Body, Editable, Ruled, Switchable, Versioned, dump
from .gates import ConfigFilters

__all__ = ["DynamicConfigs"]


class DynamicConfigs(
    Editable[DynamicConfig],
    Switchable[DynamicConfig],
    Archivable[DynamicConfig],
    Versioned[DynamicConfig],
    Ruled[DynamicConfig],
):
    """``/dynamic_configs`` and everything under it (one rule is ``…/rule/{ruleId}``)."""

    route = DYNAMIC_CONFIGS
    model = DynamicConfig
    rule_path = "rule"

    def list(
        self, *, limit: int | None = None, **filters: Unpack[ConfigFilters]
    ) -> AsyncIterator[DynamicConfig]:
        """Yield every dynamic config matching the server-side filters, page by page.

        Archived configs are listed only with ``include_archived=True``.
        """
        return self._select(limit, filters)

    async def get_rule(self, config_id: str, rule_id: str) -> Rule:
        """``GET /dynamic_configs/{id}/rule/{ruleId}`` (rule id or base id)."""
        return Rule.model_validate(await self.fetch(config_id, "rule", rule_id))

    async def update_rule_by_name(self, config_id: str, name: str, body: Body) -> DynamicConfig:
        """``PATCH /dynamic_configs/{id}/rule/name/{ruleName}`` (Terraform provider's endpoint)."""
        path = self.path(config_id, "rule", "name", name)
        return await self._model(DynamicConfig, "PATCH", path, dump(body))

    async def delete_rule_by_name(self, config_id: str, name: str) -> DynamicConfig:
        """``DELETE /dynamic_configs/{id}/rule/name/{ruleName}`` (Terraform provider's endpoint)."""
        path = self.path(config_id, "rule", "name", name)
        return await self._model(DynamicConfig, "DELETE", path)
