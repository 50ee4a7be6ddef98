"""archive-gates: archive the gates the selectors pick, never one that is still in use.

Selectors are combined with AND; a selector given several times matches any of its
values (``--tag a --tag b``: tagged a or b). At least one selector is required:

``--stale``
    the API's own stale classification (``type=STALE``, filtered by the server);
``--stale-reason REASON``
    ``STALE_PROBABLY_LAUNCHED``, ``STALE_PROBABLY_UNLAUNCHED``, ``STALE_PROBABLY_FORGOTTEN``,
    ``STALE_NO_RULES``, ``STALE_PROBABLY_DEAD_CHECK``, … (the ``STALE_`` prefix and case
    are optional; one reason is filtered by the server, several while paging);
``--tag TAG``
    carries the tag (server-side ``tags``);
``--id PATTERN``
    shell-style pattern on gate ids (``checkout_*``);
``--status STATUS``
    ``Launched``, ``Disabled`` or ``In Progress``;
``--idle-days N``
    not modified for N days (``lastModifiedTime``);
``--creator NAME``
    created by NAME (server-side ``creatorName`` when given once).

``--limit N`` archives at most N gates in this run (the rest are left for the next).

``--code-refs PATH`` (repeatable) scans source trees for the selected gates' ids
(:mod:`bulkops.refs`: delimiters, aliases and ignore rules from the repository's
``.bulkops/coderefs.toml``): a gate that code still checks is blocked, and the plan
names where ("in code: src/checkout.py:41 (+3 more)"); gates found nowhere are marked
"not in code". ``--include-referenced`` archives them anyway and says what it overrides.

Safety: a gate that a live gate, dynamic config or experiment still references is not
archived; the plan lists it as blocked and names who references it. A gate referenced
only by gates this run archives is archived after them. ``--include-referenced``
archives referenced gates too (sending ``forceArchive``). Already-archived gates are
skipped without a request, so a re-run of a finished job plans nothing.

Each archive carries an ``archiveReason`` naming the run (``--reason`` adds your text).
Undo unarchives (and launches again a gate that was Launched).
"""

from __future__ import annotations

import datetime as dt
import fnmatch
import time
from collections.abc import AsyncIterator, Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import anyio
from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from bulkops.job import GATES, Expect, InverseCall, JobContext, Mutation, unknown_tags

__all__ = [
    "NAME",
    "PER_GATE_MAX",
    "STALE_REASONS",
    "GateRow",
    "Params",
    "Referrer",
    "Selection",
    "plan",
    "REPORT_COLUMNS",
    "report_lines",
    "report_rows",
    "select",
]

NAME = "archive-gates"

STALE_REASONS = (
    "STALE_PROBABLY_LAUNCHED",
    "STALE_PROBABLY_UNLAUNCHED",
    "STALE_PROBABLY_FORGOTTEN",
    "STALE_NO_RULES",
    "STALE_PROBABLY_DEAD_CHECK",
    "STALE_EMPTY_CHECKS",
    "STALE_ALL_TRUE",
    "STALE_ALL_FALSE",
)
ARCHIVED = "Archived"
# Selections of at most this many live gates ask the API's per-gate reference
# endpoints (3 requests each); larger ones read every gate, config and experiment
# once (a handful of pages). Measured on the demo project (1,200 gates, 260 stale):
# the full read takes 0.25 s, the per-gate endpoints 5.4 s for the 260.
PER_GATE_MAX = 10
_REFERENCE_CONDITIONS = frozenset({"passes_gate", "fails_gate"})
_DAY_MS = 86_400_000
_READ_CONCURRENCY = 8

EVENT_SELECTED = "archive_gates.selected"

# Wall clock for ``--idle-days`` (seconds); tests may replace it.
clock: Callable[[], float] = time.time

Status = Literal["Launched", "Disabled", "In Progress"]


def _normalize_reason(value: str) -> str:
    reason = value.strip().upper().replace("-", "_")
    if reason and not reason.startswith("STALE_"):
        reason = "STALE_" + reason
    if reason not in STALE_REASONS:
        raise ValueError(f"unknown stale reason {value!r}; known: {', '.join(STALE_REASONS)}")
    return reason


