"""ConsoleClient unit tests: headers, errors, secrets, pagination, retries (MockTransport only)."""

from __future__ import annotations

import email.utils
import socket
import ssl
import time
from typing import Any

import aiohttp
import pytest
from aiohttp import web
from api_support import BASE, KEY, Server, page, reply, settings
from pydantic import SecretStr

from bulkops.api.client import ConsoleClient, parse_retry_after
from bulkops.api.transport import ApiRequest, ApiResponse, MockTransport, map_aiohttp_errors
from bulkops.errors import (
    ApiError,
    ApiStatusError,
    BadRequest,
    BulkOpsError,
    Conflict,
    Forbidden,
    NotFound,
    RateLimited,
    Redirected,
    ServerError,
    TransportError,
    Unauthorized,
    UsageError,
)
from bulkops.settings import Settings

# -- headers ------------------------------------------------------------------------------


async def test_every_request_carries_key_and_api_version(make):
    """The key and ``STATSIG-API-VERSION: 20240601`` go on every request."""
    server = Server()
    client = make(server)
    await client.call("GET", "/gates")
    [request] = server.requests
    assert request.headers["STATSIG-API-KEY"] == KEY
    assert request.headers["STATSIG-API-VERSION"] == "20240601"
    assert request.url == f"{BASE}/gates"
    assert request.method == "GET" and not request.has_body


@pytest.mark.parametrize("method", ["POST", "PUT", "PATCH", "DELETE"])
async def test_mutations_ask_to_respect_review_settings(make, method):
    """Mutations send ``x-respect-review-settings: true``."""
    server = Server()
    await make(server).call(method, "/gates/g", {"a": 1})
    assert server.requests[0].headers["x-respect-review-settings"] == "true"
    assert server.requests[0].headers["Content-Type"] == "application/json"
    assert server.requests[0].json == {"a": 1}


async def test_reads_do_not_send_the_review_header(make):
    """GET requests carry no review header."""
    server = Server()
    await make(server).call("GET", "/gates/g")
    assert "x-respect-review-settings" not in server.requests[0].headers


@pytest.mark.parametrize("method", ["POST", "PUT", "PATCH", "DELETE"])
async def test_review_header_is_off_when_reviews_are_not_respected(make, method):
    """``respect_reviews=False`` leaves the review header off mutations."""
    server = Server()
    await make(server, respect_reviews=False).call(method, "/gates/g", {})
    assert "x-respect-review-settings" not in server.requests[0].headers


# -- errors -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("status", "cls"),
    [
        (400, BadRequest),
        (401, Unauthorized),
        (403, Forbidden),
        (404, NotFound),
        (409, Conflict),
        (429, RateLimited),
        (500, ServerError),
        (502, ServerError),
        (503, ServerError),
        (418, ApiStatusError),
    ],
)
async def test_each_error_status_becomes_its_typed_error(make, status, cls):
    """A non-2xx answer raises the status's error class with status, method, path, message."""
    errors = [{"property": "name", "errorMessage": "Expected string"}]
    server = Server(
        [reply(status, {"status": status, "message": "it went wrong", "errors": errors})]
    )
    with pytest.raises(ApiStatusError) as info:
        await make(server).call("POST", "/gates/g", {})
    exc = info.value
    assert type(exc) is cls
    assert isinstance(exc, ApiError) and isinstance(exc, BulkOpsError)
    assert (exc.status, exc.method, exc.path) == (status, "POST", "/console/v1/gates/g")
    assert exc.message == "it went wrong"
    assert exc.errors == errors
    assert str(exc) == (f"{status} POST /console/v1/gates/g: it went wrong; name: Expected string")


async def test_an_error_without_a_json_body_still_says_something(make):
    """Plain-text or empty error bodies give the text, or ``HTTP <status>``."""
    server = Server(
        [
            ApiResponse(status=502, headers={}, content=b"<html>Bad Gateway</html>"),
            ApiResponse(status=500, headers={}, content=b""),
        ]
    )
    client = make(server)
    with pytest.raises(ServerError, match="Bad Gateway"):
        await client.call("POST", "/gates", {})
    with pytest.raises(ServerError) as info:
        await client.call("POST", "/gates", {})
    assert info.value.message == "HTTP 500"


async def test_2xx_answers_are_returned(make):
    """200, 201 and 204 are successes; the decoded envelope comes back."""
    server = Server(
        [
            reply(201, {"message": "Gate created successfully.", "data": {"id": "g"}}),
            ApiResponse(status=204, headers={}, content=b""),
        ]
    )
    client = make(server)
    assert await client.data("POST", "/gates", json={"name": "g"}) == {"id": "g"}
    assert await client.call("DELETE", "/gates/g") is None


