"""A read-only tour of a project, and the demo: the whole product in one command.

:func:`tour` reads a whole project through the client (gates, dynamic configs,
segments, tags, experiments, the latest audit-log entries) and prints what a person
wants to know first: how many of each there are, in which state, and what went on
lately. It never writes.

:func:`main` is the demo (``scripts/demo``, ``bulkops demo``, ``python -m
bulkops.cli.tour``). It serves the ``demo`` seed from ``python -m bulkops emulator`` in a
child process, at a time scale, and runs titled :class:`Step` s against it: the tour,
then the real ``bulkops`` command line in child processes, as a user would run it
(keys in the environment, ``--yes`` since no one is at a terminal): plan, apply killed
with SIGKILL halfway and resumed, status, a rule rewrite, an override import (and a bad
file refused), a project copy with its verification, an undo, and a closing table built
from the checkpoints and the emulator's request log. Nothing leaves the machine.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import io
import json
import logging
import os
import re
import shlex
import signal
import sys
import tempfile
import time
import tomllib
from collections import Counter
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import anyio
import structlog
from pydantic import SecretStr
from rich import box
from rich.columns import Columns
from rich.console import Console
from rich.markup import escape
from rich.panel import Panel
from rich.table import Table
from rich.text import Text

from ..api.client import ConsoleClient
from ..api.models import AuditLogEntry
from ..engine.plans import read_plan
from ..errors import BulkOpsError, UsageError
from ..settings import API_KEY_ENV, Settings

__all__ = [
    "DEFAULT_TIME_SCALE",
    "GATE_STATUSES",
    "GATE_TYPES",
    "STEPS",
    "Census",
    "CliRun",
    "DemoContext",
    "DemoFailed",
    "DemoResult",
    "EmulatorProcess",
    "Step",
    "Tally",
    "add_arguments",
    "bulkops",
    "census",
    "checkpoint_status",
    "demo_keys",
    "excerpt",
    "main",
    "prepare_workdir",
    "register",
    "render",
    "run_demo",
    "run_from_args",
    "show_output",
    "start_emulator",
    "stop_emulator",
    "summary_table",
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


# -- the demo ----------------------------------------------------------------------------

DEFAULT_TIME_SCALE = 60.0
SOURCE_KEY_ENV = "DEMO_SOURCE_KEY"
TARGET_KEY_ENV = "DEMO_TARGET_KEY"
EXAMPLES = Path(__file__).resolve().parents[2] / "examples"
WRITE_METHODS = frozenset({"POST", "PUT", "PATCH", "DELETE"})
KEEP_LINES = 10  # lines of one kind shown before "… N more lines"
_PIPED_WIDTH = 120
_POLL = 0.01  # seconds between looks at a growing checkpoint
_EMULATOR_START = 90.0  # seconds the emulator may take to listen (a loaded machine)
_INTENT = b'"t":"intent"'
_OUTCOME = b'"t":"outcome"'


class DemoFailed(BulkOpsError):
    """A demo step did not go as it should (a command's exit code, the emulator)."""


@dataclass
class EmulatorProcess:
    """The emulator, served by ``python -m bulkops emulator`` in a child process."""

    process: asyncio.subprocess.Process
    url: str
    request_log: Path

    def entries(self, windows: Sequence[tuple[float, float]] = ()) -> list[dict[str, Any]]:
        """The request log (a torn last line skipped), only inside ``windows`` if given."""
        entries = []
        if self.request_log.exists():
            for line in self.request_log.read_text(encoding="utf-8").splitlines():
                with contextlib.suppress(ValueError):
                    entries.append(json.loads(line))
        if windows:
            entries = [e for e in entries if any(a <= e.get("time", 0) <= b for a, b in windows)]
        return entries


@dataclass(frozen=True)
class CliRun:
    """One ``bulkops`` command the demo ran: its exit code, output and wall-clock window."""

    argv: tuple[str, ...]
    code: int
    output: str
    started: float
    ended: float

    @property
    def window(self) -> tuple[float, float]:
        return (self.started, self.ended)


@dataclass
class Tally:
    """One row of the closing table: what a step planned, sent, skipped and refused."""

    label: str
    windows: list[tuple[float, float]] = field(default_factory=list)
    checkpoint: Path | None = None
    planned: int | None = None
    skipped: int = 0  # left out while planning (the checkpoint's own skips are added)
    refused: int = 0
    note: str = ""
    status: dict[str, Any] | None = None  # `bulkops status CKPT --json`
    log: Counter[str] = field(default_factory=Counter)  # reads, writes, changed, throttled


@dataclass
class DemoContext:
    """What every demo step gets: the console, the emulator, a client per project, the
    environment of the ``bulkops`` commands and the running tallies."""

    console: Console
    workdir: Path
    time_scale: float
    emulator: EmulatorProcess
    source: ConsoleClient
    target: ConsoleClient
    env: dict[str, str]
    tallies: list[Tally] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)
    saved: dict[str, Any] = field(default_factory=dict)  # what one step leaves the next

    @property
    def base_url(self) -> str:
        return self.emulator.url

    @property
    def scale(self) -> str:
        """``--time-scale N`` as it is typed."""
        return f"{self.time_scale:g}"

    def check(self, ok: bool, good: str, bad: str) -> None:
        """Print the outcome of a check; a failed one makes the demo exit 1."""
        if ok:
            self.console.print(f"[green]✓[/green] {good}", highlight=False)
        else:
            self.console.print(f"[bold red]✗ {bad}[/bold red]", highlight=False)
            self.problems.append(bad)

    def say(self, text: str) -> None:
        """A sentence of narration between commands."""
        self.console.print(text, highlight=False)


