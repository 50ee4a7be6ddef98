"""Experiments and Experiments (Warehouse Native) end to end: client methods against the emulator."""

from __future__ import annotations

from typing import Any

import aiohttp
import pytest
from emulator_support import actions, make_gate, rejected

from bulkops.api.models import Experiment, ExperimentOverrides
from bulkops.emulator.seed import EMPTY_KEY, EMPTY_READ_ONLY_KEY
from bulkops.errors import BadRequest, Forbidden, NotFound

GROUPS = [
    {"name": "Control", "size": 30, "parameterValues": {"color": "blue"}},
    {"name": "Test", "size": 70, "parameterValues": {"color": "red"}},
]
METRICS = [{"name": "purchases", "type": "event_count", "direction": "increase"}]
SOURCE = {
    "name": "exposures",
    "sql": "SELECT * FROM exposures",
    "timestampColumn": "ts",
    "experimentIDColumn": "experiment",
    "groupIDColumn": "group_id",
    "idTypeMapping": [{"statsigUnitID": "userID", "column": "user_id"}],
}


async def started(client, name: str = "running exp", **body: Any) -> Experiment:
    """Create and start an experiment."""
    experiment = await client.experiments.create({"name": name, **body})
    await client.experiments.start(experiment.id)
    return await client.experiments.get(experiment.id)


# -- create, read, list ---------------------------------------------------------------------


async def test_create_defaults_implicit_layer_and_read_back(client, project):
    """A bare create is setup with Control/Test 50/50 and an implicit layer; GET returns the same."""
    created = await client.experiments.create({"name": "New Checkout"})
    assert created.id == "new_checkout"
    assert created.status == "setup"
    assert [(g["name"], g["size"]) for g in created.groups] == [("Control", 50), ("Test", 50)]
    assert created.layerID == "statsig::new_checkout_layer"
    assert created.controlGroupID == created.groups[0]["id"]
    assert created.version == 1
    layer = await client.layers.get(created.layerID)
    assert layer.isImplicitLayer is True
    assert await client.experiments.get("new_checkout") == created
    assert actions(project, "new_checkout") == ["experiment_create"]


async def test_create_with_layer_groups_gate_and_list_filters(client, project):
    """Explicit layer, groups and targeting gate are kept; list filters by layer, status and tags."""
    gate_id = make_gate(project)
    layer = await client.layers.create({"name": "checkout layer", "idType": "userID"})
    exp = await client.experiments.create(
        {
            "name": "layered",
            "layerID": layer.id,
            "groups": GROUPS,
            "targetingGateID": gate_id,
            "tags": ["growth"],
            "primaryMetrics": METRICS,
        }
    )
    await client.experiments.create({"name": "other exp"})
    assert exp.layerID == layer.id
    assert exp.targetingGateID == gate_id
    assert [g["size"] for g in exp.groups] == [30, 70]
    assert [e.id async for e in client.experiments.list(layer_id=layer.id)] == ["layered"]
    assert [e.id async for e in client.experiments.list(tags="growth")] == ["layered"]
    assert len([e async for e in client.experiments.list(status=["setup", "active"])]) == 2
    assert [e async for e in client.experiments.list(status="active")] == []
    assert [e.id async for e in client.layers.experiments(layer.id)] == ["layered"]
    listed = [e.id async for e in client.experiments.list(limit=1)]
    assert listed == ["layered", "other_exp"]


