"""Run the emulator on a real socket (``bulkops emulator``, the demo, subprocess tests)."""

from __future__ import annotations

import asyncio
import contextlib
import gc
import os
import select
import signal
import sys
from collections.abc import AsyncIterator, Callable, Iterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path

from aiohttp import web

from .. import files
from .app import create_app
from .http import PREFIX
from .state import EmulatorState

__all__ = ["ForkedEmulator", "fork_emulator", "running_emulator", "serve"]


@asynccontextmanager
async def running_emulator(
    state: EmulatorState,
    host: str = "127.0.0.1",
    port: int = 0,
    *,
    routes: Callable[[web.Application], None] | None = None,
) -> AsyncIterator[str]:
    """Serve ``state`` on ``host:port`` (0 picks a free port); yields the API base URL.

    ``routes(app)`` may add routes of its own (the benchmark's state snapshot).
    """
    app = create_app(state)
    if routes is not None:
        routes(app)
    runner = web.AppRunner(app, access_log=None, handle_signals=False, shutdown_timeout=1.0)
    await runner.setup()
    site = web.TCPSite(runner, host, port)
    await site.start()
    # The port actually bound (``port=0`` asks the OS for a free one).
    bound = int(runner.addresses[0][1]) if runner.addresses else port
    try:
        yield f"http://{host}:{bound}{PREFIX}"
    finally:
        await runner.cleanup()


async def serve(
    state: EmulatorState,
    host: str = "127.0.0.1",
    port: int = 8700,
    on_ready: Callable[[str], None] | None = None,
) -> None:
    """Serve until cancelled (Ctrl-C); ``on_ready(base_url)`` is called once listening."""
    async with running_emulator(state, host, port) as url:
        if on_ready is not None:
            on_ready(url)
        await asyncio.Event().wait()


@dataclass
class ForkedEmulator:
    """An emulator serving in a forked child process (see :func:`fork_emulator`).

    Attributes:
        url: The API base URL (``http://127.0.0.1:PORT/console/v1``).
        pid: The child's pid.
        log_path: Where the child appends one JSON line per request.
    """

    url: str
    pid: int
    log_path: Path

    @property
    def root(self) -> str:
        """``http://127.0.0.1:PORT``, for routes outside the API."""
        return self.url.removesuffix(PREFIX)

    def stop(self) -> None:
        """Kill the child and reap it (safe to call twice)."""
        with contextlib.suppress(ProcessLookupError):
            os.kill(self.pid, signal.SIGKILL)
        with contextlib.suppress(ChildProcessError):
            os.waitpid(self.pid, 0)


@contextlib.contextmanager
def fork_emulator(
    state: EmulatorState,
    log_path: Path,
    *,
    prepare: Callable[[EmulatorState], None] | None = None,
    routes: Callable[[web.Application], None] | None = None,
    timeout: float = 30.0,
    host: str = "127.0.0.1",
) -> Iterator[ForkedEmulator]:
    """Serve ``state`` from a forked child on ``host`` until the block ends (the child
    is killed).

    Forking makes a fresh copy of a large prepared state cost milliseconds, and what the
    child changes stays in the child. ``prepare(state)`` runs in the child before it
    listens (building a big state there keeps the parent small); the request log is
    opened 0600 and appended to.

    Raises:
        RuntimeError: the child did not report a listening URL within ``timeout``.
    """
    read_end, write_end = os.pipe()
    sys.stdout.flush()
    sys.stderr.flush()
    pid = os.fork()
    if pid == 0:  # the emulator process
        # The parent's objects are never collected here: a collection would walk (and
        # copy, page by page) the whole inherited heap and stall every request meanwhile.
        gc.freeze()
        code = 0
        try:
            os.close(read_end)
            devnull = os.open(os.devnull, os.O_RDWR)
            for fd in (0, 1, 2):
                os.dup2(devnull, fd)
            if prepare is not None:
                prepare(state)
            fd = files.open_append(log_path, what="request log")
            state.request_log = os.fdopen(fd, "a", encoding="utf-8")

            async def main() -> None:
                async with running_emulator(state, host, routes=routes) as url:
                    os.write(write_end, url.encode() + b"\n")
                    os.close(write_end)
                    await asyncio.Event().wait()

            asyncio.run(main())
        except BaseException:
            code = 1
        finally:
            os._exit(code)
    os.close(write_end)
    ready, _, _ = select.select([read_end], [], [], timeout)
    url = os.read(read_end, 4096).decode().strip() if ready else ""
    os.close(read_end)
    emulator = ForkedEmulator(url=url, pid=pid, log_path=log_path)
    if not url:
        emulator.stop()
        raise RuntimeError("the emulator did not start")
    try:
        yield emulator
    finally:
        emulator.stop()
