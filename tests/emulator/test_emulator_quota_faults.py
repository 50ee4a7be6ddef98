"""The emulator's quotas, injected faults and request log, over real loopback HTTP.

The emulator here gets a tiny test-only route table (a counter per item id), so
these tests do not depend on any resource handler. Quota time is an injected
fake clock; nothing waits for a window to pass.
"""

from __future__ import annotations

import asyncio
import io
import json
import logging
import re
from collections import Counter
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import pytest
from aiohttp import web
from pydantic import SecretStr

from bulkops.api.client import ConsoleClient
from bulkops.emulator import EmulatorState, create_app
from bulkops.emulator.app import quota_class, retry_after_value
from bulkops.emulator.http import mark_applied, project
from bulkops.emulator.seed import EMPTY_KEY, EMPTY_READ_ONLY_KEY, apply_seed
from bulkops.emulator.state import Faults, KeyInfo, Project
from bulkops.errors import ApiStatusError, RateLimited, ServerError, TransportError
from bulkops.settings import Settings

SCALE = 100.0  # 10 s windows last 0.1 s, 15 min ones 9 s
SHORT = 10 / SCALE
LONG = 900 / SCALE
EPS = 0.001
OTHER_KEY = "console-emulator-other"

routes = web.RouteTableDef()


@routes.post("/console/v1/_test/items/{id}")
async def _bump(request: web.Request) -> web.Response:
    items = project(request).store("_test_items")
    item = items.setdefault(request.match_info["id"], {"id": request.match_info["id"], "n": 0})
    item["n"] += 1
    mark_applied(request)
    return web.json_response({"message": "bumped", "data": item})


@routes.get("/console/v1/_test/items/{id}")
async def _read(request: web.Request) -> web.Response:
    items = project(request).store("_test_items")
    return web.json_response({"message": "read", "data": items.get(request.match_info["id"])})


# A path in the segment id-list quota class that no real handler serves (POST id_list).
@routes.post("/console/v1/segments/{id}/id_list")
async def _id_list(request: web.Request) -> web.Response:
    mark_applied(request)
    return web.json_response({"message": "ids", "data": None})


class FakeClock:
    """The emulator's quota clock, moved by hand."""

    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


Serve = Callable[..., Awaitable[tuple[EmulatorState, ConsoleClient]]]


@pytest.fixture(name="clock")
def _clock() -> FakeClock:
    """A fake clock for quota windows."""
    return FakeClock()


@pytest.fixture(name="serve")
async def _serve(aiohttp_server, clock: FakeClock) -> AsyncIterator[Serve]:
    """Serve a fresh emulator (empty + other project, test routes) and return it with a client."""
    clients: list[ConsoleClient] = []

    async def serve(
        *, key: str = EMPTY_KEY, client_timeout: float = 5.0, **state_args: Any
    ) -> tuple[EmulatorState, ConsoleClient]:
        state = EmulatorState(
            time_scale=SCALE, clock=clock, request_log=io.StringIO(), **state_args
        )
        apply_seed(state, "empty")
        state.add_project(Project(id="other", name="Other"), {OTHER_KEY: KeyInfo("other")})
        app = create_app(state)
        app.router.add_routes(routes)
        server = await aiohttp_server(app)
        client = make(state, str(server.make_url("/console/v1")), key, client_timeout)
        return state, client

    def make(state: EmulatorState, url: str, key: str, timeout: float) -> ConsoleClient:
        settings = Settings(api_key=SecretStr(key), base_url=url, read_retries=0, timeout=timeout)
        client = ConsoleClient(settings)
        clients.append(client)
        return client

    yield serve
    for client in clients:
        await client.aclose()


@pytest.fixture(autouse=True)
def _no_server_noise(caplog: pytest.LogCaptureFixture) -> Any:
    """aiohttp logs no warning, error or traceback in any of these tests."""
    caplog.set_level(logging.WARNING)
    yield
    noisy = [
        f"{r.name} {r.levelname}: {r.getMessage()}"
        for r in caplog.get_records("call") + caplog.get_records("teardown")
        if r.levelno >= logging.WARNING or r.exc_info
    ]
    assert noisy == []


def log_lines(state: EmulatorState) -> list[dict[str, Any]]:
    """The request log as parsed JSON lines."""
    assert isinstance(state.request_log, io.StringIO)
    return [json.loads(line) for line in state.request_log.getvalue().splitlines()]


def count(state: EmulatorState, project_id: str = "empty") -> int:
    """How many bumps the test handler applied in a project."""
    items = state.projects[project_id].store("_test_items")
    return sum(item["n"] for item in items.values())


