"""What import-overrides reads from the project: the catalog rows are checked against,
and each target's overrides as they are."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

import anyio

from bulkops.api.client import ConsoleClient
from bulkops.errors import ApiError

from .parser import Catalog, GroupRef
from .shapes import SHAPES

__all__ = ["read_catalog", "read_current"]

_READS_AT_ONCE = 8


async def read_catalog(client: ConsoleClient) -> Catalog:
    """What the rows are checked against: targets, groups, environments, unit types."""
    catalog = Catalog()
    catalog.gates = {str(g["id"]) async for g in client.gates.items()}
    catalog.holdouts = {str(h["id"]) async for h in client.holdouts.items()}
    catalog.segments = {str(s["id"]): str(s.get("type")) async for s in client.segments.items()}
    catalog.layers = {str(layer["id"]): set() async for layer in client.layers.items()}
    async for experiment in client.experiments.items():
        exp_id = str(experiment["id"])
        catalog.experiments.setdefault(exp_id, set())
        layer = experiment.get("layerID")
        for group in experiment.get("groups") or []:
            ref = GroupRef(exp_id, str(group.get("id") or ""), str(group.get("name") or ""))
            catalog.add_group("experiment", exp_id, ref)
            if layer in catalog.layers:
                catalog.add_group("layer", str(layer), ref)
    catalog.environments = set(await client.environments.names())
    catalog.unit_types |= {
        str(u["name"]) async for u in client.unit_id_types.items() if u.get("name")
    }
    return catalog


async def read_current(
    client: ConsoleClient, targets: Iterable[tuple[str, str]]
) -> dict[tuple[str, str], Any]:
    """Each target's overrides (a segment's whole id list), None for a target gone.

    Raises:
        ApiError: a read failed (the first one, after every read has finished).
    """
    out: dict[tuple[str, str], Any] = {}
    errors: list[ApiError] = []
    limiter = anyio.CapacityLimiter(_READS_AT_ONCE)

    async def read(key: tuple[str, str]) -> None:
        async with limiter:
            try:
                shape = SHAPES[key[0]]
                out[key] = await client.collection(shape.collection).read(key[1], shape.under)
            except ApiError as exc:
                errors.append(exc)

    async with anyio.create_task_group() as tg:
        for key in targets:
            tg.start_soon(read, key)
    if errors:
        raise errors[0]
    return out
