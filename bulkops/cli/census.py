"""The census: a read-only summary of a project, as tables.

:func:`census` reads a whole project through the client (gates, dynamic configs,
segments, tags, experiments, the latest audit-log entries) and counts what a person
wants to know first: how many of each there are, in which state, and what went on
lately. :func:`render` prints those counts as tables; :func:`tour` does both. It never
writes. The demo (:mod:`bulkops.cli.demo`) opens with it.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field

import anyio
from rich import box
from rich.columns import Columns
from rich.console import Console
from rich.table import Table

from ..api.client import ConsoleClient
from ..api.models import AuditLogEntry

__all__ = [
    "DEFAULT_AUDIT_ENTRIES",
    "GATE_STATUSES",
    "GATE_TYPES",
    "Census",
    "census",
    "render",
    "tour",
]

GATE_STATUSES = ("In Progress", "Launched", "Disabled", "Archived")
GATE_TYPES = ("PERMANENT", "TEMPORARY", "STALE", "TEMPLATE")
_CONFIG_STATUSES = ("Enabled", "Disabled", "Archived")
_EXPERIMENT_STATUSES = (
    "setup",
    "active",
    "decision_made",
    "abandoned",
    "archived",
    "experiment_stopped",
    "assignment_stopped",
)
DEFAULT_AUDIT_ENTRIES = 8


@dataclass
class Census:
    """What :func:`census` counted in one project."""

    project_id: str
    gates: Counter[tuple[str, str]] = field(default_factory=Counter)  # (status, type)
    stale_reasons: Counter[str] = field(default_factory=Counter)
    configs: Counter[str] = field(default_factory=Counter)  # by status
    segments: Counter[str] = field(default_factory=Counter)  # by type
    segment_ids: Counter[str] = field(default_factory=Counter)  # ids held, by type
    tags: dict[str, str] = field(default_factory=dict)  # name -> description
    tag_use: Counter[tuple[str, str]] = field(default_factory=Counter)  # (tag, kind)
    experiments: Counter[str] = field(default_factory=Counter)  # by status
    experiment_ids: dict[str, list[str]] = field(default_factory=dict)  # status -> ids
    audit: list[AuditLogEntry] = field(default_factory=list)  # one page, newest first
    audit_total: int = 0

    @property
    def gate_count(self) -> int:
        """All gates."""
        return sum(self.gates.values())

    def gates_with(self, *, status: str | None = None, type: str | None = None) -> int:
        """Gates of one status and/or type."""
        return sum(
            n
            for (s, t), n in self.gates.items()
            if (status is None or s == status) and (type is None or t == type)
        )


async def census(client: ConsoleClient, *, audit_entries: int = DEFAULT_AUDIT_ENTRIES) -> Census:
    """Read the whole project behind ``client`` (read-only) and count what is in it.

    The listings run concurrently; each one follows the API's pagination to the end,
    except the audit log, of which only the newest ``audit_entries`` are read.
    """
    info = await client.project.get()
    found = Census(project_id=str(info.get("id") or "?"))

    async def gates() -> None:
        async for gate in client.gates.list(include_archived=True):
            found.gates[str(gate.status), str(gate.type)] += 1
            if gate.type == "STALE":
                found.stale_reasons[str(gate.typeReason)] += 1
            for tag in gate.tags:
                found.tag_use[tag, "gates"] += 1

    async def configs() -> None:
        async for config in client.dynamic_configs.list(include_archived=True):
            found.configs[str(config.status)] += 1
            for tag in config.tags:
                found.tag_use[tag, "dynamic_configs"] += 1

    async def segments() -> None:
        async for segment in client.segments.list():
            found.segments[str(segment.type)] += 1
            found.segment_ids[str(segment.type)] += segment.count or 0

    async def tags() -> None:
        async for tag in client.tags.list():
            found.tags[tag.name] = tag.description or ""

    async def experiments() -> None:
        async for experiment in client.experiments.list():
            found.experiments[str(experiment.status)] += 1
            found.experiment_ids.setdefault(str(experiment.status), []).append(experiment.id)

    async def audit() -> None:
        # One page, newest first: the envelope's pagination says how many there are in all.
        body = await client.request(
            "GET", "/audit_logs", params={"sortOrder": "desc", "limit": audit_entries, "page": 1}
        )
        found.audit = [AuditLogEntry.model_validate(e) for e in body.get("data") or []]
        found.audit_total = int((body.get("pagination") or {}).get("totalItems") or 0)

    async with anyio.create_task_group() as group:
        for reader in (gates, configs, segments, tags, experiments):
            group.start_soon(reader)
        if audit_entries > 0:
            group.start_soon(audit)
    return found


def render(found: Census, console: Console) -> None:
    """Print a census as tables."""
    console.print(_gates_table(found))
    console.print(
        Columns(
            [_stale_table(found), _configs_table(found), _segments_table(found)], padding=(0, 3)
        )
    )
    console.print(Columns([_tags_table(found), _experiments_table(found)], padding=(0, 3)))
    if found.audit:
        console.print(_audit_table(found))


async def tour(client: ConsoleClient, console: Console) -> None:
    """Read the project behind ``client`` and print what is in it; never writes."""
    render(await census(client), console)


def _table(title: str, *columns: str, text_columns: int = 1) -> Table:
    """A table whose first ``text_columns`` columns are text (left) and the rest counts."""
    table = Table(title=title, title_justify="left", box=box.SIMPLE_HEAD, title_style="bold")
    for i, name in enumerate(columns):
        table.add_column(name, justify="left" if i < text_columns else "right")
    return table


def _n(value: int) -> str:
    return f"{value:,}" if value else "[dim]·[/dim]"


def _ordered(counter: Counter[str], known: Sequence[str]) -> list[str]:
    """Known keys in their natural order, then any others the server returned."""
    return [k for k in known if counter[k]] + sorted(k for k in counter if k not in known)


def _gates_table(found: Census) -> Table:
    statuses = [s for s in GATE_STATUSES if found.gates_with(status=s)]
    statuses += sorted({s for s, _ in found.gates} - set(statuses))
    types = [t for t in GATE_TYPES if found.gates_with(type=t)]
    types += sorted({t for _, t in found.gates} - set(types))
    table = _table(f"Feature gates: {found.gate_count:,}", "status", *types, "total")
    for status in statuses:
        row = [_n(found.gates[status, t]) for t in types]
        table.add_row(status, *row, f"[bold]{found.gates_with(status=status):,}")
    table.add_section()
    by_type = (f"[bold]{found.gates_with(type=t):,}" for t in types)
    table.add_row("[bold]all", *by_type, f"[bold]{found.gate_count:,}")
    return table


def _stale_table(found: Census) -> Table:
    total = sum(found.stale_reasons.values())
    table = _table(f"Stale gates by reason: {total:,}", "reason", "gates")
    for reason, count in found.stale_reasons.most_common():
        table.add_row(reason.removeprefix("STALE_").replace("_", " ").lower(), f"{count:,}")
    return table


def _configs_table(found: Census) -> Table:
    table = _table(f"Dynamic configs: {sum(found.configs.values()):,}", "status", "configs")
    for status in _ordered(found.configs, _CONFIG_STATUSES):
        table.add_row(status, f"{found.configs[status]:,}")
    return table


def _segments_table(found: Census) -> Table:
    table = _table(f"Segments: {sum(found.segments.values()):,}", "type", "segments", "ids")
    for seg_type, count in found.segments.most_common():
        table.add_row(seg_type, f"{count:,}", _n(found.segment_ids[seg_type]))
    return table


def _tags_table(found: Census) -> Table:
    table = _table(f"Tags: {len(found.tags):,}", "tag", "gates", "configs")
    for name in sorted(found.tags, key=lambda t: (-found.tag_use[t, "gates"], t)):
        table.add_row(
            name, _n(found.tag_use[name, "gates"]), _n(found.tag_use[name, "dynamic_configs"])
        )
    return table


def _experiments_table(found: Census) -> Table:
    total = sum(found.experiments.values())
    table = _table(f"Experiments: {total:,}", "status", "for example", "count", text_columns=2)
    for status in _ordered(found.experiments, _EXPERIMENT_STATUSES):
        ids = found.experiment_ids.get(status, [])
        more = f" +{len(ids) - 2}" if len(ids) > 2 else ""
        table.add_row(status, ", ".join(ids[:2]) + more, f"{found.experiments[status]:,}")
    return table


def _audit_table(found: Census) -> Table:
    table = _table(
        f"Audit log: the latest {len(found.audit)} of {found.audit_total:,} entries",
        "when",
        "who",
        "action",
        "object",
        text_columns=4,
    )
    for entry in found.audit:
        when = f"{entry.date or ''} {(entry.time or '')[:5]}".strip()
        table.add_row(when, entry.updatedBy or "", str(entry.actionType or ""), entry.name or "")
    return table
