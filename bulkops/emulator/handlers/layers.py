"""Emulator handlers: layers (``/layers/**``).

A layer is created with ``name`` and ``idType`` (201); its ``parameters`` are set by a
full (``POST``, description and parameters required) or partial (``PATCH``) update.
Implicit layers (``statsig::<experiment>_layer``) are created and deleted by the
experiments handlers. A layer with experiments on it cannot be deleted (400).

Overrides live in ``project.overrides["layers"][id]`` as ``{conditionalOverrides,
idOverrides}``: POST replaces, PATCH (``op: "add"``) adds — a conditional override for
the same gate/segment is overwritten, ids join their group's entry and leave any other
group's — and DELETE removes the listed entries and ids (everything without a body).
"""

from __future__ import annotations

import re
from typing import Any

from aiohttp import web

from ..common import check_name, field_error, get_or_404, id_from_name
from ..http import (
    PREFIX,
    api_error,
    clone,
    ok,
    ok_page,
    project,
    read_body,
    record_change,
)
from ..state import Project
from .experiments import (
    Check,
    build_layer,
    check_environment,
    experiments_in_layer,
    find_group,
    json_type,
    object_list,
    require_keys,
    string,
    string_list,
    target_apps,
    validate_fields,
)

__all__ = ["routes"]

routes = web.RouteTableDef()

_KIND = "layers"
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


@routes.get(f"{PREFIX}/layers")
async def list_layers(request: web.Request) -> web.Response:
    """``GET /layers``."""
    items = list(project(request).store(_KIND).values())
    return ok_page(request, items, "Layers listed successfully.")


@routes.post(f"{PREFIX}/layers")
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


@routes.get(f"{PREFIX}/layers/{{id}}")
async def get_layer(request: web.Request) -> web.Response:
    """``GET /layers/{id}``."""
    return ok(_layer(request), "Layer read successfully.")


async def _update(request: web.Request, *, full: bool) -> web.Response:
    layer = _layer(request)
    body = await read_body(request)
    fields = validate_fields(
        body, _UPDATE_FIELDS, required=("description", "parameters") if full else ()
    )
    changes = {k: {"old": layer.get(k), "new": v} for k, v in fields.items() if layer.get(k) != v}
    layer.update(fields)
    record_change(request, _KIND, layer, "layer_edit", changes=changes)
    return ok(layer, "Layer updated successfully.")


@routes.post(f"{PREFIX}/layers/{{id}}")
async def update_layer(request: web.Request) -> web.Response:
    """``POST /layers/{id}``: full update (``description`` and ``parameters`` required)."""
    return await _update(request, full=True)


@routes.patch(f"{PREFIX}/layers/{{id}}")
async def patch_layer(request: web.Request) -> web.Response:
    """``PATCH /layers/{id}``: only the given fields change."""
    return await _update(request, full=False)


@routes.delete(f"{PREFIX}/layers/{{id}}")
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


@routes.get(f"{PREFIX}/layers/{{id}}/experiments")
async def layer_experiments(request: web.Request) -> web.Response:
    """``GET /layers/{id}/experiments``: the experiments on this layer."""
    layer = _layer(request)
    items = experiments_in_layer(project(request), layer["id"])
    return ok_page(request, items, "Experiments listed successfully.")


# -- overrides ---------------------------------------------------------------------------

_CONDITIONAL: dict[str, Check] = {
    "type": string(enum=("gate", "segment")),
    "name": _STR,
    "experimentName": _STR,
    "groupName": _STR,
}
_ID_OVERRIDE: dict[str, Check] = {
    "groupName": _STR,
    "ids": string_list(non_empty_items=True),
    "idType": _NSTR,
    "experimentName": _NSTR,
}


def _empty() -> dict[str, Any]:
    return {"conditionalOverrides": [], "idOverrides": []}


def _stored(proj: Project, layer_id: str) -> dict[str, Any]:
    return proj.overrides.setdefault(_KIND, {}).get(layer_id) or _empty()


def _layer_experiment(proj: Project, layer_id: str, ref: Any, prop: str) -> dict[str, Any]:
    for experiment in experiments_in_layer(proj, layer_id):
        if ref in (experiment["id"], experiment.get("name")):
            return experiment
    field_error(prop, f"Experiment {ref} is not in layer {layer_id}")


def _parse(
    proj: Project, layer_id: str, body: Any, *, required: bool, check_refs: bool
) -> dict[str, Any]:
    """Validate a ``LayerOverridesDto`` body; ``check_refs`` also checks every reference."""
    body = require_keys(body, ("conditionalOverrides", "idOverrides") if required else ())
    out = _empty()
    entries = body.get("conditionalOverrides") or []
    for i, raw in enumerate(_list(entries, "conditionalOverrides")):
        prop = f"conditionalOverrides[{i}]"
        entry = validate_fields(raw, _CONDITIONAL, required=tuple(_CONDITIONAL), prefix=f"{prop}.")
        if check_refs:
            kind = "gates" if entry["type"] == "gate" else "segments"
            if entry["name"] not in proj.store(kind):
                label = "Gate" if kind == "gates" else "Segment"
                field_error(f"{prop}.name", f"{label} {entry['name']} not found.")
            experiment = _layer_experiment(
                proj, layer_id, entry["experimentName"], f"{prop}.experimentName"
            )
            if find_group(experiment, entry["groupName"]) is None:
                field_error(f"{prop}.groupName", f"Group {entry['groupName']} not found.")
        out["conditionalOverrides"].append(entry)
    for i, raw in enumerate(_list(body.get("idOverrides") or [], "idOverrides")):
        prop = f"idOverrides[{i}]"
        entry = validate_fields(raw, _ID_OVERRIDE, required=("groupName", "ids"), prefix=f"{prop}.")
        entry["environment"] = check_environment(
            proj, raw.get("environment"), f"{prop}.environment"
        )
        entry.setdefault("idType", None)
        entry.setdefault("experimentName", None)
        if check_refs:
            candidates = (
                [
                    _layer_experiment(
                        proj, layer_id, entry["experimentName"], f"{prop}.experimentName"
                    )
                ]
                if entry["experimentName"] is not None
                else experiments_in_layer(proj, layer_id)
            )
            if not any(find_group(e, entry["groupName"]) for e in candidates):
                field_error(f"{prop}.groupName", f"Group {entry['groupName']} not found.")
        out["idOverrides"].append(entry)
    return out


