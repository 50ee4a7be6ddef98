"""The ``bulkops`` command line: the command table, the parser built from it, and ``main``.

:data:`COMMANDS` is the one place commands are registered: an explicit list of
:class:`Command` entries (name, help, the function adding its arguments, its handler),
checked for duplicates when this module is imported. A handler returns the exit code;
:func:`main` turns a :class:`~bulkops.errors.BulkOpsError` into ``FAILED: …`` (and
``HINT: …``, and with ``-v`` ``DETAIL: …``) on stderr and its exit code, Ctrl-C into 130,
SIGTERM into 143, and a closed stdout (``| head``) into a quiet 141 (the contract is
:mod:`bulkops.cli.exit_codes`).
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import signal
import sys
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from types import FrameType

from .. import __version__
from ..errors import BulkOpsError, redact
from . import engine
from .completion import completion_arguments, completion_command
from .demo import demo_arguments, demo_command
from .documents import error_document
from .emulator import emulator_arguments, emulator_command
from .exit_codes import ExitCode, exit_code_for_error
from .invocation import Parser
from .snapshot import snapshot_arguments, snapshot_command

__all__ = ["COMMANDS", "Command", "build_parser", "main"]


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
        emulator_command,
        emulator_arguments,
    ),
    Command("jobs", "list jobs and their options", engine.jobs_command, engine.jobs_arguments),
    Command(
        "plan",
        "read-only: per-object diff, counts and ETA; -o writes a plan file",
        engine.plan_command,
        engine.plan_arguments,
        engine.plan_completion,
    ),
    Command(
        "run",
        "plan and, with --apply, apply (dry run by default)",
        engine.run_command,
        engine.run_arguments,
        engine.run_completion,
    ),
    Command(
        "apply",
        "apply exactly a plan file (refused if edited)",
        engine.apply_command,
        engine.apply_arguments,
    ),
    Command(
        "resume",
        "continue a checkpoint: reconcile, skip what is done",
        engine.resume_command,
        engine.resume_arguments,
    ),
    Command(
        "status",
        "what a checkpoint says (read-only)",
        engine.status_command,
        engine.status_arguments,
    ),
    Command(
        "undo",
        "plan (and with --apply, run) the inverse of a checkpoint",
        engine.undo_command,
        engine.undo_arguments,
    ),
    Command(
        "snapshot",
        "read a whole project into a seed file (bulkops emulator --seed FILE)",
        snapshot_command,
        snapshot_arguments,
    ),
    Command(
        "demo",
        "everything, end to end, on a local emulator (3 minutes)",
        demo_command,
        demo_arguments,
    ),
    Command(
        "completion",
        "print a tab-completion script: bash, zsh or fish",
        lambda args: completion_command(lambda: build_parser(completing=True))(args),
        completion_arguments,
    ),
)


def build_parser(*, completing: bool = False) -> argparse.ArgumentParser:
    """The argument parser for every command of :data:`COMMANDS`, in its order
    (``completing``: as shell completion sees it, see :attr:`Command.completion`)."""
    parser = Parser(prog="bulkops", description="Safe bulk operations for the Statsig Console API.")
    parser.add_argument("--version", action="version", version=f"bulkops {__version__}")
    parser.add_argument("--traceback", action="store_true", help="show the traceback of an error")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=Parser)
    sub.required = True
    for command in COMMANDS:
        p = sub.add_parser(command.name, help=command.help)
        arguments = command.completion if completing and command.completion else command.arguments
        if arguments is not None:
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
    parser = build_parser()
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
        if getattr(args, "json", False):  # stdout still carries one document
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
