"""The emulator's routes: one explicit list of handler modules, each with a ``routes`` table.

Each module covers one resource family and ends with its route table, a list of
``web.get(path, handler)``-style route definitions (aiohttp's ``RouteDef``); a handler
shared by several routes is bound to its parameters there with :func:`functools.partial`.
:data:`ROUTES` joins the tables in the order below and refuses a method and path
registered twice (aiohttp would quietly let the first one win).
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence

from aiohttp import web

from . import (
    dynamic_configs,
    experiments,
    gates,
    holdouts,
    ingestions,
    layers,
    metadata,
    overrides,
    pulse,
    reviews,
    segments,
    users,
    warehouse,
)

__all__ = ["ROUTES", "ROUTE_TABLES", "check_routes"]

ROUTE_TABLES: tuple[Sequence[web.RouteDef], ...] = (
    gates.routes,
    dynamic_configs.routes,
    segments.routes,
    experiments.routes,
    overrides.routes,
    pulse.routes,
    warehouse.routes,
    layers.routes,
    holdouts.routes,
    metadata.routes,
    ingestions.routes,
    users.routes,
    reviews.routes,
)


def check_routes(tables: Iterable[Sequence[web.RouteDef]]) -> tuple[web.RouteDef, ...]:
    """The routes of ``tables`` in order; ``ValueError`` on a method and path given twice."""
    seen: set[tuple[str, str]] = set()
    routes: list[web.RouteDef] = []
    for table in tables:
        for route in table:
            key = (route.method, route.path)
            if key in seen:
                raise ValueError(f"route {route.method} {route.path} is registered twice")
            seen.add(key)
            routes.append(route)
    return tuple(routes)


ROUTES = check_routes(ROUTE_TABLES)
