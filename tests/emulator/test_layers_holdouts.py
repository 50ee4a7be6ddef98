"""Layers and holdouts end to end: client methods against the emulator over real HTTP."""

from __future__ import annotations

import pytest
from emulator_support import actions, make_gate, rejected

from bulkops.api.models import LayerOverrides, Overrides
from bulkops.emulator.seed import EMPTY_READ_ONLY_KEY
from bulkops.errors import BadRequest, Forbidden, NotFound

PARAMETERS = [
    {"name": "color", "type": "string", "defaultValue": "blue"},
    {"name": "size", "type": "number", "defaultValue": 3},
    {"name": "flags", "type": "array", "defaultValue": ["a", 1]},
]
GROUPS = [
    {"name": "Control", "size": 50, "parameterValues": {"color": "blue"}},
    {"name": "Test", "size": 50, "parameterValues": {"color": "red"}},
]


# -- layers -----------------------------------------------------------------------------------


async def test_layer_crud_round_trip(client, project):
    """Create (201), read, list, full and partial update, delete — each change audited once."""
    layer = await client.layers.create(
        {"name": "Checkout Layer", "idType": "userID", "description": "d", "targetApps": "web"}
    )
    assert layer.model_extra["targetApps"] == ["web"]
    assert (layer.id, layer.isImplicitLayer, layer.parameters, layer.version) == (
        "checkout_layer",
        False,
        [],
        1,
    )
    assert await client.layers.get(layer.id) == layer
    assert [x.id async for x in client.layers.list()] == ["checkout_layer"]
    full = await client.layers.update(layer.id, {"description": "full", "parameters": PARAMETERS})
    assert (full.description, full.parameters, full.version) == ("full", PARAMETERS, 2)
    patched = await client.layers.patch(layer.id, {"targetApps": ["web"]})
    assert (patched.description, patched.model_extra["targetApps"]) == ("full", ["web"])
    await client.layers.delete(layer.id)
    with pytest.raises(NotFound) as info:
        await client.layers.get(layer.id)
    assert info.value.message == "Layer not found."
    assert actions(project, layer.id) == [
        "layer_create",
        "layer_edit",
        "layer_edit",
        "layer_delete",
    ]


async def test_layer_bad_input(client, project):
    """Missing idType, taken names, bad parameters and a partial full update are 400s."""
    with pytest.raises(BadRequest) as info:
        await client.layers.create({"name": "no id type"})
    assert info.value.errors == [{"property": "idType", "errorMessage": "Required"}]
    await client.layers.create({"name": "taken", "idType": "userID"})
    with rejected("Layer name is already in use"):
        await client.layers.create({"name": "Taken", "idType": "userID"})
    with pytest.raises(BadRequest):
        await client.layers.create({"name": "bad/name", "idType": "userID"})
    bad_parameters = [
        [{"name": "color", "type": "string", "defaultValue": 5}],
        [{"name": "size", "type": "number", "defaultValue": True}],
        [{"name": "x", "type": "date", "defaultValue": "2024"}],
        [{"name": "x", "type": "string"}],
        [PARAMETERS[0], PARAMETERS[0]],
    ]
    for parameters in bad_parameters:
        with pytest.raises(BadRequest):
            await client.layers.patch("taken", {"parameters": parameters})
    with pytest.raises(BadRequest) as info:
        await client.layers.update("taken", {"description": "no parameters"})
    assert info.value.errors[0]["property"] == "parameters"
    assert project.store("layers")["taken"]["version"] == 1


async def test_layer_delete_guard(client):
    """A layer with experiments on it (explicit or implicit) cannot be deleted."""
    layer = await client.layers.create({"name": "busy", "idType": "userID"})
    exp = await client.experiments.create({"name": "on layer", "layerID": layer.id})
    alone = await client.experiments.create({"name": "alone"})
    with rejected("Layer cannot be deleted with experiments still on it"):
        await client.layers.delete(layer.id)
    with rejected("Layer cannot be deleted with experiments still on it"):
        await client.layers.delete(alone.layerID)
    assert [e.id async for e in client.layers.experiments(layer.id)] == [exp.id]
    await client.experiments.delete(exp.id)
    await client.layers.delete(layer.id)
    with pytest.raises(NotFound):
        await client.layers.experiments(layer.id).__anext__()


