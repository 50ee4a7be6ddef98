"""copy-project: copy tags, unit id types, segments, gates, configs, layers and experiments.

Reads the source project (key in ``--source-key-env``) and plans writes to the target
project (key in ``--target-key-env``), dependencies first, in the order of
console-api.md §20: tags and unit id types; segments, ordered by the segments they
reference; gates, ordered by the gates they reference; dynamic configs; layers with
their parameters; experiments as drafts that are not started (with their implicit
layer's parameters); then, with ``--with-overrides``, gate, experiment and layer
overrides; then, with ``--with-id-lists``, segment id lists in chunks of 1,000 ids
(the ``id_list`` quota class).

Every object keeps its id (an explicit ``id`` on create) or, with ``--prefix P``,
gets ``P + id`` and ``P + name``, every reference to a copied object being rewritten
(rule conditions ``passes_``/``fails_`` gate and segment, experiment
``targetingGateID`` and ``layerID``, experiment and layer overrides). Server-owned
fields are stripped; one create carries an object's rules; separate requests are
made only where the API needs them (gate launch and archive, config and segment
archive, layer parameters, overrides, id lists).

``--include`` picks kinds (default: all but experiments). ``--id GLOB`` and ``--tag
TAG`` (each repeatable; both given: both must match) copy a subset of segments,
gates, configs, layers and experiments, together with whatever they reference among
the included kinds. A reference to something that is not copied and not in the
target is an error at plan time naming both objects.

An object that exists in the target is a conflict: ``--on-conflict skip`` (default)
leaves it alone, ``overwrite`` updates only what differs, ``fail`` refuses the plan
before anything is sent. What cannot be carried over faithfully (a target app, team
or environment the target lacks; ``--env-map FROM=TO`` renames environments; fields
the API cannot write, such as a segment's target apps or a layer's tags) refuses the
plan unless ``--accept-loss``, which logs exactly what is dropped.

After the run every copied object is read back from the target and compared with the
source (rules, conditions, return values, tags, description, enabled state,
overrides, id lists); differences make the exit code 1. The undo deletes what the
copy created, dependents first, and restores what it overwrote.
"""

from __future__ import annotations

import fnmatch
import json
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal
from urllib.parse import quote

import anyio
from pydantic import BaseModel, ConfigDict, Field, field_validator

from bulkops.api.client import ConsoleClient
from bulkops.engine.mutations import CREATED_ID, Expect, InverseCall, JobContext, Mutation
from bulkops.engine.quota import ID_LIST_CLASS
from bulkops.errors import PlanError, RefusedError

from .analysis import (
    CONFIG_KINDS,
    DEFAULT_INCLUDE,
    EXPERIMENT_FIELDS,
    KINDS,
    SINGULAR,
    IdMap,
    Ref,
    TargetFacts,
    canonical,
    check_prefix,
    diff,
    fit,
    implicit_layer_id,
    is_implicit_layer,
    references,
    rewrite,
    same,
    topological,
)

__all__ = ["ID_LIST_CHUNK", "Params", "plan", "verify"]

ID_LIST_CHUNK = 1000
READ_CONCURRENCY = 8
EVENT_LOSS = "copy.loss_accepted"
EVENT_SELECTED = "copy.selected"

Kind = Literal[
    "tags", "unit_id_types", "segments", "gates", "dynamic_configs", "layers", "experiments"
]
_PATHS = {
    "tags": "/tags",
    "unit_id_types": "/unit_id_types",
    "segments": "/segments",
    "gates": "/gates",
    "dynamic_configs": "/dynamic_configs",
    "layers": "/layers",
    "experiments": "/experiments",
}
_BY_NAME = ("tags", "unit_id_types")
_OVERRIDE_KINDS = ("gates", "experiments", "layers")
_OVERRIDE_LISTS = ("passingUserIDs", "failingUserIDs", "passingCustomIDs", "failingCustomIDs")
_GATE_FULL = (
    "name",
    "description",
    "idType",
    "isEnabled",
    "rules",
    "tags",
    "targetApps",
    "type",
    "measureMetricLifts",
    "monitoringMetrics",
    "requiredReview",
    "team",
    "teamID",
    "releasePipelineID",
)
_CONFIG_FULL = (
    "name",
    "description",
    "idType",
    "isEnabled",
    "rules",
    "tags",
    "targetApps",
    "defaultValue",
    "defaultValueJson5",
    "schema",
    "schemaJson5",
    "team",
    "teamID",
    "releasePipelineID",
)
_LAYER_UPDATE = ("description", "parameters", "targetApps")
_EXPERIMENT_UPDATE = (
    "name",
    "description",
    "idType",
    "tags",
    "targetApps",
    "team",
    "teamID",
    "groups",
    "controlGroup",
    "targetingGateID",
    "layerID",
    *EXPERIMENT_FIELDS,
)
_FRESH_IMPLICIT_LAYER: dict[str, Any] = {"description": "", "parameters": [], "targetApps": []}
_MAX_LISTED = 200


class Params(BaseModel):
    """Options of copy-project."""

    model_config = ConfigDict(extra="forbid")

    source_key_env: str = Field(description="environment variable holding the source project's key")
    target_key_env: str = Field(
        description="environment variable holding the target project's key (writes go there)"
    )
    include: list[Kind] = Field(
        default_factory=lambda: list(DEFAULT_INCLUDE),  # type: ignore[arg-type]
        description="kinds to copy (default: all but experiments)",
    )
    id: list[str] = Field(
        default_factory=list,
        description="copy objects whose id matches this glob (and their dependencies)",
    )
    tag: list[str] = Field(
        default_factory=list, description="copy objects carrying this tag (and their dependencies)"
    )
    prefix: str = Field(default="", description="give copied objects the ids and names PREFIX+id")
    on_conflict: Literal["skip", "overwrite", "fail"] = Field(
        default="skip", description="an object that exists in the target: skip, overwrite or fail"
    )
    with_overrides: bool = Field(
        default=False, description="copy gate, experiment and layer overrides"
    )
    with_id_lists: bool = Field(default=False, description="copy the ids of id-list segments")
    env_map: list[str] = Field(
        default_factory=list,
        description="FROM=TO: the source's environment FROM is TO in the target",
    )
    accept_loss: bool = Field(
        default=False, description="copy even what cannot be carried over whole (drops are logged)"
    )

    @field_validator("include")
    @classmethod
    def _include(cls, value: list[str]) -> list[str]:
        if not value:
            raise ValueError("include at least one kind")
        return [k for k in KINDS if k in value]

    @field_validator("prefix")
    @classmethod
    def _prefix(cls, value: str) -> str:
        problem = check_prefix(value)
        if problem:
            raise ValueError(problem)
        return value

    @field_validator("env_map")
    @classmethod
    def _env_map(cls, value: list[str]) -> list[str]:
        for item in value:
            source, sep, target = item.partition("=")
            if not sep or not source.strip() or not target.strip():
                raise ValueError(f"expected FROM=TO, got {item!r}")
        return value

    def environment_map(self) -> dict[str, str]:
        """``--env-map`` as a dict."""
        return {s.strip(): t.strip() for s, _, t in (item.partition("=") for item in self.env_map)}


