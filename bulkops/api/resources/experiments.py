"""Experiments and Experiments (Warehouse Native): every operation under ``/experiments``.

Lifecycle calls (start, make_decision, abandon, reset, archive, …) answer only a
message, so they return None; read the experiment back to see its new ``status``.
"""

from __future__ import annotations

import builtins
from collections.abc import AsyncIterator, Sequence
from typing import Any

from ..models import ApiModel, Experiment, ExperimentOverrides
from ._base import Body, Resource, dump, encode_id

__all__ = [
    "AssignmentSource",
    "EntityPropertySource",
    "Experiments",
    "PulseLoad",
    "QualifyingEvent",
    "WarehouseNative",
]


class AssignmentSource(ApiModel):
    """A warehouse-native assignment source (exposures table), addressed by ``name``."""

    name: str
    description: str | None = None
    tags: list[str] = []
    sql: str | None = None
    timestampColumn: str | None = None
    experimentIDColumn: str | None = None
    groupIDColumn: str | None = None
    idTypeMapping: list[dict[str, Any]] = []


class EntityPropertySource(ApiModel):
    """A warehouse-native entity property source, addressed by ``name``."""

    name: str
    description: str | None = None
    tags: list[str] = []
    sql: str | None = None
    timestampColumn: str | None = None
    timestampAsDay: bool | None = None
    idTypeMapping: list[dict[str, Any]] = []


class QualifyingEvent(ApiModel):
    """A warehouse-native qualifying event (a metric source), addressed by ``name``."""

    name: str
    description: str | None = None
    tags: list[str] = []
    sql: str | None = None
    timestampColumn: str | None = None
    idTypeMapping: list[dict[str, Any]] = []
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


def _overrides_body(body: Body) -> dict[str, Any]:
    data = dump(body)
    data.setdefault("overrides", [])
    data.setdefault("userIDOverrides", [])
    return data


