"""Resource namespaces: users."""

from __future__ import annotations

from ._base import Resource

__all__ = ["Teams", "Users"]


class Users(Resource):
    """``/users``."""


class Teams(Resource):
    """``/users/teams``."""
