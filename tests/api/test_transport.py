"""The aiohttp transport against a real loopback server: what goes over the wire."""

from __future__ import annotations

from typing import Any

import pytest
from aiohttp import web

from bulkops.api.transport import AiohttpTransport, ApiRequest
from bulkops.errors import TransportError


@pytest.mark.parametrize("method", ["PUT", "DELETE", "POST"])
async def test_a_dropped_connection_is_never_resent_by_the_http_library(
    aiohttp_server: Any, method: str
) -> None:
    """The server handles the write, then drops the connection: one request reaches it,
    and the caller gets a TransportError that says it was sent (aiohttp would otherwise
    resend a PUT or DELETE once by itself; only the engine decides a resend)."""
    seen: list[str] = []

    async def handle(request: web.Request) -> web.Response:
        seen.append(request.method)
        if len(seen) > 1:  # the first request primes a keep-alive connection
            assert request.transport is not None
            request.transport.abort()
        return web.json_response({"message": "ok"})

    app = web.Application()
    app.router.add_route("*", "/x", handle)
    server = await aiohttp_server(app)
    transport = AiohttpTransport(timeout=5)
    try:
        url = str(server.make_url("/x"))
        await transport.handle(ApiRequest("GET", url))
        with pytest.raises(TransportError) as info:
            await transport.handle(ApiRequest(method, url, json={}, has_body=True))
    finally:
        await transport.aclose()
    assert info.value.sent
    assert seen == ["GET", method]
