"""``bulkops snapshot -o FILE``: read a whole project into a seed file for offline rehearsal.

Registered in :data:`bulkops.cli.REGISTRARS`. The key comes from the environment
(``--key-env``, default ``STATSIG_CONSOLE_API_KEY``) and never reaches the file or the
output; the command prints the generated rehearsal key the emulator serves the file with.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import sys
import time
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.markup import escape

from ..api.client import ConsoleClient
from ..logging import configure_logging
from ..settings import API_KEY_ENV, Settings
from .engine import refuse_key_arguments
from .snapshot import read_project, rehearsal_key, snapshot_stats, write_snapshot

__all__ = ["register"]


async def _snapshot(args: argparse.Namespace, out: Console) -> int:
    overrides: dict[str, Any] = {}
    if args.timeout is not None:
        overrides["timeout"] = args.timeout
    settings = Settings.from_env(args.key_env, base_url=args.api_url, **overrides)
    started = time.monotonic()
    async with ConsoleClient(settings) as client:
        snapshot = await read_project(client)
    path: Path = args.output
    write_snapshot(path, snapshot, secrets=(settings.api_key.get_secret_value(),))
    project = snapshot["project"]
    key = rehearsal_key(project["id"])
    out.print(
        f"snapshot of project {escape(project['name'])} ({escape(project['id'])}) written to "
        f"{escape(str(path))} (mode 0600) in {time.monotonic() - started:.1f}s:\n"
        f"  {escape(snapshot_stats(snapshot).describe())}\n"
        f"The file holds no real key. Rehearse offline with:\n"
        f"  bulkops emulator --seed {escape(str(path))} --port 8700\n"
        f"  export STATSIG_API_URL=http://127.0.0.1:8700/console/v1\n"
        f"  export {API_KEY_ENV}={key}",
        highlight=False,
    )
    return 0


def _cmd_snapshot(args: argparse.Namespace) -> int:
    refuse_key_arguments([str(args.output), args.key_env, args.api_url or ""])
    secret = os.environ.get(args.key_env, "")
    close = configure_logging(verbose=args.verbose, secrets=[secret] if secret else [])
    try:
        return asyncio.run(_snapshot(args, Console(file=sys.stdout, soft_wrap=True)))
    finally:
        close()


def _positive(text: str) -> float:
    value = float(text)
    if value <= 0:
        raise argparse.ArgumentTypeError(f"must be positive, got {text}")
    return value


def register(sub: Any) -> None:
    """Add ``snapshot`` to the ``bulkops`` parser."""
    p = sub.add_parser(
        "snapshot", help="read a whole project into a seed file (bulkops emulator --seed FILE)"
    )
    p.add_argument("-o", "--output", type=Path, required=True, help="the snapshot file (0600)")
    p.add_argument(
        "--key-env",
        default=API_KEY_ENV,
        metavar="VAR",
        help=f"environment variable holding the project's key (default {API_KEY_ENV})",
    )
    p.add_argument("--api-url", default=None, help="Console API base URL (or $STATSIG_API_URL)")
    p.add_argument("--timeout", type=_positive, default=None, help="request timeout, seconds")
    p.add_argument("-v", "--verbose", action="store_true")
    p.set_defaults(func=_cmd_snapshot)