def _list(value: Any, prop: str) -> list[Any]:
    if not isinstance(value, list):
        field_error(prop, f"Expected array, received {json_type(value)}")
    return value


def _merge(current: dict[str, Any], added: dict[str, Any]) -> dict[str, Any]:
    merged: dict[str, Any] = clone(current)
    for entry in added["conditionalOverrides"]:
        key = (entry["type"], entry["name"])
        merged["conditionalOverrides"] = [
            o for o in merged["conditionalOverrides"] if (o["type"], o["name"]) != key
        ] + [entry]
    for entry in added["idOverrides"]:
        scope = (entry["idType"], entry["environment"])
        group = (entry["experimentName"], entry["groupName"])
        ids = dict.fromkeys(entry["ids"])
        target = None
        for existing in merged["idOverrides"]:
            if (existing.get("idType"), existing.get("environment")) != scope:
                continue
            if (existing.get("experimentName"), existing["groupName"]) == group:
                target = existing
            else:  # an id is in one group of the layer at a time
                existing["ids"] = [i for i in existing["ids"] if i not in ids]
        if target is None:
            merged["idOverrides"].append({**entry, "ids": list(ids)})
        else:
            target["ids"] = list(dict.fromkeys([*target["ids"], *ids]))
    merged["idOverrides"] = [e for e in merged["idOverrides"] if e["ids"]]
    return merged


def _remove(current: dict[str, Any], removed: dict[str, Any]) -> dict[str, Any]:
    out: dict[str, Any] = clone(current)
    gone = {(o["type"], o["name"]) for o in removed["conditionalOverrides"]}
    out["conditionalOverrides"] = [
        o for o in out["conditionalOverrides"] if (o["type"], o["name"]) not in gone
    ]
    for entry in removed["idOverrides"]:
        ids = set(entry["ids"])
        for existing in out["idOverrides"]:
            same_group = existing["groupName"] == entry["groupName"]
            same_experiment = entry["experimentName"] in (None, existing.get("experimentName"))
            if same_group and same_experiment:
                existing["ids"] = [i for i in existing["ids"] if i not in ids]
    out["idOverrides"] = [e for e in out["idOverrides"] if e["ids"]]
    return out


def _save(request: web.Request, layer: dict[str, Any], overrides: dict[str, Any]) -> web.Response:
    proj = project(request)
    before = _stored(proj, layer["id"])
    if overrides != before:
        proj.overrides.setdefault(_KIND, {})[layer["id"]] = overrides
        record_change(
            request,
            _KIND,
            layer,
            "layer_overrides_edit",
            changes={"overrides": {"old": before, "new": overrides}},
            versioned=False,
        )
    return ok(overrides, "Layer Overrides updated successfully.")


@routes.get(f"{PREFIX}/layers/{{id}}/overrides")
async def get_overrides(request: web.Request) -> web.Response:
    """``GET /layers/{id}/overrides``."""
    layer = _layer(request)
    return ok(_stored(project(request), layer["id"]), "Layer Overrides read successfully.")


@routes.post(f"{PREFIX}/layers/{{id}}/overrides")
async def set_overrides(request: web.Request) -> web.Response:
    """``POST /layers/{id}/overrides``: replace all overrides."""
    layer = _layer(request)
    body = await read_body(request)
    parsed = _parse(project(request), layer["id"], body, required=True, check_refs=True)
    return _save(request, layer, _merge(_empty(), parsed))


@routes.patch(f"{PREFIX}/layers/{{id}}/overrides")
async def add_overrides(request: web.Request) -> web.Response:
    """``PATCH /layers/{id}/overrides`` with ``op: "add"``: add to the overrides."""
    proj = project(request)
    layer = _layer(request)
    body = require_keys(await read_body(request), ("op",))
    if body["op"] != "add":
        field_error("op", f"Invalid enum value. Expected 'add', received '{body['op']}'")
    parsed = _parse(proj, layer["id"], body, required=True, check_refs=True)
    return _save(request, layer, _merge(_stored(proj, layer["id"]), parsed))


@routes.delete(f"{PREFIX}/layers/{{id}}/overrides")
async def remove_overrides(request: web.Request) -> web.Response:
    """``DELETE /layers/{id}/overrides``: remove the listed entries/ids; no body → all."""
    proj = project(request)
    layer = _layer(request)
    body = await read_body(request, required=False)
    if body is None:
        return _save(request, layer, _empty())
    parsed = _parse(proj, layer["id"], body, required=False, check_refs=False)
    return _save(request, layer, _remove(_stored(proj, layer["id"]), parsed))
