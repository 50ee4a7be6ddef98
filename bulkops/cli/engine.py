"""Argument parsing for the engine's commands: jobs, plan, run, apply, resume, status, undo.

Each command is a pair listed in :data:`bulkops.cli.main.COMMANDS`: ``<name>_arguments``
adds its options to its subparser, ``<name>_command`` turns the parsed arguments into
a call of :mod:`bulkops.cli.commands` through :func:`~bulkops.cli.invocation.invoke`
(keys refused on the command line, read from the environment once, redacted).
``plan`` and ``run`` take the job's own options after its name, generated from its
``Params`` model (a list field is a repeatable option, a bool a ``--flag/--no-flag``
pair); engine options may come before or after the job.
"""

from __future__ import annotations

import argparse
import enum
import types
import typing
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from pydantic import BaseModel

from ..engine.plans import read_plan
from ..engine.quota import QuotaWindow
from ..errors import UsageError
from ..files import check_output
from ..settings import key_env_names
from . import commands
from .invocation import (
    Invocation,
    add_connection_options,
    add_output_options,
    invoke,
    positive_float,
    positive_int,
    refuse_key_arguments,
)
from .job_loading import LoadedJob, builtin_jobs, load_job, parse_params
from .parsing import Parser
from .run_setup import EngineOptions, checkpoint_params

__all__ = [
    "add_job_options",
    "apply_arguments",
    "apply_command",
    "job_options",
    "jobs_arguments",
    "jobs_command",
    "plan_arguments",
    "plan_command",
    "plan_completion",
    "resume_arguments",
    "resume_command",
    "run_arguments",
    "run_command",
    "run_completion",
    "status_arguments",
    "status_command",
    "undo_arguments",
    "undo_command",
]

# Engine option names a job's Params may not reuse.
_RESERVED = {
    "api_url",
    "allow_insecure_http",
    "timeout",
    "no_review_header",
    "review_description",
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
    "quiet",
    "log_format",
    "from_damaged",
}

# Output files, checked before anything is read or sent: (attribute, option).
_OUTPUTS = (
    ("output", "-o"),
    ("report", "--report"),
    ("log_file", "--log-file"),
    ("checkpoint", "--checkpoint"),
)
# Options that do something only when a run applies (``run`` and ``undo`` without
# ``--apply`` are dry runs): given without it, they would be silently ignored.
_APPLY_ONLY = (
    ("checkpoint", "--checkpoint"),
    ("report", "--report"),
    ("yes", "--yes"),
    ("max_mutations", "--max-mutations"),
    ("retry_budget", "--retry-budget"),
)


