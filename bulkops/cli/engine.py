"""Argument parsing for the engine's commands: jobs, plan, apply, run, resume, status, undo.

Registered in :data:`bulkops.cli.REGISTRARS`. ``plan`` and ``run`` take the job's own
options after its name, generated from its ``Params`` model (a list field is a
repeatable option, a bool a ``--flag/--no-flag`` pair); engine options may come before
or after the job. Keys are read from the environment only: an argument that looks like
a key (``console-…``, ``secret-…``) is refused before anything else happens.
"""

from __future__ import annotations

import argparse
import asyncio
import enum
import os
import re
import sys
import types
import typing
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from pydantic import BaseModel
from rich.console import Console

from ..engine.quota import QuotaWindow
from ..errors import UsageError
from ..logging import configure_logging
from ..settings import API_KEY_ENV
from . import commands

__all__ = ["ENGINE_COMMANDS", "job_option_lines", "refuse_key_arguments", "register"]

ENGINE_COMMANDS = ("jobs", "plan", "apply", "run", "resume", "status", "undo")

# A Console API key or server secret pasted into argv (visible in `ps` and shell history).
_KEY_ARG = re.compile(r"(^|[=\s,:])(console|secret)-[A-Za-z0-9_\-]{6,}")

# Engine option names a job's Params may not reuse.
_RESERVED = {
    "api_url",
    "timeout",
    "no_review_header",
    "quota",
    "id_list_quota",
    "time_scale",
    "max_in_flight",
    "retry_budget",
    "yes",
    "max_mutations",
    "checkpoint",
    "report",
    "output",
    "show",
    "apply",
    "log_file",
    "verbose",
    "json",
}


def refuse_key_arguments(values: Sequence[str]) -> None:
    """Refuse any argument that looks like an API key (the key itself is never echoed).

    Raises:
        UsageError: naming the argument's position only.
    """
    for index, value in enumerate(values, start=1):
        if isinstance(value, str) and _KEY_ARG.search(value):
            raise UsageError(
                f"argument {index} looks like an API key; keys are never taken from the "
                "command line (they show in `ps` and shell history)",
                hint=f"export {API_KEY_ENV}=… and run again",
            )


