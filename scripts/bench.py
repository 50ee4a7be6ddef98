"""The benchmark (``scripts/bench``): every claim as a ratio or a count from one run.

Each figure compares things measured in the same run on the same machine, never an
absolute time against another run. The emulator always runs in its own process
(forked from this one with a prepared state, so a fresh state costs milliseconds),
bulkops runs as the product is used (``bulkops run``/``apply``/``resume``/``plan`` in
child processes, or the runner's Python API where the figure is the runner itself),
and the emulator's request log is the ground truth for what reached the server.

The sections, in the order they run (each a module of ``scripts/benchmark/`` whose
docstring says what it measures, and a key of ``bench/results.json``):

``quota``
    Quota efficiency: bulkops beside the throttling styles peers use.
``overhead``
    Runner overhead: journaled mutations per second against the bare client.
``resume``
    Resume cost: opening a large checkpoint; a real kill -9 resumed.
``economy``
    Mutation economy: what each job sends against what it changes; a re-run.
``memory``
    Peak RSS of planning over a large project.
``refs``
    Code references: bulkops refs beside grep and git grep on a generated tree.

A new section is a module with ``SECTION = Section(name, run, targets[, render])``
(:mod:`benchmark.section`) and a line in :data:`SECTIONS`. ``--quick`` runs a reduced
version (fewer mutations, a larger time scale, smaller memory cases) in under a minute;
the test suite runs it so the benchmark never rots.
"""

from __future__ import annotations

import argparse
import contextlib
import datetime as dt
import json
import os
import platform
import sys
import tempfile
import time
from collections.abc import Sequence
from dataclasses import replace
from pathlib import Path
from typing import Any

from benchmark import economy, memory, overhead, quota, refs, resume
from benchmark.section import FULL, QUICK, BenchConfig, Section, Target
from rich import box
from rich.console import Console
from rich.table import Table

__all__ = ["DEFAULT_OUTPUT", "SECTIONS", "main", "run_bench"]

DEFAULT_OUTPUT = Path("bench/results.json")

SECTIONS: tuple[Section, ...] = (
    quota.SECTION,
    overhead.SECTION,
    resume.SECTION,
    economy.SECTION,
    memory.SECTION,
    refs.SECTION,
)
"""Every section, in the order they run and appear in ``bench/results.json``."""


def _machine(cfg: BenchConfig) -> dict[str, Any]:
    return {
        "cores": os.cpu_count(),
        "python": platform.python_version(),
        "platform": platform.platform(),
        "date": dt.datetime.now(dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
        "loadavg_start": [round(x, 2) for x in os.getloadavg()],
        "quick": cfg.quick,
    }


def _targets_table(targets: Sequence[Target]) -> Table:
    table = Table(title="Targets", box=box.SIMPLE_HEAD)
    table.add_column("figure")
    table.add_column("measured", justify="right")
    table.add_column("target", justify="right")
    table.add_column("met", justify="center")
    for t in targets:
        mark = "[green]yes[/]" if t.met else "[red]NO[/]" if t.met is False else "–"
        table.add_row(t.name, str(t.value), t.target, mark)
    return table


def run_bench(
    cfg: BenchConfig,
    *,
    output: Path = DEFAULT_OUTPUT,
    sections: Sequence[str] | None = None,
    workdir: Path | None = None,
    console: Console | None = None,
) -> dict[str, Any]:
    """Run the chosen sections (default: all), write ``output`` and print the tables.

    Returns:
        The results document (also written to ``output``), with ``targets`` listing
        every figure, its target and whether it is met.
    """
    # Wide enough for the tables when the output is a file or a pipe (CI logs).
    console = console or Console(width=None if sys.stdout.isatty() else 120)
    err = Console(stderr=True)
    results: dict[str, Any] = {"machine": _machine(cfg)}
    timings: dict[str, float] = {}

    def say(line: str) -> None:
        err.print(f"[dim]bench[/] {line}", highlight=False)

    chosen = [s for s in SECTIONS if sections is None or s.name in sections]
    with contextlib.ExitStack() as stack:
        if workdir is None:
            tmp = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="bulkops-bench-")))
        else:
            tmp = workdir
            tmp.mkdir(parents=True, exist_ok=True)
        for section in chosen:
            started = time.perf_counter()
            results[section.name] = section.run(cfg, tmp, say)
            timings[section.name] = round(time.perf_counter() - started, 1)
    results["machine"]["loadavg_end"] = [round(x, 2) for x in os.getloadavg()]
    results["machine"]["section_seconds"] = timings
    targets = [t for s in chosen if results[s.name] for t in s.targets(results[s.name])]
    results["targets"] = [
        {"name": t.name, "value": t.value, "target": t.target, "met": t.met} for t in targets
    ]
    results["all_met"] = all(t.met is not False for t in targets)
    profile_text = (results.get("overhead") or {}).get("profile_top")
    output.parent.mkdir(parents=True, exist_ok=True)
    output.write_text(json.dumps(results, indent=2, default=str) + "\n")
    for section in chosen:
        if section.render is not None and results[section.name]:
            section.render(console, results[section.name])
    console.print(_targets_table(targets))
    if profile_text:
        console.print(profile_text, markup=False, highlight=False)
    console.print(f"results: {output}", highlight=False)
    return results


def main(argv: Sequence[str] | None = None) -> int:
    """``scripts/bench [--quick] [--only SECTION]… [--output FILE] [--profile]``.

    Exit 0 when every target is met, 1 otherwise.
    """
    names = [s.name for s in SECTIONS]
    parser = argparse.ArgumentParser(prog="scripts/bench", description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="the reduced run (under a minute)")
    parser.add_argument("--only", action="append", choices=names, help="run only these sections")
    parser.add_argument("--output", type=Path, default=DEFAULT_OUTPUT, help="results file")
    parser.add_argument("--profile", action="store_true", help="cProfile the runner overhead run")
    parser.add_argument(
        "--workdir", type=Path, help="keep request logs, checkpoints and outputs here"
    )
    parser.add_argument("--mutations", type=int, help="quota-efficiency mutations (default 2000)")
    parser.add_argument("--time-scale", type=float, help="quota time scale (default 60)")
    args = parser.parse_args(argv)
    cfg = replace(QUICK if args.quick else FULL, profile=args.profile)
    if args.mutations:
        cfg = replace(cfg, quota_mutations=args.mutations)
    if args.time_scale:
        cfg = replace(cfg, time_scale=args.time_scale)
    results = run_bench(cfg, output=args.output, sections=args.only, workdir=args.workdir)
    return 0 if results["all_met"] else 1


if __name__ == "__main__":  # pragma: no cover
    raise SystemExit(main())
