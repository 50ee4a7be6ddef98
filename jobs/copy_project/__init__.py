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

from collections.abc import AsyncIterator, Sequence
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator

from bulkops.errors import PlanError, RefusedError
from bulkops.job import JobContext, Mutation, listing, unknown_tags

from .builder import Builder
from .canonical import DEFAULT_INCLUDE, KINDS, check_prefix, diff
from .selection import analyze

__all__ = ["Params", "plan", "verify"]

EVENT_LOSS = "copy.loss_accepted"

EVENT_SELECTED = "copy.selected"

Kind = Literal[
    "tags", "unit_id_types", "segments", "gates", "dynamic_configs", "layers", "experiments"
]


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


async def plan(ctx: JobContext, params: Params) -> AsyncIterator[Mutation]:
    """Read both projects, check everything, then yield the copy's mutations in order.

    Raises:
        PlanError: a reference can be resolved neither in the copy nor in the target,
            or a name is taken in the target.
        RefusedError: ``--on-conflict fail`` and objects exist in the target; or
            something would be dropped and ``--accept-loss`` was not given.
    """
    source_client = ctx.open_client(params.source_key_env)
    for line in await unknown_tags(source_client, params.tag, "the source project"):
        ctx.note(line)
    work = await analyze(source_client, ctx.client, params)
    if work.errors:
        # One reference met twice (a layer's override per environment, say) is one problem.
        problems = list(dict.fromkeys(work.errors))
        raise PlanError(
            listing(f"copy-project: {len(problems)} problem(s); nothing was sent", problems)
        )
    conflicts = [e for e in work.entries if e.existing is not None]
    if conflicts and params.on_conflict == "fail":
        raise RefusedError(
            listing(
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
            listing(
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
    for mutation in Builder(ctx.project_id, work).build():
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
    for line in await unknown_tags(source_client, params.tag, "the source project"):
        ctx.note(line)
    work = await analyze(source_client, ctx.client, params, touched=frozenset(touched))
    problems: list[str] = []
    for e in work.entries:
        if e.object not in touched:
            continue
        problems.extend(f"{e.object}: {d}" for d in diff(e.desired, e.current))
    return problems
