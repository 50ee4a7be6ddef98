"""Experiments and Experiments (Warehouse Native): every operation under ``/experiments``.

Lifecycle calls (start, make_decision, abandon, reset, archive, …) answer only a
message, so they return None; read the experiment back to see its new ``status``.
"""

from __future__ import annotations

import builtins
from collections.abc import AsyncIterator, Sequence
from typing import TYPE_CHECKING, Any, TypedDict, Unpack

from ..models import ApiModel, Experiment, ExperimentOverrides
from ..paths import EXPERIMENTS, Route
from ._base import (
    Editable,
    Owned,
    Resource,
    WithAlerts,
    WithOverrides,
    compact,
    strings,
    validated,
    wire,
)

if TYPE_CHECKING:
    from ..client import ConsoleClient

__all__ = [
    "AssignmentSource",
    "EntityPropertySource",
    "ExperimentFilters",
    "Experiments",
    "PulseLoad",
    "PulseOptions",
    "QualifyingEvent",
    "WarehouseNative",
    "WarehouseSource",
]


class WarehouseSource(ApiModel):
    """What every warehouse-native source has: a ``name`` (its address) and its SQL."""

    name: str
    description: str | None = None
    tags: list[str] = []
    sql: str | None = None
    timestampColumn: str | None = None
    idTypeMapping: list[dict[str, Any]] = []


class AssignmentSource(WarehouseSource):
    """A warehouse-native assignment source (exposures table)."""

    experimentIDColumn: str | None = None
    groupIDColumn: str | None = None


class EntityPropertySource(WarehouseSource):
    """A warehouse-native entity property source."""

    timestampAsDay: bool | None = None


class QualifyingEvent(WarehouseSource):
    """A warehouse-native qualifying event (a metric source)."""

    sourceType: str | None = None


class PulseLoad(ApiModel):
    """One entry of an experiment's pulse load history."""

    createdTime: float
    startDs: str
    endDs: str
    reloadType: str
    turboMode: bool
    finishedState: str | None = None
    finishedTime: float | None = None
    creatorName: str | None = None


class ExperimentFilters(Owned, total=False):
    """List filters of experiments (``status``: one or several)."""

    layer_id: str | None
    id_type: str | None
    team_id: str | None
    status: str | Sequence[str] | None
    target_app_id: str | None
    created_start_date: str | None
    created_end_date: str | None


class PulseOptions(TypedDict, total=False):
    """How an experiment's pulse results are computed (``date``: YYYY-MM-DD)."""

    cuped: bool | None
    confidence: str | None
    apply_bonferroni_per_variant: bool | None
    apply_bonferroni_per_metric: bool | None
    bonferroni_primary_metric_weight: float | None
    apply_benjamini_hochberg_per_metric: bool | None
    apply_benjamini_hochberg_per_variant: bool | None
    date: str | None


class Experiments(Editable[Experiment], WithOverrides[ExperimentOverrides], WithAlerts):
    """``/experiments`` and everything under ``/experiments/{id}``.

    :meth:`create` makes a draft (status ``setup``; without ``layerID`` it gets an
    implicit layer). :meth:`update` (``POST``) requires description, idType,
    hypothesis, groups, allocation, targetingGateID, bonferroniCorrection,
    defaultConfidenceInterval and status (status is server-owned: lifecycle calls
    change it). Overrides: ``overrides`` ≤1000 entries, ids ≤1000 per entry.
    """

    route = EXPERIMENTS
    model = Experiment
    overrides_model = ExperimentOverrides
    overrides_lists = ("overrides", "userIDOverrides")

    def list(
        self, *, limit: int | None = None, **filters: Unpack[ExperimentFilters]
    ) -> AsyncIterator[Experiment]:
        """Yield every experiment matching the server-side filters (dates are YYYY-MM-DD)."""
        return self._select(limit, filters)

    async def _act(self, experiment_id: str, action: str, body: Any = None) -> None:
        await self._call("PUT", self.path(experiment_id, action), body)

    # -- lifecycle ------------------------------------------------------------------------

    async def start(
        self,
        experiment_id: str,
        *,
        analysis_start_time: str | None = None,
        analysis_end_time: str | None = None,
    ) -> None:
        """``PUT /experiments/{id}/start``: setup → active (analysis times: warehouse native)."""
        times = compact(analysisStartTime=analysis_start_time, analysisEndTime=analysis_end_time)
        await self._act(experiment_id, "start", times)

    async def schedule_start(self, experiment_id: str, scheduled_time_ms: float) -> None:
        """``POST /experiments/{id}/schedule_start`` at a millisecond epoch time."""
        path = self.path(experiment_id, "schedule_start")
        await self._call("POST", path, {"scheduledTime": scheduled_time_ms})

    async def make_decision(
        self,
        experiment_id: str,
        group_id: str,
        reason: str,
        *,
        remove_targeting: bool | None = None,
    ) -> None:
        """``PUT /experiments/{id}/make_decision`` ("finish early"): ship ``group_id``."""
        body = {"id": group_id, "decisionReason": reason}
        await self._act(
            experiment_id, "make_decision", body | compact(removeTargeting=remove_targeting)
        )

    async def abandon(self, experiment_id: str, reason: str) -> None:
        """``PUT /experiments/{id}/abandon``: stop without shipping a group."""
        await self._act(experiment_id, "abandon", {"decisionReason": reason})

    async def reset(self, experiment_id: str) -> None:
        """``PUT /experiments/{id}/reset``: restart a started experiment."""
        await self._act(experiment_id, "reset")

    async def restart_as_new(self, experiment_id: str, name: str) -> Experiment:
        """``POST /experiments/{id}/restart_as_new``: returns the new experiment."""
        path = self.path(experiment_id, "restart_as_new")
        return await self._model(Experiment, "POST", path, {"name": name})

    async def archive(self, experiment_id: str, *, reason: str | None = None) -> None:
        """``PUT /experiments/{id}/archive`` with an optional ``archiveReason``."""
        await self._act(experiment_id, "archive", compact(archiveReason=reason))

    async def unarchive(self, experiment_id: str) -> None:
        """``PUT /experiments/{id}/unarchive``."""
        await self._act(experiment_id, "unarchive")

    async def enable_groups(self, experiment_id: str, group_names: Sequence[str]) -> Experiment:
        """``POST /experiments/{id}/enable_groups``."""
        return await self._groups(experiment_id, "enable_groups", group_names)

    async def disable_groups(self, experiment_id: str, group_names: Sequence[str]) -> Experiment:
        """``POST /experiments/{id}/disable_groups``."""
        return await self._groups(experiment_id, "disable_groups", group_names)

    async def _groups(self, experiment_id: str, action: str, names: Sequence[str]) -> Experiment:
        body = {"group_names": builtins.list(names)}
        return await self._model(Experiment, "POST", self.path(experiment_id, action), body)

    # -- analytics ------------------------------------------------------------------------

    async def cumulative_exposures(self, experiment_id: str) -> builtins.list[dict[str, Any]]:
        """``GET /experiments/{id}/cumulative_exposures``: ``[{groupID, groupName, results}]``."""
        return builtins.list(await self.fetch(experiment_id, "cumulative_exposures") or [])

    async def pulse_results(
        self, experiment_id: str, control: str, test: str, **options: Unpack[PulseOptions]
    ) -> dict[str, Any]:
        """``GET /experiments/{id}/pulse_results`` comparing group ``test`` with ``control``."""
        params = {"control": control, "test": test, **wire(options)}
        return await self._dict("GET", self.path(experiment_id, "pulse_results"), params=params)


