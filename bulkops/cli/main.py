"""The ``bulkops`` command line: the command table, the parser built from it, and ``main``.

:data:`COMMANDS` is the one place commands are registered: an explicit list of
:class:`Command` entries (name, help, the function adding its arguments, its handler),
checked for duplicates when this module is imported. Handlers and argument functions are
named by module (:func:`lazy`), so ``bulkops X`` imports what X needs and nothing else:
the parser adds the options of the command being run only (``bulkops refs`` starts
without aiohttp, pydantic, rich or the emulator). A handler returns the exit code;
:func:`main` turns a :class:`~bulkops.errors.BulkOpsError` into ``FAILED: …`` (and
``HINT: …``, and with ``-v`` ``DETAIL: …``) on stderr and its exit code (and, with
``--json``, a ``bulkops.error/1`` document on stdout), Ctrl-C into 130, SIGTERM into 143,
and a closed stdout (``| head``) into a quiet 141 (the contract is
:mod:`bulkops.cli.exit_codes`).
"""

from __future__ import annotations

import argparse
import contextlib
import importlib
import json
import os
import signal
import sys
from collections.abc import Callable, Collection, Sequence
from dataclasses import dataclass
from types import FrameType
from typing import Any

from .. import __version__
from ..errors import BulkOpsError, redact
from .exit_codes import ExitCode, exit_code_for_error
from .parsing import Parser

__all__ = ["COMMANDS", "Command", "build_parser", "lazy", "main"]


@dataclass(frozen=True)
class Command:
    """One ``bulkops`` command: an entry of :data:`COMMANDS`.

    Attributes:
        name: What is typed (``bulkops NAME``).
        help: Its line in ``bulkops --help``.
        arguments: Adds its options and positionals to its subparser (None: it has none).
        handler: Runs it with the parsed arguments; returns the exit code.
        completion: Adds its arguments as shell completion sees them, when that differs
            (``plan`` and ``run``: each job a sub-command with its own options).
    """

    name: str
    help: str
    handler: Callable[[argparse.Namespace], int]
    arguments: Callable[[argparse.ArgumentParser], None] | None = None
    completion: Callable[[argparse.ArgumentParser], None] | None = None


def lazy(module: str, name: str) -> Callable[..., Any]:
    """``module.name`` (relative to this package), imported on its first call."""

    def call(*args: Any, **kwargs: Any) -> Any:
        function = getattr(importlib.import_module(module, __package__), name)
        return function(*args, **kwargs)

    call.__name__ = call.__qualname__ = name
    call.__doc__ = f"{module}.{name}, imported when first called."
    return call


def _table(*commands: Command) -> tuple[Command, ...]:
    names: set[str] = set()
    for command in commands:
        if command.name in names:
            raise ValueError(f"duplicate command {command.name!r} in the command table")
        names.add(command.name)
    return commands


COMMANDS: tuple[Command, ...] = _table(
    Command(
        "emulator",
        "serve a local Console API (the test double and demo stage)",
        lazy(".emulator", "emulator_command"),
        lazy(".emulator", "emulator_arguments"),
    ),
    Command(
        "jobs",
        "list jobs and their options",
        lazy(".engine", "jobs_command"),
        lazy(".engine", "jobs_arguments"),
    ),
    Command(
        "plan",
        "read-only: per-object diff, counts and ETA; -o writes a plan file",
        lazy(".engine", "plan_command"),
        lazy(".engine", "plan_arguments"),
        lazy(".engine", "plan_completion"),
    ),
    Command(
        "run",
        "plan and, with --apply, apply (dry run by default)",
        lazy(".engine", "run_command"),
        lazy(".engine", "run_arguments"),
        lazy(".engine", "run_completion"),
    ),
    Command(
        "apply",
        "apply exactly a plan file (refused if edited)",
        lazy(".engine", "apply_command"),
        lazy(".engine", "apply_arguments"),
    ),
    Command(
        "resume",
        "continue a checkpoint: reconcile, skip what is done",
        lazy(".engine", "resume_command"),
        lazy(".engine", "resume_arguments"),
    ),
    Command(
        "status",
        "what a checkpoint says (read-only)",
        lazy(".engine", "status_command"),
        lazy(".engine", "status_arguments"),
    ),
    Command(
        "undo",
        "plan (and with --apply, run) the inverse of a checkpoint",
        lazy(".engine", "undo_command"),
        lazy(".engine", "undo_arguments"),
    ),
    Command(
        "snapshot",
        "read a whole project into a seed file (bulkops emulator --seed FILE)",
        lazy(".snapshot", "snapshot_command"),
        lazy(".snapshot", "snapshot_arguments"),
    ),
    Command(
        "refs",
        "where code references the project's gates, configs, experiments (or archived ones)",
        lazy(".refs", "refs_command"),
        lazy(".refs", "refs_arguments"),
    ),
    Command(
        "demo",
        "everything, end to end, on a local emulator (about a minute)",
        lazy(".demo", "demo_command"),
        lazy(".demo", "demo_arguments"),
    ),
    Command(
        "completion",
        "print a tab-completion script: bash, zsh or fish",
        lazy(".completion", "completion_command"),
        lazy(".completion", "completion_arguments"),
    ),
)


