"""Fixtures of the emulator's handler tests: the empty project's state and a raw sender."""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import aiohttp
import pytest

from bulkops.emulator import EmulatorState, Project
from bulkops.emulator.seed import EMPTY_KEY

RawSender = Callable[[str, str, bytes | None], Awaitable[tuple[int, Any]]]


@pytest.fixture(name="project")
def _project(state: EmulatorState) -> Project:
    """The empty project's state (behind the default key), for direct inspection."""
    return state.projects["empty"]


@pytest.fixture(name="raw")
async def _raw(emulator_url: str) -> AsyncIterator[RawSender]:
    """Send raw bytes to the emulator (for bodies the client would never produce)."""
    async with aiohttp.ClientSession() as session:

        async def send(method: str, path: str, data: bytes | None = None) -> tuple[int, Any]:
            headers = {"STATSIG-API-KEY": EMPTY_KEY, "Content-Type": "application/json"}
            async with session.request(
                method, emulator_url + path, data=data, headers=headers
            ) as resp:
                return resp.status, await resp.json()

        yield send
