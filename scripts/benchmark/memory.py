"""Memory: the peak RSS of planning over a large project, in a fresh interpreter.

``memory`` in ``bench/results.json``: the peak RSS of a fresh ``bulkops plan`` process:
archive-gates ``--stale`` over a 50,000-gate project, and import-overrides of 100,000
rows over 50 targets (smaller with ``--quick``). The two plans run side by side, each
against its own emulator.
"""

from __future__ import annotations

import contextlib
import copy
import os
import subprocess
import sys
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from bulkops.emulator.state import EmulatorState
from bulkops.settings import API_KEY_ENV, API_URL_ENV
from bulkops.testing import cli_env

from .common import NO_QUOTA, demo_state, live_gates, override_rows, serve
from .section import BenchConfig, Say, Section, Target

__all__ = ["SECTION", "run", "targets"]


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


def _probe_plan(
    stack: contextlib.ExitStack,
    state: EmulatorState,
    key: str,
    tmp: Path,
    tag: str,
    job: Sequence[str],
    build: Callable[[EmulatorState], None] | None = None,
) -> _Probe:
    """Serve ``state`` (``build`` runs in the emulator) for the block of ``stack``, and
    start ``bulkops plan JOB…`` against it in a fresh interpreter."""
    emu = stack.enter_context(serve(state, tmp / f"{tag}.log", quotas=False, build=build))
    argv = ["plan", *NO_QUOTA, "--show", "10", "-o", str(tmp / f"{tag}.plan"), *job]
    return _start_probe(argv, cli_env(key, emu.url, tmp / f"state-{tag}"), tmp, tag)


def run(cfg: BenchConfig, tmp: Path, say: Say) -> dict[str, Any]:
    """Peak RSS of planning an archive over many gates and an import of many rows.

    The two plans run side by side, each in a fresh interpreter against its own
    emulator (peak memory does not depend on what else the machine runs; the plan
    times reported beside it do a little).
    """
    from bulkops.jobs import JOBS

    state, demo = demo_state()
    key, source = demo["source_key"], demo["source_id"]
    out: dict[str, Any] = {"gates": cfg.memory_gates, "rows": cfg.memory_rows,
                           "targets": cfg.memory_targets}  # fmt: skip
    probes: dict[str, _Probe] = {}
    with contextlib.ExitStack() as stack:
        if "archive-gates" in JOBS:
            say(f"memory: plan archive-gates --stale over {cfg.memory_gates:,} gates")
            build = _grow_gates(cfg.memory_gates, source)
            probes["plan_50k_gates"] = _probe_plan(
                stack, state, key, tmp, "memory-gates", ["archive-gates", "--stale"], build
            )
        else:
            out["plan_50k_gates_mb"] = None
            out["plan_50k_gates_note"] = "archive-gates not available in this tree yet"
        if "import-overrides" in JOBS:
            say(
                f"memory: plan import-overrides of {cfg.memory_rows:,} rows over "
                f"{cfg.memory_targets} targets"
            )
            gates = live_gates(state, source, cfg.memory_targets)
            rows = override_rows(tmp / "memory-rows.csv", gates, cfg.memory_rows)
            probes["import_100k_rows"] = _probe_plan(
                stack, state, key, tmp, "memory-rows", ["import-overrides", "--file", str(rows)]
            )
        else:
            out["import_100k_rows_mb"] = None
            out["import_100k_rows_note"] = "import-overrides not available in this tree yet"
        for name, probe in probes.items():
            row = probe.result()
            out[f"{name}_mb"] = row.pop("mb")
            out[f"{name}_s"] = row.pop("seconds")
            out[f"{name}_detail"] = row
    return out


def targets(memory: Mapping[str, Any]) -> list[Target]:
    """Each plan process peaks at 200 MB at most (None where the job is missing)."""
    out: list[Target] = []
    for key, label in (("plan_50k_gates_mb", f"memory: plan archive, {memory['gates']:,} gates (MB)"),
                       ("import_100k_rows_mb", f"memory: plan import, {memory['rows']:,} rows (MB)")):  # fmt: skip
        value = memory.get(key)
        detail = memory.get(key.replace("_mb", "_detail")) or {}
        met = None if value is None else value <= 200 and detail.get("exit_code") == 0
        out.append(Target(label, value, "≤ 200", met))
    return out


SECTION = Section("memory", run, targets)
