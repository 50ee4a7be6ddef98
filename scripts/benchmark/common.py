"""What every benchmark section shares: sizes, the section contract, emulators, states.

A section (:class:`Section`) is a module of this package with a ``run(cfg, tmp, say)``
that measures and returns its figures (a JSON-able dict, written under its name in
``bench/results.json``), a ``targets(figures)`` that says which are met, and optionally
a ``render(console, figures)`` for a table of its own. ``scripts/bench.py`` lists the
sections in :data:`SECTIONS` order; adding one is a module and a line there.

The emulator always runs in its own process, forked with a prepared state
(:func:`serve`), answering :data:`SNAPSHOT_ROUTE` with its projects' content so a
section can diff the state before and after a job; ``bulkops`` runs in forked children
(:func:`bulkops.testing.fork_cli`, :func:`bulkops.testing.cli_env`).
"""

from __future__ import annotations

import contextlib
import copy
import json
import urllib.request
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from aiohttp import web
from rich.console import Console

from bulkops.api.paths import WRITE_METHODS
from bulkops.emulator.http import PREFIX, STATE
from bulkops.emulator.seed import apply_seed
from bulkops.emulator.state import EmulatorState, KeyInfo, Project
from bulkops.testing import Call, Emulator, seed_over_api, serve_forked

__all__ = [
    "BENCH_KEY",
    "BENCH_PROJECT",
    "CLI_TIMEOUT",
    "EXAMPLES",
    "FULL",
    "NO_QUOTA",
    "QUICK",
    "SNAPSHOT_ROUTE",
    "BenchConfig",
    "Say",
    "Section",
    "Served",
    "Target",
    "bench_state",
    "demo_state",
    "disable_calls",
    "live_gates",
    "override_rows",
    "serve",
    "write_calls",
    "writes",
]

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"
BENCH_PROJECT = "bench"
BENCH_KEY = "console-bench-key"
# The emulator child answers this (outside /console/v1) with its projects' content,
# so the benchmark can diff the state before and after a job.
SNAPSHOT_ROUTE = "/__bench/state"
# Seconds a bulkops child may run before it is killed (a loaded machine, a full run).
CLI_TIMEOUT = 600.0
# Engine options for runs against an emulator with quotas off: a generous quota.
NO_QUOTA = ["--quota", "1000000/1s", "--id-list-quota", "1000000/1s"]

Say = Callable[[str], None]
"""Prints one progress line of the benchmark."""


@dataclass(frozen=True)
class BenchConfig:
    """Sizes of one benchmark run.

    Attributes:
        quick: The reduced run (``--quick``).
        quota_mutations: Mutations in the quota-efficiency runs.
        time_scale: How much faster the emulator's quota windows run.
        peer_cap: A peer run is stopped after this many times the theoretical minimum.
        overhead_mutations: Mutations in each runner-overhead round (and in its baselines).
        overhead_rounds: Rounds of the overhead figure (its medians are quoted).
        checkpoint_records: Records of the checkpoint whose reading is timed.
        kill_mutations: Mutations of the apply that is killed and resumed.
        memory_gates: Gates of the project the archive plan reads.
        memory_rows: Override rows of the import plan.
        memory_targets: Targets those rows spread over.
        in_flight: The runner's in-flight cap (its default).
        profile: cProfile the runner-overhead run (``--profile``).
    """

    quick: bool
    quota_mutations: int
    time_scale: float
    peer_cap: float
    overhead_mutations: int
    overhead_rounds: int
    checkpoint_records: int
    kill_mutations: int
    memory_gates: int
    memory_rows: int
    memory_targets: int = 50
    in_flight: int = 4
    profile: bool = False


FULL = BenchConfig(
    quick=False,
    quota_mutations=2000,
    time_scale=60.0,
    peer_cap=3.0,
    overhead_mutations=2000,
    overhead_rounds=5,
    checkpoint_records=100_000,
    kill_mutations=1000,
    memory_gates=50_000,
    memory_rows=100_000,
)
# The reduced run: fewer mutations at a larger time scale, smaller memory cases.
QUICK = replace(
    FULL,
    quick=True,
    quota_mutations=1000,
    time_scale=100.0,
    peer_cap=0.5,
    overhead_mutations=500,
    overhead_rounds=2,
    kill_mutations=200,
    memory_gates=5_000,
    memory_rows=10_000,
)


@dataclass(frozen=True)
class Target:
    """One figure against its target; ``met`` None: not measured (a job missing)."""

    name: str
    value: Any
    target: str
    met: bool | None


@dataclass(frozen=True)
class Section:
    """One section of the benchmark (see the module docstring)."""

    name: str
    run: Callable[[BenchConfig, Path, Say], dict[str, Any]]
    targets: Callable[[Mapping[str, Any]], list[Target]]
    render: Callable[[Console, Mapping[str, Any]], None] | None = None


# -- the emulator in a child process -----------------------------------------------------