async def outcome(call: Awaitable[Any]) -> int | str:
    """The HTTP status of a call, or the error class name when no response came."""
    try:
        await call
    except ApiStatusError as exc:
        return exc.status
    except TransportError:
        return "transport"
    return 200


async def bump(client: ConsoleClient, n: int = 1, item: str = "a") -> list[int | str]:
    """``n`` concurrent bumps of ``item``; their statuses."""
    calls = [outcome(client.call("POST", f"/_test/items/{item}", {})) for _ in range(n)]
    return list(await asyncio.gather(*calls))


# -- quotas -------------------------------------------------------------------------------


async def test_the_101st_mutation_in_a_10s_window_is_rejected(serve):
    """100 mutations in a (scaled) 10 s window pass; the 101st is a 429 and is not applied."""
    state, client = await serve()
    assert await bump(client, 100) == [200] * 100
    with pytest.raises(RateLimited) as info:
        await client.call("POST", "/_test/items/a", {})
    assert info.value.status == 429 and info.value.message == "Too Many Requests"
    assert count(state) == 100
    last = log_lines(state)[-1]
    assert (last["status"], last["applied"], last["fault"]) == (429, False, "quota")


async def test_the_window_slides_with_the_time_scale(serve, clock):
    """Once the oldest attempts are a scaled 10 s old, mutations pass again."""
    state, client = await serve()
    await bump(client, 100)
    clock.advance(SHORT - EPS)
    assert await bump(client) == [429]
    clock.advance(2 * EPS)  # the first 100 left the window; the 429 above is 1 of 100
    assert await bump(client, 99) == [200] * 99
    assert await bump(client) == [429]


async def test_rejected_attempts_count_so_a_hammering_client_stays_locked_out(serve, clock):
    """429s count against the quota: retrying through them keeps the window full."""
    state, client = await serve()
    await bump(client, 100)
    clock.advance(SHORT / 2)
    assert await bump(client, 100) == [429] * 100  # hammering
    clock.advance(SHORT / 2 + EPS)  # the admitted 100 are out of the window now …
    assert await bump(client) == [429]  # … but the 100 rejected attempts are not
    clock.advance(SHORT / 2)
    assert await bump(client) == [200]
    assert count(state) == 101


async def test_the_15_minute_window_allows_900(serve, clock):
    """900 mutations per (scaled) 15 min pass even when spread out; the 901st does not."""
    state, client = await serve()
    for _ in range(9):
        assert await bump(client, 100) == [200] * 100
        clock.advance(SHORT + EPS)
    assert await bump(client) == [429]  # the 10 s window is empty, the 15 min one is full
    clock.advance(LONG - 9 * (SHORT + EPS) + EPS)  # the first hundred are 15 min old
    assert await bump(client, 99) == [200] * 99
    assert await bump(client) == [429]
    assert count(state) == 999


async def test_reads_are_not_limited_and_do_not_spend_the_quota(serve):
    """GETs pass however many come; mutations still have their full quota afterwards."""
    state, client = await serve()
    reads = [outcome(client.call("GET", "/_test/items/a")) for _ in range(250)]
    assert await asyncio.gather(*reads) == [200] * 250
    assert await bump(client, 100) == [200] * 100


async def test_id_list_mutations_have_their_own_12_per_10s_quota(serve, clock):
    """Segment id-list writes are limited to 12 per 10 s, separately from other mutations."""
    state, client = await serve()

    async def id_list(n: int) -> list[int | str]:
        calls = [outcome(client.call("POST", "/segments/s/id_list", {})) for _ in range(n)]
        return list(await asyncio.gather(*calls))

    assert await id_list(12) == [200] * 12
    assert await id_list(1) == [429]
    assert await bump(client, 100) == [200] * 100  # the mutation quota is untouched
    assert await id_list(1) == [429]  # and mutations did not free the id-list one
    clock.advance(SHORT + EPS)
    assert await id_list(12) == [200] * 12


async def test_quotas_are_per_project(serve):
    """One project over its quota does not limit another project's key."""
    state, client = await serve()
    await bump(client, 100)
    assert await bump(client) == [429]
    same = ConsoleClient(
        Settings(api_key=SecretStr(OTHER_KEY), base_url=client.settings.base_url, read_retries=0)
    )
    try:
        assert await bump(same, 100) == [200] * 100
    finally:
        await same.aclose()
    assert count(state, "other") == 100


async def test_quotas_can_be_turned_off(serve):
    """With quotas disabled nothing is rejected (benchmarks)."""
    state, client = await serve(quotas_enabled=False)
    assert await bump(client, 150) == [200] * 150


