"""Layers: ``/layers``, the experiments on a layer, and layer overrides."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

from ..models import Experiment, Layer, LayerOverrides
from ._base import Body, Resource, dump, encode_id

__all__ = ["Layers"]


def _overrides_body(body: Body) -> dict[str, Any]:
    data = dump(body)
    data.setdefault("conditionalOverrides", [])
    data.setdefault("idOverrides", [])
    return data


class Layers(Resource):
    """``/layers`` and their overrides."""

    def _path(self, layer_id: str, *rest: str) -> str:
        return "/".join(["/layers", encode_id(layer_id), *rest])

    async def list(self, *, limit: int | None = None) -> AsyncIterator[Layer]:
        """Yield every layer (implicit ones included: ``isImplicitLayer``)."""
        async for item in self._client.paginate("/layers", limit=limit):
            yield Layer.model_validate(item)

    async def create(self, body: Body) -> Layer:
        """Create a layer (201) from ``{name, idType, description?, targetApps?, team?}``."""
        return Layer.model_validate(await self._client.data("POST", "/layers", json=dump(body)))

    async def get(self, layer_id: str) -> Layer:
        """Read one layer."""
        return Layer.model_validate(await self._client.data("GET", self._path(layer_id)))

    async def update(self, layer_id: str, body: Body) -> Layer:
        """Full update (``POST /layers/{id}``): ``description`` and ``parameters`` required."""
        data = await self._client.data("POST", self._path(layer_id), json=dump(body))
        return Layer.model_validate(data)

    async def patch(self, layer_id: str, body: Body) -> Layer:
        """Partial update (``PATCH /layers/{id}``)."""
        data = await self._client.data("PATCH", self._path(layer_id), json=dump(body))
        return Layer.model_validate(data)

    async def delete(self, layer_id: str) -> None:
        """Delete a layer (400 while experiments are still on it)."""
        await self._client.request("DELETE", self._path(layer_id))

    async def experiments(
        self, layer_id: str, *, limit: int | None = None
    ) -> AsyncIterator[Experiment]:
        """Yield the experiments on the layer."""
        path = self._path(layer_id, "experiments")
        async for item in self._client.paginate(path, limit=limit):
            yield Experiment.model_validate(item)

    # -- overrides: POST replaces, PATCH adds, DELETE removes -------------------------------

    async def get_overrides(self, layer_id: str) -> LayerOverrides:
        """Read the layer's overrides."""
        data = await self._client.data("GET", self._path(layer_id, "overrides"))
        return LayerOverrides.model_validate(data)

    async def set_overrides(self, layer_id: str, body: Body) -> LayerOverrides:
        """Replace the layer's overrides."""
        path = self._path(layer_id, "overrides")
        data = await self._client.data("POST", path, json=_overrides_body(body))
        return LayerOverrides.model_validate(data)

    async def add_overrides(self, layer_id: str, body: Body) -> LayerOverrides:
        """Add overrides (sent with ``op: "add"``)."""
        payload = _overrides_body(body)
        payload.setdefault("op", "add")
        path = self._path(layer_id, "overrides")
        return LayerOverrides.model_validate(await self._client.data("PATCH", path, json=payload))

    async def remove_overrides(self, layer_id: str, body: Body | None = None) -> LayerOverrides:
        """Remove the listed overrides and ids; with no ``body``, remove every override."""
        path = self._path(layer_id, "overrides")
        if body is None:
            data = await self._client.data("DELETE", path)
        else:
            data = await self._client.data("DELETE", path, json=_overrides_body(body))
        return LayerOverrides.model_validate(data)