async def test_create_rejects_bad_input_with_real_messages(client, project):
    """Group sizes, unknown gate or layer, taken names and wrong types are 400s; nothing is stored."""
    cases = [
        (
            {"name": "exp1", "groups": [{**GROUPS[0], "size": 40}, GROUPS[1]]},
            "Group sizes must add up to 100",
        ),
        ({"name": "exp1", "targetingGateID": "no_gate"}, "Bad Request Exception"),
        ({"name": "exp1", "layerID": "no_layer"}, "Bad Request Exception"),
        ({"name": "exp1", "allocation": "all"}, "Bad Request Exception"),
        ({"name": "exp1", "groups": [{"name": "A", "size": 100}]}, "Bad Request Exception"),
        ({"name": "x"}, "Bad Request Exception"),
        ({"name": "exp1", "defaultConfidenceInterval": "97"}, "Bad Request Exception"),
    ]
    for body, message in cases:
        with pytest.raises(BadRequest) as info:
            await client.experiments.create(body)
        assert info.value.message == message
        assert info.value.status == 400
    with pytest.raises(BadRequest) as info:
        await client.experiments.create({"name": "exp1", "allocation": "all"})
    assert info.value.errors == [
        {"property": "allocation", "errorMessage": "Expected number, received string"}
    ]
    await client.experiments.create({"name": "exp1"})
    with pytest.raises(BadRequest, match="Name is already in use"):
        await client.experiments.create({"name": "Exp One", "id": "exp1"})
    with pytest.raises(BadRequest):
        await client.call("POST", "/experiments", ["not", "an", "object"])
    assert list(project.store("experiments")) == ["exp1"]


async def test_malformed_json_body_is_400(emulator_url, project):
    """A body that is not JSON gets the generic 400 message."""
    async with aiohttp.ClientSession() as session:
        async with session.post(
            f"{emulator_url}/experiments",
            data=b"{not json",
            headers={"STATSIG-API-KEY": EMPTY_KEY, "Content-Type": "application/json"},
        ) as resp:
            assert resp.status == 400
            body = await resp.json()
    assert body["message"] == "Invalid request. Please check the request input and try again."
    assert project.store("experiments") == {}


async def test_unknown_experiment_is_not_found(client):
    """Every experiment route answers 404 "Experiment not found." for an unknown id."""
    calls = [
        client.experiments.get("nope"),
        client.experiments.patch("nope", {"description": "x"}),
        client.experiments.start("nope"),
        client.experiments.get_overrides("nope"),
        client.experiments.delete("nope"),
        client.experiments.cumulative_exposures("nope"),
    ]
    for call in calls:
        with pytest.raises(NotFound) as info:
            await call
        assert info.value.message == "Experiment not found."


async def test_read_only_key_is_forbidden(make_client, client, project):
    """A read-only key can read experiments but every mutation is 403 Forbidden."""
    await client.experiments.create({"name": "visible"})
    reader = make_client(EMPTY_READ_ONLY_KEY)
    assert (await reader.experiments.get("visible")).id == "visible"
    with pytest.raises(Forbidden):
        await reader.experiments.create({"name": "blocked"})
    with pytest.raises(Forbidden):
        await reader.experiments.start("visible")
    assert list(project.store("experiments")) == ["visible"]


# -- updates --------------------------------------------------------------------------------


async def test_partial_and_full_update(client, project):
    """PATCH changes only the given fields; POST needs the spec's required fields; versions count."""
    exp = await client.experiments.create({"name": "editable", "groups": GROUPS})
    patched = await client.experiments.patch(exp.id, {"hypothesis": "red sells", "duration": 21})
    assert (patched.hypothesis, patched.version) == ("red sells", 2)
    assert patched.groups == exp.groups
    with pytest.raises(BadRequest) as info:
        await client.experiments.update(exp.id, {"description": "only this"})
    assert info.value.errors[0]["property"] == "idType"
    full = {
        "description": "full",
        "idType": "userID",
        "hypothesis": "h",
        "groups": [{**g, "size": 50} for g in GROUPS],
        "allocation": 50,
        "targetingGateID": None,
        "bonferroniCorrection": True,
        "defaultConfidenceInterval": "99",
        "status": "setup",
    }
    updated = await client.experiments.update(exp.id, full)
    assert (updated.description, updated.allocation, updated.version) == ("full", 50, 3)
    assert [g["id"] for g in updated.groups] == [g["id"] for g in exp.groups]
    assert updated.targetingGateID == ""
    assert len(project.versions["experiments"][exp.id]) == 3
    assert actions(project, exp.id) == ["experiment_create", "experiment_edit", "experiment_edit"]
    await client.experiments.create({"name": "taken"})
    with pytest.raises(BadRequest, match="Name is already in use"):
        await client.experiments.patch(exp.id, {"name": "taken"})
    with pytest.raises(BadRequest):
        await client.experiments.patch(exp.id, {"duration": 1})