def test_quota_classes():
    """Reads spend nothing; segment id-list writes are ``id_list``; other writes ``mutation``."""
    assert quota_class("GET", "/console/v1/gates") is None
    assert quota_class("GET", "/console/v1/segments/s/id_list") is None
    for method, path in [
        ("PATCH", "/console/v1/segments/s/id_list"),
        ("DELETE", "/console/v1/segments/s/id_list"),
        ("POST", "/console/v1/segments/s/id_list/reset"),
        ("PATCH", "/console/v1/segments/s/add_ids"),
        ("PATCH", "/console/v1/segments/s/remove_ids"),
    ]:
        assert quota_class(method, path) == "id_list", path
    for method, path in [
        ("POST", "/console/v1/gates"),
        ("POST", "/console/v1/segments"),
        ("POST", "/console/v1/segments/s/conditional"),
        ("DELETE", "/console/v1/segments/s"),
        ("PUT", "/console/v1/segments/s/archive"),
    ]:
        assert quota_class(method, path) == "mutation", path


# -- faults -------------------------------------------------------------------------------

FLAVOURS = {
    # flavour: (status the log records, applied)
    "429": (429, False),
    "429-retry-after": (429, False),
    "500-before": (500, False),
    "500-after": (500, True),
    "reset-before": (0, False),
    "reset-after": (0, True),
    "hang-after": (200, True),
    None: (200, True),
}


