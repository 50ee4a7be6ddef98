"""Fixtures of the client unit tests: clients on a scripted server, recorded retry sleeps."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from typing import Any

import pytest
from api_support import settings

from bulkops.api.client import ConsoleClient
from bulkops.api.transport import ApiRequest, ApiResponse, MockTransport


@pytest.fixture(name="sleeps")
def _sleeps(monkeypatch: pytest.MonkeyPatch) -> list[float]:
    """The client's retry sleeps, recorded instead of slept."""
    slept: list[float] = []

    async def fake_sleep(delay: float) -> None:
        slept.append(delay)

    monkeypatch.setattr("bulkops.api.client.anyio.sleep", fake_sleep)
    return slept


@pytest.fixture(name="make")
async def _make() -> AsyncIterator[Callable[..., ConsoleClient]]:
    """Build clients on a scripted server; all are closed at teardown."""
    clients: list[ConsoleClient] = []

    def make(server: Callable[[ApiRequest], ApiResponse], **overrides: Any) -> ConsoleClient:
        client = ConsoleClient(settings(**overrides), transport=MockTransport(server))
        clients.append(client)
        return client

    yield make
    for client in clients:
        await client.aclose()
