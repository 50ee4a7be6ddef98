"""Resource namespaces: layers."""

from __future__ import annotations

from ._base import Resource

__all__ = ["Layers"]


class Layers(Resource):
    """``/layers`` and their overrides."""
