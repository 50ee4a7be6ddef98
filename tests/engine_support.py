"""Helpers for the engine's process-level tests: emulators and CLI runs in real processes.

Python start-up plus imports cost about a second of CPU per process, and the crash
tests need dozens of processes, so both the emulator and the CLI runs are **forked**
from the test process once everything is imported: each is a real process (its own
pid, killed with a real SIGKILL, exiting through ``os._exit`` at a failpoint) that
starts in milliseconds. The emulator child serves an :class:`EmulatorState` built (and
seeded over HTTP) in the parent before the fork, and appends every request to a
request log, the ground truth the tests check.
"""

from __future__ import annotations

import asyncio
import contextlib
import copy
import json
import os
import signal
import time
from collections import Counter
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import anyio._backends._asyncio  # noqa: F401
from pydantic import SecretStr

import bulkops.cli.engine

# Imported before forking, so CLI children start warm.
import bulkops.cli.main
import bulkops.jobs  # noqa: F401
from bulkops import testing as forking
from bulkops.api.client import ConsoleClient
from bulkops.emulator import EmulatorState, running_emulator
from bulkops.emulator.seed import EMPTY_KEY, apply_seed
from bulkops.emulator.server import ForkedEmulator, fork_emulator
from bulkops.emulator.state import Faults, KeyInfo
from bulkops.engine.quota import QuotaWindow
from bulkops.settings import Settings

__all__ = [
    "CliRun",
    "Emulator",
    "applied_counts",
    "fork_cli",
    "read_log",
    "run_cli",
    "seeded_state",
    "serve_forked",
    "wait_cli",
]

PROJECT = "empty"


def seeded_state(
    *,
    gates: int = 0,
    experiments: int = 0,
    prefix: str = "seed",
    extra_keys: Mapping[str, str] | None = None,
    calls: Sequence[tuple[str, str, Any]] = (),
) -> EmulatorState:
    """A state with the empty project plus ``gates`` gates (and experiments) made over HTTP."""
    state = EmulatorState()
    apply_seed(state, "empty")
    for key, project in (extra_keys or {}).items():
        state.keys[key] = KeyInfo(project)
    state.quotas_enabled = False

    async def seed() -> None:
        async with running_emulator(state) as url:
            settings = Settings(api_key=SecretStr(EMPTY_KEY), base_url=url)
            async with ConsoleClient(settings) as client:
                for i in range(gates):
                    await client.call(
                        "POST", "/gates", {"name": f"{prefix}_gate_{i}", "description": "seeded"}
                    )
                for i in range(experiments):
                    await client.call(
                        "POST",
                        "/experiments",
                        {"name": f"{prefix}_exp_{i}", "description": "seeded"},
                    )
                for method, path, body in calls:
                    await client.call(method, path, body)

    if gates or experiments or calls:
        asyncio.run(seed())
    state.quotas_enabled = True
    return state


class Emulator(ForkedEmulator):
    """A forked emulator process: its URL, pid and request log."""

    def log(self) -> list[dict[str, Any]]:
        """Every request so far."""
        return read_log(self.log_path)


@contextlib.contextmanager
def serve_forked(
    state: EmulatorState,
    log_path: Path,
    *,
    time_scale: float = 60.0,
    quota: Sequence[str] | None = None,
    quotas_enabled: bool = True,
    faults: str | None = None,
    hang_seconds: float | None = None,
    fault_seed: int = 7,
) -> Iterator[Emulator]:
    """Serve a copy of ``state`` from a forked child until the block ends."""
    state = copy.deepcopy(state)
    state.time_scale = time_scale
    for project in state.projects.values():
        project.quotas.clear()
    if quota:
        state.quota = tuple(QuotaWindow.parse(q) for q in quota)
    state.quotas_enabled = quotas_enabled
    state.faults = Faults.parse(faults) if faults else Faults()
    if hang_seconds is not None:
        state.faults.hang_seconds = hang_seconds
    state.fault_seed = fault_seed
    state.capture = None
    with fork_emulator(state, log_path) as forked:
        yield Emulator(url=forked.url, pid=forked.pid, log_path=forked.log_path)


def read_log(path: Path) -> list[dict[str, Any]]:
    """The request log's entries (a torn last line, from a killed writer, is skipped)."""
    if not path.exists():
        return []
    entries = []
    for line in path.read_text().splitlines():
        with contextlib.suppress(ValueError):
            entries.append(json.loads(line))
    return entries


def applied_counts(entries: Sequence[Mapping[str, Any]]) -> Counter[tuple[str, str]]:
    """How many times each ``(method, path)`` changed state, per the emulator."""
    return Counter((str(e["method"]), str(e["path"])) for e in entries if e.get("applied"))


@dataclass
class CliRun:
    """A CLI process: pid and where its output goes."""

    pid: int
    out: Path
    err: Path
    code: int | None = None
    started: float = field(default_factory=time.monotonic)

    def stdout(self) -> str:
        return self.out.read_text()

    def stderr(self) -> str:
        return self.err.read_text()


def fork_cli(argv: Sequence[str], env: Mapping[str, str], out_dir: Path, tag: str) -> CliRun:
    """Start ``bulkops argv`` in a forked child with ``env`` set; stdin is /dev/null."""
    out, err = out_dir / f"{tag}.out", out_dir / f"{tag}.err"
    return CliRun(pid=forking.fork_cli(argv, env, out, err), out=out, err=err)


def wait_cli(run: CliRun, timeout: float = 120.0) -> int:
    """Wait for a CLI child to exit; its exit code (137 for a failpoint or SIGKILL)."""
    deadline = time.monotonic() + timeout
    while True:
        pid, status = os.waitpid(run.pid, os.WNOHANG)
        if pid:
            if os.WIFSIGNALED(status):
                run.code = 128 + os.WTERMSIG(status)
            else:
                run.code = os.WEXITSTATUS(status)
            return run.code
        if time.monotonic() > deadline:
            os.kill(run.pid, signal.SIGKILL)
            os.waitpid(run.pid, 0)
            raise TimeoutError(f"CLI run did not finish: {run.stderr()[-2000:]}")
        time.sleep(0.01)


def run_cli(argv: Sequence[str], env: Mapping[str, str], out_dir: Path, tag: str) -> CliRun:
    """Run ``bulkops argv`` in a forked child and wait for it."""
    run = fork_cli(argv, env, out_dir, tag)
    wait_cli(run)
    return run