class Params(BaseModel):
    """Options of archive-gates."""

    model_config = ConfigDict(extra="forbid")

    stale: bool = Field(False, description="gates the API classifies as stale (type=STALE)")
    stale_reason: list[str] = Field(
        default_factory=list, description="the API's stale reason, e.g. STALE_NO_RULES"
    )
    tag: list[str] = Field(default_factory=list, description="gates carrying this tag")
    id: list[str] = Field(default_factory=list, description="shell-style pattern on gate ids")
    status: list[Status] = Field(default_factory=list, description="the gate's status")
    idle_days: int | None = Field(None, ge=1, description="not modified for this many days")
    creator: list[str] = Field(default_factory=list, description="the creator's name")
    limit: int | None = Field(None, ge=1, description="archive at most this many gates")
    reason: str | None = Field(None, description="your text, added to each archiveReason")
    include_referenced: bool = Field(
        False, description="archive gates that are still referenced too (forceArchive)"
    )
    code_refs: list[str] = Field(
        default_factory=list,
        description="source tree to scan (repeatable): a gate code still checks is blocked",
    )

    @field_validator("stale_reason")
    @classmethod
    def _reasons(cls, values: list[str]) -> list[str]:
        return list(dict.fromkeys(_normalize_reason(v) for v in values))

    @field_validator("tag", "id", "creator")
    @classmethod
    def _non_empty(cls, values: list[str]) -> list[str]:
        if any(not v.strip() for v in values):
            raise ValueError("must not be empty")
        return list(dict.fromkeys(values))

    @field_validator("code_refs")
    @classmethod
    def _trees(cls, values: list[str]) -> list[str]:
        for value in values:
            if not Path(value).exists():
                raise ValueError(f"{value}: no such file or directory")
        return list(dict.fromkeys(values))

    @model_validator(mode="after")
    def _some_selector(self) -> Params:
        if not (
            self.stale
            or self.stale_reason
            or self.tag
            or self.id
            or self.status
            or self.idle_days is not None
            or self.creator
        ):
            raise ValueError(
                "give at least one selector (--stale, --stale-reason, --tag, --id, --status, "
                "--idle-days, --creator); archive-gates never selects every gate"
            )
        return self


@dataclass(frozen=True, order=True)
class Referrer:
    """A live object that references a gate: ``kind`` is gate, dynamic config or experiment."""

    kind: str
    id: str

    def __str__(self) -> str:
        return f"{self.kind} {self.id}"


@dataclass
class GateRow:
    """One selected gate and what the run does with it.

    ``action`` is ``archive``, ``blocked``, ``archived`` (already; no request) or
    ``limit`` (left for a later run by ``--limit``). ``after``: the selected gates that
    reference it and are archived first; ``forced``: archived although referenced
    (``--include-referenced``).
    """

    id: str
    status: str
    type_reason: str
    last_modified: int | None
    action: str = "archive"
    referrers: list[Referrer] = field(default_factory=list)
    after: list[str] = field(default_factory=list)
    cycle: bool = False
    forced: bool = False
    code: list[str] | None = None  # where code references it (None: code not scanned)

    def explain(self) -> str:
        """The action column: what happens, or why nothing does."""
        if self.action == "archived":
            return "skip: already archived"
        if self.action == "limit":
            return "skip: over --limit (left for a later run)"
        why = []
        if self.referrers:
            why.append(f"referenced by {_join_referrers(self.referrers)}")
        if self.code:
            more = f" (+{len(self.code) - 1} more)" if len(self.code) > 1 else ""
            why.append(f"in code: {self.code[0]}{more}")
        if self.action == "blocked":
            cycle = " (a reference cycle)" if self.cycle else ""
            return f"blocked: {'; '.join(why)}{cycle}"
        if self.forced or (self.code and why):
            return f"archive (forced; {'; '.join(why)})"
        text = f"archive after gate {', '.join(self.after)}" if self.after else "archive"
        return f"{text} (not in code)" if self.code is not None else text


@dataclass
class Selection:
    """Every selected gate (listing order), the archive order, and how references were read."""

    rows: list[GateRow]
    order: list[str]
    strategy: str
    limit: int | None = None

    def count(self, action: str) -> int:
        return sum(1 for r in self.rows if r.action == action)


def _join_referrers(referrers: Iterable[Referrer]) -> str:
    groups: dict[str, list[str]] = {}
    for ref in referrers:
        groups.setdefault(ref.kind, []).append(ref.id)
    return "; ".join(f"{kind} {', '.join(ids)}" for kind, ids in groups.items())


def _value(obj: Any, name: str) -> Any:
    return obj.get(name) if isinstance(obj, dict) else getattr(obj, name, None)