async def test_moving_to_a_layer_replaces_the_implicit_layer(client, project):
    """Setting layerID drops the implicit layer; clearing it creates one again."""
    exp = await client.experiments.create({"name": "mover"})
    layer = await client.layers.create({"name": "shared", "idType": "userID"})
    moved = await client.experiments.patch(exp.id, {"layerID": layer.id})
    assert moved.layerID == "shared"
    assert "statsig::mover_layer" not in project.store("layers")
    back = await client.experiments.patch(exp.id, {"layerID": None})
    assert back.layerID == "statsig::mover_layer"
    assert project.store("layers")["statsig::mover_layer"]["isImplicitLayer"] is True
    same = await client.experiments.patch(exp.id, {"layerID": back.layerID, "hypothesis": "h"})
    assert same.layerID == back.layerID
    named = await client.experiments.create({"name": "named", "layerID": "statsig::named_layer"})
    assert named.layerID == "statsig::named_layer"
    with pytest.raises(BadRequest):
        await client.experiments.create({"name": "borrower", "layerID": back.layerID})


async def test_started_experiment_keeps_its_groups(client):
    """Changing group sizes after start is refused with "Experiment has already started"."""
    exp = await started(client, groups=GROUPS)
    resized = [{**g, "size": 50} for g in exp.groups]
    with pytest.raises(BadRequest, match="Experiment has already started"):
        await client.experiments.patch(exp.id, {"groups": resized})
    renamed = [{**g, "parameterValues": {"color": "green"}} for g in exp.groups]
    assert (await client.experiments.patch(exp.id, {"groups": renamed})).groups[0][
        "parameterValues"
    ] == {"color": "green"}


# -- lifecycle ------------------------------------------------------------------------------


async def test_lifecycle_transitions_and_their_400s(client, project, state):
    """setup → active → decision_made, reset, abandoned; wrong-state calls get the real messages."""
    state.wall_ms = lambda: 1_700_000_000_000
    exp = await client.experiments.create({"name": "flow", "groups": GROUPS})
    with rejected("Experiment has not yet started"):
        await client.experiments.make_decision(exp.id, "Test", "ship it")
    with rejected("Experiment has not yet started"):
        await client.experiments.abandon(exp.id, "nope")
    with rejected("Experiment has not yet started"):
        await client.experiments.reset(exp.id)
    await client.experiments.start(exp.id)
    running = await client.experiments.get(exp.id)
    assert (running.status, running.startTime) == ("active", 1_700_000_000_000)
    with rejected("Experiment has already started"):
        await client.experiments.start(exp.id)
    with pytest.raises(BadRequest):
        await client.experiments.make_decision(exp.id, "Nope", "no such group")
    await client.experiments.make_decision(exp.id, "Test", "red wins", remove_targeting=True)
    decided = await client.experiments.get(exp.id)
    assert decided.status == "decision_made"
    assert decided.launchedGroupID == exp.groups[1]["id"]
    assert decided.decisionReason == "red wins"
    with rejected("Experiment has already finished"):
        await client.experiments.start(exp.id)
    with rejected("Experiment has already finished"):
        await client.experiments.abandon(exp.id, "too late")
    await client.experiments.reset(exp.id)
    assert (await client.experiments.get(exp.id)).status == "active"
    await client.experiments.abandon(exp.id, "not worth it")
    abandoned = await client.experiments.get(exp.id)
    assert (abandoned.status, abandoned.launchedGroupID) == ("abandoned", None)
    with rejected("Experiment flow is already abandoned"):
        await client.experiments.abandon(exp.id, "again")
    with rejected("Experiment flow is already abandoned"):
        await client.experiments.start(exp.id)
    assert actions(project, exp.id) == [
        "experiment_create",
        "experiment_start",
        "experiment_decision_make",
        "experiment_restart",
        "experiment_abandon",
    ]
    assert abandoned.version == 5