async def test_layer_overrides_replace_add_remove(client, project):
    """POST replaces; PATCH op "add" overwrites the same gate and merges group ids; DELETE removes."""
    gate_id = make_gate(project)
    layer = await client.layers.create({"name": "overridden", "idType": "userID"})
    await client.experiments.create({"name": "exp a", "layerID": layer.id, "groups": GROUPS})
    assert await client.layers.get_overrides(layer.id) == LayerOverrides()
    conditional = {"type": "gate", "name": gate_id, "experimentName": "exp_a"}
    replaced = await client.layers.set_overrides(
        layer.id,
        {
            "conditionalOverrides": [{**conditional, "groupName": "Control"}],
            "idOverrides": [
                {"groupName": "Control", "ids": ["u1", "u2"], "experimentName": "exp_a"}
            ],
        },
    )
    assert replaced.conditionalOverrides == [{**conditional, "groupName": "Control"}]
    added = await client.layers.add_overrides(
        layer.id,
        {
            "conditionalOverrides": [{**conditional, "groupName": "Test"}],
            "idOverrides": [{"groupName": "Test", "ids": ["u2", "u3"], "experimentName": "exp_a"}],
        },
    )
    assert added.conditionalOverrides == [{**conditional, "groupName": "Test"}]
    assert [(e["groupName"], e["ids"]) for e in added.idOverrides] == [
        ("Control", ["u1"]),
        ("Test", ["u2", "u3"]),
    ]
    removed = await client.layers.remove_overrides(
        layer.id, {"idOverrides": [{"groupName": "Test", "ids": ["u3"]}]}
    )
    assert [(e["groupName"], e["ids"]) for e in removed.idOverrides] == [
        ("Control", ["u1"]),
        ("Test", ["u2"]),
    ]
    assert await client.layers.get_overrides(layer.id) == removed
    cleared = await client.layers.remove_overrides(layer.id)
    assert cleared == LayerOverrides(conditionalOverrides=[], idOverrides=[])
    assert actions(project, layer.id).count("layer_overrides_edit") == 4


async def test_layer_overrides_are_validated(client, project):
    """Unknown experiments, groups or gates and an op other than "add" are 400s."""
    gate_id = make_gate(project)
    layer = await client.layers.create({"name": "strict", "idType": "userID"})
    await client.experiments.create({"name": "exp b", "layerID": layer.id})
    await client.experiments.create({"name": "elsewhere"})
    bad_bodies = [
        {"idOverrides": [{"groupName": "Nope", "ids": ["u1"]}]},
        {"idOverrides": [{"groupName": "Test", "ids": ["u1"], "experimentName": "elsewhere"}]},
        {
            "conditionalOverrides": [
                {"type": "gate", "name": "no_gate", "experimentName": "exp_b", "groupName": "Test"}
            ]
        },
        {
            "conditionalOverrides": [
                {"type": "gate", "name": gate_id, "experimentName": "exp_b", "groupName": "Nope"}
            ]
        },
    ]
    for body in bad_bodies:
        with pytest.raises(BadRequest):
            await client.layers.set_overrides(layer.id, body)
    with pytest.raises(BadRequest) as info:
        await client.call(
            "PATCH",
            f"/layers/{layer.id}/overrides",
            {"op": "remove", "conditionalOverrides": [], "idOverrides": []},
        )
    assert info.value.errors[0]["property"] == "op"
    with pytest.raises(NotFound):
        await client.layers.get_overrides("no_layer")
    assert project.overrides["layers"] == {}


# -- holdouts ----------------------------------------------------------------------------------