async def test_each_fault_flavour_comes_at_its_configured_rate(serve):
    """Over 2000 seeded draws each flavour's share is its configured rate (±0.02)."""
    faults = Faults(rate_429=0.1, rate_500=0.12, rate_reset=0.08, rate_hang=0.06, hang_seconds=0)
    state, client = await serve(faults=faults, fault_seed=1234, quotas_enabled=False)
    n = 2000
    results: list[int | str] = []
    for _ in range(n // 50):
        results += await bump(client, 50)
    lines = log_lines(state)
    assert len(lines) == n
    seen = Counter(line["fault"] for line in lines)
    expected = {
        "429": 0.05,
        "429-retry-after": 0.05,
        "500-before": 0.06,
        "500-after": 0.06,
        "reset-before": 0.04,
        "reset-after": 0.04,
        "hang-after": 0.06,
        None: 0.64,
    }
    assert set(seen) == set(expected)
    for flavour, rate in expected.items():
        assert abs(seen[flavour] / n - rate) < 0.02, (flavour, seen[flavour])
    # Every log line is consistent with its flavour, and the client saw the same thing.
    for line in lines:
        assert (line["status"], line["applied"]) == FLAVOURS[line["fault"]], line
    assert count(state) == sum(line["applied"] for line in lines)
    seen_by_client = Counter(results)
    assert seen_by_client[429] == seen["429"] + seen["429-retry-after"]
    assert seen_by_client[500] == seen["500-before"] + seen["500-after"]
    assert seen_by_client["transport"] == seen["reset-before"] + seen["reset-after"]
    assert seen_by_client[200] == seen["hang-after"] + seen[None]


async def test_faults_are_reproducible_with_the_same_seed(serve):
    """The same fault seed gives the same sequence of faults; another seed does not."""
    faults = Faults(rate_429=0.2, rate_500=0.2, rate_reset=0.1, rate_hang=0.1, hang_seconds=0)

    async def sequence(seed: int) -> list[str | None]:
        state, client = await serve(faults=faults, fault_seed=seed, quotas_enabled=False)
        for _ in range(150):
            await outcome(client.call("POST", "/_test/items/a", {}))
        return [line["fault"] for line in log_lines(state)]

    first = await sequence(7)
    assert len(set(first)) == 8  # every flavour (and no fault) occurs
    assert await sequence(7) == first
    assert await sequence(8) != first


async def test_a_reset_drops_the_connection_before_or_after_the_change(serve):
    """A reset is a dropped connection (TransportError, sent=True); "after" applied the change."""
    state, client = await serve(faults=Faults(rate_reset=1.0), fault_seed=3)
    for _ in range(20):
        before = count(state)
        with pytest.raises(TransportError) as info:
            await client.call("POST", "/_test/items/a", {})
        assert info.value.sent is True
        assert re.search(
            r"closed the connection|was reset|connection to \S+ failed", str(info.value)
        )
        line = log_lines(state)[-1]
        assert line["status"] == 0
        assert count(state) - before == (1 if line["fault"] == "reset-after" else 0)
    sides = Counter(line["fault"] for line in log_lines(state))
    assert set(sides) == {"reset-before", "reset-after"}
    assert await outcome(client.call("GET", "/_test/items/a")) == 200  # reads are not faulted


async def test_a_500_after_applies_the_change_the_client_sees_fail(serve):
    """500-before changes nothing; 500-after applies the change and still answers 500."""
    state, client = await serve(faults=Faults(rate_500=1.0), fault_seed=5)
    for _ in range(20):
        before = count(state)
        with pytest.raises(ServerError) as info:
            await client.call("POST", "/_test/items/a", {})
        assert info.value.status == 500
        line = log_lines(state)[-1]
        assert line["applied"] is (line["fault"] == "500-after")
        assert count(state) - before == int(line["applied"])
    assert {line["fault"] for line in log_lines(state)} == {"500-before", "500-after"}


async def test_a_hang_applies_the_change_and_the_client_times_out(serve):
    """hang-after applies the change, then holds the answer past the client's timeout."""
    faults = Faults(rate_hang=1.0, hang_seconds=0.6)
    state, client = await serve(faults=faults, fault_seed=1, client_timeout=0.2)
    with pytest.raises(TransportError) as info:
        await client.call("POST", "/_test/items/a", {})
    assert info.value.sent is True and "timed out" in str(info.value)
    assert count(state) == 1


@pytest.mark.parametrize(
    ("scale", "share", "expected"),
    [(SCALE, 1.0, 0.02), (1.0, 1.0, 2.0), (SCALE, 0.0, None)],
)
async def test_429_faults_carry_a_time_scaled_retry_after_or_none(
    aiohttp_server, scale, share, expected
):
    """A 429-retry-after fault asks for 2 s (scaled); a plain 429 fault has no Retry-After."""
    state = EmulatorState(
        time_scale=scale, faults=Faults(rate_429=1.0, retry_after_share=share), fault_seed=0
    )
    apply_seed(state, "empty")
    app = create_app(state)
    app.router.add_routes(routes)
    server = await aiohttp_server(app)
    settings = Settings(api_key=SecretStr(EMPTY_KEY), base_url=str(server.make_url("/console/v1")))
    async with ConsoleClient(settings) as client:
        with pytest.raises(RateLimited) as info:
            await client.call("POST", "/_test/items/a", {})
    assert info.value.retry_after == expected


def test_retry_after_values():
    """Whole seconds at real time; decimals (never 0) under a time scale."""
    assert retry_after_value(2.0, 1.0) == "2"
    assert retry_after_value(2.0, 2.0) == "1"
    assert retry_after_value(2.0, 100.0) == "0.02"
    assert retry_after_value(2.0, 1e9) == "0.001"


async def test_reads_are_faulted_only_when_asked(serve):
    """Faults hit mutations only, unless ``on_reads`` is set."""
    state, client = await serve(faults=Faults(rate_500=1.0), fault_seed=1)
    assert await outcome(client.call("GET", "/_test/items/a")) == 200
    state.faults.on_reads = True
    assert await outcome(client.call("GET", "/_test/items/a")) == 500


# -- the request log ---------------------------------------------------------------------


async def test_the_request_log_has_one_json_line_per_request(serve):
    """Every request, refused or not, is one JSON line with time, method, path, status, …"""
    state, client = await serve()
    await client.call("POST", "/_test/items/a", {})
    await client.call("GET", "/_test/items/a")
    await outcome(client.call("GET", "/no_such_route"))
    readonly = ConsoleClient(
        Settings(
            api_key=SecretStr(EMPTY_READ_ONLY_KEY),
            base_url=client.settings.base_url,
            read_retries=0,
        )
    )
    bad_key = ConsoleClient(
        Settings(api_key=SecretStr("console-nope"), base_url=client.settings.base_url)
    )
    async with readonly, bad_key:
        assert await outcome(readonly.call("POST", "/_test/items/a", {})) == 403
        assert await outcome(bad_key.call("GET", "/_test/items/a")) == 401
    lines = log_lines(state)
    assert [(x["method"], x["path"], x["status"], x["applied"]) for x in lines] == [
        ("POST", "/console/v1/_test/items/a", 200, True),
        ("GET", "/console/v1/_test/items/a", 200, False),
        ("GET", "/console/v1/no_such_route", 404, False),
        ("POST", "/console/v1/_test/items/a", 403, False),
        ("GET", "/console/v1/_test/items/a", 401, False),
    ]
    for line in lines:
        assert set(line) >= {"time", "method", "path", "status", "applied", "fault"}
        assert isinstance(line["time"], float) and line["fault"] is None
    assert [x["project"] for x in lines] == ["empty", "empty", "empty", "empty", None]
    assert "console-nope" not in state.request_log.getvalue()
