"""The benchmark (``scripts/bench``): every claim as a ratio or a count from one run.

Each figure compares things measured in the same run on the same machine, never an
absolute time against another run. The emulator always runs in its own process
(forked from this one with a prepared state, so a fresh state costs milliseconds),
bulkops runs as the product is used (``bulkops run``/``apply``/``resume``/``plan`` in
child processes, or the runner's Python API where the figure is the runner itself),
and the emulator's request log is the ground truth for what reached the server.

Figures (keys of ``bench/results.json``):

``quota.<strategy>``
    2,000 gate disables against the emulator's default quota (100/10 s + 900/15 min,
    rejected attempts counted) at a time scale. ``bulkops`` is ``bulkops run
    apply-calls --apply --time-scale S``; beside it, with the same client and a fresh
    emulator each, the throttling styles peers use (:data:`PEERS`). ``completed`` and
    ``r429`` come from the request log, ``ratio`` is the time from the first to the
    last mutation the server saw over :func:`~bulkops.ratelimit.theoretical_minimum`.
``overhead``
    Journaled (fsynced) mutations per second through :func:`~bulkops.runner.run_plan`
    against an unthrottled emulator, and the same calls (the pre-write read and the
    write, same concurrency) sent by the bare client without journal or runner: the
    runner has no journal-off switch, so that is the baseline of the ratio. Five
    rounds, each the runner then its baselines back to back; medians are quoted
    (``per_round`` has every round: the machine is shared and noisy).
``resume``
    Time to open (read, verify, repair-check) a 100,000-record checkpoint; then a real
    ``bulkops apply`` killed with SIGKILL mid-run and resumed: reconciliation reads
    (GETs of in-doubt objects during the resume) against the in-flight cap, and
    mutations lost or applied twice.
``economy.<job>``
    Each job on the demo project: objects changed (a before/after diff of the
    emulator's state, ignoring version stamps) against mutations sent, and what a
    second identical run sends.
``memory``
    Peak RSS of a fresh ``bulkops plan`` process: archive-gates ``--stale`` over a
    50,000-gate project, and import-overrides of 100,000 rows over 50 targets.

``--quick`` runs a reduced version (fewer mutations, a larger time scale, smaller
memory cases) in under a minute; the test suite runs it so the benchmark never rots.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import copy
import cProfile
import datetime as dt
import hashlib
import io
import json
import math
import os
import platform
import pstats
import random
import signal
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
import uuid
from collections import Counter
from collections.abc import Awaitable, Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any
from urllib.parse import unquote

import anyio
import structlog
from aiohttp import web
from aiolimiter import AsyncLimiter
from pydantic import SecretStr
from rich import box
from rich.console import Console
from rich.table import Table

from bulkops.api.client import ConsoleClient
from bulkops.emulator.http import PREFIX, STATE
from bulkops.emulator.seed import apply_seed
from bulkops.emulator.server import ForkedEmulator, fork_emulator, running_emulator
from bulkops.emulator.state import EmulatorState, KeyInfo, Project
from bulkops.engine.journal import Journal, read_records
from bulkops.engine.mutations import Expect, InverseCall, JobContext, Mutation
from bulkops.engine.plans import Plan, PlanHeader, ProjectRef, canonical_json, read_plan
from bulkops.engine.quota import DEFAULT_QUOTA, ID_LIST_CLASS, MUTATION_CLASS
from bulkops.engine.ratelimit import QuotaLimiter, SendLog, theoretical_minimum
from bulkops.engine.reconcile import replay
from bulkops.engine.runner import RunOptions, RunResult, run_plan
from bulkops.errors import ApiError, ApiStatusError, RateLimited, ServerError, TransportError
from bulkops.logging import configure_logging
from bulkops.settings import API_KEY_ENV, API_URL_ENV, Settings
from bulkops.testing import fork_cli

__all__ = [
    "FULL",
    "PEERS",
    "QUICK",
    "SECTIONS",
    "BenchConfig",
    "Call",
    "bench_economy",
    "bench_memory",
    "bench_overhead",
    "bench_quota",
    "bench_resume",
    "main",
    "peer_aiolimiter",
    "peer_migrations",
    "peer_statsig_to_ld",
    "peer_terraform",
    "run_bench",
]

BENCH_PROJECT = "bench"
BENCH_KEY = "console-bench-key"
DEFAULT_OUTPUT = Path("bench/results.json")
MUTATING = frozenset({"POST", "PUT", "PATCH", "DELETE"})
STATE_ENV = "BULKOPS_STATE_DIR"
# The emulator child answers this (outside /console/v1) with its projects' content,
# so the benchmark can diff the state before and after a job.
_SNAPSHOT_ROUTE = "/__bench/state"
# Fields the emulator stamps on every change: a no-op write must not look like a change.
_STAMPS = frozenset(
    {"version", "lastModifiedTime", "lastModifierName", "lastModifierID", "lastModifierEmail"}
)
# The API's per-request limits (console-api.md): ids per id-list request, per override list.
_ID_LIST_CHUNK = 1000
_OVERRIDE_CHUNK = 1000
_USER_LISTS = ("passingUserIDs", "failingUserIDs", "passingCustomIDs", "failingCustomIDs")
# A layer's create (LayerCreateContractDto) cannot carry its parameters: an update follows.
_UPDATED_AFTER_CREATE = frozenset({"layers"})
_FOLLOW_UPS = ("launch", "archive", "unarchive", "enable", "disable", "parameters")
# copy-project copies everything, overrides too.
_COPY_KINDS = (
    "tags", "unit_id_types", "segments", "gates", "dynamic_configs", "layers", "experiments"
)  # fmt: skip
# A generous quota for runs against an emulator with quotas off.
_UNLIMITED = "1000000/1s"

Call = tuple[str, str, Any]
"""One API call: ``(method, path relative to /console/v1, body or None)``."""

Strategy = Callable[[ConsoleClient, Sequence[Call], float], Awaitable[None]]


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
QUICK = BenchConfig(
    quick=True,
    quota_mutations=1000,
    time_scale=100.0,
    peer_cap=0.5,
    overhead_mutations=500,
    overhead_rounds=2,
    checkpoint_records=100_000,
    kill_mutations=200,
    memory_gates=5_000,
    memory_rows=10_000,
)


# -- peers' throttling styles ------------------------------------------------------------


class _PThrottle:
    """p-throttle's windowed (non-strict) algorithm: ``limit`` calls per ``interval``."""

    def __init__(self, limit: int, interval: float) -> None:
        self.limit = limit
        self.interval = interval
        self.tick = 0.0
        self.active = 0

    def delay(self) -> float:
        now = time.monotonic()
        if now - self.tick > self.interval:
            self.active = 1
            self.tick = now
            return 0.0
        if self.active < self.limit:
            self.active += 1
        else:
            self.tick += self.interval
            self.active = 1
        return max(0.0, self.tick - now)


async def _send(client: ConsoleClient, call: Call) -> None:
    method, path, body = call
    await client.call(method, path, body)