@dataclass(frozen=True)
class Step:
    """One titled step of the demo."""

    title: str
    blurb: str
    run: Callable[[DemoContext], Awaitable[None]]


@dataclass(frozen=True)
class DemoResult:
    """How the demo went."""

    ok: bool
    seconds: float
    workdir: Path
    tallies: list[Tally]
    problems: list[str]
    saved: dict[str, Any]


# -- running bulkops as a user would ------------------------------------------------------


def _child_env(ctx: DemoContext, *, color: bool) -> dict[str, str]:
    env = dict(ctx.env)
    env["COLUMNS"] = str(max(60, ctx.console.width - 2))
    if color and ctx.console.is_terminal and not ctx.console.no_color:
        env["FORCE_COLOR"] = "1"
    else:
        env["NO_COLOR"] = "1"
    return env


async def _spawn(
    ctx: DemoContext, argv: Sequence[str], *, color: bool, merge: bool = True
) -> asyncio.subprocess.Process:
    return await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "bulkops",
        *argv,
        cwd=ctx.workdir,
        env=_child_env(ctx, color=color),
        stdin=asyncio.subprocess.DEVNULL,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.STDOUT if merge else asyncio.subprocess.PIPE,
    )


async def _reap(process: asyncio.subprocess.Process) -> None:
    """Kill a child that is still running (the demo was interrupted) and wait for it."""
    if process.returncode is None:
        with contextlib.suppress(ProcessLookupError):
            process.kill()
        await process.wait()


def _command_line(argv: Sequence[str]) -> str:
    return "bulkops " + shlex.join(argv)


def _prompt(ctx: DemoContext, argv: Sequence[str]) -> None:
    ctx.console.print(f"[bold cyan]$ {escape(_command_line(argv))}[/]", highlight=False)


def _exit_text(code: int) -> str:
    if code < 0:
        return f"killed by signal {-code}" + (" (SIGKILL)" if code == -signal.SIGKILL else "")
    return f"exit {code}"


async def bulkops(
    ctx: DemoContext,
    *argv: str,
    expect: Sequence[int] = (0,),
    keep: int = KEEP_LINES,
    show: bool = True,
    color: bool = True,
) -> CliRun:
    """Run ``bulkops argv`` in a child process, as a user would, and show its output.

    Raises:
        DemoFailed: it exited with a code not in ``expect``.
    """
    if show:
        _prompt(ctx, argv)
    started = time.time()
    process = await _spawn(ctx, argv, color=color)
    try:
        out, _ = await process.communicate()
    finally:
        await _reap(process)
    run = CliRun(
        tuple(argv), process.returncode or 0, out.decode(errors="replace"), started, time.time()
    )
    if show:
        show_output(ctx.console, run.output, keep=keep)
        style = "dim" if run.code in expect else "bold red"
        ctx.console.print(f"[{style}]{_exit_text(run.code)}[/]", highlight=False)
    if run.code not in expect:
        if not show:
            show_output(ctx.console, run.output, keep=keep)
        raise DemoFailed(
            f"`{_command_line(argv)}` ended with {_exit_text(run.code)} "
            f"(expected exit {' or '.join(str(c) for c in expect)})"
        )
    return run


def _kind(plain: str) -> str | None:
    """Lines of one kind (indented, or with one leading label) are trimmed together."""
    if not plain.strip():
        return None
    if plain[0].isspace():
        return " "
    label = re.match(r"([^:]{1,40}): ", plain)
    if label:
        return label.group(1)
    first = plain.split(maxsplit=1)[0]
    return first if first.isalpha() else None


