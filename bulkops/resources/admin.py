"""Resource namespaces: admin."""

from __future__ import annotations

from ._base import Resource

__all__ = ["Alerts", "Keys"]


class Alerts(Resource):
    """``/alerts``."""


class Keys(Resource):
    """``/keys``."""