# -- secrets ------------------------------------------------------------------------------


def _all_text(obj: Any) -> str:
    return f"{obj!s}\n{obj!r}"


@pytest.mark.parametrize("key", [KEY, "plainkey-abc123xyz987"])
async def test_the_key_never_shows_even_when_the_server_echoes_it(make, key):
    """An echoed key is redacted from the error's str, repr, message and excerpt."""
    body = {
        "status": 401,
        "message": f"This endpoint only accepts an active CONSOLE key. Key: {key}",
        "errors": [{"property": "STATSIG-API-KEY", "errorMessage": f"unknown key {key}"}],
    }
    server = Server([reply(401, body)])
    client = make(server, key=key)
    with pytest.raises(Unauthorized) as info:
        await client.call("GET", "/gates")
    exc = info.value
    shown = [_all_text(exc), exc.message, exc.body_excerpt, *map(str, exc.args), str(exc.errors)]
    assert all(key not in text for text in shown), shown
    assert "<redacted>" in exc.message


async def test_the_key_is_not_in_request_client_or_settings_reprs(make):
    """Requests, the client and settings never print the key."""
    server = Server()
    client = make(server)
    await client.call("POST", "/gates", {"name": "g"})
    request = server.requests[0]
    texts = [
        _all_text(request),
        _all_text(client),
        _all_text(client.settings),
        client.settings.model_dump_json(),
    ]
    assert all(KEY not in text for text in texts), texts


# -- pagination ---------------------------------------------------------------------------


async def test_pagination_follows_relative_and_host_prefixed_links(make):
    """``nextPage`` is followed whether relative or carrying a host, on our base URL."""
    server = Server(
        [
            page([1, 2], "/console/v1/gates?type=STALE&page=2&limit=2"),
            page([3, 4], "statsigapi.net/console/v1/gates?type=STALE&page=3&limit=2"),
            page([5, 6], "https://statsigapi.net/console/v1/gates?type=STALE&page=4&limit=2"),
            page([7], None),
        ]
    )
    client = make(server)
    items = [item async for item in client.paginate("/gates", params={"type": "STALE"}, limit=2)]
    assert items == [1, 2, 3, 4, 5, 6, 7]
    assert [r.url for r in server.requests] == [f"{BASE}/gates"] * 4
    assert [dict(r.params) for r in server.requests] == [
        {"type": "STALE", "limit": "2", "page": str(n)} for n in (1, 2, 3, 4)
    ]


async def test_pagination_stops_at_a_null_next_page(make):
    """A single page with ``nextPage: null`` is one request."""
    server = Server([page([1], None), page([99], None)])
    items = [item async for item in make(server).paginate("/gates")]
    assert items == [1] and len(server.requests) == 1


async def test_the_default_page_size_comes_from_settings(make):
    """Without ``limit`` the settings' page size is sent, starting at page 1."""
    server = Server([page([], None)])
    _ = [item async for item in make(server, page_limit=37).paginate("/segments")]
    assert dict(server.requests[0].params) == {"limit": "37", "page": "1"}


async def test_pagination_that_repeats_a_page_is_an_error(make):
    """A server whose links loop makes the client stop with an error, not spin."""
    link = "/console/v1/gates?page=2&limit=1"
    server = Server([page([1], link), page([2], link), page([3], link)])
    with pytest.raises(BulkOpsError, match="repeats page"):
        _ = [item async for item in make(server).paginate("/gates", limit=1)]


# -- retries ------------------------------------------------------------------------------


async def test_reads_are_retried_on_5xx_and_429(make, sleeps):
    """A GET is repeated through 500/503/429 until it succeeds (within ``read_retries``)."""
    server = Server(
        [
            reply(500, {"message": "oops"}),
            reply(503, {"message": "busy"}),
            reply(429, {"message": "Too Many Requests"}),
            reply(200, {"message": "ok", "data": 1}),
        ]
    )
    assert await make(server, read_retries=3).data("GET", "/gates") == 1
    assert len(server.requests) == 4 and len(sleeps) == 3
    assert all(0 <= s <= 8 for s in sleeps)


async def test_reads_give_up_after_read_retries(make, sleeps):
    """After ``1 + read_retries`` failed attempts the last error is raised."""
    server = Server([reply(500, {"message": "oops"})] * 5)
    with pytest.raises(ServerError):
        await make(server, read_retries=2).call("GET", "/gates")
    assert len(server.requests) == 3