def _gate_targets(rules: Any) -> set[str]:
    """Ids of the gates a rule list passes or fails."""
    found: set[str] = set()
    for rule in rules or ():
        for cond in _value(rule, "conditions") or ():
            if _value(cond, "type") not in _REFERENCE_CONDITIONS:
                continue
            target = _value(cond, "targetValue")
            for value in target if isinstance(target, list) else [target]:
                if isinstance(value, str) and value:
                    found.add(value)
    return found


def _live(kind: str, obj: Any) -> bool:
    status = str(_value(obj, "status") or "")
    if kind == "experiment":
        return status != "archived"
    return status != ARCHIVED


def _matches(gate: dict[str, Any], params: Params, now_ms: int) -> bool:
    """Every selector, checked client-side (the server filters are re-checked too)."""
    if params.stale and gate.get("type") != "STALE":
        return False
    if params.stale_reason and gate.get("typeReason") not in params.stale_reason:
        return False
    if params.tag and not set(params.tag).intersection(gate.get("tags") or ()):
        return False
    gate_id = str(gate.get("id"))
    if params.id and not any(fnmatch.fnmatchcase(gate_id, p) for p in params.id):
        return False
    if params.status and gate.get("status") not in params.status:
        return False
    if params.creator and gate.get("creatorName") not in params.creator:
        return False
    if params.idle_days is not None:
        modified = gate.get("lastModifiedTime") or gate.get("createdTime")
        if not isinstance(modified, int | float) or modified > now_ms - params.idle_days * _DAY_MS:
            return False
    return True


def _server_filters(params: Params) -> dict[str, Any]:
    query: dict[str, Any] = {"includeArchived": True}
    if params.stale:
        query["type"] = "STALE"
    if len(params.stale_reason) == 1:
        query["typeReason"] = params.stale_reason[0]
    if params.tag:
        query["tags"] = list(params.tag)
    if len(params.creator) == 1:
        query["creatorName"] = params.creator[0]
    return query


async def _references_full_read(
    ctx: JobContext, targets: set[str], gate_uses: Mapping[str, frozenset[str]] | None
) -> dict[str, set[Referrer]]:
    """Who references each target, from one read of every gate, config and experiment.

    Every list is streamed page by page and only ids are kept: ``gate_uses`` (live
    gate id → the gate ids its rules use), when the selection's own listing already
    read every gate, stands in for reading the gates again.
    """
    refs: dict[str, set[Referrer]] = {t: set() for t in targets}
    client = ctx.client

    def add_gate(gate_id: str, uses: Iterable[str]) -> None:
        for target in targets.intersection(uses):
            if target != gate_id:
                refs[target].add(Referrer("gate", gate_id))

    if gate_uses is None:
        async for gate in client.gates.items(includeArchived=True):
            if _live("gate", gate):
                add_gate(str(gate["id"]), _gate_targets(gate.get("rules")))
    else:
        for user, uses in gate_uses.items():
            add_gate(user, uses)
    async for config in client.dynamic_configs.items():
        if _live("dynamic config", config):
            for target in _gate_targets(config.get("rules")) & targets:
                refs[target].add(Referrer("dynamic config", str(config["id"])))
    async for experiment in client.experiments.items():
        gate_id = experiment.get("targetingGateID")
        if isinstance(gate_id, str) and gate_id in targets and _live("experiment", experiment):
            refs[gate_id].add(Referrer("experiment", str(experiment["id"])))
    return refs


async def _references_per_gate(ctx: JobContext, targets: set[str]) -> dict[str, set[Referrer]]:
    """Who references each target, from the API's three reference endpoints per gate."""
    refs: dict[str, set[Referrer]] = {t: set() for t in targets}
    gates = ctx.client.gates
    limiter = anyio.CapacityLimiter(_READ_CONCURRENCY)

    async def one(target: str) -> None:
        async with limiter:
            found = refs[target]
            async for gate in gates.gate_references(target):
                if _live("gate", gate) and gate.id != target:
                    found.add(Referrer("gate", gate.id))
            async for config in gates.dynamic_config_references(target):
                if _live("dynamic config", config):
                    found.add(Referrer("dynamic config", config.id))
            async for experiment in gates.experiment_references(target):
                if _live("experiment", experiment):
                    found.add(Referrer("experiment", experiment.id))

    async with anyio.create_task_group() as tg:
        for target in sorted(targets):
            tg.start_soon(one, target)
    return refs


