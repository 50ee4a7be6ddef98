"""Gates: all 24 operations of the spec's Gates group (plus the analytics ones)."""

from __future__ import annotations

import builtins
from collections.abc import AsyncIterator, Sequence
from typing import Any

from ..models import Gate, Overrides, Rule
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
        limit: int | None = None,
    ) -> AsyncIterator[Gate]:
        """Yield every gate matching the server-side filters, page by page."""
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
        """Yield the gate's historic versions."""
        async for item in self._client.paginate(self._path(gate_id, "versions"), limit=limit):
            yield Gate.model_validate(item)

    async def gate_references(self, gate_id: str) -> AsyncIterator[dict[str, Any]]:
        """Yield the gates whose rules reference this gate."""
        async for item in self._client.paginate(self._path(gate_id, "gate_references")):
            yield item

    async def dynamic_config_references(self, gate_id: str) -> AsyncIterator[dict[str, Any]]:
        """Yield the dynamic configs whose rules reference this gate."""
        async for item in self._client.paginate(self._path(gate_id, "dynamic_config_references")):
            yield item

    async def experiment_references(self, gate_id: str) -> AsyncIterator[dict[str, Any]]:
        """Yield the experiments that target this gate."""
        async for item in self._client.paginate(self._path(gate_id, "experiment_references")):
            yield item

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
        """Read the gate's rules (tolerates ``{rules}`` and ``[{rules}]`` shapes)."""
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

    async def load_pulse(self, gate_id: str, body: Body | None = None) -> Any:
        """``POST /gates/{id}/load_pulse``: ask the server to (re)compute pulse."""
        return await self._client.data(
            "POST", self._path(gate_id, "load_pulse"), json=dump(body or {})
        )

    async def pulse_results(
        self, gate_id: str, rule_id: str, *, params: dict[str, Any] | None = None
    ) -> Any:
        """``GET /gates/{id}/rules/{ruleID}/pulse_results``."""
        path = self._path(gate_id, "rules", encode_id(rule_id), "pulse_results")
        return await self._client.data("GET", path, params=params)

    async def pulse_load_history(self, gate_id: str, rule_id: str) -> Any:
        """``GET /gates/{id}/rules/{ruleID}/pulse_load_history``."""
        path = self._path(gate_id, "rules", encode_id(rule_id), "pulse_load_history")
        return await self._client.data("GET", path)

    async def resolve_alert(self, gate_id: str, metric_id: str, body: Body | None = None) -> Any:
        """``POST /gates/{id}/alerts/{metricId}/resolve``."""
        path = self._path(gate_id, "alerts", encode_id(metric_id), "resolve")
        return await self._client.data("POST", path, json=dump(body or {}))