async def test_lifecycle_bodies_are_validated(client):
    """make_decision needs a group id and a reason; abandon needs a reason (real 400s)."""
    exp = await started(client)
    with pytest.raises(BadRequest) as info:
        await client.call("PUT", f"/experiments/{exp.id}/make_decision", {"id": "Test"})
    assert info.value.errors == [{"property": "decisionReason", "errorMessage": "Required"}]
    with pytest.raises(BadRequest):
        await client.call("PUT", f"/experiments/{exp.id}/abandon", {"decisionReason": 5})
    assert (await client.experiments.get(exp.id)).status == "active"


async def test_schedule_start(client, state):
    """schedule_start needs a future time in setup; start clears the schedule."""
    state.wall_ms = lambda: 1_000_000
    exp = await client.experiments.create({"name": "later"})
    with pytest.raises(BadRequest):
        await client.experiments.schedule_start(exp.id, 999_999)
    await client.experiments.schedule_start(exp.id, 2_000_000)
    assert (await client.experiments.get(exp.id)).model_extra["scheduledStartTime"] == 2_000_000
    await client.experiments.start(exp.id)
    assert "scheduledStartTime" not in (await client.experiments.get(exp.id)).model_extra
    with rejected("Experiment has already started"):
        await client.experiments.schedule_start(exp.id, 3_000_000)


async def test_archive_and_unarchive(client, project):
    """Archive refuses a running experiment, repeats harmlessly, and unarchive restores the status."""
    running = await started(client)
    with pytest.raises(BadRequest):
        await client.experiments.archive(running.id)
    await client.experiments.make_decision(running.id, "Control", "keep control")
    await client.experiments.archive(running.id, reason="done")
    assert (await client.experiments.get(running.id)).status == "archived"
    await client.experiments.archive(running.id)
    with rejected("Experiment running_exp is archived"):
        await client.experiments.reset(running.id)
    await client.experiments.unarchive(running.id)
    assert (await client.experiments.get(running.id)).status == "decision_made"
    await client.experiments.unarchive(running.id)
    assert actions(project, running.id).count("archive_experiment") == 1
    assert actions(project, running.id).count("unarchive_experiment") == 1
    draft = await client.experiments.create({"name": "draft"})
    await client.experiments.archive(draft.id)
    await client.experiments.unarchive(draft.id)
    assert (await client.experiments.get(draft.id)).status == "setup"


async def test_restart_as_new(client, project):
    """restart_as_new copies the setup into a new experiment and abandons the running original."""
    original = await started(client, groups=GROUPS, hypothesis="h1")
    fresh = await client.experiments.restart_as_new(original.id, "running exp v2")
    assert (fresh.id, fresh.status, fresh.hypothesis) == ("running_exp_v2", "setup", "h1")
    assert [g["name"] for g in fresh.groups] == ["Control", "Test"]
    assert {g["id"] for g in fresh.groups}.isdisjoint({g["id"] for g in original.groups})
    assert fresh.controlGroupID == fresh.groups[0]["id"]
    assert fresh.layerID == "statsig::running_exp_v2_layer"
    assert (await client.experiments.get(original.id)).status == "abandoned"
    with pytest.raises(BadRequest, match="Name is already in use"):
        await client.experiments.restart_as_new(original.id, "running exp v2")
    assert actions(project, "running_exp_v2") == ["experiment_restart_as_new"]


async def test_enable_and_disable_groups(client):
    """disable_groups/enable_groups flip ``disabled`` on named groups; unknown names are 400."""
    exp = await started(client, groups=GROUPS)
    disabled = await client.experiments.disable_groups(exp.id, ["Test"])
    assert [g["disabled"] for g in disabled.groups] == [False, True]
    with pytest.raises(BadRequest):
        await client.experiments.disable_groups(exp.id, ["Nope"])
    enabled = await client.experiments.enable_groups(exp.id, ["Test"])
    assert [g["disabled"] for g in enabled.groups] == [False, False]


