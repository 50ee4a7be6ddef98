"""Quota efficiency: bulkops beside the throttling styles peers use, on the same quota.

``quota.<strategy>`` in ``bench/results.json``: 2,000 gate disables against the
emulator's default quota (100/10 s + 900/15 min, rejected attempts counted) at a time
scale. ``bulkops`` is ``bulkops run apply-calls --apply --time-scale S``; beside it,
with the same client and a fresh emulator each, the throttling styles of
:data:`PEERS`. ``completed`` and ``r429`` come from the request log, ``ratio`` is the
time from the first to the last mutation the server saw over
:func:`~bulkops.engine.ratelimit.theoretical_minimum`.
"""

from __future__ import annotations

import asyncio
import contextlib
import random
import time
from collections import Counter
from collections.abc import Awaitable, Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

import anyio
from aiolimiter import AsyncLimiter
from pydantic import SecretStr
from rich import box
from rich.console import Console
from rich.table import Table

from bulkops.api.client import ConsoleClient
from bulkops.engine.quota import DEFAULT_QUOTA
from bulkops.engine.ratelimit import theoretical_minimum
from bulkops.errors import ApiError, ApiStatusError, RateLimited, ServerError, TransportError
from bulkops.settings import Settings
from bulkops.testing import Call, cli_env, run_cli

from .common import BENCH_KEY, CLI_TIMEOUT, bench_state, disable_calls, serve, write_calls, writes
from .section import BenchConfig, Say, Section, Target

__all__ = [
    "PEERS",
    "SECTION",
    "peer_aiolimiter",
    "peer_migrations",
    "peer_statsig_to_ld",
    "peer_terraform",
    "render",
    "run",
    "targets",
]

Strategy = Callable[[ConsoleClient, Sequence[Call], float], Awaitable[None]]


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


# -- the runs ----------------------------------------------------------------------------


def _quota_row(
    entries: Sequence[Mapping[str, Any]], n: int, minimum: float, *, capped: bool = False
) -> dict[str, Any]:
    muts = writes(entries)
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


def run(cfg: BenchConfig, tmp: Path, say: Say) -> dict[str, Any]:
    """Quota efficiency: bulkops and every peer style on a fresh emulator each."""
    n, scale = cfg.quota_mutations, cfg.time_scale
    windows = [w.scaled(scale) for w in DEFAULT_QUOTA]
    minimum = theoretical_minimum(n, windows)
    base = bench_state({"q": n})
    calls = disable_calls("q", n)
    calls_file = write_calls(tmp / "quota-calls.jsonl", calls)
    out: dict[str, Any] = {
        "mutations": n,
        "time_scale": scale,
        "quota": [str(w) for w in DEFAULT_QUOTA],
        "minimum_s": round(minimum, 3),
        "minimum_real_s": round(theoretical_minimum(n, list(DEFAULT_QUOTA)), 1),
    }
    say(f"quota: bulkops, {n} mutations, minimum {minimum:.1f} s at time scale {scale:g}")
    with serve(base, tmp / "quota-bulkops.log", time_scale=scale) as emu:
        argv = [
            "run", "--apply", "--yes", "--time-scale", f"{scale:g}",
            "--checkpoint", str(tmp / "quota.ckpt"),
            "apply-calls", "--file", str(calls_file),
        ]  # fmt: skip
        env = cli_env(BENCH_KEY, emu.url, tmp / "state-quota")
        cli = run_cli(argv, env, tmp, "quota-bulkops", timeout=CLI_TIMEOUT)
        row = _quota_row(emu.entries(), n, minimum)
    row["exit_code"] = cli.code
    if cli.code != 0:
        row["error"] = cli.tail()
    out["bulkops"] = row
    for name, (description, strategy) in PEERS.items():
        say(f"quota: peer style {name} ({description})")
        with serve(base, tmp / f"quota-{name}.log", time_scale=scale) as emu:
            capped = asyncio.run(_run_peer(strategy, emu.url, calls, scale, cfg.peer_cap * minimum))
            row = _quota_row(emu.entries(), n, minimum, capped=capped)
        row["style"] = description
        out[name] = row
    return out


def targets(quota: Mapping[str, Any]) -> list[Target]:
    """bulkops: within 5 % of the theoretical minimum, no 429, every mutation completed."""
    b = quota["bulkops"]
    return [
        Target("quota: bulkops time / minimum", b["ratio"], "≤ 1.05",
               b["ratio"] is not None and b["ratio"] <= 1.05),
        Target("quota: bulkops 429s", b["r429"], "0", b["r429"] == 0),
        Target("quota: bulkops completed", b["completed"], f"{quota['mutations']}",
               b["completed"] == quota["mutations"]),
    ]  # fmt: skip


def render(console: Console, quota: Mapping[str, Any]) -> None:
    """The table of every strategy's completed, failed, 429s and time over the minimum."""
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


SECTION = Section("quota", run, targets, render)