# -- reading -------------------------------------------------------------------------------


def _seg(value: str) -> str:
    return quote(str(value), safe="")


def _path(kind: str, object_id: str, tail: str = "") -> str:
    return f"{_PATHS[kind]}/{_seg(object_id)}{tail}"


async def _run_all(calls: Sequence[Callable[[], Awaitable[None]]]) -> None:
    """Run ``calls`` with at most READ_CONCURRENCY at a time; the first error is raised."""
    pending = iter(calls)
    errors: list[BaseException] = []

    async def worker() -> None:
        for call in pending:
            if errors:
                return
            try:
                await call()
            except Exception as exc:  # re-raised below, outside the task group
                errors.append(exc)
                return

    async with anyio.create_task_group() as tg:
        for _ in range(min(READ_CONCURRENCY, len(calls))):
            tg.start_soon(worker)
    if errors:
        raise errors[0]


@dataclass
class _Project:
    """What was read of one project."""

    client: ConsoleClient
    objects: dict[str, dict[str, dict[str, Any]]] = field(default_factory=dict)
    environments: list[str] = field(default_factory=list)
    target_apps: set[str] = field(default_factory=set)
    teams: dict[str, str] | None = None
    overrides: dict[tuple[str, str], dict[str, Any]] = field(default_factory=dict)
    id_lists: dict[str, list[str]] = field(default_factory=dict)

    def get(self, kind: str, key: str) -> dict[str, Any] | None:
        return self.objects.get(kind, {}).get(key)

    async def read(self, kinds: Iterable[str], *, target_apps: bool = False) -> None:
        async def load(kind: str) -> None:
            params = {"includeArchived": True} if kind in ("gates", "dynamic_configs") else None
            key = "name" if kind in _BY_NAME else "id"
            items = [i async for i in self.client.paginate(_PATHS[kind], params=params)]
            self.objects[kind] = {
                str(i[key]): i for i in items if isinstance(i, dict) and i.get(key) is not None
            }

        async def environments() -> None:
            data = await self.client.data("GET", "/environments")
            envs = data.get("environments") if isinstance(data, dict) else None
            self.environments = [
                str(e["name"]) for e in envs or () if isinstance(e, dict) and e.get("name")
            ]

        async def apps() -> None:
            async for app in self.client.paginate("/target_app"):
                self.target_apps.update(str(app[k]) for k in ("id", "name") if app.get(k))

        calls: list[Callable[[], Awaitable[None]]] = [
            *(lambda k=k: load(k) for k in kinds),
            environments,
        ]
        if target_apps:
            calls.append(apps)
        await _run_all(calls)

    async def read_teams(self) -> None:
        if self.teams is None:
            self.teams = {
                str(t["name"]): str(t.get("id"))
                async for t in self.client.paginate("/users/teams")
                if t.get("name")
            }

    async def read_overrides(self, items: Iterable[tuple[str, str]]) -> None:
        todo = list(dict.fromkeys(i for i in items if i not in self.overrides))

        async def one(kind: str, object_id: str) -> None:
            data = await self.client.data("GET", _path(kind, object_id, "/overrides"))
            self.overrides[(kind, object_id)] = data if isinstance(data, dict) else {}

        await _run_all([lambda k=k, i=i: one(k, i) for k, i in todo])  # type: ignore[misc]

    async def read_id_lists(self, segment_ids: Iterable[str]) -> None:
        todo = [s for s in dict.fromkeys(segment_ids) if s not in self.id_lists]

        async def one(segment_id: str) -> None:
            ids: list[str] = []
            path = _path("segments", segment_id, "/id_list")
            async for page in self.client.paginate(path, limit=ID_LIST_CHUNK):
                ids.extend(str(i) for i in page.get("ids") or ())
            self.id_lists[segment_id] = ids

        await _run_all([lambda s=s: one(s) for s in todo])  # type: ignore[misc]


# -- analysis: what to copy, where it goes, what it becomes ----------------------------------


@dataclass
class _Entry:
    """One object to copy."""

    kind: str
    source_id: str
    target_id: str
    source: dict[str, Any]
    existing: dict[str, Any] | None = None
    desired: dict[str, Any] = field(default_factory=dict)
    current: dict[str, Any] | None = None
    losses: list[str] = field(default_factory=list)

    @property
    def object(self) -> str:
        return f"{SINGULAR[self.kind]}/{self.target_id}"


@dataclass
class _Work:
    """The whole analysis of one copy."""

    params: Params
    source: _Project
    target: _Project
    touched: frozenset[str] | None = None
    ids: IdMap = field(default_factory=IdMap)
    entries: list[_Entry] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)

    def writes(self, kind: str, target_id: str) -> bool:
        """Whether the copy writes this object: when planning, a new one or (with
        overwrite) any; when verifying, one the run touched."""
        if self.touched is not None:
            return f"{SINGULAR[kind]}/{target_id}" in self.touched
        return self.params.on_conflict == "overwrite" or self.target.get(kind, target_id) is None


def _source_kinds(include: Sequence[str]) -> list[str]:
    kinds = list(include)
    if "experiments" in kinds and "layers" not in kinds:
        kinds.append("layers")  # experiments carry their implicit layer's parameters
    return kinds


def _matches(obj: Mapping[str, Any], params: Params) -> bool:
    if params.id and not any(fnmatch.fnmatchcase(str(obj.get("id")), p) for p in params.id):
        return False
    return not (params.tag and not set(params.tag) & set(obj.get("tags") or ()))


def _label(kind: str, key: str) -> str:
    return f"{SINGULAR.get(kind, kind)} {key}"


