"""The base of every resource namespace."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from ..models import dump
from ..paths import encode_id

if TYPE_CHECKING:
    from ..client import ConsoleClient

__all__ = ["Body", "Resource", "dump", "encode_id"]

Body = Any  # a pydantic model or a plain mapping; sent through ``dump``


class Resource:
    """A group of endpoints on one client."""

    def __init__(self, client: ConsoleClient) -> None:
        self._client = client

    def __repr__(self) -> str:
        return f"<{type(self).__name__}>"
