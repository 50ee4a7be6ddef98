"""Pydantic models for Console API objects.

Every model read from the API uses ``extra="allow"``: fields the model does not
declare survive a read-modify-write (pydantic's default ``extra="ignore"`` would
silently drop them). Dump with :func:`dump` (``exclude_unset=True, by_alias=True``)
to send back exactly what was read plus what was changed.
"""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict

__all__ = [
    "ApiModel",
    "Condition",
    "Gate",
    "Overrides",
    "Rule",
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


class Gate(ApiModel):
    """A feature gate."""

    id: str
    name: str | None = None
    description: str | None = None
    idType: str | None = None
    isEnabled: bool | None = None
    status: str | None = None
    type: str | None = None
    typeReason: str | None = None
    rules: list[Rule] = []
    tags: list[str] = []
    lastModifiedTime: int | None = None
    createdTime: int | None = None
    creatorName: str | None = None
    version: int | None = None


class Overrides(ApiModel):
    """Gate or holdout overrides."""

    passingUserIDs: list[str] = []
    failingUserIDs: list[str] = []
    passingCustomIDs: list[str] | None = None
    failingCustomIDs: list[str] | None = None
    environmentOverrides: list[dict[str, Any]] = []