async def peer_migrations(client: ConsoleClient, calls: Sequence[Call], scale: float) -> None:
    """statsig-io/migrations: ``pThrottle({limit: 10, interval: 500})`` around each call,
    awaited one after another; a 429 (or any error) fails the item, no retry."""
    throttle = _PThrottle(10, 0.5 / scale)
    for call in calls:
        await anyio.sleep(throttle.delay())
        with contextlib.suppress(ApiError):
            await _send(client, call)


async def peer_statsig_to_ld(client: ConsoleClient, calls: Sequence[Call], scale: float) -> None:
    """statsig-to-ld ``DoWithRetry``: 10 workers; 3 attempts; after each 429, 5xx or
    network error a backoff of 2**attempt s ±25 % (1, 2, 4 s), or ``Retry-After``
    (capped at 60 s) ±25 %; other errors fail at once."""
    queue = list(reversed(calls))

    async def attempt_all(call: Call) -> None:
        for attempt in range(3):
            try:
                await _send(client, call)
                return
            except (RateLimited, ServerError, TransportError) as exc:
                base = 2.0**attempt
                delay = base + base * 0.25 * (2 * random.random() - 1)
                if isinstance(exc, RateLimited) and exc.retry_after:
                    after = min(exc.retry_after * scale, 60.0)
                    delay = after + after * 0.25 * (2 * random.random() - 1)
                await anyio.sleep(delay / scale)
            except ApiStatusError:
                return

    async def worker() -> None:
        while queue:
            await attempt_all(queue.pop())

    async with anyio.create_task_group() as tg:
        for _ in range(10):
            tg.start_soon(worker)


async def peer_terraform(client: ConsoleClient, calls: Sequence[Call], scale: float) -> None:
    """The Terraform provider: ``-parallelism=10``, no throttle, no retry (4xx are
    returned as diagnostics)."""
    queue = list(reversed(calls))

    async def worker() -> None:
        while queue:
            call = queue.pop()
            with contextlib.suppress(ApiError):
                await _send(client, call)

    async with anyio.create_task_group() as tg:
        for _ in range(10):
            tg.start_soon(worker)


async def peer_aiolimiter(client: ConsoleClient, calls: Sequence[Call], scale: float) -> None:
    """A hand-written script: every call at once behind ``AsyncLimiter(100, 10)``,
    retrying 429s forever with full-jitter exponential backoff (1 s base, 60 s cap);
    every retry goes through the limiter again."""
    limiter = AsyncLimiter(100, 10.0 / scale)

    async def one(call: Call) -> None:
        attempt = 0
        while True:
            async with limiter:
                try:
                    await _send(client, call)
                    return
                except RateLimited:
                    attempt += 1
                except ApiError:
                    return
            await anyio.sleep(random.uniform(0, min(60.0, 2.0 ** (attempt - 1))) / scale)

    async with anyio.create_task_group() as tg:
        for call in calls:
            tg.start_soon(one, call)


PEERS: dict[str, tuple[str, Strategy]] = {
    "migrations": ("10 req / 500 ms throttle, sequential, no 429 retry", peer_migrations),
    "statsig_to_ld": ("10 workers, 3 attempts, backoff 1/2/4 s ±25 %", peer_statsig_to_ld),
    "terraform": ("parallelism 10, no throttle, no retry", peer_terraform),
    "aiolimiter": ("AsyncLimiter(100, 10 s), unbounded jittered retries", peer_aiolimiter),
}
"""The peer styles: name → (description, strategy). Sources: ``reference/peers.md``."""


# -- the emulator in a child process -------------------------------------------------


class _Served(ForkedEmulator):
    def entries(self) -> list[dict[str, Any]]:
        return _read_log(self.log_path)

    def snapshot(self) -> dict[str, Any]:
        with urllib.request.urlopen(self.root + _SNAPSHOT_ROUTE, timeout=60) as response:
            data: dict[str, Any] = json.loads(response.read())
        return data


def _read_log(path: Path) -> list[dict[str, Any]]:
    entries = []
    if path.exists():
        for line in path.read_text().splitlines():
            with contextlib.suppress(ValueError):
                entries.append(json.loads(line))
    return [e for e in entries if str(e.get("path", "")).startswith(PREFIX)]


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
    app.router.add_get(_SNAPSHOT_ROUTE, _snapshot_handler)


@contextlib.contextmanager
def _serve(
    state: EmulatorState,
    log_path: Path,
    *,
    time_scale: float = 1.0,
    quotas: bool = True,
    build: Callable[[EmulatorState], None] | None = None,
) -> Iterator[_Served]:
    """Serve a copy of ``state`` (fork: the child's changes stay in the child)."""

    def prepare(child_state: EmulatorState) -> None:
        if build is not None:
            build(child_state)
        child_state.time_scale = time_scale
        child_state.quotas_enabled = quotas
        for project in child_state.projects.values():
            project.quotas.clear()

    with fork_emulator(
        state, log_path, prepare=prepare, routes=_add_snapshot_route, timeout=300
    ) as forked:
        yield _Served(url=forked.url, pid=forked.pid, log_path=forked.log_path)


# -- bulkops in a child process ------------------------------------------------------


@dataclass
class _Cli:
    pid: int
    out: Path
    err: Path
    code: int | None = None
    seconds: float | None = None

    def poll(self) -> bool:
        """Whether the process has ended (its exit code is then in ``code``)."""
        pid, status = os.waitpid(self.pid, os.WNOHANG)
        if pid:
            self.code = (
                128 + os.WTERMSIG(status) if os.WIFSIGNALED(status) else os.WEXITSTATUS(status)
            )
        return bool(pid)

    def wait(self, timeout: float = 600.0) -> int:
        deadline = time.monotonic() + timeout
        while True:
            if self.poll():
                assert self.code is not None
                return self.code
            if time.monotonic() > deadline:
                self.kill()
                raise TimeoutError(f"bulkops did not finish: {self.tail()}")
            time.sleep(0.005)

    def kill(self) -> None:
        with contextlib.suppress(ProcessLookupError):
            os.kill(self.pid, signal.SIGKILL)
        with contextlib.suppress(ChildProcessError):
            _, status = os.waitpid(self.pid, 0)
            self.code = 128 + os.WTERMSIG(status) if os.WIFSIGNALED(status) else 0

    def tail(self) -> str:
        text = self.err.read_text() if self.err.exists() else ""
        return text.strip()[-600:]


def _fork_cli(argv: Sequence[str], env: Mapping[str, str], out_dir: Path, tag: str) -> _Cli:
    """``bulkops argv`` in a forked child: a real process that starts in milliseconds."""
    out, err = out_dir / f"{tag}.out", out_dir / f"{tag}.err"
    return _Cli(pid=fork_cli(argv, env, out, err), out=out, err=err)


def _run_cli(argv: Sequence[str], env: Mapping[str, str], out_dir: Path, tag: str) -> _Cli:
    cli = _fork_cli(argv, env, out_dir, tag)
    cli.wait()
    return cli


def _env(key: str, url: str, state_dir: Path, **extra: str) -> dict[str, str]:
    state_dir.mkdir(mode=0o700, parents=True, exist_ok=True)
    return {API_KEY_ENV: key, API_URL_ENV: url, STATE_ENV: str(state_dir), **extra}


