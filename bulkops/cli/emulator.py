"""``bulkops emulator``: serve a local Console API (the test double and the demo's stage).

The emulator itself is :mod:`bulkops.emulator`, imported when the command runs. On
start it prints the URL, each project's keys and the quota, then serves until
Ctrl-C. No key is read from the environment: the seeds carry their own.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import sys
from pathlib import Path

from .. import files
from ..errors import UsageError
from .exit_codes import ExitCode

__all__ = ["emulator_arguments", "emulator_command"]


def emulator_arguments(p: argparse.ArgumentParser) -> None:
    """``bulkops emulator [--port N] [--seed demo|empty|FILE]… [--quota N/SPAN]… …``."""
    p.add_argument("--host", default="127.0.0.1")
    p.add_argument("--port", type=int, default=8700, help="0 picks a free port (printed)")
    p.add_argument(
        "--seed",
        action="append",
        metavar="demo|empty|SNAPSHOT.json",
        help="data to serve; repeatable, one project per snapshot file (default: demo)",
    )
    p.add_argument(
        "--quota",
        action="append",
        metavar="N/SPAN",
        help="mutation quota window, repeatable (default 100/10s and 900/15m)",
    )
    p.add_argument(
        "--id-list-quota",
        action="append",
        metavar="N/SPAN",
        help="segment id-list quota window, repeatable (default 12/10s and 900/15m)",
    )
    p.add_argument("--no-quota", action="store_true", help="do not enforce quotas (benchmarks)")
    p.add_argument(
        "--time-scale",
        type=float,
        default=1.0,
        help="shrink quota windows N times (60 turns 15 min into 15 s)",
    )
    p.add_argument(
        "--faults",
        metavar="429=R,500=R,reset=R,hang=R",
        help="inject faults on mutations at these rates",
    )
    p.add_argument("--fault-seed", type=int, default=None, help="seed for reproducible faults")
    p.add_argument("--hang-seconds", type=float, default=None, help="how long a hang fault holds")
    p.add_argument("--request-log", type=Path, help="append one JSON line per request to FILE")
    p.add_argument(
        "--require-reviews",
        action="store_true",
        help="every project requires reviews (production too): changes sent with "
        "x-respect-review-settings open reviews",
    )


def emulator_command(args: argparse.Namespace) -> int:
    """``bulkops emulator``: serve until interrupted.

    Raises:
        UsageError: a bad quota, fault spec, time scale or seed.
    """
    from ..emulator.handlers.reviews import require_reviews
    from ..emulator.seed import apply_seed
    from ..emulator.server import serve
    from ..emulator.state import EmulatorState, Faults, QuotaWindow

    try:
        quotas = tuple(QuotaWindow.parse(q) for q in args.quota) if args.quota else None
        id_list_quotas = (
            tuple(QuotaWindow.parse(q) for q in args.id_list_quota) if args.id_list_quota else None
        )
        faults = Faults.parse(args.faults) if args.faults else Faults()
    except ValueError as exc:
        raise UsageError(str(exc)) from exc
    if args.time_scale <= 0:
        raise UsageError("--time-scale must be positive")
    if args.hang_seconds is not None:
        faults.hang_seconds = args.hang_seconds
    state = EmulatorState(time_scale=args.time_scale, faults=faults, fault_seed=args.fault_seed)
    if quotas is not None:
        state.quota = quotas
    if id_list_quotas is not None:
        state.id_list_quota = id_list_quotas
    state.quotas_enabled = not args.no_quota
    log_file = None
    if args.request_log:
        fd = files.open_append(args.request_log, what="request log")
        log_file = os.fdopen(fd, "a", encoding="utf-8")
        state.request_log = log_file
    try:
        projects = []
        for seed in args.seed or ["demo"]:
            projects += apply_seed(state, seed)
    except ValueError as exc:
        raise UsageError(str(exc)) from exc
    if args.require_reviews:
        for project in projects:
            require_reviews(project)

    def ready(url: str) -> None:
        print(f"bulkops emulator listening on {url}", flush=True)
        for project in projects:
            keys = [k for k, info in state.keys.items() if info.project_id == project.id]
            for key in keys:
                mode = "read-only" if state.keys[key].read_only else "read-write"
                print(f"  project {project.id} ({project.name}): key {key} [{mode}]", flush=True)
        limits = ", ".join(str(w) for w in state.quota)
        print(
            f"  quota {limits} per project, time scale {args.time_scale:g}"
            + ("" if state.quotas_enabled else " (quotas off)"),
            flush=True,
        )
        if args.require_reviews:
            print(
                "  reviews required in every project: approve with "
                f"POST {url.removesuffix('/console/v1')}/_emulator/reviews/ID/approve",
                flush=True,
            )
        print(f"  export STATSIG_API_URL={url}", flush=True)

    try:
        asyncio.run(serve(state, args.host, args.port, on_ready=ready))
    except KeyboardInterrupt:
        print("emulator stopped", file=sys.stderr)
    finally:
        if log_file is not None:
            log_file.close()
    return ExitCode.OK
