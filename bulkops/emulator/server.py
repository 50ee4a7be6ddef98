"""Run the emulator on a real socket (``bulkops emulator``, the demo, subprocess tests)."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager

from aiohttp import web

from .app import create_app
from .http import PREFIX
from .state import EmulatorState

__all__ = ["running_emulator", "serve"]


@asynccontextmanager
async def running_emulator(
    state: EmulatorState, host: str = "127.0.0.1", port: int = 0
) -> AsyncIterator[str]:
    """Serve ``state`` on ``host:port`` (0 picks a free port); yields the API base URL."""
    runner = web.AppRunner(
        create_app(state), access_log=None, handle_signals=False, shutdown_timeout=1.0
    )
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
