"""Runner overhead: journaled mutations per second, against the bare client's.

``overhead`` in ``bench/results.json``: journaled (fsynced) mutations per second
through :func:`~bulkops.engine.runner.run_plan` against an unthrottled emulator, and
the same calls (the pre-write read and the write, same concurrency) sent by the bare
client without journal or runner: the runner has no journal-off switch, so that is the
baseline of the ratio. Several rounds, each the runner then its baselines back to back;
medians are quoted (``per_round`` has every round: the machine is shared and noisy).
``--profile`` adds the top of a cProfile of the first round.
"""

from __future__ import annotations

import asyncio
import cProfile
import io
import pstats
import statistics
import time
import uuid
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import anyio
import structlog
from pydantic import SecretStr

from bulkops.api.client import ConsoleClient
from bulkops.engine.journal import Journal
from bulkops.engine.mutations import JobContext
from bulkops.engine.plans import Plan, ProjectRef
from bulkops.engine.quota import ID_LIST_CLASS, MUTATION_CLASS
from bulkops.engine.ratelimit import QuotaLimiter, SendLog
from bulkops.engine.runner import RunOptions, RunResult, run_plan
from bulkops.logging import configure_logging
from bulkops.settings import Settings
from bulkops.testing import Call

from .common import BENCH_KEY, BENCH_PROJECT, bench_state, disable_calls, serve, write_calls
from .section import BenchConfig, Say, Section, Target

__all__ = ["SECTION", "run", "targets"]


async def _overhead(url: str, cfg: BenchConfig, tmp: Path) -> dict[str, Any]:
    m, cap = cfg.overhead_mutations, cfg.in_flight
    from bulkops.jobs import apply_calls

    settings = Settings(api_key=SecretStr(BENCH_KEY), base_url=url)
    close = configure_logging(console=io.StringIO())  # the CLI's levels: warnings only
    profiler = cProfile.Profile() if cfg.profile else None
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
                    file=write_calls(tmp / f"overhead-calls-{tag}.jsonl", calls)
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
                runner_s, runner_cpu, result = await journaled(disable_calls("o", m, first), i)
                bare_s, bare_cpu = await bare(disable_calls("o", m, first + m), read=True)
                write_s, _ = await bare(disable_calls("o", m, first + 2 * m), read=False)
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


def run(cfg: BenchConfig, tmp: Path, say: Say) -> dict[str, Any]:
    """Runner throughput against an unthrottled emulator, and the bare-client baseline."""
    m = cfg.overhead_mutations
    say(
        f"overhead: {cfg.overhead_rounds} rounds of {m} journaled mutations and the same calls "
        f"from the bare client, unthrottled emulator, in-flight {cfg.in_flight}"
    )
    base = bench_state({"o": 3 * m * cfg.overhead_rounds})
    with serve(base, tmp / "overhead.log", quotas=False) as emu:
        return asyncio.run(_overhead(emu.url, cfg, tmp))


def targets(overhead: Mapping[str, Any]) -> list[Target]:
    """At least 1,000 journaled mutations per second; the ratio is reported."""
    rate = overhead["mutations_per_s"]
    return [
        Target("overhead: journaled mutations/s", rate, "≥ 1000", rate >= 1000),
        Target("overhead: runner / bare client", overhead["ratio_vs_no_journal"],
               "(reported)", None),
    ]  # fmt: skip


SECTION = Section("overhead", run, targets)
