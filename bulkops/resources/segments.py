"""Resource namespaces: segments."""

from __future__ import annotations

from ._base import Resource

__all__ = ["Segments"]


class Segments(Resource):
    """``/segments``: metadata, rules, id lists."""
