"""What copied objects reference, the ids they get in the target, and the order to copy in.

Nothing here does I/O. :func:`references` lists what an object points at (tags, unit
id types, segments, gates, layers, experiments, environments, target apps, teams),
each with where; :class:`IdMap` and :func:`rewrite` give copied objects their target
ids (``--prefix``) and rewrite every reference to a copied object (``--env-map``
renames environments); :func:`topological` orders objects so that what they
reference comes first, and reports reference cycles.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from bulkops.api.paths import id_from_name

from .canonical import (
    BUILTIN_UNIT_ID_TYPES,
    CONFIG_KINDS,
    PREFIXED_KINDS,
    REFERENCE_CONDITIONS,
    implicit_layer_id,
    json_copy,
    names,
    sort_key,
)

__all__ = ["IdMap", "Ref", "references", "rewrite", "topological"]


@dataclass(frozen=True)
class Ref:
    """One reference: ``kind`` (``gates``, ``environments``, …) and ``id``, and where it is.

    ``follow_up`` marks references made by overrides, which are copied after every
    object exists.
    """

    kind: str
    id: str
    where: str
    follow_up: bool = False


def _condition_targets(cond: Mapping[str, Any]) -> list[str]:
    target = cond.get("targetValue")
    values = target if isinstance(target, list) else [target]
    return [v for v in values if isinstance(v, str) and v]


def _rule_refs(rules: Any) -> list[Ref]:
    refs: list[Ref] = []
    for rule in rules or ():
        if not isinstance(rule, Mapping):
            continue
        where = f"rule {rule.get('name')!r}"
        refs.extend(Ref("environments", str(env), where) for env in rule.get("environments") or ())
        for cond in rule.get("conditions") or ():
            if not isinstance(cond, Mapping):
                continue
            kind = REFERENCE_CONDITIONS.get(str(cond.get("type")))
            if kind is not None:
                refs += [
                    Ref(kind, t, f"{where} ({cond.get('type')})") for t in _condition_targets(cond)
                ]
            if cond.get("type") == "unit_id" and cond.get("customID"):
                refs.append(Ref("unit_id_types", str(cond["customID"]), f"{where} (unit_id)"))
    return refs


def references(
    kind: str, obj: Mapping[str, Any], overrides: Mapping[str, Any] | None = None
) -> list[Ref]:
    """Everything ``obj`` (and its ``overrides``) references, built-in unit types excepted."""
    refs: list[Ref] = []
    if kind in CONFIG_KINDS:
        refs += [Ref("tags", str(t), "tags") for t in names(obj.get("tags"))]
        refs += [Ref("target_apps", t, "targetApps") for t in names(obj.get("targetApps"))]
        if obj.get("idType"):
            refs.append(Ref("unit_id_types", str(obj["idType"]), "idType"))
        if obj.get("team"):
            refs.append(Ref("teams", str(obj["team"]), "team"))
        elif obj.get("teamID"):
            refs.append(Ref("teams", str(obj["teamID"]), "teamID"))
    refs += _rule_refs(obj.get("rules") if kind in ("segments", "gates", "dynamic_configs") else ())
    if kind == "experiments":
        if obj.get("targetingGateID"):
            refs.append(Ref("gates", str(obj["targetingGateID"]), "targetingGateID"))
        layer = obj.get("layerID")
        if layer and layer != implicit_layer_id(str(obj.get("id"))):
            refs.append(Ref("layers", str(layer), "layerID"))
    refs += _override_refs(kind, overrides)
    return [r for r in refs if not (r.kind == "unit_id_types" and r.id in BUILTIN_UNIT_ID_TYPES)]


# What override entries reference: per list, (field, kind, always). A None kind is a
# gate or a segment, as the entry's ``type`` says; fields not ``always`` count when set.
_TARGET: str | None = None
_OVERRIDE_REFS: dict[str, tuple[tuple[str, tuple[tuple[str, str | None, bool], ...]], ...]] = {
    "gates": (
        (
            "environmentOverrides",
            (("environment", "environments", False), ("unitID", "unit_id_types", False)),
        ),
    ),
    "experiments": (
        ("overrides", (("id", _TARGET, True), ("environment", "environments", False))),
        (
            "userIDOverrides",
            (("environment", "environments", False), ("unitType", "unit_id_types", False)),
        ),
    ),
    "layers": (
        (
            "conditionalOverrides",
            (("name", _TARGET, True), ("experimentName", "experiments", True)),
        ),
        (
            "idOverrides",
            (
                ("experimentName", "experiments", False),
                ("environment", "environments", False),
                ("idType", "unit_id_types", False),
            ),
        ),
    ),
}


def _override_refs(kind: str, overrides: Mapping[str, Any] | None) -> list[Ref]:
    refs: list[Ref] = []
    for name, fields in _OVERRIDE_REFS.get(kind, ()):
        for e in (overrides or {}).get(name) or ():
            for key, target, always in fields:
                if always or e.get(key):
                    ref_kind = target or ("gates" if e.get("type") == "gate" else "segments")
                    refs.append(Ref(ref_kind, str(e.get(key)), "overrides", True))
    return refs


# -- id rewriting ---------------------------------------------------------------------------


@dataclass(frozen=True)
class IdMap:
    """Source ids → target ids for the objects being copied (everything else keeps its id).

    With ``prefix``, copied segments, gates, dynamic configs, layers and experiments get
    ``prefix + id`` and ``prefix + name``; tags and unit id types are shared labels and
    keep theirs. A layer's id is always derived from its name by the service, so a
    copied layer's target id is ``id_from_name(prefix + name)``.
    """

    prefix: str = ""
    copied: Mapping[str, frozenset[str]] = field(default_factory=dict)
    layer_names: Mapping[str, str] = field(default_factory=dict)

    def __call__(self, kind: str, source_id: str) -> str:
        """The target id of ``kind/source_id``."""
        if kind not in PREFIXED_KINDS or source_id not in self.copied.get(kind, ()):
            return source_id
        if kind == "layers":
            return id_from_name(self.prefix + self.layer_names.get(source_id, source_id))
        return self.prefix + source_id

    def name(self, kind: str, name: str) -> str:
        """The target display name of a copied object."""
        return self.prefix + name if kind in PREFIXED_KINDS else name


def _map_condition(cond: dict[str, Any], ids: IdMap) -> dict[str, Any]:
    kind = REFERENCE_CONDITIONS.get(str(cond.get("type")))
    if kind is None or "targetValue" not in cond:
        return cond
    target = cond["targetValue"]
    if isinstance(target, list):
        cond["targetValue"] = [ids(kind, v) if isinstance(v, str) else v for v in target]
    elif isinstance(target, str):
        cond["targetValue"] = ids(kind, target)
    return cond


def _map_env(env: Any, env_map: Mapping[str, str]) -> Any:
    return env_map.get(env, env) if isinstance(env, str) else env


def _map_rules(rules: list[dict[str, Any]], ids: IdMap, env_map: Mapping[str, str]) -> None:
    for rule in rules:
        rule["conditions"] = [_map_condition(c, ids) for c in rule["conditions"]]
        if rule.get("environments") is not None:
            rule["environments"] = list(
                dict.fromkeys(_map_env(e, env_map) for e in rule["environments"])
            )


def rewrite(
    kind: str,
    canon: Mapping[str, Any],
    ids: IdMap,
    env_map: Mapping[str, str] | None = None,
) -> dict[str, Any]:
    """A source canonical object in target terms: ids, names, references and environments."""
    env_map = env_map or {}
    out: dict[str, Any] = json_copy(canon)
    if kind in ("tags", "unit_id_types"):
        return out
    source_id = str(canon.get("id"))
    out["id"] = ids(kind, source_id)
    out["name"] = ids.name(kind, str(canon.get("name")))
    if isinstance(out.get("rules"), list):
        _map_rules(out["rules"], ids, env_map)
    if kind == "experiments":
        out["targetingGateID"] = (
            ids("gates", out["targetingGateID"]) if out.get("targetingGateID") else ""
        )
        layer = canon.get("layerID")
        if not layer or layer == implicit_layer_id(source_id):
            out["layerID"] = implicit_layer_id(out["id"])
        else:
            out["layerID"] = ids("layers", str(layer))
    overrides = out.get("overrides")
    if isinstance(overrides, dict):
        out["overrides"] = _rewrite_overrides(kind, overrides, ids, env_map)
    return out


def _rewrite_overrides(
    kind: str, data: dict[str, Any], ids: IdMap, env_map: Mapping[str, str]
) -> dict[str, Any]:
    if kind == "gates":
        for e in data["environmentOverrides"]:
            e["environment"] = _map_env(e["environment"], env_map)
        data["environmentOverrides"] = sorted(data["environmentOverrides"], key=sort_key)
    elif kind == "experiments":
        for e in data["overrides"]:
            e["id"] = ids("gates" if e["type"] == "gate" else "segments", str(e["id"]))
            e["environment"] = _map_env(e["environment"], env_map)
        for e in data["userIDOverrides"]:
            e["environment"] = _map_env(e["environment"], env_map)
        data = {k: sorted(v, key=sort_key) for k, v in data.items()}
    elif kind == "layers":
        for e in data["conditionalOverrides"]:
            e["name"] = ids("gates" if e["type"] == "gate" else "segments", str(e["name"]))
            e["experimentName"] = ids("experiments", str(e["experimentName"]))
        for e in data["idOverrides"]:
            if e.get("experimentName"):
                e["experimentName"] = ids("experiments", str(e["experimentName"]))
            e["environment"] = _map_env(e["environment"], env_map)
        data = {k: sorted(v, key=sort_key) for k, v in data.items()}
    return data


# -- ordering ---------------------------------------------------------------------------------


def topological(
    ids: Sequence[str], edges: Mapping[str, Iterable[str]]
) -> tuple[list[str], list[list[str]]]:
    """Order ``ids`` so that every id comes after the ids it references (``edges``).

    Edges to ids outside ``ids`` are ignored. Ties keep the order of ``ids``.
    Returns the order and the reference cycles (each a list of ids, in ``ids`` order).
    """
    known = set(ids)
    deps = {i: [d for d in dict.fromkeys(edges.get(i, ())) if d in known] for i in ids}
    order: list[str] = []
    state: dict[str, int] = {}  # 1 visiting, 2 done

    def visit(node: str) -> None:
        stack: list[tuple[str, Iterable[str]]] = [(node, iter(deps[node]))]
        state[node] = 1
        while stack:
            current, children = stack[-1]
            advanced = False
            for child in children:
                if state.get(child) is None:
                    state[child] = 1
                    stack.append((child, iter(deps[child])))
                    advanced = True
                    break
            if not advanced:
                stack.pop()
                state[current] = 2
                order.append(current)

    # Depth-first post-order; an edge back to a node being visited (a cycle) is skipped,
    # so the members of a cycle still come after everything else they reference.
    for node in ids:
        if state.get(node) is None:
            visit(node)
    return order, _cycles(ids, deps)


def _cycles(ids: Sequence[str], deps: Mapping[str, list[str]]) -> list[list[str]]:
    """Strongly connected components with more than one member, or a self-reference (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    on_stack: set[str] = set()
    stack: list[str] = []
    found: list[list[str]] = []
    counter = 0
    for root in ids:
        if root in index:
            continue
        work: list[tuple[str, int]] = [(root, 0)]
        while work:
            node, child_index = work.pop()
            if child_index == 0:
                index[node] = low[node] = counter
                counter += 1
                stack.append(node)
                on_stack.add(node)
            children = deps[node]
            if child_index < len(children):
                work.append((node, child_index + 1))
                child = children[child_index]
                if child not in index:
                    work.append((child, 0))
                elif child in on_stack:
                    low[node] = min(low[node], index[child])
                continue
            if low[node] == index[node]:
                component: list[str] = []
                while True:
                    member = stack.pop()
                    on_stack.discard(member)
                    component.append(member)
                    if member == node:
                        break
                if len(component) > 1 or node in deps[node]:
                    position = {i: n for n, i in enumerate(ids)}
                    found.append(sorted(component, key=position.__getitem__))
            if work:
                parent = work[-1][0]
                low[parent] = min(low[parent], low[node])
    return found