def _quota(text: str) -> QuotaWindow:
    try:
        return QuotaWindow.parse(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from exc


def _positive_float(text: str) -> float:
    value = float(text)
    if value <= 0:
        raise argparse.ArgumentTypeError(f"must be positive, got {text}")
    return value


def _positive_int(text: str) -> int:
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be at least 1, got {text}")
    return value


def _engine_options(p: argparse.ArgumentParser, *, writes: bool, suppress: bool) -> None:
    d: Any = argparse.SUPPRESS if suppress else None
    p.add_argument("--api-url", default=d, help="Console API base URL (or $STATSIG_API_URL)")
    p.add_argument("--timeout", type=_positive_float, default=d, help="request timeout, seconds")
    p.add_argument(
        "--no-review-header",
        action="store_true",
        default=argparse.SUPPRESS if suppress else False,
        help="do not send x-respect-review-settings (recorded in the checkpoint)",
    )
    p.add_argument(
        "--quota",
        type=_quota,
        action="append",
        default=d,
        metavar="N/SPAN",
        help="mutation quota window, repeatable (default 100/10s and 900/15m)",
    )
    p.add_argument(
        "--id-list-quota",
        type=_quota,
        action="append",
        default=d,
        metavar="N/SPAN",
        help="segment id-list quota window, repeatable (default 12/10s and 900/15m)",
    )
    p.add_argument(
        "--time-scale",
        type=_positive_float,
        default=d,
        help="the server's time runs N times faster (an emulator rehearsal): scales the quota",
    )
    p.add_argument(
        "--max-in-flight", type=_positive_int, default=d, help="writes in flight at once (4)"
    )
    p.add_argument(
        "-v", "--verbose", action="store_true", default=argparse.SUPPRESS if suppress else False
    )
    p.add_argument("--log-file", type=Path, default=d, help="append JSON log lines (0600)")
    p.add_argument("--show", type=int, default=d, help="objects shown in a diff (50)")
    if writes:
        p.add_argument(
            "--yes",
            action="store_true",
            default=argparse.SUPPRESS if suppress else False,
            help="do not ask for confirmation (required when stdin is not a terminal)",
        )
        p.add_argument(
            "--max-mutations",
            type=_positive_int,
            default=d,
            help="refuse plans with more mutations than this",
        )
        p.add_argument("--checkpoint", type=Path, default=d, help="checkpoint file to create")
        p.add_argument(
            "--report", type=Path, default=d, help="per-item report: X.json, X.csv or both"
        )
        p.add_argument(
            "--retry-budget",
            type=float,
            default=d,
            help="retries allowed per first attempt before the run stops (0.2)",
        )


# -- job options from Params ----------------------------------------------------------


def _unwrap(annotation: Any) -> tuple[Any, bool]:
    """(inner type, is_list) with Optional removed."""
    origin = typing.get_origin(annotation)
    if origin in (typing.Union, types.UnionType):
        args = [a for a in typing.get_args(annotation) if a is not type(None)]
        if len(args) == 1:
            return _unwrap(args[0])
        return str, False
    if origin in (list, tuple, set, frozenset, Sequence):
        inner = typing.get_args(annotation)
        return (inner[0] if inner else str), True
    return annotation, False


def _converter(kind: Any) -> tuple[Callable[[str], Any], list[str] | None]:
    if typing.get_origin(kind) is typing.Literal:
        choices = [str(c) for c in typing.get_args(kind)]
        return str, choices
    if isinstance(kind, type) and issubclass(kind, enum.Enum):
        return str, [str(e.value) for e in kind]
    if kind in (int, float, Path):
        return kind, None
    return str, None


def add_job_options(parser: argparse.ArgumentParser, model: type[BaseModel]) -> None:
    """Add one option per field of a job's ``Params``."""
    for name, info in model.model_fields.items():
        if name in _RESERVED:
            raise UsageError(f"job option {name!r} clashes with an engine option")
        flag = "--" + name.replace("_", "-")
        kind, many = _unwrap(info.annotation)
        help_text = info.description or ""
        required = info.is_required()
        if kind is bool and not many:
            parser.add_argument(
                flag,
                dest=name,
                action=argparse.BooleanOptionalAction,
                default=argparse.SUPPRESS,
                help=help_text,
                required=required,
            )
            continue
        conv, choices = _converter(kind)
        parser.add_argument(
            flag,
            dest=name,
            type=conv,
            choices=choices,
            action="append" if many else "store",
            default=argparse.SUPPRESS,
            required=required,
            help=help_text + (" (repeatable)" if many else ""),
        )


def job_option_lines(job: commands.LoadedJob) -> list[str]:
    """``--name TYPE  description`` lines for ``bulkops jobs``."""
    lines = []
    for name, info in job.params_model.model_fields.items():
        kind, many = _unwrap(info.annotation)
        _, choices = _converter(kind)
        if choices:
            type_name = "{" + ",".join(choices) + "}"
        elif kind is bool:
            type_name = "(flag)"
        else:
            type_name = {int: "N", float: "X", Path: "FILE"}.get(kind, "TEXT")
        flags = "--" + name.replace("_", "-")
        extra = " (repeatable)" if many else ""
        need = " (required)" if info.is_required() else ""
        lines.append(f"{flags} {type_name}{extra}{need}  {info.description or ''}".rstrip())
    return lines


# -- running a command ----------------------------------------------------------------


def _ui() -> commands.Ui:
    out = Console(file=sys.stdout, soft_wrap=True)
    err = Console(file=sys.stderr, soft_wrap=True)
    return commands.Ui(
        out=out,
        err=err,
        interactive=sys.stdin.isatty(),
        live=sys.stderr.isatty(),
    )


def _options(args: argparse.Namespace) -> commands.EngineOptions:
    def get(name: str, default: Any = None) -> Any:
        return getattr(args, name, default)

    return commands.EngineOptions(
        api_url=get("api_url"),
        timeout=get("timeout"),
        no_review_header=bool(get("no_review_header", False)),
        quotas=tuple(get("quota")) if get("quota") else None,
        id_list_quotas=tuple(get("id_list_quota")) if get("id_list_quota") else None,
        time_scale=get("time_scale"),
        max_in_flight=get("max_in_flight"),
        retry_budget=get("retry_budget"),
        yes=bool(get("yes", False)),
        max_mutations=get("max_mutations"),
        checkpoint=get("checkpoint"),
        report=get("report"),
        output=get("output"),
        show=get("show") or 50,
        apply=bool(get("apply", False)),
    )


def _all_strings(args: argparse.Namespace) -> list[str]:
    out: list[str] = []
    for value in vars(args).values():
        if isinstance(value, str | Path):
            out.append(str(value))
        elif isinstance(value, list | tuple):
            out.extend(str(v) for v in value)
    return out


def _run(args: argparse.Namespace, action: Callable[[commands.Ui], Any]) -> int:
    refuse_key_arguments(_all_strings(args))
    secret = os.environ.get(API_KEY_ENV, "")
    close = configure_logging(
        verbose=bool(getattr(args, "verbose", False)),
        log_file=getattr(args, "log_file", None),
        secrets=[secret] if secret else [],
    )
    try:
        result = action(_ui())
        if asyncio.iscoroutine(result):
            result = asyncio.run(result)
        return int(result)
    finally:
        close()


def _job_args(args: argparse.Namespace, command: str) -> tuple[commands.LoadedJob, Any]:
    refuse_key_arguments([args.job, *args.job_args])
    job = commands.load_job(args.job)
    inner = argparse.ArgumentParser(
        prog=f"bulkops {command} {args.job}",
        description=job.description.splitlines()[0] if job.description else None,
        epilog="Engine options may also come here (see `bulkops run --help`).",
    )
    add_job_options(inner, job.params_model)
    _engine_options(inner, writes=command == "run", suppress=True)
    if command == "run":
        inner.add_argument("--apply", action="store_true", default=argparse.SUPPRESS)
    else:
        inner.add_argument("-o", "--output", type=Path, default=argparse.SUPPRESS)
    try:
        parsed = inner.parse_args(args.job_args)
    except SystemExit as exc:
        if exc.code in (0, None):
            raise
        raise UsageError(
            f"bad options for job {job.name} (see `bulkops {command} {args.job} --help`)"
        ) from None
    fields = set(job.params_model.model_fields)
    values = {k: v for k, v in vars(parsed).items() if k in fields}
    for k, v in vars(parsed).items():
        if k not in fields:
            setattr(args, k, v)
    return job, commands.parse_params(job, values)


def _cmd_jobs(args: argparse.Namespace) -> int:
    return _run(args, lambda ui: commands.list_jobs(ui, job_option_lines))


def _cmd_plan(args: argparse.Namespace) -> int:
    job, params = _job_args(args, "plan")
    return _run(args, lambda ui: commands.plan_job(job, params, _options(args), ui, run=False))


def _cmd_run(args: argparse.Namespace) -> int:
    job, params = _job_args(args, "run")
    return _run(args, lambda ui: commands.plan_job(job, params, _options(args), ui, run=True))


def _cmd_apply(args: argparse.Namespace) -> int:
    return _run(args, lambda ui: commands.apply_plan_file(args.plan, _options(args), ui))


def _cmd_resume(args: argparse.Namespace) -> int:
    return _run(args, lambda ui: commands.resume(args.checkpoint_path, _options(args), ui))


def _cmd_status(args: argparse.Namespace) -> int:
    return _run(args, lambda ui: commands.status(args.checkpoint_path, ui, as_json=args.json))


def _cmd_undo(args: argparse.Namespace) -> int:
    return _run(args, lambda ui: commands.undo(args.checkpoint_path, _options(args), ui))


def register(sub: Any) -> None:
    """Add the engine's commands to the ``bulkops`` parser."""
    p = sub.add_parser("jobs", help="list jobs and their options")
    p.set_defaults(func=_cmd_jobs)

    for name, helptext in (
        ("plan", "read-only: per-object diff, counts and ETA; -o writes a plan file"),
        ("run", "plan and, with --apply, apply (dry run by default)"),
    ):
        p = sub.add_parser(name, help=helptext)
        _engine_options(p, writes=name == "run", suppress=False)
        if name == "run":
            p.add_argument("--apply", action="store_true", help="apply (default: dry run)")
        else:
            p.add_argument("-o", "--output", type=Path, help="write the plan file (0600)")
        p.add_argument("job", help="a job name (`bulkops jobs`) or a path to a .py job file")
        p.add_argument("job_args", nargs=argparse.REMAINDER, help="the job's options")
        p.set_defaults(func=_cmd_plan if name == "plan" else _cmd_run)

    p = sub.add_parser("apply", help="apply exactly a plan file (refused if edited)")
    _engine_options(p, writes=True, suppress=False)
    p.add_argument("plan", type=Path)
    p.set_defaults(func=_cmd_apply)

    p = sub.add_parser("resume", help="continue a checkpoint: reconcile, skip what is done")
    _engine_options(p, writes=True, suppress=False)
    p.add_argument("checkpoint_path", type=Path, metavar="CKPT")
    p.set_defaults(func=_cmd_resume)

    p = sub.add_parser("status", help="what a checkpoint says (read-only)")
    p.add_argument("checkpoint_path", type=Path, metavar="CKPT")
    p.add_argument("--json", action="store_true", help="machine-readable")
    p.set_defaults(func=_cmd_status)

    p = sub.add_parser("undo", help="plan (and with --apply, run) the inverse of a checkpoint")
    _engine_options(p, writes=True, suppress=False)
    p.add_argument("checkpoint_path", type=Path, metavar="CKPT")
    p.add_argument("--apply", action="store_true", help="apply the undo (default: dry run)")
    p.set_defaults(func=_cmd_undo)
