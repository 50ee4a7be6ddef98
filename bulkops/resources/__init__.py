"""Typed endpoint methods, one namespace per Console API group.

Each module defines :class:`Resource` subclasses; the client creates one instance
of each (``client.gates``, ``client.dynamic_configs``, …). Methods build paths with
:func:`encode_id`, send bodies through :func:`bulkops.models.dump`, and return
models or plain data.
"""

from __future__ import annotations

from ._base import Resource, encode_id
from .gates import Gates

__all__ = ["Gates", "Resource", "encode_id"]