def _order(rows: Sequence[GateRow]) -> list[str]:
    """Archive order: a gate after every selected gate that references it.

    Gates referenced by anything that stays live are blocked, and so is a gate
    whose referrers are blocked or sit on a reference cycle.
    """
    pending = {r.id: r for r in rows if r.action == "archive"}
    order: list[str] = []
    done: set[str] = set()
    progress = True
    while progress and pending:
        progress = False
        for row in list(pending.values()):
            outside = [
                ref
                for ref in row.referrers
                if ref.kind != "gate" or (ref.id not in pending and ref.id not in done)
            ]
            if outside:
                row.action = "blocked"
                del pending[row.id]
                progress = True
                continue
            if all(ref.id in done for ref in row.referrers):
                row.after = sorted(ref.id for ref in row.referrers)
                order.append(row.id)
                done.add(row.id)
                del pending[row.id]
                progress = True
    for row in pending.values():
        row.action = "blocked"
        row.cycle = True
    return order


async def select(ctx: JobContext, params: Params) -> Selection:
    """Page through the gates the selectors pick and decide what happens to each."""
    now_ms = int(clock() * 1000)
    query = _server_filters(params)
    unfiltered = set(query) == {"includeArchived"}
    # An unfiltered listing reads every gate anyway: keep just the ids each live gate
    # uses (not the gates), so the reference check need not read them again.
    gate_uses: dict[str, frozenset[str]] | None = {} if unfiltered else None
    rows: list[GateRow] = []
    async for gate in ctx.client.gates.items(**query):
        if gate_uses is not None and _live("gate", gate):
            uses = _gate_targets(gate.get("rules"))
            if uses:
                gate_uses[str(gate["id"])] = frozenset(uses)
        if not _matches(gate, params, now_ms):
            continue
        status = str(gate.get("status") or "")
        rows.append(
            GateRow(
                id=str(gate["id"]),
                status=status,
                type_reason=str(gate.get("typeReason") or ""),
                last_modified=gate.get("lastModifiedTime"),
                action="archived" if status == ARCHIVED else "archive",
            )
        )
    live = {r.id for r in rows if r.action == "archive"}
    if not live:
        refs: dict[str, set[Referrer]] = {}
        strategy = "none"
    elif len(live) <= PER_GATE_MAX:
        refs = await _references_per_gate(ctx, live)
        strategy = "per-gate"
    else:
        refs = await _references_full_read(ctx, live, gate_uses)
        strategy = "full-read"
    for row in rows:
        row.referrers = sorted(refs.get(row.id, ()))
    if params.code_refs:
        await _code_references(ctx, params.code_refs, rows)
    if params.include_referenced:
        order = [r.id for r in rows if r.action == "archive"]
        for row in rows:
            row.forced = row.action == "archive" and bool(row.referrers)
    else:
        for row in rows:
            if row.action == "archive" and row.code:
                row.action = "blocked"
        order = _order(rows)
    if params.limit is not None and len(order) > params.limit:
        # The order puts referrers first, so a prefix never archives a gate before
        # a gate that references it.
        over = set(order[params.limit :])
        order = order[: params.limit]
        for row in rows:
            if row.id in over:
                row.action = "limit"
    return Selection(rows=rows, order=order, strategy=strategy, limit=params.limit)


async def _code_references(ctx: JobContext, trees: Sequence[str], rows: Sequence[GateRow]) -> None:
    """Set each live row's ``code``: where the trees reference it (a run-time name whose
    fixed start begins its id counts: the check may be of this gate)."""
    from bulkops.refs import FlagObject, build_report, load_config, scan

    live = [r for r in rows if r.action == "archive"]
    objects = [FlagObject("gates", r.id, r.status, r.type_reason) for r in live]
    roots = [Path(t) for t in trees]
    configs = [load_config(root if root.is_dir() else root.parent) for root in roots]
    # A scan reads and matches files for a while: not on the event loop. (From a thread
    # it stays in one process: forking a process that runs threads is not safe.)
    found = await anyio.to_thread.run_sync(lambda: scan(roots, objects, configs))
    report = build_report(found)
    for row, refs in zip(live, report.objects, strict=True):
        row.code = [report.where(h) for h in refs.hits] + [
            f"{report.where(w)} (a name built at run time)" for w in refs.maybe
        ]
    ctx.note(f"code references: {report.summary()}")


def _day(ms: int | None) -> str:
    if not isinstance(ms, int | float):
        return "-"
    return dt.datetime.fromtimestamp(ms / 1000, dt.UTC).strftime("%Y-%m-%d")


REPORT_COLUMNS = ("gate", "status", "stale reason", "last modified", "action")


def report_rows(selection: Selection) -> list[tuple[str, str, str, str, str]]:
    """One row per selected gate: id, status, stale reason, last modified, action."""
    return [
        (r.id, r.status, r.type_reason or "-", _day(r.last_modified), r.explain())
        for r in selection.rows
    ]