# -- states ------------------------------------------------------------------------------


def _template_gate() -> dict[str, Any]:
    """A gate exactly as the emulator creates it (made through its API once)."""
    state = EmulatorState()
    apply_seed(state, "empty")
    state.quotas_enabled = False
    key = next(iter(state.keys))
    project_id = state.keys[key].project_id

    async def create() -> None:
        async with running_emulator(state) as url:
            settings = Settings(api_key=SecretStr(key), base_url=url)
            async with ConsoleClient(settings) as client:
                await client.call(
                    "POST", "/gates", {"name": "bench template", "description": "bench"}
                )

    asyncio.run(create())
    gate: dict[str, Any] = state.projects[project_id].collections["gates"]["bench_template"]
    return gate


def _bench_state(groups: Mapping[str, int]) -> EmulatorState:
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


def _disable_calls(prefix: str, count: int, start: int = 0) -> list[Call]:
    return [("PUT", f"/gates/{prefix}_{i}/disable", None) for i in range(start, start + count)]


def _write_calls(path: Path, calls: Sequence[Call]) -> Path:
    lines = []
    for method, call_path, body in calls:
        item: dict[str, Any] = {"method": method, "path": call_path}
        if body is not None:
            item["body"] = body
        lines.append(json.dumps(item))
    path.write_text("\n".join(lines) + "\n")
    return path


def _mutations(entries: Sequence[Mapping[str, Any]]) -> list[Mapping[str, Any]]:
    return [e for e in entries if e.get("method") in MUTATING]


# -- quota efficiency ----------------------------------------------------------------------


def _quota_row(
    entries: Sequence[Mapping[str, Any]], n: int, minimum: float, *, capped: bool = False
) -> dict[str, Any]:
    muts = _mutations(entries)
    applied = Counter(str(e["path"]) for e in muts if e.get("applied"))
    times = [float(e["time"]) for e in muts]
    wall = max(times) - min(times) if times else 0.0
    return {
        "completed": len(applied),
        "failed": n - len(applied),
        "r429": sum(1 for e in muts if e.get("status") == 429),
        "attempts": len(muts),
        "duplicated": sum(c - 1 for c in applied.values() if c > 1),
        "wall_s": round(wall, 3),
        "ratio": round(wall / minimum, 4) if minimum else None,
        "capped": capped,
    }


async def _run_peer(
    strategy: Strategy, url: str, calls: Sequence[Call], scale: float, cap: float
) -> bool:
    settings = Settings(api_key=SecretStr(BENCH_KEY), base_url=url)
    async with ConsoleClient(settings) as client:
        with anyio.move_on_after(cap) as scope:
            await strategy(client, calls, scale)
    return scope.cancelled_caught


def bench_quota(cfg: BenchConfig, tmp: Path, say: Callable[[str], None]) -> dict[str, Any]:
    """Quota efficiency: bulkops and every peer style on a fresh emulator each."""
    n, scale = cfg.quota_mutations, cfg.time_scale
    windows = [w.scaled(scale) for w in DEFAULT_QUOTA]
    minimum = theoretical_minimum(n, windows)
    base = _bench_state({"q": n})
    calls = _disable_calls("q", n)
    calls_file = _write_calls(tmp / "quota-calls.jsonl", calls)
    out: dict[str, Any] = {
        "mutations": n,
        "time_scale": scale,
        "quota": [str(w) for w in DEFAULT_QUOTA],
        "minimum_s": round(minimum, 3),
        "minimum_real_s": round(theoretical_minimum(n, list(DEFAULT_QUOTA)), 1),
    }
    say(f"quota: bulkops, {n} mutations, minimum {minimum:.1f} s at time scale {scale:g}")
    with _serve(base, tmp / "quota-bulkops.log", time_scale=scale) as emu:
        argv = [
            "run", "--apply", "--yes", "--time-scale", f"{scale:g}",
            "--checkpoint", str(tmp / "quota.ckpt"),
            "apply-calls", "--file", str(calls_file),
        ]  # fmt: skip
        cli = _run_cli(argv, _env(BENCH_KEY, emu.url, tmp / "state-quota"), tmp, "quota-bulkops")
        row = _quota_row(emu.entries(), n, minimum)
    row["exit_code"] = cli.code
    if cli.code != 0:
        row["error"] = cli.tail()
    out["bulkops"] = row
    for name, (description, strategy) in PEERS.items():
        say(f"quota: peer style {name} ({description})")
        with _serve(base, tmp / f"quota-{name}.log", time_scale=scale) as emu:
            capped = asyncio.run(_run_peer(strategy, emu.url, calls, scale, cfg.peer_cap * minimum))
            row = _quota_row(emu.entries(), n, minimum, capped=capped)
        row["style"] = description
        out[name] = row
    return out


# -- runner overhead -----------------------------------------------------------------------


