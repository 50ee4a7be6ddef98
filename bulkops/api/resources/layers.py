"""Layers: ``/layers``, the experiments on a layer, and layer overrides."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

from ..models import Experiment, Layer, LayerOverrides
from ..paths import LAYERS
from ._base import Body, Editable, WithOverrides, validated

__all__ = ["Layers"]


class Layers(Editable[Layer], WithOverrides[LayerOverrides]):
    """``/layers`` and their overrides.

    :meth:`create` takes ``{name, idType, description?, targetApps?, team?}``;
    :meth:`update` (``POST``) requires ``description`` and ``parameters``; a layer
    cannot be deleted while experiments are on it (400). Listing includes implicit
    layers (``isImplicitLayer``).
    """

    route = LAYERS
    model = Layer
    overrides_model = LayerOverrides
    overrides_lists = ("conditionalOverrides", "idOverrides")

    def _overrides_body(self, body: Body, method: str) -> dict[str, Any]:
        data = super()._overrides_body(body, method)
        if method == "PATCH":
            data.setdefault("op", "add")  # the service adds only when told so
        return data

    def experiments(self, layer_id: str, *, limit: int | None = None) -> AsyncIterator[Experiment]:
        """Yield the experiments on the layer."""
        return validated(Experiment, self._pages(self.path(layer_id, "experiments"), limit=limit))