async def test_delete_removes_experiment_layer_and_overrides(client, project):
    """DELETE removes the experiment with its implicit layer and overrides; GET is then 404."""
    exp = await client.experiments.create({"name": "doomed"})
    await client.experiments.set_overrides(
        exp.id, {"userIDOverrides": [{"groupID": "Test", "ids": ["u1"]}]}
    )
    await client.experiments.delete(exp.id)
    with pytest.raises(NotFound):
        await client.experiments.get(exp.id)
    assert exp.layerID not in project.store("layers")
    assert exp.id not in project.overrides["experiments"]
    assert actions(project, exp.id)[-1] == "experiment_delete"


# -- overrides ---------------------------------------------------------------------------------


async def test_overrides_replace_add_remove(client, project):
    """POST replaces, PATCH adds/overwrites the same gate or group, DELETE removes what is listed."""
    gate_id = make_gate(project)
    second_gate = make_gate(project, "b_gate")
    exp = await client.experiments.create({"name": "overridden", "groups": GROUPS})
    test_id = exp.groups[1]["id"]
    assert await client.experiments.get_overrides(exp.id) == ExperimentOverrides()
    replaced = await client.experiments.set_overrides(
        exp.id,
        {
            "overrides": [{"type": "gate", "id": gate_id, "groupID": "Control"}],
            "userIDOverrides": [{"groupID": "Control", "ids": ["u1", "u2"]}],
        },
    )
    assert replaced.overrides == [
        {"type": "gate", "id": gate_id, "groupID": "Control", "environment": None}
    ]
    added = await client.experiments.add_overrides(
        exp.id,
        {
            "overrides": [
                {"type": "gate", "id": gate_id, "groupID": "Test"},
                {"type": "gate", "id": second_gate, "groupID": "Control"},
            ],
            "userIDOverrides": [{"groupID": test_id, "ids": ["u2", "u3"]}],
        },
    )
    assert [(o["id"], o["groupID"]) for o in added.overrides] == [
        (gate_id, "Test"),
        (second_gate, "Control"),
    ]
    assert [(e["groupID"], e["ids"]) for e in added.userIDOverrides] == [
        ("Control", ["u1"]),
        (test_id, ["u2", "u3"]),
    ]
    removed = await client.experiments.remove_overrides(
        exp.id,
        {
            "overrides": [{"type": "gate", "id": gate_id, "groupID": "Test"}],
            "userIDOverrides": [{"groupID": "Test", "ids": ["u3"]}],
        },
    )
    assert [o["id"] for o in removed.overrides] == [second_gate]
    assert [(e["groupID"], e["ids"]) for e in removed.userIDOverrides] == [
        ("Control", ["u1"]),
        (test_id, ["u2"]),
    ]
    assert await client.experiments.get_overrides(exp.id) == removed
    cleared = await client.experiments.remove_overrides(exp.id)
    assert cleared.overrides == [] and cleared.userIDOverrides == []
    assert actions(project, exp.id).count("experiment_overrides_edit") == 4


async def test_overrides_are_validated(client, project):
    """Unknown groups or gates, too many ids, and a missing array are 400s; nothing changes."""
    exp = await client.experiments.create({"name": "guarded"})
    bad_bodies = [
        {"userIDOverrides": [{"groupID": "Nope", "ids": ["u1"]}]},
        {"overrides": [{"type": "gate", "id": "no_gate", "groupID": "Test"}]},
        {"overrides": [{"type": "config", "id": "x", "groupID": "Test"}]},
        {"userIDOverrides": [{"groupID": "Test", "ids": [f"u{i}" for i in range(1001)]}]},
        {"userIDOverrides": [{"groupID": "Test", "ids": [""]}]},
        {"userIDOverrides": [{"groupID": "Test", "ids": ["u1"], "environment": "moon"}]},
    ]
    for body in bad_bodies:
        with pytest.raises(BadRequest):
            await client.experiments.set_overrides(exp.id, body)
    with pytest.raises(BadRequest) as info:
        await client.call("POST", f"/experiments/{exp.id}/overrides", {"overrides": []})
    assert info.value.errors == [{"property": "userIDOverrides", "errorMessage": "Required"}]
    full = {"userIDOverrides": [{"groupID": "Test", "ids": [f"u{i}" for i in range(1000)]}]}
    await client.experiments.set_overrides(exp.id, full)
    with pytest.raises(BadRequest):
        await client.experiments.add_overrides(
            exp.id, {"userIDOverrides": [{"groupID": "Test", "ids": ["one_more"]}]}
        )
    stored = project.overrides["experiments"][exp.id]
    assert len(stored["userIDOverrides"][0]["ids"]) == 1000


