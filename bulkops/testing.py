"""``bulkops`` in a forked child process, for the benchmark and the process tests.

Forking the already-imported tool starts a real process (own pid, own locks, killable
with ``SIGKILL``) in milliseconds instead of the second an interpreter takes to start.
"""

from __future__ import annotations

import contextlib
import os
import signal
import sys
from collections.abc import Mapping, Sequence
from pathlib import Path

import structlog

from .engine.failpoints import FAILPOINT_ENV
from .settings import API_KEY_ENV, API_URL_ENV

__all__ = ["fork_cli"]


def fork_cli(argv: Sequence[str], env: Mapping[str, str], out: Path, err: Path) -> int:
    """Start ``bulkops argv`` in a forked child; its pid (reap it with ``os.waitpid``).

    The child reads /dev/null, writes stdout to ``out`` and stderr to ``err`` (created
    0600), runs with ``env`` on top of the parent's environment minus the key, URL and
    failpoint variables, and exits with the command's exit code (99 for a crash).
    """
    sys.stdout.flush()
    sys.stderr.flush()
    pid = os.fork()
    if pid:
        return pid
    code = 1  # the bulkops process from here on
    try:
        os.dup2(os.open(os.devnull, os.O_RDONLY), 0)
        os.dup2(os.open(out, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600), 1)
        os.dup2(os.open(err, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600), 2)
        sys.stdin = open(0, closefd=False)
        sys.stdout = open(1, "w", closefd=False, buffering=1)
        sys.stderr = open(2, "w", closefd=False, buffering=1)
        for name in (API_KEY_ENV, API_URL_ENV, FAILPOINT_ENV):
            os.environ.pop(name, None)
        os.environ.update(env)
        signal.signal(signal.SIGINT, signal.default_int_handler)
        structlog.reset_defaults()
        from .cli import main

        code = main(list(argv))
    except SystemExit as exc:
        code = exc.code if isinstance(exc.code, int) else 1
    except BaseException:
        import traceback

        traceback.print_exc()
        code = 99
    finally:
        with contextlib.suppress(Exception):
            sys.stdout.flush()
            sys.stderr.flush()
        os._exit(code)
