"""Fitting a desired object to the target project and to what the API can write.

Nothing here does I/O. :func:`fit` adapts a desired (rewritten) object to what the
target project and the API can hold, and names each thing that is dropped (a *loss*):
a target app, team or environment the target lacks, fields the API cannot write,
states it cannot undo.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from .canonical import SINGULAR, json_copy, same, short

__all__ = ["TargetFacts", "fit"]


@dataclass(frozen=True)
class TargetFacts:
    """What the target project offers that copied objects may name.

    Attributes:
        environments: Environment names.
        target_apps: Target app names and ids.
        teams: Team name → team id.
    """

    environments: frozenset[str] = frozenset()
    target_apps: frozenset[str] = frozenset()
    teams: Mapping[str, str] = field(default_factory=dict)


# Fields the API cannot write on an existing object of each kind (no update endpoint,
# or an update body without them): an overwrite keeps the target's value.
_FROZEN_ON_UPDATE: dict[str, tuple[str, ...]] = {
    "segments": ("name", "description", "idType", "tags", "targetApps", "team", "teamID", "type"),
    "layers": ("name", "idType", "tags", "team", "teamID"),
    "gates": ("isTemplate",),
    "dynamic_configs": ("isTemplate",),
    "experiments": (),
    "tags": (),
    "unit_id_types": (),
}
# Fields the API cannot write at all (not even on create): a new object gets the default.
_NEVER_WRITABLE: dict[str, dict[str, Any]] = {
    "segments": {"targetApps": [], "isEnabled": True},
    "layers": {"tags": [], "teamID": None},
    "gates": {"allowedReviewers": []},
}


def fit(
    kind: str,
    desired: Mapping[str, Any],
    facts: TargetFacts,
    existing: Mapping[str, Any] | None = None,
) -> tuple[dict[str, Any], list[str]]:
    """Adapt a desired (rewritten) object to the target; returns it and what is dropped.

    Drops target apps, teams and environments the target lacks (rules that only ran
    in missing environments go; override entries for them go), release pipelines
    (project-specific), and every field the API cannot write: on a new object it gets
    the server's default, on an ``existing`` one it keeps the target's value. Each
    drop is one loss line naming the object, the field and the reason.
    """
    out: dict[str, Any] = json_copy(desired)
    losses: list[str] = []
    label = f"{SINGULAR[kind]} {desired.get('id') or desired.get('name')}"

    def lose(what: str, why: str) -> None:
        losses.append(f"{label}: {what} dropped ({why})")

    if kind in ("tags", "unit_id_types"):
        return out, losses
    apps = out.get("targetApps") or []
    missing = [a for a in apps if a not in facts.target_apps]
    if missing:
        out["targetApps"] = [a for a in apps if a in facts.target_apps]
        lose(f"targetApps {missing}", "the target project has no such target app")
    layer = out.get("implicitLayer")
    if isinstance(layer, dict):
        missing = [a for a in layer.get("targetApps") or [] if a not in facts.target_apps]
        if missing:
            layer["targetApps"] = [a for a in layer["targetApps"] if a in facts.target_apps]
            lose(
                f"implicit layer targetApps {missing}", "the target project has no such target app"
            )
    _fit_team(out, facts, lose)
    if out.get("releasePipelineID") is not None:
        lose(
            f"releasePipelineID {out['releasePipelineID']!r}",
            "release pipelines belong to their project",
        )
        out["releasePipelineID"] = None
    if isinstance(out.get("rules"), list):
        out["rules"] = _fit_rules(out["rules"], facts.environments, lose)
    if isinstance(out.get("overrides"), dict):
        out["overrides"] = _fit_overrides(kind, out["overrides"], facts.environments, lose)
    for name, default in _NEVER_WRITABLE.get(kind, {}).items():
        if kind == "segments" and name == "isEnabled" and out.get("status") == "Archived":
            continue  # archiving a segment disables it
        value = existing.get(name, default) if existing is not None else default
        if name in out and not same(out[name], value):
            lose(f"{name} {short(out[name])}", "the API cannot set it")
            out[name] = json_copy(value)
    if existing is not None:
        _fit_existing(kind, out, existing, lose)
    return out, losses


def _fit_team(out: dict[str, Any], facts: TargetFacts, lose: Callable[[str, str], None]) -> None:
    team, team_id = out.get("team"), out.get("teamID")
    if team:
        if team in facts.teams:
            out["teamID"] = facts.teams[team]
            return
        lose(f"team {team!r}", "the target project has no team of that name")
    elif team_id:
        if team_id in facts.teams.values():
            return
        lose(f"teamID {team_id!r}", "the target project has no such team")
    else:
        return
    out["team"] = None
    out["teamID"] = None


def _fit_rules(
    rules: list[dict[str, Any]], envs: frozenset[str], lose: Callable[[str, str], None]
) -> list[dict[str, Any]]:
    kept: list[dict[str, Any]] = []
    for rule in rules:
        names = rule.get("environments")
        if names is None:
            kept.append(rule)
            continue
        missing = [e for e in names if e not in envs]
        if not missing:
            kept.append(rule)
            continue
        remaining = [e for e in names if e in envs]
        if remaining:
            lose(
                f"environments {missing} of rule {rule['name']!r}",
                "the target project has no such environment",
            )
            kept.append({**rule, "environments": remaining})
        else:
            lose(
                f"rule {rule['name']!r} (only for environments {missing})",
                "the target project has no such environment",
            )
    return kept


def _fit_overrides(
    kind: str, data: dict[str, Any], envs: frozenset[str], lose: Callable[[str, str], None]
) -> dict[str, Any]:
    lists = {
        "gates": ("environmentOverrides",),
        "experiments": ("overrides", "userIDOverrides"),
        "layers": ("idOverrides",),
    }[kind]
    for name in lists:
        kept = []
        for entry in data[name]:
            env = entry.get("environment")
            if env is None or env in envs:
                kept.append(entry)
            else:
                lose(
                    f"{name} entry for environment {env!r}",
                    "the target project has no such environment",
                )
        data[name] = kept
    return data


def _fit_existing(
    kind: str,
    out: dict[str, Any],
    existing: Mapping[str, Any],
    lose: Callable[[str, str], None],
) -> None:
    frozen = list(_FROZEN_ON_UPDATE.get(kind, ()))
    if kind == "segments" and existing.get("type") != out.get("type"):
        frozen += ["rules", "ids"]
    if kind == "experiments" and existing.get("status") not in (None, "setup"):
        frozen += ["groups", "idType", "layerID"]  # refused once an experiment has started
    for name in frozen:
        if name in out and not same(out[name], existing.get(name)):
            lose(f"{name} {short(out[name])}", "the API cannot change it on an existing object")
            out[name] = json_copy(existing.get(name))
    if (
        kind == "gates"
        and existing.get("status") == "Launched"
        and out.get("status") == "In Progress"
    ):
        lose("status 'In Progress'", "the API cannot un-launch a launched gate")
        out["status"] = "Launched"
    if (
        kind == "segments"
        and existing.get("status") == "Archived"
        and out.get("status") != "Archived"
    ):
        lose(f"status {out.get('status')!r}", "the API cannot unarchive a segment")
        out["status"] = "Archived"
        out["isEnabled"] = existing.get("isEnabled")