def _find(project: _Project, kind: str, key: str) -> dict[str, Any] | None:
    found = project.get(kind, key)
    if found is None and kind == "layers":
        return None
    if found is not None and kind == "layers" and is_implicit_layer(found):
        return None
    return found


async def _select(work: _Work) -> list[tuple[str, str]]:
    """The objects to copy: the selection plus, transitively, what it references."""
    params, source, target = work.params, work.source, work.target
    include = set(params.include)
    filtered = bool(params.id or params.tag)
    chosen: dict[tuple[str, str], None] = {}
    for kind in KINDS:
        if kind not in include:
            continue
        for key, obj in source.objects.get(kind, {}).items():
            if kind == "layers" and is_implicit_layer(obj):
                continue
            if kind in CONFIG_KINDS and filtered and not _matches(obj, params):
                continue
            if kind in _BY_NAME and filtered:
                continue
            chosen[(kind, key)] = None
    # What an object that is left alone references does not matter: only the objects
    # the copy writes are followed (and have their overrides read).
    provisional = IdMap(
        prefix=params.prefix,
        copied={k: frozenset(objs) for k, objs in source.objects.items()},
        layer_names=_layer_names(source),
    )
    frontier = [(k, i) for k, i in chosen if work.writes(k, provisional(k, i))]
    while frontier:
        if params.with_overrides:
            await source.read_overrides(_override_owners(source, frontier))
        added: list[tuple[str, str]] = []
        for kind, key in frontier:
            obj = source.objects[kind][key]
            for ref in references(kind, obj, _overrides_of(source, kind, key, params)):
                if ref.kind not in KINDS:
                    continue
                item = (ref.kind, ref.id)
                if item in chosen:
                    continue
                if ref.kind in include and _find(source, ref.kind, ref.id) is not None:
                    chosen[item] = None
                    if work.writes(ref.kind, provisional(ref.kind, ref.id)):
                        added.append(item)
                    continue
                if _find(target, ref.kind, ref.id) is not None:
                    continue
                why = (
                    f"not included (add --include {ref.kind})"
                    if ref.kind not in include
                    else "not in the source project either"
                )
                work.errors.append(
                    f"{_label(kind, key)} references {_label(ref.kind, ref.id)} ({ref.where}), "
                    f"which is not being copied ({why}) and does not exist in the target project"
                )
        frontier = added
    return list(chosen)


def _layer_names(source: _Project) -> dict[str, str]:
    return {
        key: str(obj.get("name") or key) for key, obj in source.objects.get("layers", {}).items()
    }


def _override_owners(source: _Project, items: Iterable[tuple[str, str]]) -> list[tuple[str, str]]:
    owners: list[tuple[str, str]] = []
    for kind, key in items:
        if kind in _OVERRIDE_KINDS:
            owners.append((kind, key))
        if kind == "experiments":
            layer = implicit_layer_id(key)
            if source.get("layers", layer) is not None:
                owners.append(("layers", layer))
    return owners


def _overrides_of(project: _Project, kind: str, key: str, params: Params) -> dict[str, Any] | None:
    if not params.with_overrides or kind not in _OVERRIDE_KINDS:
        return None
    return project.overrides.get((kind, key), {})


async def _analyze(
    source_client: ConsoleClient,
    target_client: ConsoleClient,
    params: Params,
    *,
    touched: frozenset[str] | None = None,
) -> _Work:
    """Read both projects and work out, per object, what the target should hold.

    ``touched`` (verifying a run): the objects the run wrote, which are the ones
    compared; other objects are left out of the reads.
    """
    work = _Work(params, _Project(source_client), _Project(target_client), touched)
    await _run_all(
        [
            lambda: work.source.read(_source_kinds(params.include)),
            lambda: work.target.read(KINDS, target_apps=True),
        ]
    )
    chosen = await _select(work)
    copied: dict[str, set[str]] = {}
    for kind, key in chosen:
        copied.setdefault(kind, set()).add(key)
    work.ids = IdMap(
        prefix=params.prefix,
        copied={k: frozenset(v) for k, v in copied.items()},
        layer_names=_layer_names(work.source),
    )
    for kind, key in chosen:
        target_id = work.ids(kind, key)
        work.entries.append(
            _Entry(
                kind,
                key,
                target_id,
                work.source.objects[kind][key],
                work.target.get(kind, target_id),
            )
        )
    _check_targets(work)
    writing = [e for e in work.entries if work.writes(e.kind, e.target_id)]
    await _load_details(work, writing)
    facts = TargetFacts(
        environments=frozenset(work.target.environments),
        target_apps=frozenset(work.target.target_apps),
        teams=work.target.teams or {},
    )
    env_map = params.environment_map()
    for e in writing:
        canon = _canonical(work.source, e.kind, e.source_id, params)
        desired = rewrite(e.kind, canon, work.ids, env_map)
        if e.existing is not None:
            e.current = _canonical(work.target, e.kind, e.target_id, params)
        e.desired, e.losses = fit(e.kind, desired, facts, e.current)
        if e.kind == "experiments" and params.with_overrides:
            layer = implicit_layer_id(e.source_id)
            if any(work.source.overrides.get(("layers", layer), {}).values()):
                e.losses.append(
                    f"experiment {e.target_id}: the overrides of its implicit layer {layer} "
                    "dropped (copy-project copies experiment overrides, not implicit-layer ones)"
                )
    return work


def _check_targets(work: _Work) -> None:
    """Ids and names the target must accept: lengths, and names another object holds."""
    names = {
        kind: {str(o.get("name")): object_id for object_id, o in objs.items()}
        for kind, objs in work.target.objects.items()
    }
    for e in work.entries:
        if e.kind in _BY_NAME:
            continue
        name = work.ids.name(e.kind, str(e.source.get("name") or e.source_id))
        if work.params.prefix and (len(e.target_id) > 100 or len(name) > 100):
            work.errors.append(
                f"{_label(e.kind, e.source_id)}: with --prefix its id or name is longer than "
                "100 characters"
            )
        holder = names.get(e.kind, {}).get(name)
        if holder is not None and holder != e.target_id:
            work.errors.append(
                f"{_label(e.kind, e.source_id)}: the target's {_label(e.kind, holder)} already "
                f"has the name {name!r} (use --prefix, or rename one of them)"
            )
        if e.kind == "experiments" and e.existing is None:
            layer = implicit_layer_id(e.target_id)
            if work.target.get("layers", layer) is not None:
                work.errors.append(
                    f"experiment {e.target_id}: the target already has its implicit layer {layer}"
                )