class Served(Emulator):
    """A forked emulator with the benchmark's state route."""

    def entries(self) -> list[dict[str, Any]]:
        """The request log's API requests (not the benchmark's own state reads)."""
        return [e for e in self.log() if str(e.get("path", "")).startswith(PREFIX)]

    def snapshot(self) -> dict[str, Any]:
        """Every project's collections, overrides and id lists, as the child holds them."""
        with urllib.request.urlopen(self.root + SNAPSHOT_ROUTE, timeout=60) as response:
            data: dict[str, Any] = json.loads(response.read())
        return data


async def _snapshot_handler(request: web.Request) -> web.Response:
    state = request.app[STATE]
    return web.json_response(
        {
            pid: {
                "collections": p.collections,
                "overrides": p.overrides,
                "id_lists": {k: list(v) for k, v in p.id_lists.items()},
            }
            for pid, p in state.projects.items()
        }
    )


def _add_snapshot_route(app: web.Application) -> None:
    app.router.add_get(SNAPSHOT_ROUTE, _snapshot_handler)


@contextlib.contextmanager
def serve(
    state: EmulatorState,
    log_path: Path,
    *,
    time_scale: float = 1.0,
    quotas: bool = True,
    build: Callable[[EmulatorState], None] | None = None,
) -> Iterator[Served]:
    """Serve a copy of ``state`` (forked: the child's changes stay in the child)."""
    with serve_forked(
        state,
        log_path,
        time_scale=time_scale,
        quotas_enabled=quotas,
        build=build,
        routes=_add_snapshot_route,
        timeout=300,
    ) as forked:
        yield Served(url=forked.url, pid=forked.pid, log_path=forked.log_path)


# -- states and calls --------------------------------------------------------------------


def _template_gate() -> dict[str, Any]:
    """A gate exactly as the emulator creates it (made through its API once)."""
    state = EmulatorState()
    apply_seed(state, "empty")
    key = next(iter(state.keys))
    project_id = state.keys[key].project_id
    seed_over_api(
        state, {key: [("POST", "/gates", {"name": "bench template", "description": "bench"})]}
    )
    gate: dict[str, Any] = state.projects[project_id].collections["gates"]["bench_template"]
    return gate


def bench_state(groups: Mapping[str, int]) -> EmulatorState:
    """A project ``bench`` with ``groups[prefix]`` enabled gates ``<prefix>_<i>`` each."""
    state = EmulatorState()
    project = Project(id=BENCH_PROJECT, name="Bench Project")
    state.add_project(project, {BENCH_KEY: KeyInfo(BENCH_PROJECT)})
    template = _template_gate()
    store = project.store("gates")
    for prefix, count in groups.items():
        for i in range(count):
            gate = copy.deepcopy(template)
            gate["id"] = gate["name"] = f"{prefix}_{i}"
            store[gate["id"]] = gate
    return state


def demo_state() -> tuple[EmulatorState, dict[str, str]]:
    """The demo seed, and its source key, target key and source project id."""
    from bulkops.emulator.demo import DEMO_SOURCE_ID, DEMO_SOURCE_KEY, DEMO_TARGET_KEY

    state = EmulatorState()
    apply_seed(state, "demo")
    return state, {
        "source_key": DEMO_SOURCE_KEY,
        "target_key": DEMO_TARGET_KEY,
        "source_id": DEMO_SOURCE_ID,
    }


def live_gates(state: EmulatorState, project_id: str, count: int) -> list[str]:
    """The first ``count`` ids of the project's gates that are not archived."""
    gates = sorted(
        str(g["id"])
        for g in state.projects[project_id].collections["gates"].values()
        if g.get("status") != "Archived"
    )
    return gates[:count]


def disable_calls(prefix: str, count: int, start: int = 0) -> list[Call]:
    """``PUT /gates/<prefix>_<i>/disable`` for ``count`` gates from ``start``."""
    return [("PUT", f"/gates/{prefix}_{i}/disable", None) for i in range(start, start + count)]


def write_calls(path: Path, calls: Sequence[Call]) -> Path:
    """Write ``calls`` as an apply-calls file."""
    lines = []
    for method, call_path, body in calls:
        item: dict[str, Any] = {"method": method, "path": call_path}
        if body is not None:
            item["body"] = body
        lines.append(json.dumps(item))
    path.write_text("\n".join(lines) + "\n")
    return path


def override_rows(path: Path, targets: Sequence[str], rows: int) -> Path:
    """An import-overrides file of ``rows`` rows spread over the gates ``targets``."""
    per = max(1, rows // len(targets))
    with path.open("w") as fh:
        fh.write("kind,id,unit_id,value,environment,unit_type\n")
        for t, target in enumerate(targets):
            for i in range(per):
                fh.write(f"gate,{target},bench_{t}_{i},{'pass' if i % 2 else 'fail'},,\n")
    return path


def writes(entries: Sequence[Mapping[str, Any]]) -> list[Mapping[str, Any]]:
    """The write requests among request-log entries."""
    return [e for e in entries if e.get("method") in WRITE_METHODS]
