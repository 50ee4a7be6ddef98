"""Gates: every operation of the spec's "Gates" tag (29, the analytics ones included)."""

from __future__ import annotations

import builtins
from collections.abc import AsyncIterator, Sequence
from typing import Any

from ..models import DynamicConfig, Experiment, Gate, Overrides, Rule
from ._base import Body, Resource, dump, encode_id

__all__ = ["Gates"]


class Gates(Resource):
    """``/gates`` and everything under it."""

    def _path(self, gate_id: str, *rest: str) -> str:
        return "/".join(["/gates", encode_id(gate_id), *rest])

    async def list(
        self,
        *,
        type: str | None = None,
        type_reason: str | None = None,
        id_type: str | Sequence[str] | None = None,
        pass_rate: str | Sequence[str] | None = None,
        rollout_rate: str | Sequence[str] | None = None,
        tags: str | Sequence[str] | None = None,
        creator_name: str | None = None,
        creator_id: str | None = None,
        release_pipeline_id: str | None = None,
        include_archived: bool | None = None,
        limit: int | None = None,
    ) -> AsyncIterator[Gate]:
        """Yield every gate matching the server-side filters, page by page.

        Multi-valued filters (``id_type``, ``pass_rate``, ``rollout_rate``, ``tags``)
        take one value or several (sent as repeated parameters). Archived gates are
        listed only with ``include_archived=True``.
        """
        params = {
            "type": type,
            "typeReason": type_reason,
            "idType": id_type,
            "passRate": pass_rate,
            "rolloutRate": rollout_rate,
            "tags": tags,
            "creatorName": creator_name,
            "creatorID": creator_id,
            "releasePipelineID": release_pipeline_id,
            "includeArchived": include_archived,
        }
        async for item in self._client.paginate("/gates", params=params, limit=limit):
            yield Gate.model_validate(item)

    async def create(self, body: Body) -> Gate:
        """Create a gate (201). ``id`` in the body keeps an explicit id."""
        return Gate.model_validate(await self._client.data("POST", "/gates", json=dump(body)))

    async def get(self, gate_id: str) -> Gate:
        """Read one gate."""
        return Gate.model_validate(await self._client.data("GET", self._path(gate_id)))

    async def update(self, gate_id: str, body: Body) -> Gate:
        """Full update (``POST /gates/{id}``): replaces rules and every given field."""
        data = await self._client.data("POST", self._path(gate_id), json=dump(body))
        return Gate.model_validate(data)

    async def patch(self, gate_id: str, body: Body) -> Gate:
        """Partial update (``PATCH /gates/{id}``): only the given fields change."""
        data = await self._client.data("PATCH", self._path(gate_id), json=dump(body))
        return Gate.model_validate(data)

    async def delete(self, gate_id: str) -> None:
        """Delete a gate."""
        await self._client.request("DELETE", self._path(gate_id))

    async def enable(self, gate_id: str) -> Gate:
        """``PUT /gates/{id}/enable``."""
        return Gate.model_validate(await self._client.data("PUT", self._path(gate_id, "enable")))

    async def disable(self, gate_id: str) -> Gate:
        """``PUT /gates/{id}/disable``: the gate fails for everyone."""
        return Gate.model_validate(await self._client.data("PUT", self._path(gate_id, "disable")))

    async def launch(self, gate_id: str) -> Gate:
        """``PUT /gates/{id}/launch``: the gate passes for everyone."""
        return Gate.model_validate(await self._client.data("PUT", self._path(gate_id, "launch")))

    async def archive(
        self, gate_id: str, *, reason: str | None = None, force: bool | None = None
    ) -> Gate:
        """``PUT /gates/{id}/archive`` with an optional ``archiveReason``."""
        body: dict[str, Any] = {}
        if reason is not None:
            body["archiveReason"] = reason
        if force is not None:
            body["forceArchive"] = force
        data = await self._client.data("PUT", self._path(gate_id, "archive"), json=body)
        return Gate.model_validate(data)

    async def unarchive(self, gate_id: str, *, reason: str | None = None) -> Gate:
        """``PUT /gates/{id}/unarchive``."""
        body: dict[str, Any] = {} if reason is None else {"unarchiveReason": reason}
        data = await self._client.data("PUT", self._path(gate_id, "unarchive"), json=body)
        return Gate.model_validate(data)

    async def versions(self, gate_id: str, *, limit: int | None = None) -> AsyncIterator[Gate]:
        """Yield the gate's historic versions, newest first."""
        async for item in self._client.paginate(self._path(gate_id, "versions"), limit=limit):
            yield Gate.model_validate(item)

    async def gate_references(
        self, gate_id: str, *, limit: int | None = None
    ) -> AsyncIterator[Gate]:
        """Yield the gates whose rules reference this gate (``passes_gate``/``fails_gate``)."""
        path = self._path(gate_id, "gate_references")
        async for item in self._client.paginate(path, limit=limit):
            yield Gate.model_validate(item)

    async def dynamic_config_references(
        self, gate_id: str, *, limit: int | None = None
    ) -> AsyncIterator[DynamicConfig]:
        """Yield the dynamic configs whose rules reference this gate."""
        path = self._path(gate_id, "dynamic_config_references")
        async for item in self._client.paginate(path, limit=limit):
            yield DynamicConfig.model_validate(item)

    async def experiment_references(
        self, gate_id: str, *, limit: int | None = None
    ) -> AsyncIterator[Experiment]:
        """Yield the experiments that target this gate (``targetingGateID``)."""
        path = self._path(gate_id, "experiment_references")
        async for item in self._client.paginate(path, limit=limit):
            yield Experiment.model_validate(item)

    # -- overrides: POST replaces, PATCH adds, DELETE removes -------------------------

    async def get_overrides(self, gate_id: str) -> Overrides:
        """Read the gate's overrides."""
        data = await self._client.data("GET", self._path(gate_id, "overrides"))
        return Overrides.model_validate(data)

    async def set_overrides(self, gate_id: str, body: Body) -> Overrides:
        """Replace the gate's overrides with ``body``."""
        data = await self._client.data("POST", self._path(gate_id, "overrides"), json=dump(body))
        return Overrides.model_validate(data)

    async def add_overrides(self, gate_id: str, body: Body) -> Overrides:
        """Add the lists in ``body`` to the gate's overrides."""
        data = await self._client.data("PATCH", self._path(gate_id, "overrides"), json=dump(body))
        return Overrides.model_validate(data)

    async def remove_overrides(self, gate_id: str, body: Body) -> Overrides:
        """Remove the ids in ``body`` from the gate's overrides."""
        data = await self._client.data("DELETE", self._path(gate_id, "overrides"), json=dump(body))
        return Overrides.model_validate(data)

    # -- rules ------------------------------------------------------------------------

    async def get_rules(self, gate_id: str) -> builtins.list[Rule]:
        """Read the gate's rules (accepts both the ``{rules}`` and ``[{rules}]`` shapes)."""
        data = await self._client.data("GET", self._path(gate_id, "rules"))
        if isinstance(data, list):
            data = data[0] if data else {"rules": []}
        return [Rule.model_validate(r) for r in (data or {}).get("rules", [])]

    async def add_rule(self, gate_id: str, rule: Body) -> Gate:
        """``POST /gates/{id}/rule``: append one rule."""
        data = await self._client.data("POST", self._path(gate_id, "rule"), json=dump(rule))
        return Gate.model_validate(data)

    async def add_rules(self, gate_id: str, rules: Sequence[Body]) -> Gate:
        """``POST /gates/{id}/rules``: append several rules."""
        body = {"rules": [dump(r) for r in rules]}
        return Gate.model_validate(
            await self._client.data("POST", self._path(gate_id, "rules"), json=body)
        )

    async def update_rules(self, gate_id: str, rules: Sequence[Body]) -> Gate:
        """``PATCH /gates/{id}/rules``: update the rules matched by ``id``/``baseID``."""
        body = {"rules": [dump(r) for r in rules]}
        return Gate.model_validate(
            await self._client.data("PATCH", self._path(gate_id, "rules"), json=body)
        )

    async def update_rule(self, gate_id: str, rule_id: str, body: Body) -> Gate:
        """``PATCH /gates/{id}/rules/{ruleID}`` (rule id or base id)."""
        path = self._path(gate_id, "rules", encode_id(rule_id))
        return Gate.model_validate(await self._client.data("PATCH", path, json=dump(body)))

    async def delete_rule(self, gate_id: str, rule_id: str) -> Gate:
        """``DELETE /gates/{id}/rules/{ruleID}``."""
        path = self._path(gate_id, "rules", encode_id(rule_id))
        return Gate.model_validate(await self._client.data("DELETE", path))

    # -- analytics ----------------------------------------------------------------------

    async def load_pulse(
        self,
        gate_id: str,
        rule_id: str,
        *,
        refresh: str | None = None,
        metric_ids: Sequence[str] | None = None,
        turbo_mode: bool | None = None,
    ) -> None:
        """``POST /gates/{id}/load_pulse``: ask the server to (re)load pulse for one rule.

        Args:
            gate_id: The gate.
            rule_id: The rule (``id`` or ``baseID``) whose pulse to load.
            refresh: ``full`` (the server's default), ``incremental`` or ``metric``.
            metric_ids: Only these metrics (with ``refresh="metric"``).
            turbo_mode: Trade precision for speed.
        """
        body: dict[str, Any] = {"ruleId": rule_id}
        if refresh is not None:
            body["refresh"] = refresh
        if metric_ids is not None:
            body["metricIDs"] = list(metric_ids)
        if turbo_mode is not None:
            body["turboMode"] = turbo_mode
        await self._client.request("POST", self._path(gate_id, "load_pulse"), json=body)

    async def pulse_results(
        self,
        gate_id: str,
        rule_id: str,
        *,
        cuped: bool | None = None,
        confidence: float | None = None,
    ) -> dict[str, Any]:
        """``GET /gates/{id}/rules/{ruleID}/pulse_results``: ``{ds, monitoringMetrics}``."""
        path = self._path(gate_id, "rules", encode_id(rule_id), "pulse_results")
        params = {"cuped": cuped, "confidence": None if confidence is None else f"{confidence:g}"}
        data: dict[str, Any] = await self._client.data("GET", path, params=params)
        return data

    async def pulse_load_history(
        self, gate_id: str, rule_id: str, *, limit: int | None = None
    ) -> AsyncIterator[dict[str, Any]]:
        """Yield the rule's pulse loads (``GET /gates/{id}/rules/{ruleID}/pulse_load_history``)."""
        path = self._path(gate_id, "rules", encode_id(rule_id), "pulse_load_history")
        async for item in self._client.paginate(path, limit=limit):
            yield item

    async def resolve_alert(
        self, gate_id: str, metric_id: str, *, reasoning: str | None = None
    ) -> dict[str, Any]:
        """``POST /gates/{id}/alerts/{metricId}/resolve``: ``{resolvedAt}``."""
        path = self._path(gate_id, "alerts", encode_id(metric_id), "resolve")
        body = {} if reasoning is None else {"reasoning": reasoning}
        data: dict[str, Any] = await self._client.data("POST", path, json=body)
        return data