# -- analytics --------------------------------------------------------------------------------


async def test_pulse_results_and_exposures(client, state):
    """Pulse needs a started experiment and valid groups; results are deterministic per metric."""
    state.wall_ms = lambda: 1_700_000_000_000
    exp = await client.experiments.create(
        {"name": "measured", "groups": GROUPS, "primaryMetrics": METRICS}
    )
    with rejected("Experiment has not yet started"):
        await client.experiments.pulse_results(exp.id, "Control", "Test")
    exposures = await client.experiments.cumulative_exposures(exp.id)
    assert [(e["groupName"], e["results"]) for e in exposures] == [("Control", []), ("Test", [])]
    await client.experiments.start(exp.id)
    state.wall_ms = lambda: 1_700_000_000_000 + 3 * 86_400_000
    pulse = await client.experiments.pulse_results(exp.id, "Control", "Test", confidence="99")
    assert pulse["ds"] == "2023-11-17"
    assert [m["metricID"] for m in pulse["primaryMetrics"]] == ["purchases::event_count"]
    assert pulse["secondaryMetrics"] == []
    again = await client.experiments.pulse_results(exp.id, "Control", "Test", confidence="99")
    assert again == pulse
    with pytest.raises(BadRequest):
        await client.experiments.pulse_results(exp.id, "Control", "Nope")
    with pytest.raises(BadRequest):
        await client.call("GET", f"/experiments/{exp.id}/pulse_results", params={"test": "Test"})
    exposures = await client.experiments.cumulative_exposures(exp.id)
    control = exposures[0]["results"]
    assert [r["date"] for r in control] == ["2023-11-14", "2023-11-15", "2023-11-16", "2023-11-17"]
    counts = [r["exposures"] for r in control]
    assert counts[0] == 0 and counts == sorted(counts) and counts[-1] > 0


async def test_resolve_alert(client, project):
    """Resolving an alert needs one of the experiment's metrics; it answers resolvedAt."""
    exp = await client.experiments.create({"name": "alerted", "primaryMetrics": METRICS})
    with pytest.raises(NotFound, match="Metric not found"):
        await client.experiments.resolve_alert(exp.id, "unknown::metric")
    resolved = await client.experiments.resolve_alert(
        exp.id, "purchases::event_count", reasoning="false alarm"
    )
    assert isinstance(resolved["resolvedAt"], int)
    assert actions(project, exp.id)[-1] == "resolve_guardrail_metric_alert"


# -- warehouse native -----------------------------------------------------------------------------


async def test_load_pulse_and_history(client, project):
    """load_pulse needs a started experiment; each load is listed in the history, newest first."""
    exp = await client.experiments.create({"name": "whn"})
    with rejected("Experiment has not yet started"):
        await client.warehouse_native.load_pulse(exp.id)
    await client.experiments.start(exp.id)
    await client.warehouse_native.load_pulse(exp.id)
    await client.warehouse_native.load_pulse(exp.id, refresh="incremental", turbo_mode=True)
    with pytest.raises(BadRequest):
        await client.warehouse_native.load_pulse(exp.id, refresh="sometimes")
    history = [h async for h in client.warehouse_native.pulse_load_history(exp.id, limit=1)]
    assert [(h.reloadType, h.turboMode) for h in history] == [
        ("incremental", True),
        ("full", False),
    ]
    assert actions(project, exp.id).count("load_echidna_pulse") == 2


