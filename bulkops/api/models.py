"""Pydantic models for Console API objects.

Every model read from the API uses ``extra="allow"``: fields the model does not
declare survive a read-modify-write (pydantic's default ``extra="ignore"`` would
silently drop them). Dump with :func:`dump` (``exclude_unset=True, by_alias=True``)
to send back exactly what was read plus what was changed.
"""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict, Field

__all__ = [
    "OVERRIDE_LISTS",
    "ApiModel",
    "AuditLogEntry",
    "Condition",
    "DynamicConfig",
    "Environment",
    "Experiment",
    "ExperimentOverrides",
    "Gate",
    "Holdout",
    "Key",
    "Labeled",
    "Layer",
    "LayerOverrides",
    "Overrides",
    "Rule",
    "Segment",
    "Tag",
    "TargetApp",
    "Team",
    "UnitIdType",
    "User",
    "dump",
]


class ApiModel(BaseModel):
    """Base of every API object: unknown fields are kept, nothing is validated away."""

    model_config = ConfigDict(extra="allow", populate_by_name=True)


def dump(model: BaseModel | dict[str, Any]) -> dict[str, Any]:
    """Serialise a model (or pass a dict through) as a request body."""
    if isinstance(model, BaseModel):
        return model.model_dump(mode="json", exclude_unset=True, by_alias=True)
    return dict(model)


class Condition(ApiModel):
    """One rule condition (``type`` plus operator, target value, field, custom id)."""

    type: str
    operator: str | None = None
    targetValue: Any = None
    field: str | None = None
    customID: str | None = None


class Rule(ApiModel):
    """A targeting rule of a gate, dynamic config, segment or layer."""

    name: str
    passPercentage: float = 100
    conditions: list[Condition] = []
    environments: list[str] | None = None
    id: str | None = None
    baseID: str | None = None
    returnValue: Any = None
    returnValueJson5: str | None = None


OVERRIDE_LISTS = ("passingUserIDs", "failingUserIDs", "passingCustomIDs", "failingCustomIDs")
"""The id lists of gate and holdout overrides (each list is all environments' ids)."""


class Overrides(ApiModel):
    """Gate or holdout overrides (the lists of :data:`OVERRIDE_LISTS`, and per environment)."""

    passingUserIDs: list[str] = []
    failingUserIDs: list[str] = []
    passingCustomIDs: list[str] | None = None
    failingCustomIDs: list[str] | None = None
    environmentOverrides: list[dict[str, Any]] = []


class ConfigBase(ApiModel):
    """Metadata shared by gates, configs, segments, experiments, layers and holdouts."""

    id: str
    name: str | None = None
    description: str | None = None
    idType: str | None = None
    tags: list[str] = []
    lastModifiedTime: int | None = None
    createdTime: int | None = None
    creatorName: str | None = None
    version: int | None = None


class Gate(ConfigBase):
    """A feature gate."""

    isEnabled: bool | None = None
    status: str | None = None
    type: str | None = None
    typeReason: str | None = None
    rules: list[Rule] = []


class DynamicConfig(ConfigBase):
    """A dynamic config: rules with return values and a default value."""

    isEnabled: bool | None = None
    status: str | None = None
    rules: list[Rule] = []
    defaultValue: Any = None
    defaultValueJson5: str | None = None
    schema_: str | None = Field(default=None, alias="schema")


class Segment(ConfigBase):
    """A segment: ``id_list``, ``rule_based``, ``user_store_id_list`` or ``analysis_list``."""

    type: str | None = None
    isEnabled: bool | None = None
    status: str | None = None
    count: int | None = None
    rules: list[Rule] | None = None


class Labeled(ApiModel):
    """A named, described object: tags, target apps, unit id types and teams."""

    name: str
    description: str | None = None


class Tag(Labeled):
    """A tag (configs reference tags by name)."""

    id: str | None = None
    isCore: bool | None = None


class Experiment(ConfigBase):
    """An experiment."""

    status: str | None = None
    groups: list[dict[str, Any]] = []
    layerID: str | None = None
    targetingGateID: str | None = None
    allocation: float | None = None
    hypothesis: str | None = None
    controlGroupID: str | None = None
    launchedGroupID: str | None = None
    startTime: float | None = None
    endTime: float | None = None
    decisionTime: float | None = None
    decisionReason: str | None = None


class ExperimentOverrides(ApiModel):
    """Experiment overrides: gate/segment overrides and per-group id overrides."""

    overrides: list[dict[str, Any]] = []
    userIDOverrides: list[dict[str, Any]] = []


class Layer(ConfigBase):
    """A layer (a universe experiments share)."""

    isImplicitLayer: bool | None = None
    parameters: list[dict[str, Any]] = []


class LayerOverrides(ApiModel):
    """Layer overrides: conditional and id overrides."""

    conditionalOverrides: list[dict[str, Any]] = []
    idOverrides: list[dict[str, Any]] = []


class Holdout(ConfigBase):
    """A holdout."""

    isEnabled: bool | None = None
    passPercentage: float | None = None
    gateIDs: list[str] = []
    experimentIDs: list[str] = []
    layerIDs: list[str] = []
    isGlobal: bool | None = None
    targetingGateID: str | None = None


class TargetApp(Labeled):
    """A target app."""

    id: str | None = None


class UnitIdType(Labeled):
    """A custom unit id type (its name is its id)."""


class Environment(ApiModel):
    """A project environment."""

    name: str
    id: str | None = None
    isProduction: bool | None = None
    requiresReview: bool | None = None
    requiresReleasePipeline: bool | None = None
    requiredReviewGroupID: str | None = None


class Key(ApiModel):
    """An API key. Its ``key`` is a secret: the repr hides it."""

    key: str | None = Field(default=None, repr=False)
    type: str | None = None
    description: str | None = None
    scopes: list[str] = []
    environments: list[str] = []
    primaryTargetApp: str | None = None
    secondaryTargetApps: list[str] | None = None
    status: str | None = None


class Team(Labeled):
    """A team."""

    id: str | None = None
    members: list[User] = []
    admins: list[User] = []


class User(ApiModel):
    """A project member."""

    email: str
    firstName: str | None = None
    lastName: str | None = None
    role: str | None = None


class AuditLogEntry(ApiModel):
    """One audit-log entry."""

    id: str
    name: str | None = None
    actionType: str | None = None
    changeLog: str | None = None
    date: str | None = None
    time: str | None = None
    updatedBy: str | None = None
    updatedByUserID: str | None = None
    changes: dict[str, Any] = {}
    tags: list[str] = []
    targetID: str | None = None