async def test_reads_are_retried_on_transport_errors(make, sleeps):
    """A GET whose connection failed is tried again."""
    failure = TransportError("connection failed", method="GET", path="/x", sent=True)
    server = Server([failure, reply(200, {"message": "ok", "data": 2})])
    assert await make(server).data("GET", "/gates") == 2
    assert len(server.requests) == 2


async def test_client_errors_are_not_retried(make, sleeps):
    """A 4xx other than 429 is final, even for a GET."""
    server = Server([reply(404, {"message": "Gate not found."})])
    with pytest.raises(NotFound):
        await make(server).call("GET", "/gates/g")
    assert len(server.requests) == 1 and sleeps == []


@pytest.mark.parametrize("method", ["POST", "PUT", "PATCH", "DELETE"])
@pytest.mark.parametrize("status", [429, 500, 503])
async def test_mutations_are_never_retried(make, sleeps, method, status):
    """Whether a failed write may be repeated is the engine's call: one attempt only."""
    server = Server([reply(status, {"message": "no"}), reply(200, {"message": "ok"})])
    with pytest.raises(ApiStatusError) as info:
        await make(server).call(method, "/gates/g", {})
    assert info.value.status == status
    assert len(server.requests) == 1 and sleeps == []


async def test_a_mutation_transport_error_is_not_retried(make, sleeps):
    """A write whose connection failed raises at once, keeping the ``sent`` flag."""
    failure = TransportError("cannot connect", method="POST", path="/x", sent=False)
    server = Server([failure])
    with pytest.raises(TransportError) as info:
        await make(server).call("POST", "/gates", {})
    assert info.value.sent is False and len(server.requests) == 1


async def test_retry_after_sets_the_read_retry_delay(make, sleeps):
    """A 429 with ``Retry-After`` is waited out exactly (capped at 30 s)."""
    server = Server(
        [
            reply(429, {"message": "slow down"}, {"Retry-After": "3"}),
            reply(429, {"message": "slow down"}, {"Retry-After": "120"}),
            reply(200, {"message": "ok", "data": 3}),
        ]
    )
    assert await make(server).data("GET", "/gates") == 3
    assert sleeps == [3.0, 30.0]


async def test_rate_limited_errors_carry_retry_after(make):
    """The parsed ``Retry-After`` is on the RateLimited error (None without the header)."""
    server = Server(
        [
            reply(429, {"message": "slow"}, {"Retry-After": "1.5"}),
            reply(429, {"message": "slow"}),
        ]
    )
    client = make(server)
    with pytest.raises(RateLimited) as info:
        await client.call("POST", "/gates", {})
    assert info.value.retry_after == 1.5
    with pytest.raises(RateLimited) as info:
        await client.call("POST", "/gates", {})
    assert info.value.retry_after is None


def test_parse_retry_after():
    """Delta-seconds and HTTP-dates are understood; junk is None; the past is 0."""
    assert parse_retry_after("7") == 7.0
    assert parse_retry_after("0.25") == 0.25
    assert parse_retry_after("-4") == 0.0
    assert parse_retry_after(None) is None
    assert parse_retry_after("") is None
    assert parse_retry_after("soon") is None
    future = email.utils.formatdate(time.time() + 120, usegmt=True)
    assert 110 <= (parse_retry_after(future) or 0) <= 121
    past = email.utils.formatdate(time.time() - 600, usegmt=True)
    assert parse_retry_after(past) == 0.0


# -- lifecycle and transport --------------------------------------------------------------


async def test_a_closed_client_refuses_requests():
    """After ``aclose()`` any request, or re-entering, raises RuntimeError("client is closed")."""
    closed: list[bool] = []

    class Transport(MockTransport):
        async def aclose(self) -> None:
            closed.append(True)

    client = ConsoleClient(settings(), transport=Transport(Server()))
    async with client:
        await client.call("GET", "/gates")
    with pytest.raises(RuntimeError, match="^client is closed$"):
        await client.call("GET", "/gates")
    with pytest.raises(RuntimeError, match="^client is closed$"):
        _ = [item async for item in client.paginate("/gates")]
    with pytest.raises(RuntimeError, match="^client is closed$"):
        async with client:
            pass
    await client.aclose()
    assert closed == [True]