class _AssignmentSources(Editable[AssignmentSource]):
    route = Route("/experiments/assignment_sources", "/experiments/assignment_source")
    model = AssignmentSource


class _EntityProperties(Editable[EntityPropertySource]):
    route = Route("/experiments/entity_properties", "/experiments/entity_property")
    model = EntityPropertySource


class _QualifyingEvents(Editable[QualifyingEvent]):
    route = Route("/experiments/qualifying_events")
    model = QualifyingEvent


class WarehouseNative(Resource):
    """Experiments (Warehouse Native): pulse loading, and three collections addressed by
    name (``dryRun: true`` in a create body only validates):

    * assignment sources: ``list_``, ``create_``, ``update_``, ``patch_`` and
      ``delete_assignment_source``;
    * entity property sources: ``list_entity_properties``, ``create_``, ``get_``,
      ``update_``, ``patch_`` and ``delete_entity_property``;
    * qualifying events: ``list_qualifying_events``, ``create_``, ``get_``, ``update_``
      and ``delete_qualifying_event``.

    A full update (``update_…``) needs ``sql`` and ``idTypeMapping`` (qualifying
    events also ``timestampColumn``); a partial one (``patch_…``) cannot change ``sql``.
    """

    def __init__(self, client: ConsoleClient) -> None:
        super().__init__(client)
        sources = _AssignmentSources(client)
        self.list_assignment_sources = sources.list
        self.create_assignment_source = sources.create
        self.update_assignment_source = sources.update
        self.patch_assignment_source = sources.patch
        self.delete_assignment_source = sources.delete
        properties = _EntityProperties(client)
        self.list_entity_properties = properties.list
        self.create_entity_property = properties.create
        self.get_entity_property = properties.get
        self.update_entity_property = properties.update
        self.patch_entity_property = properties.patch
        self.delete_entity_property = properties.delete
        events = _QualifyingEvents(client)
        self.list_qualifying_events = events.list
        self.create_qualifying_event = events.create
        self.get_qualifying_event = events.get
        self.update_qualifying_event = events.update
        self.delete_qualifying_event = events.delete

    async def load_pulse(
        self,
        experiment_id: str,
        *,
        refresh: str | None = None,
        metric_ids: Sequence[str] | None = None,
        rule_id: str | None = None,
        turbo_mode: bool | None = None,
    ) -> None:
        """``POST /experiments/{id}/load_pulse`` (``refresh``: full, incremental or metric)."""
        body = compact(
            refresh=refresh, metricIDs=strings(metric_ids), ruleId=rule_id, turboMode=turbo_mode
        )
        await self._call("POST", EXPERIMENTS.path(experiment_id, "load_pulse"), body)

    def pulse_load_history(
        self, experiment_id: str, *, limit: int | None = None
    ) -> AsyncIterator[PulseLoad]:
        """Yield the experiment's pulse loads, newest first."""
        path = EXPERIMENTS.path(experiment_id, "pulse_load_history")
        return validated(PulseLoad, self._pages(path, limit=limit))