def report_lines(selection: Selection) -> list[str]:
    """The totals line of the selection (what is archived, blocked, already archived)."""
    lines = []
    archive = len(selection.order)
    forced = sum(1 for r in selection.rows if r.forced or (r.code and r.action == "archive"))
    in_code = sum(1 for r in selection.rows if r.code and r.action == "blocked")
    parts = [
        f"{archive} to archive" + (f" ({forced} forced)" if forced else ""),
        f"{selection.count('blocked')} blocked by references"
        + (f" ({in_code} in code)" if in_code else ""),
        f"{selection.count('archived')} already archived",
    ]
    if selection.count("limit"):
        parts.append(f"{selection.count('limit')} over --limit {selection.limit}")
    lines.append(f"archive-gates: {len(selection.rows)} gates selected: " + ", ".join(parts))
    return lines


def _archive_reason(ctx: JobContext, params: Params) -> str:
    text = f"bulkops archive-gates run {ctx.plan_id}"
    return f"{text}: {params.reason}" if params.reason else text


class _Shared:
    """What every archive of one run has in common, built once.

    Expectations are frozen models and request bodies are never changed after
    planning, so 10,000 archives hold references to a handful of objects instead of
    10,000 copies of each.
    """

    def __init__(self, ctx: JobContext, reason: str) -> None:
        self.body: dict[str, Any] = {"archiveReason": reason}
        self.forced_body: dict[str, Any] = {"archiveReason": reason, "forceArchive": True}
        self.undo_body: dict[str, Any] = {
            "unarchiveReason": f"undo of bulkops archive-gates run {ctx.plan_id}"
        }
        self.archived = Expect(fields={"status": ARCHIVED})
        self.not_archived = Expect(differs={"status": ARCHIVED})
        self._status: dict[str, Expect] = {}

    def status(self, status: str) -> Expect:
        """``Expect(fields={"status": status})``, one per status."""
        found = self._status.get(status)
        if found is None:
            found = self._status[status] = Expect(fields={"status": status})
        return found


def _mutation(ctx: JobContext, row: GateRow, shared: _Shared) -> Mutation:
    launched = row.status == "Launched"
    inverse = [
        InverseCall(
            method="PUT",
            path=GATES.path(row.id, "unarchive"),
            body=shared.undo_body,
            before=shared.archived,
            after=shared.not_archived if launched else shared.status(row.status),
            idempotent=True,
            action="unarchive",
        )
    ]
    if launched:
        # Unarchiving leaves a launched gate In Progress: launch it again.
        inverse.append(
            InverseCall(
                method="PUT",
                path=GATES.path(row.id, "launch"),
                body=None,
                before=shared.status("In Progress"),
                after=shared.status("Launched"),
                idempotent=True,
                action="launch",
            )
        )
    return Mutation(
        key=f"gate:archive:{row.id}",
        project=ctx.project_id,
        action="archive",
        object=f"gate/{row.id}",
        method="PUT",
        path=GATES.path(row.id, "archive"),
        body=shared.forced_body if row.forced else shared.body,
        read=GATES.path(row.id),
        before=shared.status(row.status),
        after=shared.archived,
        # The fields the plan shows, not the gate (its rules stay on the server).
        before_image={
            "status": row.status,
            "typeReason": row.type_reason,
            "lastModifiedTime": row.last_modified,
        },
        inverse=tuple(inverse),
        depends_on=tuple(f"gate:archive:{g}" for g in row.after),
        idempotent=True,
    )


async def plan(ctx: JobContext, params: Params) -> AsyncIterator[Mutation]:
    """Yield one archive per selected, unreferenced, live gate (referrers first)."""
    selection = await select(ctx, params)
    rows = report_rows(selection)
    if rows:
        ctx.note_table("Selected gates", REPORT_COLUMNS, rows)
    for line in report_lines(selection):
        ctx.note(line)
    for line in await unknown_tags(ctx.client, params.tag, f"project {ctx.project_name}"):
        ctx.note(line)
    ctx.log.info(
        EVENT_SELECTED,
        selected=len(selection.rows),
        archive=len(selection.order),
        blocked=selection.count("blocked"),
        already_archived=selection.count("archived"),
        references=selection.strategy,
    )
    by_id = {r.id: r for r in selection.rows}
    shared = _Shared(ctx, _archive_reason(ctx, params))
    for gate_id in selection.order:
        yield _mutation(ctx, by_id[gate_id], shared)