async def _load_details(work: _Work, writing: Sequence[_Entry]) -> None:
    """Overrides, id lists and teams the objects to write need."""
    params, source, target = work.params, work.source, work.target
    existing = [e for e in writing if e.existing is not None]
    owners = [(e.kind, e.target_id) for e in existing if e.kind in _OVERRIDE_KINDS]
    source_lists = [
        e.source_id for e in writing if e.kind == "segments" and e.source.get("type") == "id_list"
    ]
    target_lists = [
        e.target_id
        for e in existing
        if e.kind == "segments" and (e.existing or {}).get("type") == "id_list"
    ]
    calls: list[Callable[[], Awaitable[None]]] = []
    if params.with_overrides:
        calls.append(lambda: target.read_overrides(owners))
    if params.with_id_lists:
        calls.append(lambda: source.read_id_lists(source_lists))
        calls.append(lambda: target.read_id_lists(target_lists))
    if any(
        (e.source.get("team") or e.source.get("teamID")) for e in writing if e.kind in CONFIG_KINDS
    ):
        calls.append(target.read_teams)
    await _run_all(calls)


def _canonical(project: _Project, kind: str, key: str, params: Params) -> dict[str, Any]:
    obj = project.objects[kind][key]
    id_list = None
    if kind == "segments" and params.with_id_lists and obj.get("type") == "id_list":
        id_list = project.id_lists.get(key, [])
    implicit = None
    if kind == "experiments":
        implicit = project.get("layers", implicit_layer_id(key))
    return canonical(
        kind,
        obj,
        overrides=_overrides_of(project, kind, key, params),
        id_list=id_list,
        implicit_layer=implicit,
    )


# -- mutations -------------------------------------------------------------------------------


def _api_rules(rules: Iterable[Mapping[str, Any]]) -> list[dict[str, Any]]:
    return [{k: v for k, v in rule.items() if v is not None} for rule in rules]


def _optional(body: dict[str, Any], desired: Mapping[str, Any], *names: str) -> dict[str, Any]:
    for name in names:
        if desired.get(name) is not None:
            body[name] = desired[name]
    return body


def _gate_body(d: Mapping[str, Any], *, rules: bool = True) -> dict[str, Any]:
    body: dict[str, Any] = {
        "name": d["name"],
        "description": d["description"],
        "idType": d["idType"],
        "isEnabled": d["isEnabled"],
        "rules": _api_rules(d["rules"]) if rules else [],
        "tags": d["tags"],
        "targetApps": d["targetApps"],
        "measureMetricLifts": d["measureMetricLifts"],
        "monitoringMetrics": d["monitoringMetrics"],
        "reviewSettings": {"requiredReview": d["requiredReview"]},
    }
    return _optional(body, d, "type", "team", "teamID", "releasePipelineID")


def _config_body(d: Mapping[str, Any]) -> dict[str, Any]:
    body: dict[str, Any] = {
        "name": d["name"],
        "description": d["description"],
        "idType": d["idType"],
        "isEnabled": d["isEnabled"],
        "rules": _api_rules(d["rules"]),
        "tags": d["tags"],
        "targetApps": d["targetApps"],
        "defaultValue": d["defaultValue"],
    }
    return _optional(
        body,
        d,
        "defaultValueJson5",
        "schema",
        "schemaJson5",
        "team",
        "teamID",
        "releasePipelineID",
    )


def _experiment_fields(d: Mapping[str, Any], names: Iterable[str]) -> dict[str, Any]:
    body: dict[str, Any] = {}
    for name in names:
        if name == "controlGroup":
            if d.get("controlGroup") is not None:
                body["controlGroupID"] = d["controlGroup"]
        elif name == "layerID":
            explicit = d["layerID"] != implicit_layer_id(str(d["id"]))
            body["layerID"] = d["layerID"] if explicit else ""
        elif name == "targetingGateID":
            body["targetingGateID"] = d.get("targetingGateID") or None
        elif name == "groups":
            body["groups"] = d["groups"]
        elif d.get(name) is not None:
            body[name] = d[name]
    return body


def _layer_update(d: Mapping[str, Any]) -> dict[str, Any]:
    return {k: d[k] for k in _LAYER_UPDATE}


def _rows(e: _Entry, names: Iterable[str]) -> tuple[tuple[str, str, str], ...]:
    """Dry-run rows for an overwrite: each differing field, target value → source value."""
    wanted = {n: e.desired[n] for n in names if n in e.desired}
    return tuple(
        (d.path, _text(d.found), _text(d.wanted)) for d in diff(wanted, e.current or {}, limit=10)
    )


def _text(value: Any, limit: int = 60) -> str:
    text = value if isinstance(value, str) else json.dumps(value, default=str)
    return text if len(text) <= limit else text[: limit - 1] + "…"


