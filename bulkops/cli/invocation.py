"""One command run the way every command that uses a key runs: keys read once, redacted.

:func:`invoke` is what ``jobs``, ``plan``, ``run``, ``apply``, ``resume``, ``status``,
``undo`` and ``snapshot`` do around their own work, in this order:

1. refuse any argument that looks like a key (:func:`refuse_key_arguments`): keys are
   read from the environment only;
2. ``prepare()``: the cheap reads that decide which key variables the command uses (a
   plan file's or a checkpoint's job options) and the command itself, an
   :class:`Invocation`;
3. read those variables once (:meth:`bulkops.settings.ApiKeys.read`);
4. configure logging with every key read as a secret to redact, before anything runs;
5. run the command with a terminal :class:`~bulkops.cli.output.Ui` (``asyncio.run``
   once); an error it ends with has those keys scrubbed from its message and hint
   before :func:`bulkops.cli.main.main` prints them;
6. close the log file.

Also what the commands' arguments share: the connection options
(:func:`add_connection_options`) and the number types (:func:`positive_float`,
:func:`positive_int`).
"""

from __future__ import annotations

import argparse
import asyncio
import os
from collections.abc import Callable, Coroutine, Sequence
from pathlib import Path
from typing import Any, NamedTuple

from ..errors import BulkOpsError, UsageError, redact
from ..keyguard import KeyGuard
from ..logging import configure_logging
from ..settings import API_KEY_ENV, ApiKeys
from .output import Ui

__all__ = [
    "Invocation",
    "add_connection_options",
    "add_output_options",
    "invoke",
    "positive_float",
    "positive_int",
    "refuse_key_arguments",
]

# A Console API key or server secret pasted into argv (visible in `ps` and shell history).
Action = Callable[[Ui, ApiKeys], Coroutine[Any, Any, int] | int]


class Invocation(NamedTuple):
    """What a command runs, and the variables holding the keys it may use."""

    action: Action
    key_envs: Sequence[str] = (API_KEY_ENV,)


def refuse_key_arguments(values: Sequence[str]) -> None:
    """Refuse any argument that looks like an API key (the key itself is never echoed).

    Raises:
        UsageError: naming the argument's position only.
    """
    # Key-shaped tokens, as the key guard sees them (a name such as ``console-v2-rollout``
    # or a pattern ``console-*`` is not one), and the key this environment holds.
    guard = KeyGuard.of(v for v in (os.environ.get(API_KEY_ENV, ""),) if v)
    for index, value in enumerate(values, start=1):
        if isinstance(value, str) and guard.holds_key(value):
            raise UsageError(
                f"argument {index} looks like an API key; keys are never taken from the "
                "command line (they show in `ps` and shell history)",
                hint=f"export {API_KEY_ENV}=… and run again",
            )


def positive_float(text: str) -> float:
    """An argparse type: a number above 0."""
    value = float(text)
    if value <= 0:
        raise argparse.ArgumentTypeError(f"must be positive, got {text}")
    return value


def positive_int(text: str) -> int:
    """An argparse type: a whole number of at least 1."""
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be at least 1, got {text}")
    return value


def add_output_options(parser: argparse.ArgumentParser, *, suppress: bool = False) -> None:
    """``--json``, ``-q/--quiet`` and ``--log-format`` (``suppress``: no defaults, for
    options that may come again after a job's name)."""
    off: Any = argparse.SUPPRESS if suppress else False
    parser.add_argument(
        "--json",
        action="store_true",
        default=off,
        help="print one JSON document on stdout (its schema is named in it); the human "
        "display goes to stderr",
    )
    parser.add_argument(
        "-q",
        "--quiet",
        action="store_true",
        default=off,
        help="print only errors, warnings and the final summary line",
    )
    parser.add_argument(
        "--log-format",
        choices=("human", "json"),
        default=argparse.SUPPRESS if suppress else "human",
        help="warnings on stderr as human lines (default) or JSON lines",
    )


def add_connection_options(parser: argparse.ArgumentParser, *, default: Any = None) -> None:
    """``--api-url``, ``--allow-insecure-http`` and ``--timeout`` (``default`` for each
    when not given)."""
    parser.add_argument(
        "--api-url",
        default=default,
        help="Console API base URL (or $STATSIG_API_URL; a bare https://HOST gets /console/v1)",
    )
    parser.add_argument(
        "--allow-insecure-http",
        action="store_true",
        default=False if default is None else default,
        help="allow a plain http:// API URL on another host (the key crosses the network "
        "in clear text; warned on every run)",
    )
    parser.add_argument(
        "--timeout", type=positive_float, default=default, help="request timeout, seconds"
    )


def _scrub(exc: BulkOpsError, secrets: Sequence[str]) -> None:
    # A server or a job may echo a key back in an error; the redactor's secrets are
    # the keys read, and main() prints the message and hint.
    exc.message = redact(exc.message, *secrets)
    if exc.hint:
        exc.hint = redact(exc.hint, *secrets)
    if exc.detail:
        exc.detail = redact(exc.detail, *secrets)
    exc.args = tuple(redact(a, *secrets) if isinstance(a, str) else a for a in exc.args)


def invoke(
    arguments: Sequence[str],
    prepare: Callable[[], Invocation],
    *,
    verbose: bool = False,
    log_file: Path | None = None,
    as_json: bool = False,
    quiet: bool = False,
    log_format: str = "human",
    check: Callable[[], None] | None = None,
) -> int:
    """Run a command: see the module docstring for the steps.

    Args:
        arguments: The command-line values to check for keys, in the order their
            positions are reported.
        prepare: Reads what decides the key variables; returns the command to run.
        verbose: Info events on the console too.
        log_file: Append every event as a JSON line (0600).
        as_json, quiet: The output contract (:meth:`bulkops.cli.output.Ui.terminal`).
        log_format: How events reach the console: ``human`` lines or ``json``.
        check: Checks the command's output files before anything else is done.

    Returns:
        The command's exit code.

    Raises:
        BulkOpsError: the command's, with the keys read taken out of its message.
    """
    refuse_key_arguments(arguments)
    if check is not None:
        check()
    invocation = prepare()
    keys = ApiKeys.read(invocation.key_envs)
    secrets = keys.secrets()
    close = configure_logging(
        verbose=verbose, log_file=log_file, secrets=secrets, log_format=log_format
    )
    try:
        result = invocation.action(Ui.terminal(as_json=as_json, quiet=quiet), keys)
        if not isinstance(result, int):
            result = asyncio.run(result)
        return int(result)
    except BulkOpsError as exc:
        _scrub(exc, secrets)
        raise
    finally:
        close()
