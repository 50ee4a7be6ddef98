"""What the benchmark's sections share: emulators, ``bulkops`` runs, states and calls.

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
from pathlib import Path
from typing import Any

from aiohttp import web

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
    "NO_QUOTA",
    "SNAPSHOT_ROUTE",
    "Served",
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