def build_parser(
    only: Collection[str] | None = None, *, completing: bool = False
) -> argparse.ArgumentParser:
    """The argument parser for every command of :data:`COMMANDS`, in its order.

    Args:
        only: The commands whose options are added (the others are listed with their
            help, which needs no import); None adds every command's.
        completing: As shell completion sees it (see :attr:`Command.completion`).
    """
    parser = Parser(prog="bulkops", description="Safe bulk operations for the Statsig Console API.")
    parser.add_argument("--version", action="version", version=f"bulkops {__version__}")
    parser.add_argument("--traceback", action="store_true", help="show the traceback of an error")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=Parser)
    sub.required = True
    for command in COMMANDS:
        p = sub.add_parser(command.name, help=command.help)
        arguments = command.completion if completing and command.completion else command.arguments
        if arguments is not None and (only is None or command.name in only):
            arguments(p)
        p.set_defaults(func=command.handler)
    return parser


class _Terminated(KeyboardInterrupt):
    """SIGTERM outside a run (a run turns it into a clean stop of its own): unwinds like
    Ctrl-C, locks released and files closed, and exits 143."""


def _terminate(signum: int, frame: FrameType | None) -> None:
    raise _Terminated


def _quiet_broken_pipe() -> int:
    """stdout's reader went away (``bulkops plan … | head``): no traceback, no message.

    Python's advice: point stdout at /dev/null, so the flush at exit does not fail too.
    """
    devnull = os.open(os.devnull, os.O_WRONLY)
    with contextlib.suppress(OSError):
        os.dup2(devnull, sys.stdout.fileno())
    os.close(devnull)
    return ExitCode.BROKEN_PIPE


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``bulkops`` console script."""
    argv = list(sys.argv[1:] if argv is None else argv)
    names = {c.name for c in COMMANDS}
    # The command is the first argument that names one (global options come before it).
    parser = build_parser([a for a in argv if a in names][:1])
    args = parser.parse_args(argv)
    handler: Callable[[argparse.Namespace], int] = args.func
    previous = signal.signal(signal.SIGTERM, _terminate)
    try:
        return handler(args)
    except BulkOpsError as exc:
        if args.traceback:
            raise
        message = redact(str(exc.message))
        print(f"FAILED: {message}", file=sys.stderr)
        if exc.hint:
            print(f"HINT: {exc.hint}", file=sys.stderr)
        if exc.detail and getattr(args, "verbose", False):
            print(f"DETAIL: {redact(exc.detail)}", file=sys.stderr)
        code = exit_code_for_error(exc)
        if getattr(args, "json", False) is True:  # stdout still carries one document
            from .documents import error_document

            document = error_document(message, redact(exc.hint) if exc.hint else None, code)
            print(json.dumps(document), flush=True)
        return code
    except _Terminated:
        print("terminated", file=sys.stderr)
        return ExitCode.TERMINATED
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return ExitCode.INTERRUPTED
    except BrokenPipeError:
        return _quiet_broken_pipe()
    finally:
        signal.signal(signal.SIGTERM, previous)


if __name__ == "__main__":  # pragma: no cover
    raise SystemExit(main())