def excerpt(text: str, *, keep: int = KEEP_LINES) -> list[Text]:
    """The lines of a command's output worth reading: a run of more than ``keep`` + 2
    lines of one kind keeps its first ``keep`` and says how many more there were."""
    lines = [Text.from_ansi(line) for line in text.rstrip("\n").splitlines()]
    shown: list[Text] = []
    i = 0
    while i < len(lines):
        kind = _kind(lines[i].plain)
        j = i + 1
        if kind is not None:
            while j < len(lines) and _kind(lines[j].plain) == kind:
                j += 1
        run = lines[i:j]
        if len(run) > keep + 2:
            shown.extend(run[:keep])
            indent = " " * (len(run[0].plain) - len(run[0].plain.lstrip()))
            shown.append(Text(f"{indent}… {len(run) - keep:,} more lines", style="dim italic"))
        else:
            shown.extend(run)
        i = j
    return shown


def show_output(console: Console, text: str, *, keep: int = KEEP_LINES) -> None:
    """Print a command's output (trimmed by :func:`excerpt`) behind a gutter."""
    lines = excerpt(text, keep=keep)
    if not lines:
        return
    grid = Table.grid()
    grid.add_column(style="dim", no_wrap=True)
    grid.add_column(overflow="fold")
    for line in lines:
        grid.add_row("│ ", line)
    console.print(grid)


def _footer(ctx: DemoContext, started: float, ended: float) -> str:
    entries = ctx.emulator.entries([(started, ended)])
    writes = sum(1 for e in entries if e.get("method") in WRITE_METHODS)
    return f"{len(entries) - writes:,} reads, {writes:,} writes, {ended - started:.1f} s"


# -- the steps --------------------------------------------------------------------------


async def _tour_source(ctx: DemoContext) -> None:
    await tour(ctx.source, ctx.console)


def _count(pattern: str, text: str) -> int | None:
    found = re.search(pattern, text)
    return int(found.group(1).replace(",", "")) if found else None


async def _plan_archive(ctx: DemoContext) -> None:
    run = await bulkops(
        ctx, "plan", "archive-gates", "--stale", "--time-scale", ctx.scale, "-o", "archive.plan"
    )
    planned = len(read_plan(ctx.workdir / "archive.plan").mutations)
    blocked = _count(r"([\d,]+) blocked by references", run.output) or 0
    ctx.saved["archive_planned"] = planned
    ctx.tallies.append(
        Tally(
            "plan archive-gates",
            [run.window],
            planned=planned,
            skipped=blocked,
            note=f"{blocked:,} stale gates skipped: still referenced (the plan names by whom)"
            if blocked
            else "",
        )
    )
    ctx.say(
        f"\nNothing was written. [bold]{planned:,}[/bold] archive mutations are in "
        "[cyan]archive.plan[/cyan]; its hash is checked again before anything is applied."
    )


