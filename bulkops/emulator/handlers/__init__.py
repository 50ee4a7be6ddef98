"""One handler module per resource family; each exposes ``routes`` (a RouteTableDef)."""

from __future__ import annotations

from aiohttp import web

from . import (
    dynamic_configs,
    experiments,
    gates,
    holdouts,
    ingestions,
    layers,
    metadata,
    segments,
    users,
)

__all__ = ["ROUTE_TABLES"]

ROUTE_TABLES: tuple[web.RouteTableDef, ...] = (
    gates.routes,
    dynamic_configs.routes,
    segments.routes,
    experiments.routes,
    layers.routes,
    holdouts.routes,
    metadata.routes,
    ingestions.routes,
    users.routes,
)