async def test_holdout_crud_round_trip(client, project):
    """Create (200) with defaults, read, list with filters, full and partial update, delete."""
    holdout = await client.holdouts.create({"name": "Global Holdout", "description": "keep out"})
    assert (holdout.id, holdout.isEnabled, holdout.passPercentage, holdout.isGlobal) == (
        "global_holdout",
        True,
        0,
        False,
    )
    assert (holdout.gateIDs, holdout.targetingGateID) == ([], None)
    assert await client.holdouts.get(holdout.id) == holdout
    assert [h.id async for h in client.holdouts.list(creator_name="CONSOLE API")] == [holdout.id]
    assert [h async for h in client.holdouts.list(tags="nope")] == []
    patched = await client.holdouts.patch(holdout.id, {"passPercentage": 5, "isGlobal": True})
    assert (patched.passPercentage, patched.isGlobal, patched.version) == (5, True, 2)
    full = {
        "isEnabled": False,
        "description": "full",
        "passPercentage": 2.5,
        "gateIDs": [],
        "experimentIDs": [],
        "layerIDs": [],
        "isGlobal": False,
        "targetingGateID": None,
    }
    updated = await client.holdouts.update(holdout.id, full)
    assert (updated.isEnabled, updated.passPercentage, updated.description) == (False, 2.5, "full")
    await client.holdouts.delete(holdout.id)
    with pytest.raises(NotFound) as info:
        await client.holdouts.get(holdout.id)
    assert info.value.message == "Holdout not found."
    assert actions(project, holdout.id) == [
        "holdout_create",
        "holdout_update",
        "holdout_update",
        "holdout_delete",
    ]


async def test_holdout_bad_input(client, project):
    """Unknown create keys, pass percentage outside 0–10, wrong types and partial full updates are 400s."""
    with pytest.raises(BadRequest) as info:
        await client.holdouts.create({"name": "eager", "passPercentage": 5})
    assert info.value.errors == [
        {"property": "body", "errorMessage": "Unrecognized key(s) in object: 'passPercentage'"}
    ]
    holdout = await client.holdouts.create({"name": "bounded"})
    with rejected("Name is already in use"):
        await client.holdouts.create({"name": "bounded"})
    for value in (10.5, -1, "5", None):
        with pytest.raises(BadRequest) as info:
            await client.holdouts.patch(holdout.id, {"passPercentage": value})
        assert info.value.errors[0]["property"] == "passPercentage"
    assert (await client.holdouts.patch(holdout.id, {"passPercentage": 10})).passPercentage == 10
    with pytest.raises(BadRequest):
        await client.holdouts.patch(holdout.id, {"name": "renamed"})
    with pytest.raises(BadRequest) as info:
        await client.holdouts.update(holdout.id, {"description": "only"})
    assert info.value.errors[0]["property"] == "isEnabled"
    with pytest.raises(BadRequest):
        await client.holdouts.patch(holdout.id, {"targetingGateID": "no_gate"})
    assert project.store("holdouts")["bounded"]["passPercentage"] == 10


async def test_holdout_targets_must_exist_and_are_indexed(client, project):
    """Targets must exist (404); targets list the holdout in holdoutIDs until released."""
    gate_id = make_gate(project)
    exp = await client.experiments.create({"name": "held"})
    layer = await client.layers.create({"name": "held layer", "idType": "userID"})
    holdout = await client.holdouts.create({"name": "targeting"})
    with pytest.raises(NotFound) as info:
        await client.holdouts.patch(holdout.id, {"gateIDs": [gate_id, "ghost"]})
    assert info.value.errors == [
        {
            "property": "gateIDs",
            "errorMessage": "The following Gate IDs could not be found: [ghost]",
        }
    ]
    targeted = await client.holdouts.patch(
        holdout.id,
        {
            "gateIDs": [gate_id],
            "experimentIDs": [exp.id],
            "layerIDs": [layer.id],
            "targetingGateID": gate_id,
        },
    )
    assert (targeted.gateIDs, targeted.targetingGateID) == ([gate_id], gate_id)
    assert project.store("gates")[gate_id]["holdoutIDs"] == [holdout.id]
    assert (await client.experiments.get(exp.id)).model_extra["holdoutIDs"] == [holdout.id]
    assert (await client.layers.get(layer.id)).model_extra["holdoutIDs"] == [holdout.id]
    await client.holdouts.patch(holdout.id, {"experimentIDs": []})
    assert (await client.experiments.get(exp.id)).model_extra["holdoutIDs"] == []
    await client.holdouts.delete(holdout.id)
    assert project.store("gates")[gate_id]["holdoutIDs"] == []
    assert (await client.layers.get(layer.id)).model_extra["holdoutIDs"] == []