async def _overhead(url: str, cfg: BenchConfig, tmp: Path, profile: bool) -> dict[str, Any]:
    m, cap = cfg.overhead_mutations, cfg.in_flight
    from bulkops.jobs import apply_calls

    settings = Settings(api_key=SecretStr(BENCH_KEY), base_url=url)
    close = configure_logging(console=io.StringIO())  # the CLI's levels: warnings only
    profiler = cProfile.Profile() if profile else None
    try:
        async with ConsoleClient(settings) as client:
            ctx = JobContext(
                client=client,
                project_id=BENCH_PROJECT,
                project_name="Bench Project",
                settings=settings,
                log=structlog.get_logger(),
                plan_id=uuid.uuid4().hex,
            )

            async def journaled(calls: Sequence[Call], tag: int) -> tuple[float, float, RunResult]:
                params = apply_calls.Params(
                    file=_write_calls(tmp / f"overhead-calls-{tag}.jsonl", calls)
                )
                mutations = [mu async for mu in apply_calls.plan(ctx, params)]
                plan = Plan.build(
                    job="apply-calls",
                    params=params.model_dump(mode="json"),
                    projects=[ProjectRef(id=BENCH_PROJECT, name="Bench Project")],
                    mutations=mutations,
                )
                journal = Journal.create(
                    tmp / f"overhead-{tag}.ckpt", {"t": "plan", "plan": plan.to_json()}
                )
                limiter = QuotaLimiter({MUTATION_CLASS: (), ID_LIST_CLASS: ()}, max_in_flight=cap)
                started, cpu = time.perf_counter(), time.process_time()
                if profiler is not None and tag == 0:
                    profiler.enable()
                try:
                    result = await run_plan(
                        plan,
                        client=client,
                        journal=journal,
                        limiter=limiter,
                        sendlog=SendLog(tmp / "state-overhead" / "sends.json"),
                        options=RunOptions(max_in_flight=cap),
                    )
                finally:
                    if profiler is not None:
                        profiler.disable()
                    journal.close()
                return time.perf_counter() - started, time.process_time() - cpu, result

            async def bare(calls: Sequence[Call], read: bool) -> tuple[float, float]:
                todo = list(reversed(calls))

                async def worker() -> None:
                    while todo:
                        method, path, body = todo.pop()
                        if read:
                            await client.call("GET", path.rsplit("/", 1)[0])
                        await client.call(method, path, body)

                t0, c0 = time.perf_counter(), time.process_time()
                async with anyio.create_task_group() as tg:
                    for _ in range(cap):
                        tg.start_soon(worker)
                return time.perf_counter() - t0, time.process_time() - c0

            rounds: list[dict[str, Any]] = []
            for i in range(cfg.overhead_rounds):
                first = 3 * m * i
                runner_s, runner_cpu, result = await journaled(_disable_calls("o", m, first), i)
                bare_s, bare_cpu = await bare(_disable_calls("o", m, first + m), read=True)
                write_s, _ = await bare(_disable_calls("o", m, first + 2 * m), read=False)
                rounds.append(
                    {
                        "applied": result.counts().get("applied", 0),
                        "mutations_per_s": round(m / runner_s, 1),
                        "no_journal_per_s": round(m / bare_s, 1),
                        "write_only_per_s": round(m / write_s, 1),
                        "ratio_vs_no_journal": round(bare_s / runner_s, 3),
                        "cpu_us_per_mutation": round(runner_cpu / m * 1e6),
                        "no_journal_cpu_us_per_mutation": round(bare_cpu / m * 1e6),
                        "fsyncs_per_mutation": round(result.fsyncs / m, 3),
                    }
                )
    finally:
        close()
        structlog.reset_defaults()

    def median(key: str) -> float:
        return float(statistics.median(r[key] for r in rounds))

    out: dict[str, Any] = {
        "mutations": m,
        "in_flight": cap,
        "rounds": len(rounds),
        "applied": min(r["applied"] for r in rounds),
        # Medians over rounds; each round runs the runner, then the two baselines,
        # back to back, so a ratio compares runs seconds apart on the same machine.
        **{
            key: median(key)
            for key in (
                "mutations_per_s",
                "no_journal_per_s",
                "write_only_per_s",
                "ratio_vs_no_journal",
                "cpu_us_per_mutation",
                "no_journal_cpu_us_per_mutation",
                "fsyncs_per_mutation",
            )
        },
        "per_round": rounds,
        "baseline": (
            "the runner has no journal-off switch: the baseline is the bare client sending "
            "the same calls (the pre-write GET and the PUT) with the same concurrency"
        ),
    }
    if profiler is not None:
        stream = io.StringIO()
        pstats.Stats(profiler, stream=stream).sort_stats("tottime").print_stats(25)
        out["profile_top"] = stream.getvalue()
    return out


def bench_overhead(
    cfg: BenchConfig, tmp: Path, say: Callable[[str], None], *, profile: bool = False
) -> dict[str, Any]:
    """Runner throughput against an unthrottled emulator, and the bare-client baseline."""
    m = cfg.overhead_mutations
    say(
        f"overhead: {cfg.overhead_rounds} rounds of {m} journaled mutations and the same calls "
        f"from the bare client, unthrottled emulator, in-flight {cfg.in_flight}"
    )
    base = _bench_state({"o": 3 * m * cfg.overhead_rounds})
    with _serve(base, tmp / "overhead.log", quotas=False) as emu:
        return asyncio.run(_overhead(emu.url, cfg, tmp, profile))


# -- resume cost ---------------------------------------------------------------------------