class Experiments(Resource):
    """``/experiments`` and everything under ``/experiments/{id}``."""

    def _path(self, experiment_id: str, *rest: str) -> str:
        return "/".join(["/experiments", encode_id(experiment_id), *rest])

    async def list(
        self,
        *,
        layer_id: str | None = None,
        id_type: str | None = None,
        team_id: str | None = None,
        status: str | Sequence[str] | None = None,
        target_app_id: str | None = None,
        created_start_date: str | None = None,
        created_end_date: str | None = None,
        creator_name: str | None = None,
        creator_id: str | None = None,
        tags: str | Sequence[str] | None = None,
        limit: int | None = None,
    ) -> AsyncIterator[Experiment]:
        """Yield every experiment matching the server-side filters (dates are YYYY-MM-DD)."""
        params = {
            "layerID": layer_id,
            "idType": id_type,
            "teamID": team_id,
            "status": status,
            "targetAppID": target_app_id,
            "createdStartDate": created_start_date,
            "createdEndDate": created_end_date,
            "creatorName": creator_name,
            "creatorID": creator_id,
            "tags": tags,
        }
        async for item in self._client.paginate("/experiments", params=params, limit=limit):
            yield Experiment.model_validate(item)

    async def create(self, body: Body) -> Experiment:
        """Create an experiment (201, status ``setup``); without ``layerID`` it gets an implicit layer."""
        data = await self._client.data("POST", "/experiments", json=dump(body))
        return Experiment.model_validate(data)

    async def get(self, experiment_id: str) -> Experiment:
        """Read one experiment."""
        return Experiment.model_validate(await self._client.data("GET", self._path(experiment_id)))

    async def update(self, experiment_id: str, body: Body) -> Experiment:
        """Full update (``POST /experiments/{id}``).

        The spec requires description, idType, hypothesis, groups, allocation,
        targetingGateID, bonferroniCorrection, defaultConfidenceInterval and status
        (status is server-owned: lifecycle calls change it, not this one).
        """
        data = await self._client.data("POST", self._path(experiment_id), json=dump(body))
        return Experiment.model_validate(data)

    async def patch(self, experiment_id: str, body: Body) -> Experiment:
        """Partial update (``PATCH /experiments/{id}``)."""
        data = await self._client.data("PATCH", self._path(experiment_id), json=dump(body))
        return Experiment.model_validate(data)

    async def delete(self, experiment_id: str) -> None:
        """Delete an experiment (and its implicit layer)."""
        await self._client.request("DELETE", self._path(experiment_id))

    # -- lifecycle ------------------------------------------------------------------------

    async def start(
        self,
        experiment_id: str,
        *,
        analysis_start_time: str | None = None,
        analysis_end_time: str | None = None,
    ) -> None:
        """``PUT /experiments/{id}/start``: setup → active (analysis times: warehouse native)."""
        body: dict[str, Any] = {}
        if analysis_start_time is not None:
            body["analysisStartTime"] = analysis_start_time
        if analysis_end_time is not None:
            body["analysisEndTime"] = analysis_end_time
        await self._client.request("PUT", self._path(experiment_id, "start"), json=body)

    async def schedule_start(self, experiment_id: str, scheduled_time_ms: float) -> None:
        """``POST /experiments/{id}/schedule_start`` at a millisecond epoch time."""
        body = {"scheduledTime": scheduled_time_ms}
        await self._client.request("POST", self._path(experiment_id, "schedule_start"), json=body)

    async def make_decision(
        self,
        experiment_id: str,
        group_id: str,
        reason: str,
        *,
        remove_targeting: bool | None = None,
    ) -> None:
        """``PUT /experiments/{id}/make_decision`` ("finish early"): ship ``group_id``."""
        body: dict[str, Any] = {"id": group_id, "decisionReason": reason}
        if remove_targeting is not None:
            body["removeTargeting"] = remove_targeting
        await self._client.request("PUT", self._path(experiment_id, "make_decision"), json=body)

    async def abandon(self, experiment_id: str, reason: str) -> None:
        """``PUT /experiments/{id}/abandon``: stop without shipping a group."""
        body = {"decisionReason": reason}
        await self._client.request("PUT", self._path(experiment_id, "abandon"), json=body)

    async def reset(self, experiment_id: str) -> None:
        """``PUT /experiments/{id}/reset``: restart a started experiment."""
        await self._client.request("PUT", self._path(experiment_id, "reset"))

    async def restart_as_new(self, experiment_id: str, name: str) -> Experiment:
        """``POST /experiments/{id}/restart_as_new``: returns the new experiment."""
        path = self._path(experiment_id, "restart_as_new")
        return Experiment.model_validate(await self._client.data("POST", path, json={"name": name}))

    async def archive(self, experiment_id: str, *, reason: str | None = None) -> None:
        """``PUT /experiments/{id}/archive`` with an optional ``archiveReason``."""
        body: dict[str, Any] = {} if reason is None else {"archiveReason": reason}
        await self._client.request("PUT", self._path(experiment_id, "archive"), json=body)

    async def unarchive(self, experiment_id: str) -> None:
        """``PUT /experiments/{id}/unarchive``."""
        await self._client.request("PUT", self._path(experiment_id, "unarchive"))

    async def enable_groups(self, experiment_id: str, group_names: Sequence[str]) -> Experiment:
        """``POST /experiments/{id}/enable_groups``."""
        path = self._path(experiment_id, "enable_groups")
        body = {"group_names": builtins.list(group_names)}
        return Experiment.model_validate(await self._client.data("POST", path, json=body))

    async def disable_groups(self, experiment_id: str, group_names: Sequence[str]) -> Experiment:
        """``POST /experiments/{id}/disable_groups``."""
        path = self._path(experiment_id, "disable_groups")
        body = {"group_names": builtins.list(group_names)}
        return Experiment.model_validate(await self._client.data("POST", path, json=body))

    # -- overrides: POST replaces, PATCH adds, DELETE removes ------------------------------

    async def get_overrides(self, experiment_id: str) -> ExperimentOverrides:
        """Read the experiment's overrides."""
        data = await self._client.data("GET", self._path(experiment_id, "overrides"))
        return ExperimentOverrides.model_validate(data)

    async def set_overrides(self, experiment_id: str, body: Body) -> ExperimentOverrides:
        """Replace all overrides (``overrides`` ≤1000, ids ≤1000 per entry)."""
        path = self._path(experiment_id, "overrides")
        data = await self._client.data("POST", path, json=_overrides_body(body))
        return ExperimentOverrides.model_validate(data)

    async def add_overrides(self, experiment_id: str, body: Body) -> ExperimentOverrides:
        """Add overrides; an entry for the same gate/segment or group is overwritten/extended."""
        path = self._path(experiment_id, "overrides")
        data = await self._client.data("PATCH", path, json=_overrides_body(body))
        return ExperimentOverrides.model_validate(data)

    async def remove_overrides(
        self, experiment_id: str, body: Body | None = None
    ) -> ExperimentOverrides:
        """Remove the listed entries and ids; with no ``body``, remove every override."""
        path = self._path(experiment_id, "overrides")
        if body is None:
            data = await self._client.data("DELETE", path)
        else:
            data = await self._client.data("DELETE", path, json=_overrides_body(body))
        return ExperimentOverrides.model_validate(data)

    # -- analytics ------------------------------------------------------------------------

    async def cumulative_exposures(self, experiment_id: str) -> builtins.list[dict[str, Any]]:
        """``GET /experiments/{id}/cumulative_exposures``: ``[{groupID, groupName, results}]``."""
        path = self._path(experiment_id, "cumulative_exposures")
        return builtins.list(await self._client.data("GET", path) or [])

    async def pulse_results(
        self,
        experiment_id: str,
        control: str,
        test: str,
        *,
        cuped: bool | None = None,
        confidence: str | None = None,
        apply_bonferroni_per_variant: bool | None = None,
        apply_bonferroni_per_metric: bool | None = None,
        bonferroni_primary_metric_weight: float | None = None,
        apply_benjamini_hochberg_per_metric: bool | None = None,
        apply_benjamini_hochberg_per_variant: bool | None = None,
        date: str | None = None,
    ) -> dict[str, Any]:
        """``GET /experiments/{id}/pulse_results`` comparing group ``test`` with ``control``."""
        params = {
            "control": control,
            "test": test,
            "cuped": cuped,
            "confidence": confidence,
            "applyBonferroniPerVariant": apply_bonferroni_per_variant,
            "applyBonferroniPerMetric": apply_bonferroni_per_metric,
            "bonferroniPrimaryMetricWeight": bonferroni_primary_metric_weight,
            "applyBenjaminiHochbergPerMetric": apply_benjamini_hochberg_per_metric,
            "applyBenjaminiHochbergPerVariant": apply_benjamini_hochberg_per_variant,
            "date": date,
        }
        path = self._path(experiment_id, "pulse_results")
        return dict(await self._client.data("GET", path, params=params) or {})

    async def resolve_alert(
        self, experiment_id: str, metric_id: str, *, reasoning: str | None = None
    ) -> dict[str, Any]:
        """``POST /experiments/{id}/alerts/{metricId}/resolve``: returns ``{resolvedAt}``."""
        path = self._path(experiment_id, "alerts", encode_id(metric_id), "resolve")
        body: dict[str, Any] = {} if reasoning is None else {"reasoning": reasoning}
        return dict(await self._client.data("POST", path, json=body) or {})


