"""Resource namespaces: dynamic configs."""

from __future__ import annotations

from ._base import Resource

__all__ = ["DynamicConfigs"]


class DynamicConfigs(Resource):
    """``/dynamic_configs`` and everything under it."""
