"""The Console API library: transport, client, models and typed resources.

Everything here talks HTTP and nothing else: no plans, no journal, no quota policy.
The engine (:mod:`bulkops.engine`) builds on it; a script can use it alone::

    from bulkops.api import ConsoleClient
    from bulkops.settings import Settings

    async with ConsoleClient(Settings.from_env()) as client:
        async for gate in client.gates.list(type="STALE"):
            print(gate.id)
"""

from __future__ import annotations

from .client import ConsoleClient
from .transport import AiohttpTransport, ApiRequest, ApiResponse, MockTransport, Transport

__all__ = [
    "AiohttpTransport",
    "ApiRequest",
    "ApiResponse",
    "ConsoleClient",
    "MockTransport",
    "Transport",
]