class _Growth:
    """Counts the intent and outcome records of a checkpoint as it grows."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.offset = 0
        self.tail = b""
        self.intents = 0
        self.outcomes = 0

    def read(self) -> int:
        if not self.path.exists():
            return 0
        with self.path.open("rb") as f:
            f.seek(self.offset)
            data = f.read()
        self.offset += len(data)
        whole, _, self.tail = (self.tail + data).rpartition(b"\n")
        self.intents += whole.count(_INTENT)
        self.outcomes += whole.count(_OUTCOME)
        return self.intents


async def _apply_killed(ctx: DemoContext, argv: Sequence[str], checkpoint: Path) -> CliRun:
    """Run ``bulkops apply``, watch its checkpoint and SIGKILL it at half the intents."""
    total = int(ctx.saved["archive_planned"])
    half = (total + 1) // 2
    _prompt(ctx, argv)
    started = time.time()
    process = await _spawn(ctx, argv, color=True, merge=False)
    growth = _Growth(checkpoint)
    seen: list[int] = []
    killed_at: float | None = None
    step = max(1, half // 4)  # about four samples on the way to the kill
    try:
        talk = asyncio.ensure_future(process.communicate())
        while not talk.done():
            n = growth.read()
            if n >= half:
                process.send_signal(signal.SIGKILL)  # kill -9: no handler, no cleanup
                killed_at = time.time()
                seen.append(n)
                break
            if n and n // step > (seen[-1] // step if seen else 0):
                seen.append(n)
            await asyncio.sleep(_POLL)
        out, err = await talk
    finally:
        await _reap(process)
    growth.read()
    run = CliRun(
        tuple(argv), process.returncode or 0, err.decode(errors="replace"), started, time.time()
    )
    show_output(ctx.console, run.output, keep=3)
    ctx.say(
        f"[dim]watching {checkpoint.name}:[/dim] "
        + " → ".join(f"{n:,}" for n in seen)
        + f" intents written (of {total:,})"
    )
    if killed_at is None:
        ctx.say(
            f"[yellow]The apply finished ({_exit_text(run.code)}) before half its intents "
            "were written, so there was nothing to kill; run the demo with a lower "
            "--time-scale to see it.[/yellow]"
        )
        return run
    ctx.say(
        f"[bold red]kill -9 {process.pid}[/bold red] after {killed_at - started:.1f} s, "
        f"with {growth.intents:,} intents and {growth.outcomes:,} outcomes in the "
        f"checkpoint: {_exit_text(run.code)}."
    )
    ctx.saved["killed"] = (growth.intents, growth.outcomes)
    return run


async def _apply_kill_resume(ctx: DemoContext) -> None:
    checkpoint = ctx.workdir / "archive.ckpt"
    argv = ["apply", "archive.plan", "--checkpoint", "archive.ckpt", "--yes"]
    applied = await _apply_killed(ctx, [*argv, "--time-scale", ctx.scale], checkpoint)
    ctx.say(
        "\n`status` reads only the checkpoint. An intent without an outcome is "
        "[italic]unsettled[/italic]: its request may or may not have reached the server."
    )
    await bulkops(ctx, "status", "archive.ckpt")
    ctx.say(
        "\n`resume` reads each unsettled gate back to learn whether its archive landed, "
        "skips every mutation already applied and sends only the rest, under the same quota."
    )
    resumed = await bulkops(ctx, "resume", "archive.ckpt", "--time-scale", ctx.scale)
    # One window for the whole episode: a request the killed process had in flight
    # reaches the server after the kill, between the two processes' own windows.
    windows = [(applied.window[0], resumed.window[1])]
    tally = Tally("apply, kill -9, resume", windows, checkpoint=checkpoint)
    ctx.tallies.append(tally)
    # The ground truth: which gates the emulator archived, and how often.
    planned = int(ctx.saved["archive_planned"])
    archived = Counter(
        e["path"]
        for e in ctx.emulator.entries(windows)
        if e.get("applied") and re.search(r"/gates/[^/]+/archive$", str(e.get("path")))
    )
    before = ctx.emulator.entries([(applied.window[0], resumed.window[0])])
    sent_before = sum(1 for e in before if e.get("method") in WRITE_METHODS)
    sent_after = sum(
        1 for e in ctx.emulator.entries([resumed.window]) if e.get("method") in WRITE_METHODS
    )
    twice = sum(1 for n in archived.values() if n > 1)
    if "killed" in ctx.saved:
        tally.note = (
            f"killed with {ctx.saved['killed'][0]:,} intents in the checkpoint; "
            f"{sent_before:,} writes before the kill, {sent_after:,} after the resume"
        )
    landed = ""
    if "killed" in ctx.saved:
        unrecorded = sent_before - int(ctx.saved["killed"][1])
        landed = (
            f" ({unrecorded:,} of them landed with no outcome recorded: the resume read "
            f"{'it' if unrecorded == 1 else 'them'} back instead of sending again)"
            if unrecorded > 0
            else ""
        )
    ctx.check(
        len(archived) == planned and twice == 0,
        f"The emulator's request log: {sent_before:,} archive requests before the kill"
        f"{landed}, {sent_after:,} after the resume; each of the {planned:,} gates archived "
        "exactly once. Nothing lost, nothing sent twice.",
        f"the emulator archived {len(archived):,} of {planned:,} gates, {twice:,} of them "
        "more than once",
    )


async def _status(ctx: DemoContext) -> None:
    await bulkops(ctx, "status", "archive.ckpt")
    ctx.say(
        "\nThe checkpoint stays: `bulkops undo archive.ckpt` would unarchive exactly these "
        "gates (we undo the next step instead)."
    )


# Rule fields the server owns: ids (a rule dropped and recreated gets new ones) and the
# automated-rollout lists it fills in empty.
_SERVER_RULE_IDS = ("id", "baseID")
_SERVER_RULE_DEFAULTS = ("completedAutomatedRollouts", "pendingAutomatedRollouts")


def _plain_rule(rule: Any) -> Any:
    if not isinstance(rule, dict):
        return rule
    return {
        k: v
        for k, v in rule.items()
        if k not in _SERVER_RULE_IDS and not (k in _SERVER_RULE_DEFAULTS and v == [])
    }


async def _rules(client: ConsoleClient) -> dict[str, Any]:
    """The rules of every gate and dynamic config by ``kind/id``, without the fields the
    server owns."""
    rules: dict[str, Any] = {}
    for kind in ("gates", "dynamic_configs"):
        async for obj in client.paginate(f"/{kind}"):
            rules[f"{kind}/{obj.get('id')}"] = [_plain_rule(r) for r in obj.get("rules") or []]
    return rules


def _describe_rewrite(path: Path) -> str:
    spec = tomllib.loads(path.read_text(encoding="utf-8"))
    select = spec.get("select") or {}
    ops = [str(r.get("op")) for r in spec.get("rewrite") or []]
    where = ", ".join(
        f"{name} {', '.join(str(v) for v in values)}"
        for name, values in (
            ("kinds", select.get("kinds") or []),
            ("tags", select.get("tags") or []),
            ("ids", select.get("ids") or []),
        )
        if values
    )
    return f"selects {where or 'everything'}; {len(ops)} rewrites: {', '.join(ops)}"


async def _rewrite(ctx: DemoContext) -> None:
    ctx.saved["rules_before"] = await _rules(ctx.source)
    ctx.say(
        f"[cyan]examples/rewrite.toml[/cyan] {escape(_describe_rewrite(EXAMPLES / 'rewrite.toml'))}.\n"
    )
    run = await bulkops(
        ctx,
        "run",
        "rewrite-rules",
        "--file",
        "examples/rewrite.toml",
        "--apply",
        "--yes",
        "--checkpoint",
        "rewrite.ckpt",
        "--time-scale",
        ctx.scale,
    )
    ctx.tallies.append(
        Tally("run rewrite-rules", [run.window], checkpoint=ctx.workdir / "rewrite.ckpt")
    )


async def _import(ctx: DemoContext) -> None:
    run = await bulkops(
        ctx,
        "run",
        "import-overrides",
        "--file",
        "examples/overrides.csv",
        "--apply",
        "--yes",
        "--checkpoint",
        "overrides.ckpt",
        "--time-scale",
        ctx.scale,
    )
    ctx.tallies.append(
        Tally("run import-overrides", [run.window], checkpoint=ctx.workdir / "overrides.ckpt")
    )
    ctx.say(
        "\nNow a file with bad rows. It is checked whole against the project before any "
        "request: every bad row is named by its line, and nothing is sent (exit 2)."
    )
    bad = await bulkops(
        ctx,
        "run",
        "import-overrides",
        "--file",
        "examples/overrides-bad.csv",
        "--apply",
        "--yes",
        "--checkpoint",
        "overrides-bad.ckpt",
        "--time-scale",
        ctx.scale,
        expect=(2,),
        keep=20,
    )
    rows = _count(r"([\d,]+) bad row", bad.output) or 0
    ctx.tallies.append(
        Tally(
            "import-overrides (bad file)",
            [bad.window],
            refused=rows,
            note=f"{rows:,} bad rows named by line; the whole file refused (exit 2)",
        )
    )
    writes = [e for e in ctx.emulator.entries([bad.window]) if e.get("method") in WRITE_METHODS]
    ctx.check(
        not writes and not (ctx.workdir / "overrides-bad.ckpt").exists(),
        "The emulator's request log shows no write during that run, and no checkpoint was created.",
        f"the refused import sent {len(writes)} writes",
    )


async def _copy(ctx: DemoContext) -> None:
    ctx.say(
        f"The two keys are in [cyan]${SOURCE_KEY_ENV}[/cyan] and "
        f"[cyan]${TARGET_KEY_ENV}[/cyan]: the command line only names the variables.\n"
    )
    run = await bulkops(
        ctx,
        "run",
        "copy-project",
        "--source-key-env",
        SOURCE_KEY_ENV,
        "--target-key-env",
        TARGET_KEY_ENV,
        "--accept-loss",
        "--apply",
        "--yes",
        "--checkpoint",
        "copy.ckpt",
        "--time-scale",
        ctx.scale,
        keep=4,
    )
    dropped = sum(1 for line in run.output.splitlines() if "dropped (--accept-loss)" in line)
    ctx.tallies.append(
        Tally(
            "run copy-project",
            [run.window],
            checkpoint=ctx.workdir / "copy.ckpt",
            note=f"{dropped:,} settings the target cannot hold were dropped (--accept-loss)"
            if dropped
            else "",
        )
    )
    ctx.check(
        "verification: the target matches" in run.output,
        "The copy read the target back: it matches the source.",
        "the copy's verification did not report a match",
    )


async def _undo(ctx: DemoContext) -> None:
    run = await bulkops(ctx, "undo", "rewrite.ckpt", "--apply", "--yes", "--time-scale", ctx.scale)
    named = re.findall(r"checkpoint: (\S+)", run.output)
    checkpoint = ctx.workdir / (named[-1] if named else "rewrite.ckpt.undo")
    ctx.tallies.append(Tally("undo rewrite.ckpt", [run.window], checkpoint=checkpoint))
    before: dict[str, Any] = ctx.saved.get("rules_before") or {}
    after = await _rules(ctx.source)
    changed = sorted(k for k in before if after.get(k) != before[k])
    ctx.check(
        bool(before) and not changed and set(after) == set(before),
        f"Read back: the rules of all {len(before):,} gates and dynamic configs are as they "
        "were before the rewrite (rules it dropped came back with new ids, which the server "
        "assigns).",
        f"{len(changed)} objects' rules differ from before the rewrite: {', '.join(changed[:5])}",
    )


def checkpoint_status(path: Path) -> dict[str, Any]:
    """What ``bulkops status PATH --json`` prints, parsed (the same command, in process)."""
    from .commands import Ui, status

    out = io.StringIO()
    ui = Ui(
        out=Console(file=out, no_color=True, soft_wrap=True),
        err=Console(file=io.StringIO()),
        interactive=False,
        live=False,
    )
    status(path, ui, as_json=True)
    found: dict[str, Any] = json.loads(out.getvalue())
    return found


async def _summary(ctx: DemoContext) -> None:
    ctx.say(
        "[dim]Per checkpoint, the counts of `bulkops status CKPT --json` (run in this "
        "process: it only reads the file); the requests from the emulator's log.[/dim]"
    )
    for tally in ctx.tallies:
        if tally.checkpoint is not None:
            tally.status = checkpoint_status(tally.checkpoint)
    for tally in ctx.tallies:
        for entry in ctx.emulator.entries(tally.windows):
            write = entry.get("method") in WRITE_METHODS
            tally.log["writes" if write else "reads"] += 1
            tally.log["changed"] += bool(entry.get("applied"))
            tally.log["throttled"] += entry.get("status") == 429
    ctx.console.print()
    ctx.console.print(summary_table(ctx.tallies))
    ctx.console.print()
    for tally in ctx.tallies:
        if tally.note:
            ctx.say(f"  [bold]{escape(tally.label)}[/bold]: {escape(tally.note)}")
    writes = sum(t.log["writes"] for t in ctx.tallies)
    changed = sum(t.log["changed"] for t in ctx.tallies)
    throttled = sum(t.log["throttled"] for t in ctx.tallies)
    ctx.check(
        writes == changed and throttled == 0,
        f"In all, {writes:,} write requests and every one of them changed something: "
        "no wasted request, no 429 from the quota.",
        f"{writes:,} write requests, {changed:,} changed something, {throttled:,} got a 429",
    )


def summary_table(tallies: Sequence[Tally]) -> Table:
    """The closing table: per step, mutations planned, requests sent, and outcomes."""
    table = Table(
        title="What each step sent, skipped and refused",
        caption="sent and changed: write requests in the emulator's log, and those that "
        "changed something; applied and skipped: from the checkpoint; refused: bad input, "
        "failed or conflicting mutations",
        caption_justify="left",
        title_justify="left",
        title_style="bold",
        box=box.SIMPLE_HEAD,
    )
    table.add_column("step")
    for name in ("mutations", "sent", "changed", "applied", "skipped", "refused", "429s", "reads"):
        table.add_column(name, justify="right")
    for t in tallies:
        counts = (t.status or {}).get("counts") or {}
        planned = (t.status or {}).get("mutations", t.planned)
        applied = counts.get("applied") if t.status else None
        failed = int(counts.get("failed", 0)) + int(counts.get("conflict", 0))
        table.add_row(
            escape(t.label),
            "·" if planned is None else f"{planned:,}",
            f"{t.log['writes']:,}",
            f"{t.log['changed']:,}",
            "·" if applied is None else f"{applied:,}",
            f"{t.skipped + int(counts.get('skipped', 0)):,}",
            f"{t.refused + failed:,}",
            f"{t.log['throttled']:,}",
            f"{t.log['reads']:,}",
        )
    return table


STEPS: tuple[Step, ...] = (
    Step(
        "What is in the source project",
        "A read-only tour through the Console API, page by page. The stale gates are what "
        "the next steps clean up.",
        _tour_source,
    ),
    Step(
        "Plan: archive the stale gates",
        "`plan` only reads. It selects the gates the API classifies as stale, leaves alone "
        "those that other gates, configs or experiments still use, and writes a plan file "
        "with the per-object diff, the counts and an ETA computed from the quota.",
        _plan_archive,
    ),
    Step(
        "Apply the plan, kill -9 it halfway, resume",
        "`apply` executes exactly the plan file. Before each request it appends an intent to "
        "the checkpoint and fsyncs it. We watch the checkpoint grow and kill the process "
        "outright when half the intents are in: no signal handler, no cleanup.",
        _apply_kill_resume,
    ),
    Step(
        "Status",
        "`status` reads a checkpoint and says what happened: counts per state, runs, and "
        "whether anything is left to resume.",
        _status,
    ),
    Step(
        "Rewrite rules from examples/rewrite.toml",
        "A declarative rewrite of the rules of selected gates and dynamic configs: one write "
        "per object that changes, none for the others. `run` is a dry run unless `--apply`.",
        _rewrite,
    ),
    Step(
        "Import overrides from examples/overrides.csv",
        "Override rows for gates, experiments, layers, holdouts and id-list segments; only "
        "ids not already there are sent, grouped into as few requests as the API allows.",
        _import,
    ),
    Step(
        "Copy the source project into the target",
        "Tags, unit id types, segments with their ids, gates, dynamic configs and layers, "
        "dependencies first, written with the target's key; the target has no target apps, "
        "so --accept-loss lets the copy drop those, each drop listed. A read-back "
        "verification ends the run.",
        _copy,
    ),
    Step(
        "Undo the rule rewrite",
        "`undo` plans the inverse of every applied mutation of a checkpoint (here: each "
        "object's previous rules), refuses objects changed since, and runs it like any plan, "
        "with its own checkpoint.",
        _undo,
    ),
    Step(
        "What each step sent, skipped and refused",
        "The checkpoints say what each run applied and skipped; the emulator's request log "
        "is the ground truth of what reached the server.",
        _summary,
    ),
)


# -- the frame: emulator, clients, titles ---------------------------------------------------


async def start_emulator(workdir: Path, time_scale: float) -> EmulatorProcess:
    """Serve the demo seed with ``python -m bulkops emulator`` and wait for its URL.

    Raises:
        DemoFailed: it exited or did not listen in time.
    """
    request_log = workdir / "requests.log"
    out_path = workdir / "emulator.out"
    with out_path.open("wb") as out:
        process = await asyncio.create_subprocess_exec(
            sys.executable,
            "-m",
            "bulkops",
            "emulator",
            "--seed",
            "demo",
            "--port",
            "0",
            "--time-scale",
            f"{time_scale:g}",
            "--request-log",
            str(request_log),
            stdin=asyncio.subprocess.DEVNULL,
            stdout=out,
            stderr=asyncio.subprocess.STDOUT,
            cwd=workdir,
        )
    deadline = time.monotonic() + _EMULATOR_START
    try:
        while True:
            found = re.search(r"listening on (\S+)", out_path.read_text(errors="replace"))
            if found:
                return EmulatorProcess(process, found.group(1), request_log)
            if process.returncode is not None or time.monotonic() > deadline:
                raise DemoFailed(
                    "the emulator did not start: " + out_path.read_text(errors="replace")[-800:]
                )
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(process.wait(), 0.05)
    except BaseException:
        await stop_emulator(process)
        raise


async def stop_emulator(process: asyncio.subprocess.Process) -> None:
    """Stop the emulator child and wait for it."""
    if process.returncode is None:
        with contextlib.suppress(ProcessLookupError):
            process.terminate()
        try:
            await asyncio.wait_for(process.wait(), 5)
        except TimeoutError:
            await _reap(process)


def demo_keys() -> tuple[str, str]:
    """The demo seed's source and target keys (imported when needed: the emulator's
    package is heavy, and ``bulkops`` registers the demo command at every start)."""
    from ..emulator.demo import DEMO_SOURCE_KEY, DEMO_TARGET_KEY

    return DEMO_SOURCE_KEY, DEMO_TARGET_KEY


def _base_env(url: str, workdir: Path) -> dict[str, str]:
    source_key, target_key = demo_keys()
    env = {k: v for k, v in os.environ.items() if not k.startswith(("STATSIG_", "BULKOPS_"))}
    env.pop("FORCE_COLOR", None)
    env.pop("NO_COLOR", None)
    env.update(
        {
            API_KEY_ENV: source_key,
            "STATSIG_API_URL": url,
            "BULKOPS_STATE_DIR": str(workdir / "state"),
            SOURCE_KEY_ENV: source_key,
            TARGET_KEY_ENV: target_key,
            "PYTHONUNBUFFERED": "1",
        }
    )
    return env


def prepare_workdir(workdir: Path | None) -> Path:
    """The demo's directory (a new temporary one by default), with ``examples/`` linked in.

    Raises:
        UsageError: ``workdir`` is not empty, or the repository's examples are missing.
    """
    if not EXAMPLES.is_dir():
        raise UsageError(
            f"the demo needs the repository's examples/ directory ({EXAMPLES} is missing)",
            hint="run it from a clone: scripts/demo",
        )
    if workdir is None:
        workdir = Path(tempfile.mkdtemp(prefix="bulkops-demo-"))
    else:
        workdir.mkdir(parents=True, exist_ok=True)
        if any(workdir.iterdir()):
            raise UsageError(f"--workdir {workdir} is not empty; the demo starts from scratch")
    (workdir / "examples").symlink_to(EXAMPLES, target_is_directory=True)
    return workdir.resolve()


async def run_demo(
    console: Console,
    steps: Sequence[Step] = STEPS,
    *,
    time_scale: float = DEFAULT_TIME_SCALE,
    workdir: Path | None = None,
) -> DemoResult:
    """Serve the demo seed from an emulator process and run ``steps``, each under a title.

    Raises:
        DemoFailed: a step's command ended with an unexpected exit code.
        UsageError: ``workdir`` is not empty.
    """
    started = time.perf_counter()
    workdir = prepare_workdir(workdir)
    emulator = await start_emulator(workdir, time_scale)
    try:
        source_key, target_key = demo_keys()
        source = ConsoleClient(Settings(api_key=SecretStr(source_key), base_url=emulator.url))
        target = ConsoleClient(Settings(api_key=SecretStr(target_key), base_url=emulator.url))
        async with source, target:
            ctx = DemoContext(
                console,
                workdir,
                time_scale,
                emulator,
                source,
                target,
                _base_env(emulator.url, workdir),
            )
            _intro(ctx)
            for number, step in enumerate(steps, 1):
                console.print()
                console.rule(f"[bold]Step {number} of {len(steps)}: {step.title}", align="left")
                console.print(f"[dim]{escape(step.blurb)}[/dim]\n", highlight=False)
                step_started = time.time()
                await step.run(ctx)
                console.print(
                    f"[dim]{_footer(ctx, step_started, time.time())}[/dim]", highlight=False
                )
    finally:
        await stop_emulator(emulator.process)
    seconds = time.perf_counter() - started
    ok = not ctx.problems
    console.print()
    console.rule(
        f"[bold {'green' if ok else 'red'}]Demo finished in {seconds:.1f} s"
        + ("" if ok else f", {len(ctx.problems)} check(s) failed")
        + "[/]",
        align="left",
    )
    console.print(
        f"Its files are in [cyan]{escape(str(workdir))}[/cyan]: the plan, the checkpoints "
        "(try `bulkops status` on them) and the emulator's request log.",
        highlight=False,
    )
    return DemoResult(ok, seconds, workdir, ctx.tallies, ctx.problems, ctx.saved)


def _intro(ctx: DemoContext) -> None:
    source_key, target_key = demo_keys()
    lines = [
        "[bold]bulkops demo[/bold]: bulk operations on the Statsig Console API, rehearsed offline.",
        "",
        f"A Console API emulator runs as process {ctx.emulator.process.pid} at "
        f"[cyan]{ctx.base_url}[/cyan] with two projects:",
        f"  [bold]source[/bold]  key [cyan]{source_key}[/cyan]: a large, messy project",
        f"  [bold]target[/bold]  key [cyan]{target_key}[/cyan]: empty, same environments",
        "",
        f"It enforces the real quota (100 mutations / 10 s and 900 / 15 min per project) "
        f"{ctx.scale}× faster: a 15-minute window lasts {900 / ctx.time_scale:g} s, and the "
        "ETAs below are at that speed.",
        "Every command is the real CLI in its own process, run as you would with",
        f"  export {API_KEY_ENV}={source_key} STATSIG_API_URL={ctx.base_url}",
        f"in [cyan]{escape(str(ctx.workdir))}[/cyan], with [bold]--yes[/bold] since no one "
        "is at a terminal to confirm.",
        "",
        "[dim]Nothing here talks to statsig.com.[/dim]",
    ]
    ctx.console.print(Panel("\n".join(lines), expand=False))


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """The demo's options (``scripts/demo``, ``bulkops demo``)."""
    parser.add_argument(
        "--time-scale",
        type=float,
        default=DEFAULT_TIME_SCALE,
        help=f"run the emulator's quota windows N times faster ({DEFAULT_TIME_SCALE:g})",
    )
    parser.add_argument(
        "--workdir",
        type=Path,
        default=None,
        help="an empty directory for the demo's files (default: a new temporary one)",
    )