class WarehouseNative(Resource):
    """Experiments (Warehouse Native): pulse loading, assignment and entity property sources."""

    # -- pulse ------------------------------------------------------------------------------

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
        body: dict[str, Any] = {}
        if refresh is not None:
            body["refresh"] = refresh
        if metric_ids is not None:
            body["metricIDs"] = builtins.list(metric_ids)
        if rule_id is not None:
            body["ruleId"] = rule_id
        if turbo_mode is not None:
            body["turboMode"] = turbo_mode
        path = f"/experiments/{encode_id(experiment_id)}/load_pulse"
        await self._client.request("POST", path, json=body)

    async def pulse_load_history(
        self, experiment_id: str, *, limit: int | None = None
    ) -> AsyncIterator[PulseLoad]:
        """Yield the experiment's pulse loads, newest first."""
        path = f"/experiments/{encode_id(experiment_id)}/pulse_load_history"
        async for item in self._client.paginate(path, limit=limit):
            yield PulseLoad.model_validate(item)

    # -- assignment sources ------------------------------------------------------------------

    async def list_assignment_sources(
        self, *, limit: int | None = None
    ) -> AsyncIterator[AssignmentSource]:
        """Yield every assignment source."""
        async for item in self._client.paginate("/experiments/assignment_sources", limit=limit):
            yield AssignmentSource.model_validate(item)

    async def create_assignment_source(self, body: Body) -> AssignmentSource:
        """Create an assignment source (201); ``dryRun: true`` only validates."""
        data = await self._client.data("POST", "/experiments/assignment_sources", json=dump(body))
        return AssignmentSource.model_validate(data)

    async def update_assignment_source(self, name: str, body: Body) -> AssignmentSource:
        """Full update (``POST /experiments/assignment_source/{name}``)."""
        path = f"/experiments/assignment_source/{encode_id(name)}"
        return AssignmentSource.model_validate(
            await self._client.data("POST", path, json=dump(body))
        )

    async def patch_assignment_source(self, name: str, body: Body) -> AssignmentSource:
        """Partial update (``sql`` cannot change here)."""
        path = f"/experiments/assignment_source/{encode_id(name)}"
        return AssignmentSource.model_validate(
            await self._client.data("PATCH", path, json=dump(body))
        )

    async def delete_assignment_source(self, name: str) -> None:
        """Delete an assignment source."""
        await self._client.request("DELETE", f"/experiments/assignment_source/{encode_id(name)}")

    # -- entity property sources -------------------------------------------------------------

    async def list_entity_properties(
        self, *, limit: int | None = None
    ) -> AsyncIterator[EntityPropertySource]:
        """Yield every entity property source."""
        async for item in self._client.paginate("/experiments/entity_properties", limit=limit):
            yield EntityPropertySource.model_validate(item)

    async def create_entity_property(self, body: Body) -> EntityPropertySource:
        """Create an entity property source (201); ``dryRun: true`` only validates."""
        data = await self._client.data("POST", "/experiments/entity_properties", json=dump(body))
        return EntityPropertySource.model_validate(data)

    async def get_entity_property(self, name: str) -> EntityPropertySource:
        """Read one entity property source."""
        path = f"/experiments/entity_property/{encode_id(name)}"
        return EntityPropertySource.model_validate(await self._client.data("GET", path))

    async def update_entity_property(self, name: str, body: Body) -> EntityPropertySource:
        """Full update (``sql`` and ``idTypeMapping`` required)."""
        path = f"/experiments/entity_property/{encode_id(name)}"
        return EntityPropertySource.model_validate(
            await self._client.data("POST", path, json=dump(body))
        )

    async def patch_entity_property(self, name: str, body: Body) -> EntityPropertySource:
        """Partial update (``sql`` cannot change here)."""
        path = f"/experiments/entity_property/{encode_id(name)}"
        return EntityPropertySource.model_validate(
            await self._client.data("PATCH", path, json=dump(body))
        )

    async def delete_entity_property(self, name: str) -> None:
        """Delete an entity property source."""
        await self._client.request("DELETE", f"/experiments/entity_property/{encode_id(name)}")

    # -- qualifying events ---------------------------------------------------------------------

    async def list_qualifying_events(
        self, *, limit: int | None = None
    ) -> AsyncIterator[QualifyingEvent]:
        """Yield every qualifying event."""
        async for item in self._client.paginate("/experiments/qualifying_events", limit=limit):
            yield QualifyingEvent.model_validate(item)

    async def create_qualifying_event(self, body: Body) -> QualifyingEvent:
        """Create a qualifying event (201)."""
        data = await self._client.data("POST", "/experiments/qualifying_events", json=dump(body))
        return QualifyingEvent.model_validate(data)

    async def get_qualifying_event(self, name: str) -> QualifyingEvent:
        """Read one qualifying event."""
        path = f"/experiments/qualifying_events/{encode_id(name)}"
        return QualifyingEvent.model_validate(await self._client.data("GET", path))

    async def update_qualifying_event(self, name: str, body: Body) -> QualifyingEvent:
        """Full update (``sql``, ``timestampColumn`` and ``idTypeMapping`` required)."""
        path = f"/experiments/qualifying_events/{encode_id(name)}"
        return QualifyingEvent.model_validate(
            await self._client.data("POST", path, json=dump(body))
        )

    async def delete_qualifying_event(self, name: str) -> None:
        """Delete a qualifying event."""
        await self._client.request("DELETE", f"/experiments/qualifying_events/{encode_id(name)}")
