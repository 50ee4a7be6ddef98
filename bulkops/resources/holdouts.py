"""Resource namespaces: holdouts."""

from __future__ import annotations

from ._base import Resource

__all__ = ["Holdouts"]


class Holdouts(Resource):
    """``/holdouts`` and their overrides."""