async def test_assignment_sources_crud(client, project):
    """Assignment sources: create (201, dry run), list, full and partial update, delete."""
    dry = await client.warehouse_native.create_assignment_source({**SOURCE, "dryRun": True})
    assert dry.name == "exposures"
    assert [s async for s in client.warehouse_native.list_assignment_sources()] == []
    created = await client.warehouse_native.create_assignment_source(SOURCE)
    assert (created.description, created.tags) == ("", [])
    with pytest.raises(BadRequest, match="Name is already in use"):
        await client.warehouse_native.create_assignment_source(SOURCE)
    with pytest.raises(BadRequest) as info:
        await client.warehouse_native.create_assignment_source({"name": "partial", "sql": "x"})
    assert info.value.errors[0]["property"] == "timestampColumn"
    updated = await client.warehouse_native.update_assignment_source(
        "exposures", {**SOURCE, "sql": "SELECT 2", "description": "v2"}
    )
    assert (updated.sql, updated.description) == ("SELECT 2", "v2")
    patched = await client.warehouse_native.patch_assignment_source("exposures", {"tags": ["core"]})
    assert (patched.sql, patched.tags) == ("SELECT 2", ["core"])
    with pytest.raises(BadRequest):
        await client.warehouse_native.patch_assignment_source("exposures", {"sql": "SELECT 3"})
    listed = [s.name async for s in client.warehouse_native.list_assignment_sources()]
    assert listed == ["exposures"]
    await client.warehouse_native.delete_assignment_source("exposures")
    with pytest.raises(NotFound, match="Assignment source not found."):
        await client.warehouse_native.delete_assignment_source("exposures")
    assert [e["actionType"] for e in project.audit_log] == [
        "create_echidna_assignment_source",
        "update_echidna_assignment_source",
        "update_echidna_assignment_source",
        "delete_echidna_assignment_source",
    ]


async def test_entity_properties_crud(client):
    """Entity property sources: create, get, list, full and partial update (also renames), delete."""
    body = {
        "name": "location",
        "sql": "SELECT * FROM props",
        "idTypeMapping": [{"statsigUnitID": "userID", "column": "uid"}],
    }
    created = await client.warehouse_native.create_entity_property(body)
    assert created.name == "location"
    assert await client.warehouse_native.get_entity_property("location") == created
    with pytest.raises(BadRequest):
        await client.warehouse_native.create_entity_property({**body, "idTypeMapping": [{}]})
    updated = await client.warehouse_native.update_entity_property(
        "location", {**body, "timestampAsDay": True}
    )
    assert updated.timestampAsDay is True
    renamed = await client.warehouse_native.patch_entity_property("location", {"name": "geo"})
    assert renamed.name == "geo"
    assert [s.name async for s in client.warehouse_native.list_entity_properties()] == ["geo"]
    with pytest.raises(NotFound, match="Entity property source not found."):
        await client.warehouse_native.get_entity_property("location")
    await client.warehouse_native.delete_entity_property("geo")
    assert [s async for s in client.warehouse_native.list_entity_properties()] == []


async def test_qualifying_events_crud(client):
    """Qualifying events: create (201), get, list, full update, delete."""
    body = {
        "name": "checkout_viewed",
        "sql": "SELECT * FROM events",
        "timestampColumn": "ts",
        "idTypeMapping": [{"statsigUnitID": "userID", "column": "uid"}],
        "sourceType": "query",
    }
    created = await client.warehouse_native.create_qualifying_event(body)
    assert created.sourceType == "query"
    assert await client.warehouse_native.get_qualifying_event("checkout_viewed") == created
    with pytest.raises(BadRequest):
        await client.warehouse_native.create_qualifying_event(
            {**body, "name": "x2", "sourceType": "csv"}
        )
    updated = await client.warehouse_native.update_qualifying_event(
        "checkout_viewed", {**body, "description": "viewed checkout"}
    )
    assert updated.description == "viewed checkout"
    listed = [e.name async for e in client.warehouse_native.list_qualifying_events()]
    assert listed == ["checkout_viewed"]
    await client.warehouse_native.delete_qualifying_event("checkout_viewed")
    with pytest.raises(NotFound, match="Qualifying event not found."):
        await client.warehouse_native.get_qualifying_event("checkout_viewed")
