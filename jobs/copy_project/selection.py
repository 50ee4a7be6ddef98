"""What to copy, where it goes and what it becomes: the analysis of one copy.

:func:`analyze` reads both projects, selects the objects (the ``--id``/``--tag``
selection plus, transitively, what it references), gives each its target id, and works
out per object what the target should hold (:class:`Entry`), collecting every problem
instead of stopping at the first.
"""

from __future__ import annotations

import fnmatch
from collections.abc import Awaitable, Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from bulkops.api.client import ConsoleClient

from .canonical import (
    CONFIG_KINDS,
    KINDS,
    SINGULAR,
    canonical,
    implicit_layer_id,
    is_implicit_layer,
)
from .fitting import TargetFacts, fit
from .reading import BY_NAME, Project, run_all
from .references import IdMap, references, rewrite

if TYPE_CHECKING:
    from . import Params

__all__ = ["OVERRIDE_KINDS", "Entry", "Work", "analyze"]

OVERRIDE_KINDS = ("gates", "experiments", "layers")


@dataclass
class Entry:
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
class Work:
    """The whole analysis of one copy."""

    params: Params
    source: Project
    target: Project
    touched: frozenset[str] | None = None
    ids: IdMap = field(default_factory=IdMap)
    entries: list[Entry] = field(default_factory=list)
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


def _find(project: Project, kind: str, key: str) -> dict[str, Any] | None:
    found = project.get(kind, key)
    if found is None and kind == "layers":
        return None
    if found is not None and kind == "layers" and is_implicit_layer(found):
        return None
    return found


async def _select(work: Work) -> list[tuple[str, str]]:
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
            if kind in BY_NAME and filtered:
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


def _layer_names(source: Project) -> dict[str, str]:
    return {
        key: str(obj.get("name") or key) for key, obj in source.objects.get("layers", {}).items()
    }


def _override_owners(source: Project, items: Iterable[tuple[str, str]]) -> list[tuple[str, str]]:
    owners: list[tuple[str, str]] = []
    for kind, key in items:
        if kind in OVERRIDE_KINDS:
            owners.append((kind, key))
        if kind == "experiments":
            layer = implicit_layer_id(key)
            if source.get("layers", layer) is not None:
                owners.append(("layers", layer))
    return owners


def _overrides_of(project: Project, kind: str, key: str, params: Params) -> dict[str, Any] | None:
    if not params.with_overrides or kind not in OVERRIDE_KINDS:
        return None
    return project.overrides.get((kind, key), {})


async def analyze(
    source_client: ConsoleClient,
    target_client: ConsoleClient,
    params: Params,
    *,
    touched: frozenset[str] | None = None,
) -> Work:
    """Read both projects and work out, per object, what the target should hold.

    ``touched`` (verifying a run): the objects the run wrote, which are the ones
    compared; other objects are left out of the reads.
    """
    work = Work(params, Project(source_client), Project(target_client), touched)
    await run_all(
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
            Entry(
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


def _check_targets(work: Work) -> None:
    """Ids and names the target must accept: lengths, and names another object holds."""
    names = {
        kind: {str(o.get("name")): object_id for object_id, o in objs.items()}
        for kind, objs in work.target.objects.items()
    }
    for e in work.entries:
        if e.kind in BY_NAME:
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


async def _load_details(work: Work, writing: Sequence[Entry]) -> None:
    """Overrides, id lists and teams the objects to write need."""
    params, source, target = work.params, work.source, work.target
    existing = [e for e in writing if e.existing is not None]
    owners = [(e.kind, e.target_id) for e in existing if e.kind in OVERRIDE_KINDS]
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
    await run_all(calls)


def _canonical(project: Project, kind: str, key: str, params: Params) -> dict[str, Any]:
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
