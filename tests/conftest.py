"""Shared fixtures: an emulator served over real loopback HTTP, and clients for it.

Every emulator state built here records its exchanges (``state.capture``); after
each test they are checked against the official Console API spec
(:mod:`tests.conformance`) and a non-conforming response or request body fails
the test that produced it.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from dataclasses import dataclass
from typing import Any

import aiohttp
import pytest
from conformance import check_exchanges, format_problems, load_spec
from pydantic import SecretStr

from bulkops.api.client import ConsoleClient
from bulkops.emulator import EmulatorState, create_app
from bulkops.emulator.seed import EMPTY_KEY, apply_seed
from bulkops.settings import Settings


@dataclass
class _Watched:
    state: EmulatorState
    checked: int = 0  # exchanges before this index were already checked


_WATCHED = pytest.StashKey[list[_Watched]]()
_CALL_FAILED = pytest.StashKey[bool]()


def _watch(node: pytest.Item, state: EmulatorState) -> EmulatorState:
    """Turn on exchange capture for ``state`` and check it at the end of the test."""
    state.capture = []
    node.stash.setdefault(_WATCHED, []).append(_Watched(state))
    return state


def _unchecked_problems(watched: list[_Watched]) -> list[str]:
    spec = load_spec()
    problems: list[str] = []
    for entry in watched:
        captured = entry.state.capture or []
        if spec is not None:
            problems += check_exchanges(spec, captured[entry.checked :])
        entry.checked = len(captured)
    return problems


@pytest.hookimpl(wrapper=True)
def pytest_runtest_call(item: pytest.Item) -> Iterator[None]:
    """Fail a test whose exchanges with the emulator do not conform to the spec."""
    try:
        result = yield
    except BaseException:
        item.stash[_CALL_FAILED] = True  # its own failure says enough
        raise
    problems = _unchecked_problems(item.stash.get(_WATCHED, []))
    if problems:
        pytest.fail(format_problems(problems), pytrace=False)
    return result


def _check_at_teardown(node: pytest.Item, watched: list[_Watched]) -> None:
    # Exchanges made while fixtures were torn down (after the test body) land here.
    if node.stash.get(_CALL_FAILED, False):
        return
    problems = _unchecked_problems(watched)
    if problems:
        pytest.fail(format_problems(problems), pytrace=False)


@pytest.fixture(autouse=True)
def _clean_environ(monkeypatch: pytest.MonkeyPatch) -> None:
    """Tests never depend on the caller's environment (keys, URLs)."""
    for name in ("STATSIG_CONSOLE_API_KEY", "STATSIG_API_URL"):
        monkeypatch.delenv(name, raising=False)


@pytest.fixture(name="state")
def _state(request: pytest.FixtureRequest) -> Iterator[EmulatorState]:
    """A fresh emulator state holding the empty project (quotas on, no faults)."""
    state = EmulatorState()
    apply_seed(state, "empty")
    node = request.node
    assert isinstance(node, pytest.Item)
    _watch(node, state)
    yield state
    _check_at_teardown(node, [w for w in node.stash[_WATCHED] if w.state is state])


@pytest.fixture(name="emulator_url")
async def _emulator_url(aiohttp_server, state: EmulatorState) -> str:
    """The base URL of the emulator serving ``state`` on loopback."""
    server = await aiohttp_server(create_app(state))
    return str(server.make_url("/console/v1"))


@pytest.fixture(name="make_emulator")
async def _make_emulator(
    request: pytest.FixtureRequest, aiohttp_server
) -> AsyncIterator[Callable[..., Awaitable[tuple[EmulatorState, str]]]]:
    """A factory of further emulators: ``state, url = await make_emulator("empty", …)``.

    Each one serves a new state seeded with the given seeds (``empty``, ``demo``, a
    snapshot path; keyword arguments go to :class:`EmulatorState`), and its
    exchanges are checked against the spec like the ``state`` fixture's.
    """
    node = request.node
    assert isinstance(node, pytest.Item)
    made: list[_Watched] = []

    async def make(*seeds: str, **state_args: object) -> tuple[EmulatorState, str]:
        state = EmulatorState(**state_args)  # type: ignore[arg-type]
        for seed in seeds:
            apply_seed(state, seed)
        _watch(node, state)
        made.append(node.stash[_WATCHED][-1])
        server = await aiohttp_server(create_app(state))
        return state, str(server.make_url("/console/v1"))

    yield make
    _check_at_teardown(node, made)


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


@pytest.fixture(name="admin")
async def _admin(
    emulator_url: str,
) -> AsyncIterator[Callable[..., Awaitable[tuple[int, Any]]]]:
    """The emulator's review admin surface (no key), from loopback:
    ``status, body = await admin("POST", "/_emulator/reviews/ID/approve", {"reason": …})``."""
    origin = emulator_url.removesuffix("/console/v1")
    async with aiohttp.ClientSession() as session:

        async def call(method: str, path: str, body: Any = None) -> tuple[int, Any]:
            async with session.request(method, origin + path, json=body) as resp:
                return resp.status, await resp.json()

        yield call