async def test_holdout_overrides_replace_add_remove(client, project):
    """POST replaces, PATCH adds (moving ids between pass and fail), DELETE removes; ≤2000 per list."""
    holdout = await client.holdouts.create({"name": "overridden"})
    empty = await client.holdouts.get_overrides(holdout.id)
    assert empty == Overrides(
        passingUserIDs=[],
        failingUserIDs=[],
        passingCustomIDs=[],
        failingCustomIDs=[],
        environmentOverrides=[],
    )
    replaced = await client.holdouts.set_overrides(
        holdout.id, {"passingUserIDs": ["u1", "u2"], "failingUserIDs": ["u3"]}
    )
    assert (replaced.passingUserIDs, replaced.failingUserIDs) == (["u1", "u2"], ["u3"])
    added = await client.holdouts.add_overrides(
        holdout.id, {"passingUserIDs": ["u3"], "failingUserIDs": ["u1"]}
    )
    assert (added.passingUserIDs, added.failingUserIDs) == (["u2", "u3"], ["u1"])
    env = {"environment": "staging", "unitID": "stableID", "passingIDs": ["s1"], "failingIDs": []}
    with_env = await client.holdouts.add_overrides(holdout.id, {"environmentOverrides": [env]})
    assert with_env.environmentOverrides == [env]
    assert with_env.passingUserIDs == ["u2", "u3"]
    removed = await client.holdouts.remove_overrides(
        holdout.id, {"passingUserIDs": ["u2"], "failingUserIDs": []}
    )
    assert (removed.passingUserIDs, removed.failingUserIDs) == (["u3"], ["u1"])
    replaced_env = await client.holdouts.set_overrides(holdout.id, {"environmentOverrides": [env]})
    assert (replaced_env.passingUserIDs, replaced_env.environmentOverrides) == ([], [env])
    cleared = await client.holdouts.remove_overrides(holdout.id)
    assert cleared.environmentOverrides == []
    too_many = {"passingUserIDs": [f"u{i}" for i in range(2001)], "failingUserIDs": []}
    with pytest.raises(BadRequest):
        await client.holdouts.set_overrides(holdout.id, too_many)
    with pytest.raises(BadRequest):
        await client.holdouts.set_overrides(
            holdout.id, {"environmentOverrides": [{**env, "environment": "moon"}]}
        )
    with pytest.raises(BadRequest) as info:
        await client.call("POST", f"/holdouts/{holdout.id}/overrides", {"passingUserIDs": ["u1"]})
    assert info.value.errors == [{"property": "failingUserIDs", "errorMessage": "Required"}]
    assert actions(project, holdout.id).count("holdout_update") == 6


async def test_holdout_pulse_results(client):
    """Pulse results list one deterministic row per monitoring metric."""
    holdout = await client.holdouts.create({"name": "measured"})
    metrics = [{"name": "revenue", "type": "sum"}]
    await client.holdouts.patch(holdout.id, {"monitoringMetrics": metrics})
    pulse = await client.holdouts.pulse_results(holdout.id, cuped=False, confidence="90")
    assert [m["metricID"] for m in pulse["monitoringMetrics"]] == ["revenue::sum"]
    assert pulse == await client.holdouts.pulse_results(holdout.id, cuped=False, confidence="90")
    with pytest.raises(BadRequest):
        await client.holdouts.pulse_results(holdout.id, confidence="42")
    with pytest.raises(NotFound):
        await client.holdouts.pulse_results("no_holdout")


async def test_read_only_key_cannot_change_layers_or_holdouts(client, make_client, project):
    """A read-only key reads layers and holdouts, but mutations are 403 Forbidden."""
    await client.layers.create({"name": "readable", "idType": "userID"})
    await client.holdouts.create({"name": "readable holdout"})
    reader = make_client(EMPTY_READ_ONLY_KEY)
    assert (await reader.layers.get("readable")).id == "readable"
    assert (await reader.holdouts.get("readable_holdout")).id == "readable_holdout"
    with pytest.raises(Forbidden):
        await reader.layers.delete("readable")
    with pytest.raises(Forbidden):
        await reader.holdouts.patch("readable_holdout", {"passPercentage": 1})
    with pytest.raises(Forbidden):
        await reader.holdouts.set_overrides(
            "readable_holdout", {"passingUserIDs": ["u1"], "failingUserIDs": []}
        )
    assert project.store("holdouts")["readable_holdout"]["passPercentage"] == 0