class _Builder:
    """Turns the analysis into mutations, in dependency order."""

    def __init__(self, project: str, work: _Work) -> None:
        self.project = project
        self.work = work
        self.params = work.params
        self.out: list[Mutation] = []
        self.last: dict[tuple[str, str], str] = {}
        self.created: set[tuple[str, str]] = set()

    # -- plumbing --

    def add(self, **fields: Any) -> Mutation:
        m = Mutation(project=self.project, **fields)
        self.out.append(m)
        return m

    def deps(self, refs: Iterable[Ref], *also: str | None) -> tuple[str, ...]:
        keys: list[str] = [k for k in also if k]
        for ref in refs:
            key = self.last.get((ref.kind, ref.id))
            if key is not None and key not in keys:
                keys.append(key)
        return tuple(keys)

    def structural(self, e: _Entry, key: str) -> None:
        self.last[(e.kind, e.target_id)] = key

    def delete_inverse(self, e: _Entry) -> InverseCall:
        """The undo of a step on an object this copy creates: delete the object."""
        return InverseCall(
            method="DELETE",
            path=_path(e.kind, e.target_id),
            read=_path(e.kind, e.target_id),
            after=Expect(exists=False),
            idempotent=True,
            action="delete",
        )

    # -- the plan --

    def build(self) -> list[Mutation]:
        by_kind: dict[str, list[_Entry]] = {k: [] for k in KINDS}
        for e in self.work.entries:
            if e.existing is None or self.params.on_conflict == "overwrite":
                by_kind[e.kind].append(e)
        for e in by_kind["tags"]:
            self.tag(e)
        for e in by_kind["unit_id_types"]:
            self.unit_id_type(e)
        for kind in ("segments", "gates"):
            self.ordered(kind, by_kind[kind])
        for e in by_kind["dynamic_configs"]:
            self.config(e)
        for e in by_kind["layers"]:
            self.layer(e)
        for e in by_kind["experiments"]:
            self.experiment(e)
        if self.params.with_overrides:
            for kind in _OVERRIDE_KINDS:
                for e in by_kind[kind]:
                    self.overrides(e)
        if self.params.with_id_lists:
            for e in by_kind["segments"]:
                self.id_list(e)
        return self.out

    def ordered(self, kind: str, entries: list[_Entry]) -> None:
        """Segments or gates: referenced ones first; a reference cycle is created in two steps."""
        by_id = {e.target_id: e for e in entries}
        # Only objects still to be created can be in each other's way.
        edges = {
            e.target_id: [r.id for r in references(kind, e.desired) if r.kind == kind]
            for e in entries
            if e.existing is None
        }
        order, cycles = topological(list(by_id), edges)
        cycle_of = {member: tuple(c) for c in cycles for member in c}
        done: set[str] = set()
        for target_id in order:
            e = by_id[target_id]
            cycle = cycle_of.get(target_id)
            if cycle is None:
                self.write(e)
                continue
            self.write(e, without_rules=True)
            done.add(target_id)
            if all(member in done for member in cycle):
                for member in cycle:
                    self.cycle_rules(by_id[member], cycle)

    def write(self, e: _Entry, *, without_rules: bool = False) -> None:
        if e.kind == "segments":
            self.segment(e, without_rules=without_rules)
        else:
            self.gate(e, without_rules=without_rules)

    # -- creates and updates, per kind --

    def create(
        self,
        e: _Entry,
        body: Any,
        *,
        refs: Iterable[Ref],
        path: str | None = None,
    ) -> str:
        read = _path(e.kind, e.target_id)
        m = self.add(
            key=f"create:{SINGULAR[e.kind]}:{e.target_id}",
            action="create",
            object=e.object,
            method="POST",
            path=path or _PATHS[e.kind],
            body=body,
            read=read,
            before=Expect(exists=False),
            after=Expect(exists=True, fields={"name": e.desired["name"]}),
            inverse=(
                InverseCall(
                    method="DELETE",
                    path=read,
                    before=Expect(exists=True),
                    after=Expect(exists=False),
                    idempotent=True,
                    action="delete",
                ),
            ),
            depends_on=self.deps(refs),
        )
        self.created.add((e.kind, e.target_id))
        self.structural(e, m.key)
        return m.key

    def full_update(
        self,
        e: _Entry,
        label: str,
        fields: Sequence[str],
        body: Any,
        previous: Any,
        refs: Iterable[Ref],
    ) -> None:
        """Overwrite an existing object with a full update (``POST /{kind}/{id}``) of
        ``fields``; later steps on the object wait for it."""
        key = self.update(
            e,
            key=f"update:{label}:{e.target_id}",
            fields=fields,
            action="update",
            method="POST",
            path=_path(e.kind, e.target_id),
            body=body,
            previous=previous,
            refs=refs,
        )
        self.structural(e, key)

    def update(
        self,
        e: _Entry,
        *,
        key: str,
        action: str,
        method: str,
        path: str,
        body: Any,
        previous: Any,
        read: str | None = None,
        after: Mapping[str, Any] | None = None,
        before: Mapping[str, Any] | None = None,
        refs: Iterable[Ref] = (),
        idempotent: bool = True,
        inverse: bool = True,
        fields: Sequence[str] = (),
    ) -> str:
        """An overwrite (or a follow-up) that sets fields; its undo sets the previous values.

        ``fields`` name the canonical fields it changes: the dry run shows their
        differences (``rules[1].passPercentage: 10.0 → 20.0``).
        """
        after_fields = dict(after if after is not None else body)
        before_fields = dict(before if before is not None else previous)
        m = self.add(
            key=key,
            action=action,
            object=e.object,
            method=method,
            path=path,
            body=body,
            read=read or _path(e.kind, e.target_id),
            before=Expect(exists=True, fields=before_fields),
            after=Expect(exists=True, fields=after_fields),
            before_image=before_fields,
            inverse=(
                (InverseCall(method=method, path=path, body=previous, idempotent=idempotent),)
                if inverse
                else ()
            ),
            depends_on=self.deps(refs, self.last.get((e.kind, e.target_id))),
            idempotent=idempotent,
            display=_rows(e, fields),
        )
        return m.key

    def tag(self, e: _Entry) -> None:
        d = e.desired
        name = str(d["name"])
        if e.existing is None:
            m = self.add(
                key=f"create:tag:{name}",
                action="create",
                object=e.object,
                method="POST",
                path="/tags",
                body={"name": name, "description": d["description"], "isCore": d["isCore"]},
                read="/tags",
                before=Expect(excludes={"*.name": [name]}),
                after=Expect(contains={"*.name": [name]}),
                display=(("(object)", "absent", "created"),),
                inverse=(
                    InverseCall(
                        method="DELETE",
                        path=f"/tags/{CREATED_ID}",
                        read="/tags",
                        idempotent=True,
                        action="delete",
                    ),
                ),
            )
            self.structural(e, m.key)
            return
        changed = [k for k in ("description", "isCore") if not same(d[k], (e.current or {})[k])]
        if changed:
            tag_path = f"/tags/{_seg(str(e.existing['id']))}"
            key = self.update(
                e,
                key=f"update:tag:{name}",
                fields=changed,
                action="update",
                method="PATCH",
                path=tag_path,
                read=tag_path,
                body={k: d[k] for k in changed},
                previous={k: (e.current or {})[k] for k in changed},
                idempotent=False,
            )
            self.structural(e, key)

    def unit_id_type(self, e: _Entry) -> None:
        d = e.desired
        name = str(d["name"])
        if e.existing is None:
            m = self.add(
                key=f"create:unit_id_type:{name}",
                action="create",
                object=e.object,
                method="POST",
                path="/unit_id_types",
                body={"name": name, "description": d["description"]},
                read="/unit_id_types",
                before=Expect(excludes={"*.name": [name]}),
                after=Expect(contains={"*.name": [name]}),
                display=(("(object)", "absent", "created"),),
                inverse=(
                    InverseCall(
                        method="DELETE",
                        path=_path("unit_id_types", name),
                        idempotent=True,
                        action="delete",
                    ),
                ),
            )
            self.structural(e, m.key)
            return
        if not same(d["description"], (e.current or {})["description"]):
            key = self.update(
                e,
                key=f"update:unit_id_type:{name}",
                fields=("description",),
                action="update",
                method="PATCH",
                path=_path("unit_id_types", name),
                body={"description": d["description"]},
                previous={"description": (e.current or {})["description"]},
                idempotent=False,
            )
            self.structural(e, key)

    def segment(self, e: _Entry, *, without_rules: bool = False) -> None:
        d = e.desired
        refs = [
            r for r in references("segments", d) if not (without_rules and r.kind == "segments")
        ]
        if e.existing is None:
            body: dict[str, Any] = {
                "id": e.target_id,
                "name": d["name"],
                "type": d["type"],
                "description": d["description"],
                "idType": d["idType"],
                "tags": d["tags"],
            }
            if d["type"] == "rule_based" and not without_rules:
                body["rules"] = _api_rules(d.get("rules") or [])
            self.create(e, _optional(body, d, "team", "teamID"), refs=refs)
            if d.get("status") == "Archived":
                self.status(
                    e, "archive", before=Expect(exists=True, differs={"status": "Archived"})
                )
            return
        current = e.current or {}
        if d["type"] == "rule_based" and not same(d.get("rules"), current.get("rules")):
            self.structural(
                e,
                self.update(
                    e,
                    key=f"update:segment:{e.target_id}:rules",
                    fields=("rules",),
                    action="update",
                    method="POST",
                    path=_path("segments", e.target_id, "/conditional"),
                    body=_api_rules(d["rules"]),
                    previous=_api_rules(current.get("rules") or []),
                    after={"rules": _api_rules(d["rules"])},
                    before={"rules": _api_rules(current.get("rules") or [])},
                    refs=refs,
                ),
            )
        if d.get("status") == "Archived" and current.get("status") != "Archived":
            self.status(e, "archive", before=Expect(exists=True, differs={"status": "Archived"}))

    def cycle_rules(self, e: _Entry, cycle: Sequence[str]) -> None:
        """Second step of a reference cycle: set the rules once every member exists."""
        d = e.desired
        rules = _api_rules(d.get("rules") or [])
        refs = references(e.kind, d)
        also = [self.last.get((e.kind, member)) for member in cycle]
        body: Any
        if e.kind == "segments":
            method, path, body = "POST", _path("segments", e.target_id, "/conditional"), rules
        else:
            method, path, body = "PATCH", _path("gates", e.target_id), {"rules": rules}
        m = self.add(
            key=f"rules:{SINGULAR[e.kind]}:{e.target_id}",
            action="set-rules",
            object=e.object,
            method=method,
            path=path,
            body=body,
            read=_path(e.kind, e.target_id),
            before=Expect(exists=True, fields={"rules": []}),
            after=Expect(exists=True, fields={"rules": rules}),
            inverse=(self.delete_inverse(e),),
            depends_on=self.deps(refs, *also),
            idempotent=True,
        )
        self.structural(e, m.key)
        if e.kind == "gates":
            self.gate_status(e)

    def gate(self, e: _Entry, *, without_rules: bool = False) -> None:
        d = e.desired
        refs = [r for r in references("gates", d) if not (without_rules and r.kind == "gates")]
        if e.existing is None:
            body = {"id": e.target_id, **_gate_body(d, rules=not without_rules)}
            body["isTemplate"] = d["isTemplate"]
            self.create(e, body, refs=refs)
            if not without_rules:
                self.gate_status(e)
            return
        current = e.current or {}
        if any(k in d and not same(d[k], current.get(k)) for k in _GATE_FULL):
            body = _gate_body(d)
            previous = _gate_body(current)
            self.full_update(e, "gate", _GATE_FULL, body, previous, refs)
        self.gate_status(e)

    def gate_status(self, e: _Entry) -> None:
        """Launch, archive or unarchive to reach the source's status."""
        wanted = e.desired["status"]
        if e.existing is None:
            status = "In Progress" if e.desired["isEnabled"] else "Disabled"
            if wanted == "Launched":
                self.status(e, "launch", before=Expect(fields={"status": status}))
            elif wanted == "Archived":
                self.status(e, "archive", before=Expect(fields={"status": status}))
            return
        current = (e.current or {}).get("status")
        if current == "Archived" and wanted != "Archived":
            self.status(e, "unarchive", before=Expect(fields={"status": "Archived"}))
        if wanted == "Launched" and current != "Launched":
            self.status(e, "launch", before=Expect(exists=True, differs={"status": "Launched"}))
        if wanted == "Archived" and current != "Archived":
            self.status(e, "archive", before=Expect(exists=True, differs={"status": "Archived"}))

    def status(self, e: _Entry, action: str, *, before: Expect) -> None:
        """A state action (launch, archive, unarchive) on a gate, config or segment."""
        archived = {"archive": True, "unarchive": False}.get(action)
        if action == "launch":
            after = Expect(fields={"status": "Launched"})
        elif archived:
            after = Expect(fields={"status": "Archived"})
        else:
            after = Expect(exists=True, differs={"status": "Archived"})
        body: Any = None
        if e.kind in ("gates", "dynamic_configs") and action == "archive":
            body = {"archiveReason": "copy-project: archived in the source project"}
            if e.kind == "gates":
                body["forceArchive"] = True  # references are copied too
        elif action == "unarchive":
            body = {}
        inverse: tuple[InverseCall, ...]
        if (e.kind, e.target_id) in self.created:
            inverse = (self.delete_inverse(e),)
        elif action == "archive" and e.kind != "segments":
            inverse = (
                InverseCall(
                    method="PUT",
                    path=_path(e.kind, e.target_id, "/unarchive"),
                    body={},
                    idempotent=True,
                    action="unarchive",
                ),
            )
        elif action == "unarchive":
            archive_body: dict[str, Any] = {"archiveReason": "bulkops undo"}
            if e.kind == "gates":
                archive_body["forceArchive"] = True
            inverse = (
                InverseCall(
                    method="PUT",
                    path=_path(e.kind, e.target_id, "/archive"),
                    body=archive_body,
                    idempotent=True,
                    action="archive",
                ),
            )
        else:
            inverse = ()  # no endpoint un-launches a gate or unarchives a segment
        m = self.add(
            key=f"{action}:{SINGULAR[e.kind]}:{e.target_id}",
            action=action,
            object=e.object,
            method="PUT",
            path=_path(e.kind, e.target_id, f"/{action}"),
            body=body,
            read=_path(e.kind, e.target_id),
            before=before,
            after=after,
            inverse=inverse,
            depends_on=self.deps((), self.last.get((e.kind, e.target_id))),
            idempotent=True,
        )
        self.structural(e, m.key)

    def config(self, e: _Entry) -> None:
        d = e.desired
        refs = references("dynamic_configs", d)
        if e.existing is None:
            body = {"id": e.target_id, **_config_body(d), "isTemplate": d["isTemplate"]}
            self.create(e, body, refs=refs)
            if d["status"] == "Archived":
                status = "Enabled" if d["isEnabled"] else "Disabled"
                self.status(e, "archive", before=Expect(fields={"status": status}))
            return
        current = e.current or {}
        if any(k in d and not same(d[k], current.get(k)) for k in _CONFIG_FULL):
            body = _config_body(d)
            previous = _config_body(current)
            for key in ("schema", "schemaJson5"):  # nullable: an update must clear them
                body.setdefault(key, None)
                previous.setdefault(key, None)
            self.full_update(e, "dynamic_config", _CONFIG_FULL, body, previous, refs)
        if current.get("status") == "Archived" and d["status"] != "Archived":
            self.status(e, "unarchive", before=Expect(fields={"status": "Archived"}))
        if d["status"] == "Archived" and current.get("status") != "Archived":
            self.status(e, "archive", before=Expect(exists=True, differs={"status": "Archived"}))

    def layer(self, e: _Entry) -> None:
        d = e.desired
        refs = references("layers", d)
        if e.existing is None:
            body = _optional(
                {
                    "name": d["name"],
                    "idType": d["idType"],
                    "description": d["description"],
                    "targetApps": d["targetApps"],
                },
                d,
                "team",
            )
            self.create(e, body, refs=refs)
            if d["parameters"]:
                m = self.add(
                    key=f"parameters:layer:{e.target_id}",
                    action="set-parameters",
                    object=e.object,
                    method="POST",
                    path=_path("layers", e.target_id),
                    body=_layer_update(d),
                    read=_path("layers", e.target_id),
                    before=Expect(exists=True, fields={"parameters": []}),
                    after=Expect(exists=True, fields={"parameters": d["parameters"]}),
                    inverse=(self.delete_inverse(e),),
                    depends_on=self.deps((), self.last.get(("layers", e.target_id))),
                    idempotent=True,
                )
                self.structural(e, m.key)
            return
        current = e.current or {}
        if any(not same(d[k], current.get(k)) for k in _LAYER_UPDATE):
            self.full_update(
                e, "layer", _LAYER_UPDATE, _layer_update(d), _layer_update(current), refs
            )

    def experiment(self, e: _Entry) -> None:
        d = e.desired
        refs = references("experiments", d)
        if e.existing is None:
            fields = [n for n in _EXPERIMENT_UPDATE if n not in ("name",)]
            body = {"id": e.target_id, "name": d["name"], **_experiment_fields(d, fields)}
            if not body.get("targetingGateID"):
                body.pop("targetingGateID", None)
            if not body.get("layerID"):
                body.pop("layerID", None)
            self.create(e, body, refs=refs)
            self.implicit_layer(e, _FRESH_IMPLICIT_LAYER)
            return
        current = e.current or {}
        changed = [n for n in _EXPERIMENT_UPDATE if n in d and not same(d[n], current.get(n))]
        if changed:
            body = _experiment_fields(d, changed)
            previous = _experiment_fields(current, changed) if current else {}
            # The server stores the control group's id and an implicit layer's id: those
            # are not compared by the read, the rest is.
            after = {k: v for k, v in body.items() if k not in ("controlGroupID", "layerID")}
            before = {k: v for k, v in previous.items() if k not in ("controlGroupID", "layerID")}
            self.structural(
                e,
                self.update(
                    e,
                    key=f"update:experiment:{e.target_id}",
                    fields=changed,
                    action="update",
                    method="PATCH",
                    path=_path("experiments", e.target_id),
                    body=body,
                    previous=previous,
                    after=after,
                    before=before,
                    refs=refs,
                    idempotent=False,
                ),
            )
        self.implicit_layer(e, current.get("implicitLayer") or _FRESH_IMPLICIT_LAYER)

    def implicit_layer(self, e: _Entry, current: Mapping[str, Any]) -> None:
        """An experiment's implicit layer carries parameters: set them after the create."""
        wanted = e.desired.get("implicitLayer")
        if wanted is None or e.desired["layerID"] != implicit_layer_id(e.target_id):
            return
        if all(same(wanted[k], current.get(k)) for k in _LAYER_UPDATE):
            return
        layer = implicit_layer_id(e.target_id)
        path = _path("layers", layer)
        self.add(
            key=f"parameters:layer:{layer}",
            action="set-parameters",
            object=f"layer/{layer}",
            method="POST",
            path=path,
            body=dict(wanted),
            read=path,
            before=Expect(exists=True, fields=dict(current)),
            after=Expect(exists=True, fields=dict(wanted)),
            before_image=dict(current),
            inverse=(InverseCall(method="POST", path=path, body=dict(current), idempotent=True),),
            depends_on=self.deps((), self.last.get(("experiments", e.target_id))),
            idempotent=True,
        )

    # -- overrides and id lists --

    def overrides(self, e: _Entry) -> None:
        wanted = e.desired.get("overrides")
        if wanted is None:
            return
        raw = (
            self.work.target.overrides.get((e.kind, e.target_id), {})
            if e.existing is not None
            else {}
        )
        current = (e.current or {}).get("overrides") if e.existing is not None else None
        refs = references(e.kind, {}, wanted)
        read = _path(e.kind, e.target_id, "/overrides")

        def set_overrides(key: str, body: dict[str, Any], previous: dict[str, Any]) -> None:
            self.update(
                e,
                key=key,
                action="set-overrides",
                method="POST",
                path=read,
                read=read,
                body=body,
                previous=previous,
                refs=refs,
            )

        if e.kind == "gates":
            lists = [
                n
                for n in _OVERRIDE_LISTS
                if wanted[n] or (current or {}).get(n) or n in ("passingUserIDs", "failingUserIDs")
            ]
            now = {n: list(raw.get(n) or []) for n in lists}
            if any(not same(sorted(now[n]), wanted[n]) for n in lists) and (
                current is not None or any(wanted[n] for n in lists)
            ):
                set_overrides(
                    f"overrides:gate:{e.target_id}:ids", {n: wanted[n] for n in lists}, now
                )
            env_now = list(raw.get("environmentOverrides") or [])
            env_wanted = wanted["environmentOverrides"]
            if not same(env_wanted, (current or {}).get("environmentOverrides", [])):
                set_overrides(
                    f"overrides:gate:{e.target_id}:environments",
                    {"environmentOverrides": env_wanted},
                    {"environmentOverrides": env_now},
                )
            return
        names = (
            ("overrides", "userIDOverrides")
            if e.kind == "experiments"
            else ("conditionalOverrides", "idOverrides")
        )
        empty: dict[str, list[Any]] = {n: [] for n in names}
        if same(wanted, current if current is not None else empty):
            return
        set_overrides(
            f"overrides:{SINGULAR[e.kind]}:{e.target_id}",
            {n: wanted[n] for n in names},
            {n: list(raw.get(n) or []) for n in names},
        )

    def id_list(self, e: _Entry) -> None:
        wanted = e.desired.get("ids")
        if wanted is None:
            return
        current = (e.current or {}).get("ids") if e.existing is not None else []
        if current is None or same(wanted, current):
            return
        chunks = [wanted[i : i + ID_LIST_CHUNK] for i in range(0, len(wanted), ID_LIST_CHUNK)]
        read = _path("segments", e.target_id, "/id_list")
        previous_key = self.last.get(("segments", e.target_id))
        count = 0
        if current:  # an existing list: the first chunk replaces it
            raw = self.work.target.id_lists.get(e.target_id, [])
            first = chunks.pop(0) if chunks else []
            previous_key = self.add(
                key=f"id-list:segment:{e.target_id}:reset",
                action="id-list-reset",
                object=e.object,
                method="POST",
                path=f"{read}/reset",
                body={"ids": first},
                read=read,
                before=Expect(fields={"ids": raw}),
                after=Expect(fields={"ids": first}),
                before_image={"count": len(raw)},
                inverse=(
                    InverseCall(
                        method="POST", path=f"{read}/reset", body={"ids": raw}, idempotent=True
                    ),
                ),
                depends_on=self.deps((), previous_key),
                quota_class=ID_LIST_CLASS,
                idempotent=True,
            ).key
            count = len(first)
        for number, chunk in enumerate(chunks, start=1):
            previous_key = self.add(
                key=f"id-list:segment:{e.target_id}:{number}",
                action="id-list-add",
                object=e.object,
                method="PATCH",
                path=read,
                body={"ids": chunk},
                read=read,
                before=Expect(fields={"count": count}),
                after=Expect(fields={"count": count + len(chunk)}),
                inverse=(
                    InverseCall(
                        method="DELETE",
                        path=read,
                        body={"ids": chunk},
                        idempotent=True,
                        action="id-list-remove",
                    ),
                ),
                depends_on=self.deps((), previous_key),
                quota_class=ID_LIST_CLASS,
                idempotent=True,
            ).key
            count += len(chunk)


