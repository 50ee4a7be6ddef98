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