async def test_connection_refused_is_a_transport_error_not_sent():
    """Nothing listening on the port: TransportError with ``sent=False`` (safe to repeat)."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    refused = Settings(
        api_key=SecretStr(KEY), base_url=f"http://127.0.0.1:{port}/console/v1", read_retries=0
    )
    async with ConsoleClient(refused) as client:
        with pytest.raises(TransportError) as info:
            await client.call("POST", "/gates", {"name": "g"})
    exc = info.value
    assert exc.sent is False
    assert (exc.method, exc.path) == ("POST", "/console/v1/gates")
    assert str(exc) == f"POST /console/v1/gates: connection refused by 127.0.0.1:{port}"
    assert KEY not in _all_text(exc)


_KEY = aiohttp.client_reqrep.ConnectionKey("api.test", 443, True, True, None, None, None)


@pytest.mark.parametrize(
    ("error", "sent", "text"),
    [
        (
            aiohttp.ServerDisconnectedError(),
            True,
            "api.test:443 closed the connection without answering",
        ),
        (
            aiohttp.ClientPayloadError("truncated"),
            True,
            "the answer from api.test:443 was cut short",
        ),
        (aiohttp.ClientConnectionResetError(), True, "the connection to api.test:443 was reset"),
        (TimeoutError(), True, "timed out waiting for api.test:443"),
        (aiohttp.ConnectionTimeoutError(), False, "timed out connecting to api.test:443"),
        (
            aiohttp.ClientConnectorError(_KEY, ConnectionRefusedError(111, "refused")),
            False,
            "connection refused by api.test:443",
        ),
        (
            aiohttp.ClientConnectorDNSError(_KEY, OSError(-2, "Name or service not known")),
            False,
            "unknown host: api.test does not resolve",
        ),
        (
            aiohttp.ClientConnectorCertificateError(_KEY, ssl.SSLCertVerificationError("bad")),
            False,
            "the TLS certificate of api.test:443 could not be verified",
        ),
        (
            aiohttp.ClientConnectorSSLError(_KEY, ssl.SSLError("handshake")),
            False,
            "the TLS handshake with api.test:443 failed",
        ),
    ],
)
def test_aiohttp_errors_map_to_transport_errors_with_the_sent_flag(error, sent, text):
    """Only a connection that was never made is ``sent=False``; the rest may have arrived."""
    request = ApiRequest(method="PATCH", url=f"{BASE}/gates/g")
    with pytest.raises(TransportError) as info, map_aiohttp_errors(request):
        raise error
    assert info.value.sent is sent
    assert info.value.message == text
    assert info.value.path == "/console/v1/gates/g"
    # Words for people; aiohttp's own only in the detail ``-v`` shows.
    assert type(error).__name__ not in info.value.message
    assert info.value.detail is not None and type(error).__name__ in info.value.detail


async def test_a_redirect_is_never_followed_so_the_key_stays_home(aiohttp_server):
    """Real HTTP on loopback: the API answers 307 to another server; the client raises
    Redirected naming the Location, and the other server never sees a request."""
    elsewhere: list[web.Request] = []

    async def record(request: web.Request) -> web.Response:
        elsewhere.append(request)
        return web.json_response({"message": "ok", "data": {"id": "stolen"}})

    other_app = web.Application()
    other_app.router.add_route("*", "/{tail:.*}", record)
    other = await aiohttp_server(other_app)

    async def moved(request: web.Request) -> web.Response:
        location = str(other.make_url(request.path))
        return web.Response(status=307, headers={"Location": location})

    api_app = web.Application()
    api_app.router.add_route("*", "/{tail:.*}", moved)
    api = await aiohttp_server(api_app)
    client_settings = Settings(api_key=SecretStr(KEY), base_url=str(api.make_url("/console/v1")))
    async with ConsoleClient(client_settings) as client:
        for method in ("GET", "POST"):
            with pytest.raises(Redirected) as info:
                await client.call(method, "/gates", {"name": "g"} if method == "POST" else None)
            assert info.value.status == 307
            assert info.value.location == str(other.make_url("/console/v1/gates"))
            assert f"redirected to {info.value.location}; not followed" in str(info.value)
            assert info.value.hint is not None and "STATSIG_API_URL" in info.value.hint
    assert elsewhere == []


async def test_an_absolute_url_elsewhere_is_refused_before_sending(make):
    """A path that is a URL on another host is refused; the key goes to the API URL only."""
    server = Server()
    client = make(server)
    with pytest.raises(UsageError, match="is not on the API URL"):
        await client.call("GET", "https://elsewhere.test/console/v1/gates")
    await client.call("GET", f"{BASE}/gates")  # the API's own origin is fine
    assert [r.url for r in server.requests] == [f"{BASE}/gates"]
