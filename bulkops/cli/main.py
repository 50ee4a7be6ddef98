"""The ``bulkops`` command line: parse arguments, call one command, map errors to exit codes.

Exit codes (the contract other tools rely on):
    0 all applied or skipped; 1 some items failed or conflicted; 2 bad usage or input
    (nothing sent); 3 refused (lock held, stale plan, corrupt checkpoint, project
    mismatch); 130 interrupted, resumable.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import sys
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import NoReturn

from .. import __version__
from ..errors import (
    BulkOpsError,
    InputError,
    JournalError,
    PlanError,
    RefusedError,
    UsageError,
    redact,
)

__all__ = [
    "EXIT_FAILED",
    "EXIT_INTERRUPTED",
    "EXIT_OK",
    "EXIT_REFUSED",
    "EXIT_USAGE",
    "build_parser",
    "main",
]

EXIT_OK = 0
EXIT_FAILED = 1
EXIT_USAGE = 2
EXIT_REFUSED = 3
EXIT_INTERRUPTED = 130

Command = Callable[[argparse.Namespace], int]


def exit_code_for(exc: BulkOpsError) -> int:
    """The exit code for an error that ended a command."""
    if isinstance(exc, UsageError | InputError | PlanError):
        return EXIT_USAGE
    if isinstance(exc, RefusedError | JournalError):
        return EXIT_REFUSED
    return EXIT_FAILED


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> NoReturn:
        self.print_usage(sys.stderr)
        print(f"FAILED: {message}", file=sys.stderr)
        raise SystemExit(EXIT_USAGE)


def _cmd_emulator(args: argparse.Namespace) -> int:
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
        fd = os.open(args.request_log, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
        log_file = os.fdopen(fd, "a", encoding="utf-8")
        state.request_log = log_file
    try:
        projects = []
        for seed in args.seed or ["demo"]:
            projects += apply_seed(state, seed)
    except ValueError as exc:
        raise UsageError(str(exc)) from exc

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
        print(f"  export STATSIG_API_URL={url}", flush=True)

    try:
        asyncio.run(serve(state, args.host, args.port, on_ready=ready))
    except KeyboardInterrupt:
        print("emulator stopped", file=sys.stderr)
    finally:
        if log_file is not None:
            log_file.close()
    return EXIT_OK


def _add_emulator(sub: argparse._SubParsersAction[_Parser]) -> None:
    p = sub.add_parser(
        "emulator", help="serve a local Console API (the test double and demo stage)"
    )
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
    p.set_defaults(func=_cmd_emulator)


def _add_engine(sub: argparse._SubParsersAction[_Parser]) -> None:
    from .engine import register

    register(sub)


def _add_snapshot(sub: argparse._SubParsersAction[_Parser]) -> None:
    from .snapshot_command import register

    register(sub)


def _add_demo(sub: argparse._SubParsersAction[_Parser]) -> None:
    from .tour import register

    register(sub)


# Command modules register themselves here (see bulkops.commands).
REGISTRARS: list[Callable[[argparse._SubParsersAction[_Parser]], None]] = [
    _add_emulator,
    _add_engine,
    _add_snapshot,
    _add_demo,
]


def build_parser() -> argparse.ArgumentParser:
    """The argument parser for every command."""
    parser = _Parser(
        prog="bulkops", description="Safe bulk operations for the Statsig Console API."
    )
    parser.add_argument("--version", action="version", version=f"bulkops {__version__}")
    parser.add_argument("--traceback", action="store_true", help="show the traceback of an error")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=_Parser)
    sub.required = True
    for register in REGISTRARS:
        register(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``bulkops`` console script."""
    parser = build_parser()
    args = parser.parse_args(argv)
    func: Command = args.func
    try:
        return func(args)
    except BulkOpsError as exc:
        if args.traceback:
            raise
        print(f"FAILED: {redact(str(exc.message))}", file=sys.stderr)
        if exc.hint:
            print(f"HINT: {exc.hint}", file=sys.stderr)
        return exit_code_for(exc)
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return EXIT_INTERRUPTED


if __name__ == "__main__":  # pragma: no cover
    raise SystemExit(main())