# -- the job ----------------------------------------------------------------------------------


def _listing(title: str, lines: Sequence[str]) -> str:
    shown = list(lines[:_MAX_LISTED])
    more = len(lines) - len(shown)
    tail = f"\n  … and {more} more" if more else ""
    return f"{title}:\n  " + "\n  ".join(shown) + tail


async def plan(ctx: JobContext, params: Params) -> AsyncIterator[Mutation]:
    """Read both projects, check everything, then yield the copy's mutations in order.

    Raises:
        PlanError: a reference can be resolved neither in the copy nor in the target,
            or a name is taken in the target.
        RefusedError: ``--on-conflict fail`` and objects exist in the target; or
            something would be dropped and ``--accept-loss`` was not given.
    """
    source_client = ctx.open_client(params.source_key_env)
    work = await _analyze(source_client, ctx.client, params)
    if work.errors:
        raise PlanError(
            _listing(f"copy-project: {len(work.errors)} problem(s); nothing was sent", work.errors)
        )
    conflicts = [e for e in work.entries if e.existing is not None]
    if conflicts and params.on_conflict == "fail":
        raise RefusedError(
            _listing(
                f"--on-conflict fail: {len(conflicts)} object(s) already exist in the target; "
                "nothing was sent",
                [e.object for e in conflicts],
            ),
            hint="use --on-conflict skip or overwrite, or --prefix",
        )
    writing = [e for e in work.entries if work.writes(e.kind, e.target_id)]
    losses = [line for e in writing for line in e.losses]
    if losses and not params.accept_loss:
        raise RefusedError(
            _listing(
                f"{len(losses)} thing(s) cannot be carried over faithfully; nothing was sent",
                losses,
            ),
            hint="fix the target (environments, target apps, teams), use --env-map, or pass "
            "--accept-loss to copy without them",
        )
    for line in losses:
        ctx.log.info(EVENT_LOSS, loss=line)
        ctx.note(f"dropped (--accept-loss): {line}")
    if conflicts:
        verb = "overwritten where they differ" if params.on_conflict == "overwrite" else "skipped"
        ctx.note(f"{len(conflicts)} object(s) already exist in the target: {verb}")
    ctx.log.info(
        EVENT_SELECTED,
        objects=len(work.entries),
        existing=len(conflicts),
        on_conflict=params.on_conflict,
    )
    for mutation in _Builder(ctx.project_id, work).build():
        yield mutation


async def verify(ctx: JobContext, params: Params, done: Sequence[Mutation]) -> list[str]:
    """Read every copied object back and compare it with the source; one line per difference.

    ``done`` are the plan's mutations that ended applied or skipped; the objects they
    touch are compared (accepted losses excepted).
    """
    touched = {m.object for m in done}
    if not touched:
        return []
    source_client = ctx.open_client(params.source_key_env)
    work = await _analyze(source_client, ctx.client, params, touched=frozenset(touched))
    problems: list[str] = []
    for e in work.entries:
        if e.object not in touched:
            continue
        problems.extend(f"{e.object}: {d}" for d in diff(e.desired, e.current))
    return problems
