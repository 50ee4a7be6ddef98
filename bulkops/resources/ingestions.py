"""Resource namespaces: ingestions."""

from __future__ import annotations

from ._base import Resource

__all__ = ["Ingestions"]


class Ingestions(Resource):
    """``/ingestion``: all 13 operations."""