def _quota(text: str) -> QuotaWindow:
    try:
        return QuotaWindow.parse(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from exc


def _engine_options(p: argparse.ArgumentParser, *, writes: bool, suppress: bool) -> None:
    # Suppressed defaults when the options come after a job's name: what the command
    # line before the job set is then kept (see _job_args).
    d: Any = argparse.SUPPRESS if suppress else None
    off: Any = argparse.SUPPRESS if suppress else False
    add_connection_options(p, default=d)
    add_output_options(p, suppress=suppress)
    p.add_argument(
        "--no-review-header",
        action="store_true",
        default=off,
        help="do not send x-respect-review-settings (recorded in the checkpoint)",
    )
    for flag, what, usual in (
        ("--quota", "mutation", "100/10s and 900/15m"),
        ("--id-list-quota", "segment id-list", "12/10s and 900/15m"),
    ):
        p.add_argument(
            flag,
            type=_quota,
            action="append",
            default=d,
            metavar="N/SPAN",
            help=f"{what} quota window, repeatable (default {usual})",
        )
    p.add_argument(
        "--time-scale",
        type=positive_float,
        default=d,
        help="the server's time runs N times faster (an emulator rehearsal): scales the quota",
    )
    p.add_argument(
        "--max-in-flight", type=positive_int, default=d, help="writes in flight at once (4)"
    )
    p.add_argument("-v", "--verbose", action="store_true", default=off)
    p.add_argument("--log-file", type=Path, default=d, help="append JSON log lines (0600)")
    p.add_argument(
        "--show", type=positive_int, default=d, help="objects and rows shown in a table (50)"
    )
    if not writes:
        return
    p.add_argument(
        "--yes",
        action="store_true",
        default=off,
        help="do not ask for confirmation (required when stdin is not a terminal)",
    )
    p.add_argument(
        "--max-mutations",
        type=positive_int,
        default=d,
        help="refuse plans with more mutations than this",
    )
    p.add_argument("--checkpoint", type=Path, default=d, help="checkpoint file to create")
    p.add_argument("--report", type=Path, default=d, help="per-item report: X.json, X.csv or both")
    p.add_argument(
        "--retry-budget",
        type=float,
        default=d,
        help="retries allowed per first attempt before the run stops (0.2)",
    )
    p.add_argument(
        "--review-description",
        default=d,
        metavar="TEXT",
        help="your words in the description of every review the run opens (recorded in "
        "the checkpoint; the description always names the job, run and checkpoint)",
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


def job_options(job: LoadedJob) -> list[dict[str, Any]]:
    """A job's options for ``bulkops jobs``: flag, type (``N``, ``X``, ``FILE``,
    ``TEXT``, ``FLAG`` or ``CHOICE``), choices, repeatable, required, description, and
    ``usage`` (``--name TYPE (repeatable) (required)``)."""
    out = []
    for name, info in job.params_model.model_fields.items():
        kind, many = _unwrap(info.annotation)
        _, choices = _converter(kind)
        if choices:
            type_name, shown = "CHOICE", "{" + ",".join(choices) + "}"
        elif kind is bool:
            type_name, shown = "FLAG", "(flag)"
        else:
            type_name = {int: "N", float: "X", Path: "FILE"}.get(kind, "TEXT")
            shown = type_name
        flag = "--" + name.replace("_", "-")
        extra = " (repeatable)" if many else ""
        need = " (required)" if info.is_required() else ""
        out.append(
            {
                "flag": flag,
                "type": type_name,
                "choices": choices or [],
                "repeatable": many,
                "required": info.is_required(),
                "description": info.description or "",
                "usage": f"{flag} {shown}{extra}{need}",
            }
        )
    return out


# -- the commands --------------------------------------------------------------------------


def _options(args: argparse.Namespace) -> EngineOptions:
    def get(name: str, default: Any = None) -> Any:
        return getattr(args, name, default)

    return EngineOptions(
        api_url=get("api_url"),
        allow_insecure_http=bool(get("allow_insecure_http", False)),
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
        review_description=get("review_description"),
        output=get("output"),
        show=get("show") or 50,
        apply=bool(get("apply", False)),
        from_damaged=bool(get("from_damaged", False)),
    )


def _all_strings(args: argparse.Namespace) -> list[str]:
    out: list[str] = []
    for value in vars(args).values():
        if isinstance(value, str | Path):
            out.append(str(value))
        elif isinstance(value, list | tuple):
            out.extend(str(v) for v in value)
    return out


def _check_options(args: argparse.Namespace) -> None:
    """Before anything is read or sent: no option that would be ignored, and every
    output file can be written (:func:`bulkops.files.check_output`).

    Raises:
        UsageError: naming the option.
    """
    if args.command in ("run", "undo") and not getattr(args, "apply", False):
        given = [flag for name, flag in _APPLY_ONLY if getattr(args, name, None)]
        if given:
            raise UsageError(
                f"{', '.join(given)}: used only with --apply, and this is a dry run; "
                "nothing was sent",
                hint="add --apply to apply, or leave the option out",
            )
    if args.command == "resume" and getattr(args, "checkpoint", None) is not None:
        raise UsageError(
            "resume takes the checkpoint as its argument (`bulkops resume CKPT`), not "
            "--checkpoint; nothing was sent"
        )
    for name, flag in _OUTPUTS:
        path = getattr(args, name, None)
        if path is not None:
            check_output(Path(path), flag)


def _invoke(args: argparse.Namespace, prepare: Callable[[], Invocation]) -> int:
    return invoke(
        _all_strings(args),
        prepare,
        verbose=bool(getattr(args, "verbose", False)),
        log_file=getattr(args, "log_file", None),
        as_json=bool(getattr(args, "json", False)),
        quiet=bool(getattr(args, "quiet", False)),
        log_format=getattr(args, "log_format", "human"),
        check=lambda: _check_options(args),
    )


def _job_args(args: argparse.Namespace, command: str) -> tuple[LoadedJob, BaseModel]:
    """The job and its validated options; engine options after the job's name are set
    on ``args``. Key-looking job arguments are refused before the job is loaded."""
    refuse_key_arguments([args.job, *args.job_args])
    job = load_job(args.job)
    inner = Parser(
        prog=f"bulkops {command} {args.job}",
        description=job.description.splitlines()[0] if job.description else None,
        epilog="Engine options may also come here (see `bulkops run --help`).",
    )
    _after_the_job(inner, job, command)
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
    before: set[str] = getattr(args, "_given", set())
    for k, v in vars(parsed).items():
        if k in fields or k == "_given":
            continue
        if k in before and k in getattr(parsed, "_given", set()):
            raise UsageError(
                f"--{k.replace('_', '-')} given twice, before and after the job's name "
                "(it takes one value)"
            )
        if isinstance(v, list) and isinstance(getattr(args, k, None), list):
            v = [*getattr(args, k), *v]  # repeatable: both places count
        setattr(args, k, v)
    return job, parse_params(job, values)


def _after_the_job(p: argparse.ArgumentParser, job: LoadedJob, command: str) -> None:
    """What may follow a job's name: its own options, and the engine options again."""
    add_job_options(p, job.params_model)
    _engine_options(p, writes=command == "run", suppress=True)
    if command == "run":
        p.add_argument("--apply", action="store_true", default=argparse.SUPPRESS)
    else:
        p.add_argument("-o", "--output", type=Path, default=argparse.SUPPRESS)


def _job_positionals(p: argparse.ArgumentParser) -> None:
    p.add_argument("job", help="a job name (`bulkops jobs`) or a path to a .py job file")
    p.add_argument("job_args", nargs=argparse.REMAINDER, help="the job's options")


def _jobs_as_subcommands(p: argparse.ArgumentParser, command: str) -> None:
    """For completion only: each built-in job as a sub-command with its own options and
    the engine options that may follow its name."""
    sub = p.add_subparsers(dest="job", metavar="JOB")
    for job in builtin_jobs():
        first = job.description.splitlines()[0] if job.description else job.name
        jp = sub.add_parser(job.name, help=first.partition(": ")[2] or first)
        _after_the_job(jp, job, command)


def plan_completion(p: argparse.ArgumentParser) -> None:
    """``plan``'s arguments as completion sees them: the jobs as sub-commands."""
    _engine_options(p, writes=False, suppress=False)
    p.add_argument("-o", "--output", type=Path, help="write the plan file (0600)")
    _jobs_as_subcommands(p, "plan")


def run_completion(p: argparse.ArgumentParser) -> None:
    """``run``'s arguments as completion sees them: the jobs as sub-commands."""
    _engine_options(p, writes=True, suppress=False)
    p.add_argument("--apply", action="store_true", help="apply (default: dry run)")
    _jobs_as_subcommands(p, "run")


def _checkpoint_positional(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "checkpoint_path",
        type=Path,
        metavar="CKPT",
        help="a checkpoint written by apply, run --apply, resume or undo --apply",
    )


def jobs_arguments(p: argparse.ArgumentParser) -> None:
    """``bulkops jobs [--json] [--quiet]``."""
    add_output_options(p)


def jobs_command(args: argparse.Namespace) -> int:
    """``bulkops jobs``."""
    return _invoke(args, lambda: Invocation(lambda ui, keys: commands.list_jobs(ui, job_options)))


def plan_arguments(p: argparse.ArgumentParser) -> None:
    """``bulkops plan [engine options] JOB [job options]``."""
    _engine_options(p, writes=False, suppress=False)
    p.add_argument("-o", "--output", type=Path, help="write the plan file (0600)")
    _job_positionals(p)


def run_arguments(p: argparse.ArgumentParser) -> None:
    """``bulkops run [engine options] [--apply] JOB [job options]``."""
    _engine_options(p, writes=True, suppress=False)
    p.add_argument("--apply", action="store_true", help="apply (default: dry run)")
    _job_positionals(p)


def _job_command(args: argparse.Namespace, command: str) -> int:
    job, params = _job_args(args, command)
    run = command == "run"
    return _invoke(
        args,
        lambda: Invocation(
            lambda ui, keys: commands.plan_job(job, params, keys, _options(args), ui, run=run),
            key_env_names(params.model_dump(mode="json")),
        ),
    )


def plan_command(args: argparse.Namespace) -> int:
    """``bulkops plan``."""
    return _job_command(args, "plan")


def run_command(args: argparse.Namespace) -> int:
    """``bulkops run``."""
    return _job_command(args, "run")


def apply_arguments(p: argparse.ArgumentParser) -> None:
    """``bulkops apply [engine options] PLAN``."""
    _engine_options(p, writes=True, suppress=False)
    p.add_argument(
        "plan", type=Path, metavar="PLAN", help="a plan file written by `bulkops plan -o PLAN`"
    )


def apply_command(args: argparse.Namespace) -> int:
    """``bulkops apply``: the plan file is read (and verified) before logging starts, as
    its job options name the key variables."""

    def prepare() -> Invocation:
        plan = read_plan(args.plan)
        return Invocation(
            lambda ui, keys: commands.apply_plan(plan, keys, _options(args), ui),
            key_env_names(plan.header.params),
        )

    return _invoke(args, prepare)


def resume_arguments(p: argparse.ArgumentParser) -> None:
    """``bulkops resume [engine options] CKPT``."""
    _engine_options(p, writes=True, suppress=False)
    _checkpoint_positional(p)


def _checkpoint_command(args: argparse.Namespace, command: commands.CheckpointCommand) -> int:
    # The key variables are those the checkpoint's plan names.
    return _invoke(
        args,
        lambda: Invocation(
            lambda ui, keys: command(args.checkpoint_path, keys, _options(args), ui),
            key_env_names(checkpoint_params(args.checkpoint_path)),
        ),
    )


def resume_command(args: argparse.Namespace) -> int:
    """``bulkops resume``."""
    return _checkpoint_command(args, commands.resume)


def status_arguments(p: argparse.ArgumentParser) -> None:
    """``bulkops status CKPT [--json]``."""
    _checkpoint_positional(p)
    add_output_options(p)
    p.add_argument("--show", type=positive_int, default=20, help="problems and keys listed (20)")


def status_command(args: argparse.Namespace) -> int:
    """``bulkops status``."""
    return _invoke(
        args,
        lambda: Invocation(
            lambda ui, keys: commands.status(args.checkpoint_path, ui, show=args.show)
        ),
    )


def undo_arguments(p: argparse.ArgumentParser) -> None:
    """``bulkops undo [engine options] CKPT [--apply]``."""
    _engine_options(p, writes=True, suppress=False)
    _checkpoint_positional(p)
    p.add_argument("--apply", action="store_true", help="apply the undo (default: dry run)")
    p.add_argument(
        "--from-damaged",
        action="store_true",
        help="a checkpoint damaged before its end: undo what its verified records applied",
    )


def undo_command(args: argparse.Namespace) -> int:
    """``bulkops undo``."""
    return _checkpoint_command(args, commands.undo)
