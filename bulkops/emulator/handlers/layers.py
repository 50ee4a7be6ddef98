"""Emulator handlers: layers (``/layers/**``).

A layer is created with ``name`` and ``idType`` (201); its ``parameters`` are set by a
full (``POST``, description and parameters required) or partial (``PATCH``) update.
Implicit layers (``statsig::<experiment>_layer``) are created and deleted by the
experiments handlers. A layer with experiments on it cannot be deleted (400).
Overrides (``/layers/{id}/overrides``) are served by :mod:`.overrides`.
"""

from __future__ import annotations

import re
from functools import partial
from typing import Any

from aiohttp import web

from ...api.paths import id_from_name
from ..checks import (
    Check,
    check_name,
    field_error,
    object_list,
    require_keys,
    string,
    target_apps,
    validate_fields,
)
from ..common import get_or_404
from ..http import PREFIX, api_error, ok, ok_page, project, read_body, record_change
from .experiment_checks import build_layer, experiments_in_layer

__all__ = ["routes"]

_KIND = "layers"
_LAYERS = f"{PREFIX}/layers"
_LAYER = f"{_LAYERS}/{{id}}"
LAYER_NAME = re.compile(r"^[A-Za-z0-9_ -]*$")
_STR = string()
_NSTR = string(nullable=True)
_PARAMETER_TYPES: dict[str, tuple[type, ...]] = {
    "string": (str,),
    "number": (int, float),
    "boolean": (bool,),
    "object": (dict,),
    "array": (list,),
}


def _parameters(value: Any, prop: str) -> list[dict[str, Any]]:
    """Layer parameters: unique names, a known type and a default value of that type."""
    items = object_list({"name": _STR, "type": string(enum=_PARAMETER_TYPES)}, ("name", "type"))(
        value, prop
    )
    seen: set[str] = set()
    out = []
    for i, item in enumerate(items):
        if "defaultValue" not in item:
            field_error(f"{prop}[{i}].defaultValue", "Required")
        name, kind = str(item["name"]), str(item["type"])
        default: Any = item["defaultValue"]
        if not name:
            field_error(f"{prop}[{i}].name", "Parameter name must not be empty")
        if name in seen:
            field_error(f"{prop}[{i}].name", f"Duplicate parameter name: {name}")
        seen.add(name)
        wrong_bool = isinstance(default, bool) and kind == "number"
        if not isinstance(default, _PARAMETER_TYPES[kind]) or wrong_bool:
            field_error(f"{prop}[{i}].defaultValue", f"defaultValue must be of type {kind}")
        if isinstance(default, list) and any(isinstance(v, list) or v is None for v in default):
            field_error(
                f"{prop}[{i}].defaultValue",
                "array items must be strings, numbers, booleans or objects",
            )
        out.append({"name": name, "type": kind, "defaultValue": default})
    return out


_UPDATE_FIELDS: dict[str, Check] = {
    "description": string(max_len=1000),
    "parameters": _parameters,
    "targetApps": target_apps,
}
_CREATE_FIELDS: dict[str, Check] = {
    "description": string(max_len=1000),
    "idType": _STR,
    "targetApps": target_apps,
    "team": _NSTR,
}


def _layer(request: web.Request) -> dict[str, Any]:
    return get_or_404(request, _KIND, request.match_info["id"], "Layer")


async def list_layers(request: web.Request) -> web.Response:
    """``GET /layers``."""
    items = list(project(request).store(_KIND).values())
    return ok_page(request, items, "Layers listed successfully.")


async def create_layer(request: web.Request) -> web.Response:
    """``POST /layers`` (201): ``name`` and ``idType`` required."""
    proj = project(request)
    body = require_keys(await read_body(request), ("name", "idType"))
    name = check_name(body["name"], pattern=LAYER_NAME)
    fields = validate_fields(body, _CREATE_FIELDS)
    layer_id = id_from_name(name)
    store = proj.store(_KIND)
    if layer_id in store or any(layer.get("name") == name for layer in store.values()):
        api_error(400, "Layer name is already in use")
    layer = build_layer(request, layer_id, name, fields, implicit=False)
    store[layer_id] = layer
    proj.snapshot_version(_KIND, layer)
    record_change(request, _KIND, layer, "layer_create", versioned=False)
    return ok(layer, "Layer created successfully.", status=201)


async def get_layer(request: web.Request) -> web.Response:
    """``GET /layers/{id}``."""
    return ok(_layer(request), "Layer read successfully.")


async def update_layer(request: web.Request, *, full: bool) -> web.Response:
    """``POST /layers/{id}`` (full: ``description`` and ``parameters`` required) or ``PATCH``."""
    layer = _layer(request)
    body = await read_body(request)
    fields = validate_fields(
        body, _UPDATE_FIELDS, required=("description", "parameters") if full else ()
    )
    changes = {k: {"old": layer.get(k), "new": v} for k, v in fields.items() if layer.get(k) != v}
    layer.update(fields)
    record_change(request, _KIND, layer, "layer_edit", changes=changes)
    return ok(layer, "Layer updated successfully.")


async def delete_layer(request: web.Request) -> web.Response:
    """``DELETE /layers/{id}``: 400 while experiments are still on it."""
    proj = project(request)
    layer = _layer(request)
    if experiments_in_layer(proj, layer["id"]):
        api_error(400, "Layer cannot be deleted with experiments still on it")
    del proj.store(_KIND)[layer["id"]]
    proj.overrides.setdefault(_KIND, {}).pop(layer["id"], None)
    for holdout in proj.store("holdouts").values():
        if layer["id"] in holdout.get("layerIDs", []):
            holdout["layerIDs"].remove(layer["id"])
    record_change(request, _KIND, layer, "layer_delete", versioned=False)
    return ok(message="Layer deleted successfully.", with_data=False)


async def layer_experiments(request: web.Request) -> web.Response:
    """``GET /layers/{id}/experiments``: the experiments on this layer."""
    layer = _layer(request)
    items = experiments_in_layer(project(request), layer["id"])
    return ok_page(request, items, "Experiments listed successfully.")


routes = [
    web.get(_LAYERS, list_layers),
    web.post(_LAYERS, create_layer),
    web.get(_LAYER, get_layer),
    web.post(_LAYER, partial(update_layer, full=True)),
    web.patch(_LAYER, partial(update_layer, full=False)),
    web.delete(_LAYER, delete_layer),
    web.get(f"{_LAYER}/experiments", layer_experiments),
]
"""The layer routes (overrides: :mod:`.overrides`)."""
