"""Running the demo: :func:`run_demo` (the frame around the steps) and its command.

``bulkops demo``, ``scripts/demo`` and ``python -m bulkops.cli.demo`` all end in
:func:`demo_command`: it starts the emulator process, opens a client per demo project,
prints the introduction, runs each step of :data:`~bulkops.cli.demo.steps.STEPS` under
its title with a footer of what it sent, and ends with the verdict. Exit 0 when every
check passed, 1 when one failed or a step stopped, 130 when interrupted.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import os
import time
from collections.abc import Sequence
from pathlib import Path

import structlog
from pydantic import SecretStr
from rich.console import Console
from rich.markup import escape
from rich.panel import Panel

from ...api.client import ConsoleClient
from ...api.paths import WRITE_METHODS
from ...errors import UsageError
from ...settings import API_KEY_ENV, Settings
from ..exit_codes import ExitCode
from .stage import (
    DemoContext,
    DemoFailed,
    DemoResult,
    Step,
    base_env,
    demo_keys,
    prepare_workdir,
    start_emulator,
    stop_emulator,
)
from .steps import STEPS

__all__ = ["DEFAULT_TIME_SCALE", "demo_arguments", "demo_command", "main", "run_demo"]

DEFAULT_TIME_SCALE = 60.0
_PIPED_WIDTH = 120


def _footer(ctx: DemoContext, started: float, ended: float) -> str:
    entries = ctx.emulator.entries([(started, ended)])
    writes = sum(1 for e in entries if e.get("method") in WRITE_METHODS)
    return f"{len(entries) - writes:,} reads, {writes:,} writes, {ended - started:.1f} s"


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
                base_env(emulator.url, workdir),
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


def demo_arguments(parser: argparse.ArgumentParser) -> None:
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


def demo_command(args: argparse.Namespace) -> int:
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
        return ExitCode.INTERRUPTED
    except DemoFailed as exc:
        console.print(f"[bold red]The demo stopped: {escape(exc.message)}[/bold red]")
        return ExitCode.FAILED
    return ExitCode.OK if result.ok else ExitCode.FAILED


def main(argv: Sequence[str] | None = None) -> int:
    """Run the demo (``python -m bulkops.cli.demo``, ``scripts/demo``); returns the exit code."""
    parser = argparse.ArgumentParser(
        prog="scripts/demo", description="The whole of bulkops, end to end, on a local emulator."
    )
    demo_arguments(parser)
    try:
        return demo_command(parser.parse_args(argv))
    except UsageError as exc:
        parser.error(exc.message)