def run_from_args(args: argparse.Namespace) -> int:
    """Run the demo with parsed options; the exit code (0 every check passed, 1 not,
    130 interrupted)."""
    if args.time_scale <= 0:
        raise UsageError("--time-scale must be positive")
    # The demo's output is the console's; keep library log lines out of it.
    structlog.configure(wrapper_class=structlog.make_filtering_bound_logger(logging.WARNING))
    console = Console()
    if not console.is_terminal and "COLUMNS" not in os.environ:
        console = Console(width=_PIPED_WIDTH)  # a log file or a pager, not 80 columns
    try:
        result = asyncio.run(run_demo(console, time_scale=args.time_scale, workdir=args.workdir))
    except KeyboardInterrupt:
        console.print("[yellow]interrupted[/yellow]")
        return 130
    except DemoFailed as exc:
        console.print(f"[bold red]The demo stopped: {escape(exc.message)}[/bold red]")
        return 1
    return 0 if result.ok else 1


def register(sub: Any) -> None:
    """Add ``bulkops demo`` to the ``bulkops`` parser."""
    p = sub.add_parser("demo", help="everything, end to end, on a local emulator (3 minutes)")
    add_arguments(p)
    p.set_defaults(func=run_from_args)


def main(argv: Sequence[str] | None = None) -> int:
    """Run the demo (``python -m bulkops.cli.tour``, ``scripts/demo``); returns the exit code."""
    parser = argparse.ArgumentParser(
        prog="scripts/demo", description="The whole of bulkops, end to end, on a local emulator."
    )
    add_arguments(parser)
    try:
        return run_from_args(parser.parse_args(argv))
    except UsageError as exc:
        parser.error(exc.message)


if __name__ == "__main__":  # pragma: no cover
    raise SystemExit(main())
