"""Resource namespaces: experiments."""

from __future__ import annotations

from ._base import Resource

__all__ = ["Experiments", "WarehouseNative"]


class Experiments(Resource):
    """``/experiments`` and everything under it."""


class WarehouseNative(Resource):
    """Experiments (Warehouse Native): pulse loading, assignment and entity property sources."""
