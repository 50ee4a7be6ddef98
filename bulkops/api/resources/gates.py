"""Gates: every operation of the spec's "Gates" tag (29, the analytics ones included)."""

from __future__ import annotations

from collections.abc import AsyncIterator, Sequence
from typing import Any, Unpack

from ..models import DynamicConfig, Experiment, Gate, Overrides
from ..paths import GATES
from ._base import (
    Archivable,
    Body,
    Editable,
    Owned,
    Ruled,
    Switchable,
    Versioned,
    WithAlerts,
    WithOverrides,
    compact,
    dump,
    strings,
    validated,
)

__all__ = ["ConfigFilters", "GateFilters", "Gates"]


class ConfigFilters(Owned, total=False):
    """List filters of gates and dynamic configs."""

    release_pipeline_id: str | None
    include_archived: bool | None


class GateFilters(ConfigFilters, total=False):
    """List filters of gates.

    ``type`` is the API's classification (``STALE``, ``PERMANENT``, …) and ``type_reason``
    its reason; ``id_type``, ``pass_rate``, ``rollout_rate`` and ``tags`` take one value
    or several (sent as repeated parameters).
    """

    type: str | None
    type_reason: str | None
    id_type: str | Sequence[str] | None
    pass_rate: str | Sequence[str] | None
    rollout_rate: str | Sequence[str] | None


class Gates(
    Editable[Gate],
    Switchable[Gate],
    Archivable[Gate],
    Versioned[Gate],
    Ruled[Gate],
    WithOverrides[Overrides],
    WithAlerts,
):
    """``/gates`` and everything under it."""

    route = GATES
    model = Gate
    overrides_model = Overrides

    def list(
        self, *, limit: int | None = None, **filters: Unpack[GateFilters]
    ) -> AsyncIterator[Gate]:
        """Yield every gate matching the server-side filters (:class:`GateFilters`), page
        by page; archived gates only with ``include_archived=True``."""
        return self._select(limit, filters)

    async def launch(self, gate_id: str) -> Gate:
        """``PUT /gates/{id}/launch``: the gate passes for everyone."""
        return await self._put(gate_id, "launch")

    def gate_references(self, gate_id: str, *, limit: int | None = None) -> AsyncIterator[Gate]:
        """Yield the gates whose rules reference this gate (``passes_gate``/``fails_gate``)."""
        return validated(Gate, self._pages(self.path(gate_id, "gate_references"), limit=limit))

    def dynamic_config_references(
        self, gate_id: str, *, limit: int | None = None
    ) -> AsyncIterator[DynamicConfig]:
        """Yield the dynamic configs whose rules reference this gate."""
        path = self.path(gate_id, "dynamic_config_references")
        return validated(DynamicConfig, self._pages(path, limit=limit))

    def experiment_references(
        self, gate_id: str, *, limit: int | None = None
    ) -> AsyncIterator[Experiment]:
        """Yield the experiments that target this gate (``targetingGateID``)."""
        path = self.path(gate_id, "experiment_references")
        return validated(Experiment, self._pages(path, limit=limit))

    async def add_rules(self, gate_id: str, rules: Sequence[Body]) -> Gate:
        """``POST /gates/{id}/rules``: append several rules."""
        return await self._rules("POST", gate_id, rules)

    async def update_rules(self, gate_id: str, rules: Sequence[Body]) -> Gate:
        """``PATCH /gates/{id}/rules``: update the rules matched by ``id``/``baseID``."""
        return await self._rules("PATCH", gate_id, rules)

    async def _rules(self, method: str, gate_id: str, rules: Sequence[Body]) -> Gate:
        body = {"rules": [dump(r) for r in rules]}
        return await self._model(Gate, method, self.path(gate_id, "rules"), body)

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
        optional = compact(refresh=refresh, metricIDs=strings(metric_ids), turboMode=turbo_mode)
        await self._call("POST", self.path(gate_id, "load_pulse"), {"ruleId": rule_id, **optional})

    async def pulse_results(
        self,
        gate_id: str,
        rule_id: str,
        *,
        cuped: bool | None = None,
        confidence: float | None = None,
    ) -> dict[str, Any]:
        """``GET /gates/{id}/rules/{ruleID}/pulse_results``: ``{ds, monitoringMetrics}``."""
        path = self.path(gate_id, "rules", rule_id, "pulse_results")
        params = {"cuped": cuped, "confidence": None if confidence is None else f"{confidence:g}"}
        return await self._dict("GET", path, params=params)

    def pulse_load_history(
        self, gate_id: str, rule_id: str, *, limit: int | None = None
    ) -> AsyncIterator[dict[str, Any]]:
        """Yield the rule's pulse loads (``GET /gates/{id}/rules/{ruleID}/pulse_load_history``)."""
        return self._pages(self.path(gate_id, "rules", rule_id, "pulse_load_history"), limit=limit)
