"""The demo's stage: the emulator process, ``bulkops`` run as a user would, what is shown.

The demo (:mod:`bulkops.cli.demo`) serves the ``demo`` seed with ``python -m bulkops
emulator`` in a child process (:func:`start_emulator`, its request log read back by
:class:`EmulatorProcess`), runs the real command line in child processes with the keys
in the environment (:func:`bulkops`: a :class:`CliRun` each, its output trimmed by
:func:`excerpt`), and hands every step a :class:`DemoContext`: the console, the
emulator, a client per project, the commands' environment and the running
:class:`Tally` rows of the closing table. The steps are :mod:`bulkops.cli.demo.steps`.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import re
import shlex
import signal
import sys
import tempfile
import time
from collections import Counter
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.markup import escape
from rich.table import Table
from rich.text import Text

from ... import files
from ...api.client import ConsoleClient
from ...api.paths import API_PREFIX, WRITE_METHODS
from ...engine.locks import STATE_DIR_ENV
from ...errors import BulkOpsError, UsageError
from ...settings import API_KEY_ENV, API_URL_ENV
from ...testing import read_request_log

__all__ = [
    "EXAMPLES",
    "KEEP_LINES",
    "SOURCE_KEY_ENV",
    "TARGET_KEY_ENV",
    "CliRun",
    "DemoContext",
    "DemoFailed",
    "DemoResult",
    "EmulatorProcess",
    "Step",
    "Tally",
    "base_env",
    "bulkops",
    "demo_keys",
    "exit_text",
    "excerpt",
    "prepare_workdir",
    "prompt",
    "reap",
    "show_output",
    "spawn",
    "start_emulator",
    "stop_emulator",
]

SOURCE_KEY_ENV = "DEMO_SOURCE_KEY"
TARGET_KEY_ENV = "DEMO_TARGET_KEY"
EXAMPLES = Path(__file__).resolve().parents[3] / "examples"
KEEP_LINES = 10  # lines of one kind shown before "… N more lines"
_EMULATOR_START = 90.0  # seconds the emulator may take to listen (a loaded machine)


class DemoFailed(BulkOpsError):
    """A demo step did not go as it should (a command's exit code, the emulator)."""


@dataclass
class EmulatorProcess:
    """The emulator, served by ``python -m bulkops emulator`` in a child process."""

    process: asyncio.subprocess.Process
    url: str
    request_log: Path

    def entries(self, windows: Sequence[tuple[float, float]] = ()) -> list[dict[str, Any]]:
        """The request log's API requests (a torn last line skipped), only inside
        ``windows`` if given. The admin surface, where the demo plays the reviewer, is
        not the tool's traffic and is left out."""
        entries = [
            e
            for e in read_request_log(self.request_log)
            if str(e.get("path", "")).startswith(API_PREFIX)
        ]
        if windows:
            entries = [e for e in entries if any(a <= e.get("time", 0) <= b for a, b in windows)]
        return entries

    def writes(self, windows: Sequence[tuple[float, float]] = ()) -> list[dict[str, Any]]:
        """The write requests of the log (inside ``windows`` if given)."""
        return [e for e in self.entries(windows) if e.get("method") in WRITE_METHODS]


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


async def spawn(
    ctx: DemoContext, argv: Sequence[str], *, color: bool, merge: bool = True
) -> asyncio.subprocess.Process:
    """Start ``python -m bulkops argv`` in the demo's directory with its environment,
    stdout piped (stderr with it when ``merge``)."""
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


async def reap(process: asyncio.subprocess.Process) -> None:
    """Kill a child that is still running (the demo was interrupted) and wait for it."""
    if process.returncode is None:
        with contextlib.suppress(ProcessLookupError):
            process.kill()
        await process.wait()


def _command_line(argv: Sequence[str]) -> str:
    return "bulkops " + shlex.join(argv)


def prompt(ctx: DemoContext, argv: Sequence[str]) -> None:
    """Show ``$ bulkops argv`` as it is typed."""
    ctx.console.print(f"[bold cyan]$ {escape(_command_line(argv))}[/]", highlight=False)


def exit_text(code: int) -> str:
    """``exit N``, or ``killed by signal N`` for a child a signal ended."""
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
        prompt(ctx, argv)
    started = time.time()
    process = await spawn(ctx, argv, color=color)
    try:
        out, _ = await process.communicate()
    finally:
        await reap(process)
    run = CliRun(
        tuple(argv), process.returncode or 0, out.decode(errors="replace"), started, time.time()
    )
    if show:
        show_output(ctx.console, run.output, keep=keep)
        style = "dim" if run.code in expect else "bold red"
        ctx.console.print(f"[{style}]{exit_text(run.code)}[/]", highlight=False)
    if run.code not in expect:
        if not show:
            show_output(ctx.console, run.output, keep=keep)
        raise DemoFailed(
            f"`{_command_line(argv)}` ended with {exit_text(run.code)} "
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


# -- the frame: emulator, clients, titles ---------------------------------------------------


async def start_emulator(workdir: Path, time_scale: float) -> EmulatorProcess:
    """Serve the demo seed with ``python -m bulkops emulator`` and wait for its URL.

    Raises:
        DemoFailed: it exited or did not listen in time.
    """
    request_log = workdir / "requests.log"
    out_path = workdir / "emulator.out"
    with os.fdopen(files.create_private(out_path), "wb") as out:
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
            await reap(process)


def demo_keys() -> tuple[str, str]:
    """The demo seed's source and target keys (imported when needed: the seed's module
    is large, and every ``bulkops`` start imports the demo command)."""
    from ...emulator.demo import DEMO_SOURCE_KEY, DEMO_TARGET_KEY

    return DEMO_SOURCE_KEY, DEMO_TARGET_KEY


def base_env(url: str, workdir: Path) -> dict[str, str]:
    """The environment of the demo's commands: this one without bulkops' variables, plus
    the emulator's URL, the source key as the default key, both keys in their demo
    variables and a state directory in ``workdir``."""
    source_key, target_key = demo_keys()
    env = {k: v for k, v in os.environ.items() if not k.startswith(("STATSIG_", "BULKOPS_"))}
    env.pop("FORCE_COLOR", None)
    env.pop("NO_COLOR", None)
    env.update(
        {
            API_KEY_ENV: source_key,
            API_URL_ENV: url,
            STATE_DIR_ENV: str(workdir / "state"),
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
