"""Shared fixtures: an emulator served over real loopback HTTP, and clients for it."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable

import pytest
from pydantic import SecretStr

from bulkops.client import ConsoleClient
from bulkops.emulator import EmulatorState, create_app
from bulkops.emulator.seed import EMPTY_KEY, apply_seed
from bulkops.settings import Settings


@pytest.fixture(autouse=True)
def _clean_environ(monkeypatch: pytest.MonkeyPatch) -> None:
    """Tests never depend on the caller's environment (keys, URLs)."""
    for name in ("STATSIG_CONSOLE_API_KEY", "STATSIG_API_URL"):
        monkeypatch.delenv(name, raising=False)


@pytest.fixture(name="state")
def _state() -> EmulatorState:
    """A fresh emulator state holding the empty project (quotas on, no faults)."""
    state = EmulatorState()
    apply_seed(state, "empty")
    return state


@pytest.fixture(name="emulator_url")
async def _emulator_url(aiohttp_server, state: EmulatorState) -> str:
    """The base URL of the emulator serving ``state`` on loopback."""
    server = await aiohttp_server(create_app(state))
    return str(server.make_url("/console/v1"))


@pytest.fixture(name="make_client")
async def _make_client(emulator_url: str) -> AsyncIterator[Callable[..., ConsoleClient]]:
    """A factory of clients for the emulator; all are closed at teardown."""
    clients: list[ConsoleClient] = []

    def make(key: str = EMPTY_KEY, **settings: object) -> ConsoleClient:
        client = ConsoleClient(Settings(api_key=SecretStr(key), base_url=emulator_url, **settings))  # type: ignore[arg-type]
        clients.append(client)
        return client

    yield make
    for client in clients:
        await client.aclose()


@pytest.fixture(name="client")
def _client(make_client: Callable[..., ConsoleClient]) -> ConsoleClient:
    """A read-write client on the empty project."""
    return make_client()