def _plan_document(n: int) -> dict[str, Any]:
    """A valid plan of ``n`` gate disables as the journal's first record holds it.

    Built from one :class:`Mutation`'s JSON by substitution (constructing 50,000 models
    would time pydantic, not the checkpoint), with the hash :meth:`Plan.compute_hash`
    gives: ``sha256`` of the canonical JSON with an empty ``hash``.
    """
    gid = "__GATE__"
    template = Mutation(
        key=f"gate:disable:{gid}",
        project=BENCH_PROJECT,
        action="disable",
        object=f"gate/{gid}",
        method="PUT",
        path=f"/gates/{gid}/disable",
        read=f"/gates/{gid}",
        before=Expect(fields={"isEnabled": True}),
        after=Expect(fields={"isEnabled": False}),
        before_image={"isEnabled": True},
        inverse=(InverseCall(method="PUT", path=f"/gates/{gid}/enable"),),
        idempotent=True,
    )
    base = template.model_dump(mode="json")

    def mutation(i: int) -> dict[str, Any]:
        doc = dict(base)
        for name in ("key", "object", "path", "read"):
            doc[name] = str(base[name]).replace(gid, f"r_{i}")
        doc["inverse"] = [
            {**call, "path": str(call["path"]).replace(gid, f"r_{i}")} for call in base["inverse"]
        ]
        return doc

    header = PlanHeader(
        job="apply-calls",
        params={},
        projects=[ProjectRef(id=BENCH_PROJECT, name="Bench Project")],
        created=dt.datetime.now(dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
        plan_id=uuid.uuid4().hex,
    )
    doc: dict[str, Any] = {
        "header": header.model_dump(mode="json"),
        "mutations": [mutation(i) for i in range(n)],
    }
    doc["header"]["hash"] = ""
    doc["header"]["hash"] = hashlib.sha256(canonical_json(doc).encode()).hexdigest()
    return doc


def _checkpoint_read(records: int, tmp: Path, *, thorough: bool) -> dict[str, Any]:
    """Write the checkpoint of a ``records // 2``-mutation plan, fully applied, and time
    opening it the way ``bulkops resume`` does (``Journal.open``: read, verify every
    CRC and sequence number, check the tail)."""
    n = records // 2
    doc = _plan_document(n)
    path = tmp / "resume-read.ckpt"
    journal = Journal.create(path, {"t": "plan", "plan": doc, "options": {}})
    now = time.time()
    for m in doc["mutations"]:
        key = m["key"]
        journal.append({"t": "intent", "key": key, "attempt": 1, "at": now})
        journal.append(
            {"t": "outcome", "key": key, "result": "applied", "status": 200, "error": None,
             "attempts": 1, "at": now}
        )  # fmt: skip
    journal.close()
    del doc
    started = time.perf_counter()
    opened, recs = Journal.open(path)
    open_s = time.perf_counter() - started
    opened.close()
    out: dict[str, Any] = {
        "records": len(recs),
        "mutations": n,
        "bytes": path.stat().st_size,
        "seconds": round(open_s, 3),
    }
    if thorough:
        started = time.perf_counter()
        read_records(path)
        out["read_only_seconds"] = round(time.perf_counter() - started, 3)
        # What else a resume does before its first request: verify the plan, replay.
        started = time.perf_counter()
        plan = Plan.from_json(recs[0]["plan"])
        out["plan_verify_seconds"] = round(time.perf_counter() - started, 3)
        started = time.perf_counter()
        states = replay(recs, [m.key for m in plan.mutations])
        out["replay_seconds"] = round(time.perf_counter() - started, 3)
        out["settled"] = sum(1 for st in states.values() if st.state == "applied")
    return out


def _kill_and_resume(cfg: BenchConfig, tmp: Path) -> dict[str, Any]:
    k = cfg.kill_mutations
    base = _bench_state({"k": k})
    calls_file = _write_calls(tmp / "kill-calls.jsonl", _disable_calls("k", k))
    plan_path = tmp / "kill.plan"
    ckpt = tmp / "kill.ckpt"
    quota = ["--quota", _UNLIMITED, "--id-list-quota", _UNLIMITED]
    log_path = tmp / "kill.log"
    with _serve(base, log_path, quotas=False) as emu:
        env = _env(BENCH_KEY, emu.url, tmp / "state-kill")
        cli = _run_cli(
            ["plan", *quota, "-o", str(plan_path), "apply-calls", "--file", str(calls_file)],
            env, tmp, "kill-plan",
        )  # fmt: skip
        if cli.code != 0:
            return {"error": f"plan failed ({cli.code}): {cli.tail()}"}
        apply = _fork_cli(
            ["apply", *quota, "--yes", "--checkpoint", str(ckpt), str(plan_path)],
            env, tmp, "kill-apply",
        )  # fmt: skip
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:
            text = log_path.read_text() if log_path.exists() else ""
            if text.count('"applied":true') >= k // 2:
                break
            if apply.poll():
                return {"error": f"the apply ended before it could be killed: {apply.tail()}"}
            time.sleep(0.002)
        apply.kill()
        plan = read_plan(plan_path)
        states = replay(read_records(ckpt), [m.key for m in plan.mutations])
        in_doubt = {m.key for m in plan.mutations if states[m.key].state == "in_doubt"}
        remaining = sum(1 for st in states.values() if st.state in ("pending", "in_doubt"))
        time.sleep(0.1)  # requests the killed process had in flight still reach the log
        killed_at = len(emu.entries())
        resumed = _run_cli(["resume", *quota, str(ckpt)], env, tmp, "kill-resume")
        entries = emu.entries()
    doubt_reads = {PREFIX + str(m.read) for m in plan.mutations if m.key in in_doubt}
    planned_reads = {PREFIX + str(m.read) for m in plan.mutations}
    after = entries[killed_at:]
    applied = Counter(str(e["path"]) for e in _mutations(entries) if e.get("applied"))
    planned = [PREFIX + m.path for m in plan.mutations]
    out: dict[str, Any] = {
        "applied_at_kill": sum(1 for e in _mutations(entries[:killed_at]) if e.get("applied")),
        "in_doubt_at_kill": len(in_doubt),
        "remaining_at_kill": remaining,
        "reconcile_reads": sum(
            1 for e in after if e.get("method") == "GET" and e.get("path") in doubt_reads
        ),
        "reads_on_resume": sum(
            1 for e in after if e.get("method") == "GET" and e.get("path") in planned_reads
        ),
        "in_flight_cap": cfg.in_flight,
        "lost": sum(1 for p in planned if applied[p] == 0),
        "duplicated": sum(applied[p] - 1 for p in planned if applied[p] > 1),
        "resume_exit_code": resumed.code,
    }
    if resumed.code != 0:
        out["error"] = resumed.tail()
    return out


def bench_resume(cfg: BenchConfig, tmp: Path, say: Callable[[str], None]) -> dict[str, Any]:
    """Checkpoint read time, and reconciliation reads after a real kill."""
    say(f"resume: open and verify a {cfg.checkpoint_records:,}-record checkpoint")
    out = _checkpoint_read(cfg.checkpoint_records, tmp, thorough=not cfg.quick)
    say(f"resume: kill -9 a {cfg.kill_mutations}-mutation apply halfway, then resume")
    out.update(_kill_and_resume(cfg, tmp))
    return out


# -- mutation economy ----------------------------------------------------------------------


def _normalize(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: _normalize(v) for k, v in value.items() if k not in _STAMPS}
    if isinstance(value, list):
        return [_normalize(v) for v in value]
    return value


def _objects(snapshot: Mapping[str, Any]) -> dict[tuple[str, ...], Any]:
    out: dict[tuple[str, ...], Any] = {}
    for pid, project in snapshot.items():
        for kind, objs in project["collections"].items():
            for oid, obj in objs.items():
                out[(pid, kind, oid)] = _normalize(obj)
        for kind, objs in project["overrides"].items():
            for oid, obj in objs.items():
                out[(pid, kind, oid, "overrides")] = obj
        for oid, ids in project["id_lists"].items():
            out[(pid, "segments", oid, "id_list")] = sorted(ids)
    return out


def _id_count(value: Any) -> int:
    if isinstance(value, str):
        return 1
    if isinstance(value, dict):
        return sum(_id_count(v) for v in value.values())
    if isinstance(value, list):
        return sum(_id_count(v) for v in value)
    return 0


def _required(key: tuple[str, ...], old: Any, new: Any) -> int:
    """The fewest requests the API lets a change of this object take.

    One per object, except: a list of more ids than one request takes needs one
    request per chunk (1,000 ids per id-list or override request), and a gate's or
    holdout's overrides body is *either* the id lists *or* ``environmentOverrides``
    (``UpdateOverridesContractDto`` is a oneOf), so changing both takes two.
    """
    if len(key) == 3:
        return 1
    if key[3] == "id_list":
        return max(1, math.ceil(max(_id_count(old), _id_count(new)) / _ID_LIST_CHUNK))
    parts = (_USER_LISTS, ("environmentOverrides",)) if key[1] in ("gates", "holdouts") else (None,)
    needed = 0
    for names in parts:
        a = _pick(old, names)
        b = _pick(new, names)
        if a != b:
            needed += max(1, math.ceil(max(_id_count(a), _id_count(b)) / _OVERRIDE_CHUNK))
    return max(1, needed)


def _pick(value: Any, names: Sequence[str] | None) -> Any:
    # Absent, null and empty lists all mean "no ids".
    if not isinstance(value, dict):
        return {}
    return {k: v for k, v in value.items() if (names is None or k in names) and v}


def _changes(before: Mapping[str, Any], after: Mapping[str, Any]) -> tuple[int, int, set[str]]:
    """(objects changed, requests the API forces beyond one per object, new objects).

    Overrides and id lists count as objects of their own. An empty id list or
    override set appearing with a new segment or gate is part of that create, not a
    change of its own.
    """
    old, new = _objects(before), _objects(after)
    changed = 0
    forced = 0
    created: set[str] = set()
    for key in old.keys() | new.keys():
        a, b = old.get(key), new.get(key)
        if len(key) == 4 and _pick(a, None) == _pick(b, None):
            continue
        if a == b:
            continue
        changed += 1
        forced += _required(key, a, b) - 1
        if key not in old and len(key) == 3:
            created.add(f"{key[1]}/{key[2]}")
    return changed, forced, created


def _follow_ups(muts: Sequence[Mapping[str, Any]], created: set[str]) -> int:
    """Requests on objects created in the same run that their create cannot replace:
    state changes (launch, archive…) and a layer's parameters. One each, forced by
    the API."""
    count = 0
    for e in muts:
        parts = [unquote(x) for x in str(e["path"])[len(PREFIX) :].strip("/").split("/")]
        if f"{parts[0]}/{parts[1] if len(parts) > 1 else ''}" not in created:
            continue
        if (len(parts) == 3 and parts[2] in _FOLLOW_UPS) or (
            len(parts) == 2 and parts[0] in _UPDATED_AFTER_CREATE
        ):
            count += 1
    return count


def _economy_calls(state: EmulatorState, project_id: str) -> list[Call]:
    """A mixed calls file on distinct objects of the demo project."""
    gates = [
        g
        for g in state.projects[project_id].collections["gates"].values()
        if g.get("status") in ("In Progress", "Launched") and g.get("isEnabled")
    ]
    gates.sort(key=lambda g: str(g["id"]))
    pick = iter(gates)
    calls: list[Call] = []
    calls += [("PUT", f"/gates/{next(pick)['id']}/disable", None) for _ in range(20)]
    calls += [
        ("PATCH", f"/gates/{next(pick)['id']}", {"description": "edited by the benchmark"})
        for _ in range(15)
    ]
    calls += [
        ("POST", "/gates", {"name": f"bench economy {i}", "description": "made by the benchmark"})
        for i in range(10)
    ]
    calls += [
        (
            "PATCH",
            f"/gates/{next(pick)['id']}/overrides",
            {"passingUserIDs": [f"bench_user_{i}"], "failingUserIDs": []},
        )
        for i in range(10)
    ]
    return calls


def _override_rows(path: Path, targets: Sequence[str], rows: int) -> Path:
    per = max(1, rows // len(targets))
    with path.open("w") as fh:
        fh.write("kind,id,unit_id,value,environment,unit_type\n")
        for t, target in enumerate(targets):
            for i in range(per):
                fh.write(f"gate,{target},bench_{t}_{i},{'pass' if i % 2 else 'fail'},,\n")
    return path


def _live_gates(state: EmulatorState, project_id: str, count: int) -> list[str]:
    gates = sorted(
        str(g["id"])
        for g in state.projects[project_id].collections["gates"].values()
        if g.get("status") != "Archived"
    )
    return gates[:count]


def _demo_state() -> tuple[EmulatorState, dict[str, str]]:
    from bulkops.emulator.demo import DEMO_SOURCE_ID, DEMO_SOURCE_KEY, DEMO_TARGET_KEY

    state = EmulatorState()
    apply_seed(state, "demo")
    return state, {
        "source_key": DEMO_SOURCE_KEY,
        "target_key": DEMO_TARGET_KEY,
        "source_id": DEMO_SOURCE_ID,
    }


def bench_economy(cfg: BenchConfig, tmp: Path, say: Callable[[str], None]) -> dict[str, Any]:
    """Each job on the demo project: objects changed vs mutations sent, then a re-run."""
    from bulkops.jobs import JOBS

    state, demo = _demo_state()
    root = Path(__file__).resolve().parent.parent
    calls = _write_calls(tmp / "economy-calls.jsonl", _economy_calls(state, demo["source_id"]))
    rows = _override_rows(
        tmp / "economy-overrides.csv", _live_gates(state, demo["source_id"], 20), 400
    )
    rewrite = root / "examples" / "rewrite.toml"
    quota = ["--quota", _UNLIMITED, "--id-list-quota", _UNLIMITED]
    cases: dict[str, tuple[list[str], str, str | None]] = {
        "apply-calls": (["--file", str(calls)], demo["source_key"], None),
        "archive-gates": (["--stale"], demo["source_key"], None),
        "rewrite-rules": (
            ["--file", str(rewrite)],
            demo["source_key"],
            None if rewrite.exists() else f"{rewrite} is missing",
        ),
        "import-overrides": (["--file", str(rows)], demo["source_key"], None),
        "copy-project": (
            [
                "--source-key-env",
                "BENCH_SOURCE_KEY",
                "--target-key-env",
                "BENCH_TARGET_KEY",
                *(f"--include={kind}" for kind in _COPY_KINDS),
                "--with-overrides",
                "--accept-loss",
                *(["--tag", "payments"] if cfg.quick else []),
            ],
            demo["target_key"],
            None,
        ),  # fmt: skip
    }
    out: dict[str, Any] = {}
    runnable: dict[str, tuple[list[str], str]] = {}
    for job, (args, key, missing) in cases.items():
        if job not in JOBS or missing:
            out[job] = {"changed": None, "sent": None, "rerun_sent": None,
                        "note": missing or "job not available in this tree yet"}  # fmt: skip
            say(f"economy: {job} skipped ({out[job]['note']})")
        else:
            runnable[job] = (args, key)
    say(f"economy: {', '.join(runnable)} on the demo project (side by side), each run twice")
    # The jobs run side by side, each on its own emulator: these are counts, not times.
    with contextlib.ExitStack() as stack:
        emus = {
            job: stack.enter_context(_serve(state, tmp / f"economy-{job}.log", quotas=False))
            for job in runnable
        }
        envs = {
            job: _env(
                key,
                emus[job].url,
                tmp / f"state-economy-{job}",
                BENCH_SOURCE_KEY=demo["source_key"],
                BENCH_TARGET_KEY=demo["target_key"],
            )
            for job, (_args, key) in runnable.items()
        }
        before = {job: emus[job].snapshot() for job in runnable}

        def run_all(n: int) -> dict[str, _Cli]:
            clis = {
                job: _fork_cli(
                    ["run", *quota, "--apply", "--yes", job, *args],
                    envs[job],
                    tmp,
                    f"economy-{job}-{n}",
                )
                for job, (args, _key) in runnable.items()
            }
            started = time.perf_counter()
            while any(cli.code is None for cli in clis.values()):
                for cli in clis.values():
                    if cli.code is None and cli.poll():
                        cli.seconds = round(time.perf_counter() - started, 2)
                time.sleep(0.005)
            return clis

        firsts = run_all(1)
        marks = {job: len(emus[job].entries()) for job in runnable}
        after = {job: emus[job].snapshot() for job in runnable}
        seconds = run_all(2)
        entries = {job: emus[job].entries() for job in runnable}
    for job in runnable:
        run1 = _mutations(entries[job][: marks[job]])
        run2 = _mutations(entries[job][marks[job] :])
        for name, snap in (("before", before[job]), ("after", after[job])):
            (tmp / f"economy-{job}-{name}.json").write_text(json.dumps(snap))
        changed, forced, created = _changes(before[job], after[job])
        forced += _follow_ups(run1, created)
        first, second = firsts[job], seconds[job]
        row: dict[str, Any] = {
            "changed": changed,
            "sent": len(run1),
            "applied": sum(1 for e in run1 if e.get("applied")),
            "forced_extra": forced,
            "rerun_sent": len(run2),
            "exit_codes": [first.code, second.code],
            "run_seconds": [first.seconds, second.seconds],
        }
        if first.code not in (0, 1) or second.code not in (0, 1):
            row["error"] = (first.tail() if first.code not in (0, 1) else second.tail())[-300:]
        out[job] = row
    return out


# -- memory -------------------------------------------------------------------------------


# Runs in the measured interpreter: bulkops' CLI, then its own peak RSS. VmHWM belongs to
# the process's memory map, which exec creates afresh; ru_maxrss would not do here, as
# Linux carries the forking parent's resident size across exec into the child's maximum.
_RSS_PROBE = """
import resource, sys, time
started = time.perf_counter()
try:
    from bulkops.cli import main
    code = main(sys.argv[2:])
except SystemExit as exc:
    code = exc.code if isinstance(exc.code, int) else 1
finally:
    kb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    try:
        with open("/proc/self/status") as fh:
            kb = next(int(l.split()[1]) for l in fh if l.startswith("VmHWM:"))
    except (OSError, StopIteration, ValueError):
        pass
    usage = resource.getrusage(resource.RUSAGE_SELF)
    with open(sys.argv[1], "w") as fh:
        fh.write(f"{kb} {time.perf_counter() - started} {usage.ru_utime + usage.ru_stime}")
sys.exit(code)
"""


@dataclass
class _Probe:
    proc: subprocess.Popen[bytes]
    rss_file: Path
    err: Path

    def result(self) -> dict[str, Any]:
        code = self.proc.wait()
        fields = (self.rss_file.read_text() if self.rss_file.exists() else "").split()
        row: dict[str, Any] = {"mb": None, "seconds": None, "exit_code": code}
        if len(fields) == 3:
            # Seconds from after the interpreter started to the end, and CPU seconds of
            # the plan process (the rest of the wall time is the emulator's).
            row["mb"] = round(int(fields[0]) / 1024, 1)
            row["seconds"] = round(float(fields[1]), 2)
            row["cpu_seconds"] = round(float(fields[2]), 2)
        if code != 0:
            row["error"] = self.err.read_text().strip()[-400:]
        return row


def _start_probe(argv: Sequence[str], env: Mapping[str, str], tmp: Path, tag: str) -> _Probe:
    """Start ``bulkops argv`` in a fresh interpreter that reports its peak RSS."""
    full_env = {k: v for k, v in os.environ.items() if k not in (API_KEY_ENV, API_URL_ENV)}
    full_env.update(env)
    rss_file = tmp / f"{tag}.rss"
    err = tmp / f"{tag}.err"
    with (tmp / f"{tag}.out").open("wb") as out, err.open("wb") as err_fh:
        proc = subprocess.Popen(
            [sys.executable, "-c", _RSS_PROBE, str(rss_file), *argv],
            stdin=subprocess.DEVNULL,
            stdout=out,
            stderr=err_fh,
            env=full_env,
        )
    return _Probe(proc=proc, rss_file=rss_file, err=err)


def _grow_gates(count: int, project_id: str) -> Callable[[EmulatorState], None]:
    """Clone the demo's gates (every status, type and rule shape) up to ``count``."""

    def build(state: EmulatorState) -> None:
        store = state.projects[project_id].collections["gates"]
        originals = list(store.values())
        copies = 0
        while len(store) < count:
            for gate in originals:
                if len(store) >= count:
                    break
                clone = copy.deepcopy(gate)
                clone["id"] = f"{gate['id']}_c{copies}"
                clone["name"] = f"{gate['name']} c{copies}"
                store[clone["id"]] = clone
            copies += 1

    return build


def bench_memory(cfg: BenchConfig, tmp: Path, say: Callable[[str], None]) -> dict[str, Any]:
    """Peak RSS of planning an archive over many gates and an import of many rows.

    The two plans run side by side, each in a fresh interpreter against its own
    emulator (peak memory does not depend on what else the machine runs; the plan
    times reported beside it do a little).
    """
    from bulkops.jobs import JOBS

    state, demo = _demo_state()
    out: dict[str, Any] = {"gates": cfg.memory_gates, "rows": cfg.memory_rows,
                           "targets": cfg.memory_targets}  # fmt: skip
    quota = ["--quota", _UNLIMITED, "--id-list-quota", _UNLIMITED]
    probes: dict[str, _Probe] = {}
    with contextlib.ExitStack() as stack:
        if "archive-gates" in JOBS:
            say(f"memory: plan archive-gates --stale over {cfg.memory_gates:,} gates")
            build = _grow_gates(cfg.memory_gates, demo["source_id"])
            emu = stack.enter_context(
                _serve(state, tmp / "memory-gates.log", quotas=False, build=build)
            )
            probes["plan_50k_gates"] = _start_probe(
                ["plan", *quota, "--show", "10", "-o", str(tmp / "memory-gates.plan"),
                 "archive-gates", "--stale"],
                _env(demo["source_key"], emu.url, tmp / "state-memory-gates"),
                tmp, "memory-gates",
            )  # fmt: skip
        else:
            out["plan_50k_gates_mb"] = None
            out["plan_50k_gates_note"] = "archive-gates not available in this tree yet"
        if "import-overrides" in JOBS:
            say(
                f"memory: plan import-overrides of {cfg.memory_rows:,} rows over "
                f"{cfg.memory_targets} targets"
            )
            rows = _override_rows(
                tmp / "memory-rows.csv",
                _live_gates(state, demo["source_id"], cfg.memory_targets),
                cfg.memory_rows,
            )
            emu = stack.enter_context(_serve(state, tmp / "memory-rows.log", quotas=False))
            probes["import_100k_rows"] = _start_probe(
                ["plan", *quota, "--show", "10", "-o", str(tmp / "memory-rows.plan"),
                 "import-overrides", "--file", str(rows)],
                _env(demo["source_key"], emu.url, tmp / "state-memory-rows"),
                tmp, "memory-rows",
            )  # fmt: skip
        else:
            out["import_100k_rows_mb"] = None
            out["import_100k_rows_note"] = "import-overrides not available in this tree yet"
        for name, probe in probes.items():
            row = probe.result()
            out[f"{name}_mb"] = row.pop("mb")
            out[f"{name}_s"] = row.pop("seconds")
            out[f"{name}_detail"] = row
    return out


# -- targets, table, entry point ---------------------------------------------------------


@dataclass(frozen=True)
class _Target:
    name: str
    value: Any
    target: str
    met: bool | None  # None: not measured (a job missing from the tree)


def _targets(results: Mapping[str, Any]) -> list[_Target]:
    out: list[_Target] = []
    quota = results.get("quota")
    if quota:
        b = quota["bulkops"]
        out.append(_Target("quota: bulkops time / minimum", b["ratio"], "≤ 1.05",
                           b["ratio"] is not None and b["ratio"] <= 1.05))  # fmt: skip
        out.append(_Target("quota: bulkops 429s", b["r429"], "0", b["r429"] == 0))
        out.append(_Target("quota: bulkops completed", b["completed"], f"{quota['mutations']}",
                           b["completed"] == quota["mutations"]))  # fmt: skip
    overhead = results.get("overhead")
    if overhead:
        rate = overhead["mutations_per_s"]
        out.append(_Target("overhead: journaled mutations/s", rate, "≥ 1000", rate >= 1000))
        out.append(_Target("overhead: runner / bare client", overhead["ratio_vs_no_journal"],
                           "(reported)", None))  # fmt: skip
    resume = results.get("resume")
    if resume:
        out.append(_Target(f"resume: open {resume['records']:,}-record checkpoint (s)",
                           resume["seconds"], "≤ 2", resume["seconds"] <= 2))  # fmt: skip
        if "reconcile_reads" in resume:
            reads, cap = resume["reconcile_reads"], resume["in_flight_cap"]
            out.append(_Target("resume: reconciliation reads after kill -9", reads,
                               f"≤ {cap}", reads <= cap))  # fmt: skip
            lost, dup = resume["lost"], resume["duplicated"]
            out.append(_Target("resume: lost / applied twice", f"{lost} / {dup}", "0 / 0",
                               lost == 0 and dup == 0 and resume.get("resume_exit_code") == 0))  # fmt: skip
        else:
            out.append(_Target("resume: reconciliation reads after kill -9",
                               resume.get("error"), "≤ cap", False))  # fmt: skip
    for job, row in (results.get("economy") or {}).items():
        if row.get("sent") is None:
            out.append(_Target(f"economy: {job}", row.get("note"), "changed = sent", None))
            continue
        ok = row["changed"] <= row["sent"] <= row["changed"] + row["forced_extra"]
        forced = f" + {row['forced_extra']} forced" if row["forced_extra"] else ""
        out.append(_Target(f"economy: {job} sent vs changed",
                           f"{row['sent']} / {row['changed']}", f"equal{forced}",
                           ok and "error" not in row))  # fmt: skip
        out.append(_Target(f"economy: {job} re-run sent", row["rerun_sent"], "0",
                           row["rerun_sent"] == 0))  # fmt: skip
    memory = results.get("memory")
    if memory:
        for key, label in (("plan_50k_gates_mb", f"memory: plan archive, {memory['gates']:,} gates (MB)"),
                           ("import_100k_rows_mb", f"memory: plan import, {memory['rows']:,} rows (MB)")):  # fmt: skip
            value = memory.get(key)
            detail = memory.get(key.replace("_mb", "_detail")) or {}
            met = None if value is None else value <= 200 and detail.get("exit_code") == 0
            out.append(_Target(label, value, "≤ 200", met))
    return out


def _render(console: Console, results: Mapping[str, Any], targets: Sequence[_Target]) -> None:
    quota = results.get("quota")
    if quota:
        table = Table(
            title=f"Quota efficiency: {quota['mutations']} mutations at {' + '.join(quota['quota'])}"
            f" (time scale {quota['time_scale']:g}; minimum {quota['minimum_real_s']:.0f} s real time)",
            box=box.SIMPLE_HEAD,
        )
        for column in ("strategy", "completed", "failed", "429s", "time / minimum", "style"):
            table.add_column(column, justify="left" if column in ("strategy", "style") else "right")
        for name in ("bulkops", *PEERS):
            row = quota.get(name)
            if row is None:
                continue
            ratio = f"{row['ratio']:.3f}" + (" (stopped)" if row.get("capped") else "")
            table.add_row(name, str(row["completed"]), str(row["failed"]), str(row["r429"]), ratio,
                          row.get("style", "quota limiter, smoothed, journaled"))  # fmt: skip
        console.print(table)
    table = Table(title="Targets", box=box.SIMPLE_HEAD)
    table.add_column("figure")
    table.add_column("measured", justify="right")
    table.add_column("target", justify="right")
    table.add_column("met", justify="center")
    for t in targets:
        mark = "[green]yes[/]" if t.met else "[red]NO[/]" if t.met is False else "–"
        table.add_row(t.name, str(t.value), t.target, mark)
    console.print(table)


def _machine(cfg: BenchConfig) -> dict[str, Any]:
    return {
        "cores": os.cpu_count(),
        "python": platform.python_version(),
        "platform": platform.platform(),
        "date": dt.datetime.now(dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
        "loadavg_start": [round(x, 2) for x in os.getloadavg()],
        "quick": cfg.quick,
    }


SECTIONS = ("quota", "overhead", "resume", "economy", "memory")


def run_bench(
    cfg: BenchConfig,
    *,
    output: Path = DEFAULT_OUTPUT,
    sections: Sequence[str] = SECTIONS,
    profile: bool = False,
    workdir: Path | None = None,
    console: Console | None = None,
) -> dict[str, Any]:
    """Run the chosen sections, write ``output`` and print the tables.

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

    with contextlib.ExitStack() as stack:
        if workdir is None:
            tmp = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="bulkops-bench-")))
        else:
            tmp = workdir
            tmp.mkdir(parents=True, exist_ok=True)
        runners: dict[str, Callable[[], dict[str, Any]]] = {
            "quota": lambda: bench_quota(cfg, tmp, say),
            "overhead": lambda: bench_overhead(cfg, tmp, say, profile=profile),
            "resume": lambda: bench_resume(cfg, tmp, say),
            "economy": lambda: bench_economy(cfg, tmp, say),
            "memory": lambda: bench_memory(cfg, tmp, say),
        }
        for name in SECTIONS:
            if name in sections:
                started = time.perf_counter()
                results[name] = runners[name]()
                timings[name] = round(time.perf_counter() - started, 1)
    results["machine"]["loadavg_end"] = [round(x, 2) for x in os.getloadavg()]
    results["machine"]["section_seconds"] = timings
    targets = _targets(results)
    results["targets"] = [
        {"name": t.name, "value": t.value, "target": t.target, "met": t.met} for t in targets
    ]
    results["all_met"] = all(t.met is not False for t in targets)
    profile_text = (results.get("overhead") or {}).get("profile_top")
    output.parent.mkdir(parents=True, exist_ok=True)
    output.write_text(json.dumps(results, indent=2, default=str) + "\n")
    _render(console, results, targets)
    if profile_text:
        console.print(profile_text, markup=False, highlight=False)
    console.print(f"results: {output}", highlight=False)
    return results


def main(argv: Sequence[str] | None = None) -> int:
    """``scripts/bench [--quick] [--only SECTION]… [--output FILE] [--profile]``.

    Exit 0 when every target is met, 1 otherwise.
    """
    parser = argparse.ArgumentParser(prog="scripts/bench", description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="the reduced run (under a minute)")
    parser.add_argument("--only", action="append", choices=SECTIONS, help="run only these sections")
    parser.add_argument("--output", type=Path, default=DEFAULT_OUTPUT, help="results file")
    parser.add_argument("--profile", action="store_true", help="cProfile the runner overhead run")
    parser.add_argument(
        "--workdir", type=Path, help="keep request logs, checkpoints and outputs here"
    )
    parser.add_argument("--mutations", type=int, help="quota-efficiency mutations (default 2000)")
    parser.add_argument("--time-scale", type=float, help="quota time scale (default 60)")
    args = parser.parse_args(argv)
    cfg = QUICK if args.quick else FULL
    if args.mutations:
        cfg = replace(cfg, quota_mutations=args.mutations)
    if args.time_scale:
        cfg = replace(cfg, time_scale=args.time_scale)
    results = run_bench(
        cfg,
        output=args.output,
        sections=args.only or SECTIONS,
        profile=args.profile,
        workdir=args.workdir,
    )
    return 0 if results["all_met"] else 1


if __name__ == "__main__":  # pragma: no cover
    raise SystemExit(main())
