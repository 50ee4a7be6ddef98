"""Core plumbing: auth, errors and the request log over real HTTP."""

from __future__ import annotations

import pytest

from bulkops.errors import NotFound, Unauthorized


async def test_unknown_key_is_401_and_never_echoed(make_client):
    """An unknown key gets the real 401 message, without the key in the error."""
    client = make_client("console-totally-secret-canary-123")
    with pytest.raises(Unauthorized) as info:
        await client.call("GET", "/gates")
    assert info.value.status == 401
    assert "canary" not in str(info.value)
    assert "invalid key" in str(info.value)


async def test_unknown_route_is_404(client):
    """A path the API does not have is a 404 NotFound."""
    with pytest.raises(NotFound):
        await client.call("GET", "/no_such_thing")


async def test_response_headers_are_read_case_insensitively():
    """A proxy that lowercases headers (as HTTP/2 front ends do) still has its
    Retry-After and request id honoured: the transport keeps aiohttp's
    case-insensitive headers instead of copying them into a plain dict."""
    from aiohttp import web
    from pydantic import SecretStr

    from bulkops.api.client import ConsoleClient
    from bulkops.errors import RateLimited
    from bulkops.settings import Settings

    async def throttled(request: web.Request) -> web.Response:
        return web.json_response(
            {"message": "slow down"},
            status=429,
            headers={"retry-after": "7", "x-request-id": "req-123"},
        )

    app = web.Application()
    app.router.add_get("/console/v1/gates", throttled)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = runner.addresses[0][1]
    settings = Settings(
        api_key=SecretStr("console-case-test"),
        base_url=f"http://127.0.0.1:{port}/console/v1",
        read_retries=0,
    )
    try:
        async with ConsoleClient(settings) as client:
            with pytest.raises(RateLimited) as info:
                await client.call("GET", "/gates")
    finally:
        await runner.cleanup()
    assert info.value.retry_after == 7.0
    assert info.value.request_id == "req-123"
