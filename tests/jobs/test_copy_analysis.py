"""copy-project's pure helpers: canonical forms, references, id rewriting, fitting, order."""

from __future__ import annotations

from typing import Any

import pytest

from bulkops.jobs.copy_project.canonical import (
    canonical,
    canonical_overrides,
    check_prefix,
    diff,
    same,
    strip_server_owned,
)
from bulkops.jobs.copy_project.fitting import TargetFacts, fit
from bulkops.jobs.copy_project.references import IdMap, references, rewrite, topological


def _rule(name: str, *conditions: dict[str, Any], envs: list[str] | None = None) -> dict[str, Any]:
    return {
        "name": name,
        "passPercentage": 50,
        "conditions": list(conditions),
        "environments": envs,
        "id": "base123:50.00:1",
        "baseID": "base123",
        "completedAutomatedRollouts": [],
        "pendingAutomatedRollouts": [],
    }


def _gate(**extra: Any) -> dict[str, Any]:
    gate: dict[str, Any] = {
        "id": "a_gate",
        "name": "A Gate",
        "description": None,
        "idType": "companyID",
        "tags": ["web", "payments"],
        "targetApps": "ios",
        "team": None,
        "teamID": None,
        "isEnabled": True,
        "status": "Launched",
        "type": "STALE",
        "typeReason": "STALE_PROBABLY_LAUNCHED",
        "isTemplate": False,
        "checksPerHour": 40,
        "version": 7,
        "creatorName": "Maya",
        "lastModifiedTime": 1,
        "holdoutIDs": ["h"],
        "owner": {"ownerID": "x"},
        "measureMetricLifts": True,
        "monitoringMetrics": [],
        "reviewSettings": {"requiredReview": False, "allowedReviewers": None},
        "releasePipelineID": None,
        "rules": [
            _rule(
                "Needs B",
                {"type": "passes_gate", "targetValue": "b_gate", "operator": None},
                {"type": "fails_gate", "targetValue": ["c_gate"]},
                envs=["staging"],
            ),
            _rule(
                "Segment",
                {"type": "passes_segment", "targetValue": "seg"},
                {
                    "type": "unit_id",
                    "operator": "any",
                    "targetValue": ["co_1"],
                    "customID": "orgID",
                },
            ),
        ],
    }
    gate.update(extra)
    return gate


def test_server_owned_fields_and_rule_ids_are_stripped() -> None:
    """Creator, modifier, version, owner, holdouts, checks and rule ids never travel."""
    stripped = strip_server_owned(_gate())
    for name in ("version", "creatorName", "lastModifiedTime", "holdoutIDs", "owner"):
        assert name not in stripped
    assert "checksPerHour" not in stripped and "typeReason" not in stripped
    assert all("id" not in r and "baseID" not in r for r in stripped["rules"])
    assert stripped["rules"][0]["conditions"][0] == {"type": "passes_gate", "targetValue": "b_gate"}


def test_canonical_gate_spells_empty_values_one_way() -> None:
    """Tags sort, a string target app becomes a list, None description is '', STALE has no type."""
    canon = canonical("gates", _gate())
    assert canon["tags"] == ["payments", "web"] and canon["targetApps"] == ["ios"]
    assert canon["description"] == "" and "type" not in canon
    assert canon["allowedReviewers"] == [] and canon["requiredReview"] is False
    assert canon["rules"][0]["passPercentage"] == 50.0
    assert canonical("gates", _gate(type="PERMANENT"))["type"] == "PERMANENT"
    assert "version" not in canon and "checksPerHour" not in canon


def test_canonical_experiment_names_groups_and_control() -> None:
    """Group ids are project-specific: groups compare by name, the control group by name."""
    experiment = {
        "id": "exp",
        "name": "exp",
        "groups": [
            {"name": "Control", "id": "g1", "size": 50, "parameterValues": {"a": 1}},
            {"name": "Test", "id": "g2", "size": 50, "parameterValues": {"a": 2}},
        ],
        "controlGroupID": "g1",
        "targetingGateID": None,
        "layerID": "statsig::exp_layer",
        "status": "active",
        "startTime": 5,
        "duration": 14,
    }
    overrides = {
        "overrides": [{"type": "gate", "id": "g", "groupID": "g2", "environment": None}],
        "userIDOverrides": [{"groupID": "Control", "ids": ["u2", "u1"], "environment": None}],
    }
    canon = canonical("experiments", experiment, overrides=overrides)
    assert canon["controlGroup"] == "Control" and canon["targetingGateID"] == ""
    assert [g["name"] for g in canon["groups"]] == ["Control", "Test"]
    assert all("id" not in g for g in canon["groups"])
    assert "status" not in canon and "startTime" not in canon and canon["duration"] == 14
    assert canon["overrides"]["overrides"][0]["groupID"] == "Test"
    assert canon["overrides"]["userIDOverrides"][0]["ids"] == ["u1", "u2"]


def test_gate_overrides_compare_as_sets() -> None:
    """Override id lists and environment entries are order-free."""
    one = canonical_overrides(
        "gates",
        {
            "passingUserIDs": ["b", "a"],
            "environmentOverrides": [
                {"environment": "staging", "unitID": "userID", "passingIDs": ["y", "x"]},
                {"environment": None, "unitID": "userID", "passingIDs": []},
            ],
        },
    )
    two = canonical_overrides(
        "gates",
        {
            "passingUserIDs": ["a", "b"],
            "failingUserIDs": [],
            "environmentOverrides": [
                {"environment": None, "unitID": "userID", "passingIDs": [], "failingIDs": []},
                {"environment": "staging", "unitID": "userID", "passingIDs": ["x", "y"]},
            ],
        },
    )
    assert same(one, two)


def test_references_name_every_dependency_and_where() -> None:
    """Gates, segments, custom unit types, environments, tags and target apps are referenced."""
    refs = {(r.kind, r.id) for r in references("gates", _gate())}
    assert refs >= {
        ("gates", "b_gate"),
        ("gates", "c_gate"),
        ("segments", "seg"),
        ("unit_id_types", "orgID"),
        ("unit_id_types", "companyID"),
        ("environments", "staging"),
        ("tags", "web"),
        ("target_apps", "ios"),
    }
    where = {r.id: r.where for r in references("gates", _gate())}
    assert where["b_gate"] == "rule 'Needs B' (passes_gate)"
    builtin = references("gates", _gate(idType="userID", rules=[]))
    assert ("unit_id_types", "userID") not in {(r.kind, r.id) for r in builtin}


def test_experiment_and_layer_references() -> None:
    """An explicit layer and a targeting gate are references; an implicit layer is not."""
    explicit = {"id": "e", "layerID": "l", "targetingGateID": "g"}
    implicit = {"id": "e", "layerID": "statsig::e_layer", "targetingGateID": ""}
    assert {(r.kind, r.id) for r in references("experiments", explicit)} >= {
        ("layers", "l"),
        ("gates", "g"),
    }
    assert not [r for r in references("experiments", implicit) if r.kind in ("layers", "gates")]
    layer_refs = references(
        "layers",
        {"id": "l"},
        {
            "conditionalOverrides": [
                {"type": "segment", "name": "s", "experimentName": "e", "groupName": "Test"}
            ],
            "idOverrides": [],
        },
    )
    assert {(r.kind, r.id, r.follow_up) for r in layer_refs} == {
        ("segments", "s", True),
        ("experiments", "e", True),
    }


def test_prefix_rewrites_references_to_copied_objects_only() -> None:
    """Copied gates and segments get the prefix, and so do references to them; others keep ids."""
    ids = IdMap(
        prefix="cp_",
        copied={"gates": frozenset({"a_gate", "b_gate"}), "segments": frozenset({"seg"})},
    )
    out = rewrite("gates", canonical("gates", _gate()), ids, {"staging": "stage"})
    assert out["id"] == "cp_a_gate" and out["name"] == "cp_A Gate"
    first, second = out["rules"]
    assert first["conditions"][0]["targetValue"] == "cp_b_gate"
    assert first["conditions"][1]["targetValue"] == ["c_gate"]  # not copied: kept
    assert first["environments"] == ["stage"]
    assert second["conditions"][0]["targetValue"] == "cp_seg"
    assert out["tags"] == ["payments", "web"]  # tags are shared labels


def test_prefix_rewrites_experiments_layers_and_overrides() -> None:
    """Targeting gates, explicit and implicit layers and override targets follow the copy."""
    ids = IdMap(
        prefix="cp_",
        copied={
            "gates": frozenset({"g"}),
            "layers": frozenset({"checkout_layer"}),
            "experiments": frozenset({"e", "f"}),
        },
        layer_names={"checkout_layer": "Checkout Layer"},
    )
    explicit = {"id": "e", "name": "e", "layerID": "checkout_layer", "targetingGateID": "g"}
    out = rewrite("experiments", canonical("experiments", explicit), ids)
    assert out["layerID"] == "cp_checkout_layer" and out["targetingGateID"] == "cp_g"
    implicit = {"id": "f", "name": "f", "layerID": "statsig::f_layer"}
    assert rewrite("experiments", canonical("experiments", implicit), ids)["layerID"] == (
        "statsig::cp_f_layer"
    )
    assert ids("layers", "checkout_layer") == "cp_checkout_layer"
    layer = canonical(
        "layers",
        {"id": "checkout_layer", "name": "Checkout Layer"},
        overrides={
            "conditionalOverrides": [
                {"type": "gate", "name": "g", "experimentName": "e", "groupName": "Test"}
            ],
            "idOverrides": [
                {"groupName": "Test", "ids": ["u"], "experimentName": "f", "environment": None}
            ],
        },
    )
    moved = rewrite("layers", layer, ids)
    assert moved["overrides"]["conditionalOverrides"][0]["name"] == "cp_g"
    assert moved["overrides"]["conditionalOverrides"][0]["experimentName"] == "cp_e"
    assert moved["overrides"]["idOverrides"][0]["experimentName"] == "cp_f"


def test_fit_drops_what_the_target_lacks_and_names_it() -> None:
    """Missing target apps, teams and environments are dropped, each with one loss line."""
    desired = canonical("gates", _gate(team="growth", releasePipelineID="rp1"))
    facts = TargetFacts(environments=frozenset({"production"}), target_apps=frozenset({"web"}))
    out, losses = fit("gates", desired, facts)
    assert out["targetApps"] == [] and out["team"] is None and out["teamID"] is None
    assert out["releasePipelineID"] is None
    assert [r["name"] for r in out["rules"]] == ["Segment"]  # the staging-only rule goes
    text = "\n".join(losses)
    assert "targetApps ['ios']" in text and "team 'growth'" in text
    assert "rule 'Needs B' (only for environments ['staging'])" in text
    assert "releasePipelineID" in text
    assert all(line.startswith("gate a_gate: ") for line in losses)


def test_fit_keeps_a_team_the_target_has_and_partial_environments() -> None:
    """A team is mapped to the target's id; a rule keeps the environments that exist."""
    desired = canonical("gates", _gate(team="growth", targetApps=["ios"]))
    desired["rules"][0]["environments"] = ["staging", "production"]
    facts = TargetFacts(
        environments=frozenset({"production"}),
        target_apps=frozenset({"ios"}),
        teams={"growth": "team-9"},
    )
    out, losses = fit("gates", desired, facts)
    assert out["teamID"] == "team-9" and out["targetApps"] == ["ios"]
    assert out["rules"][0]["environments"] == ["production"]
    assert losses == ["gate a_gate: environments ['staging'] of rule 'Needs B' dropped (the target "
                      "project has no such environment)"]  # fmt: skip


def test_fit_fields_the_api_cannot_write() -> None:
    """A segment's target apps cannot be set; an existing segment keeps its metadata."""
    segment = canonical(
        "segments",
        {"id": "s", "name": "s", "type": "id_list", "targetApps": ["web"], "tags": ["a"]},
    )
    facts = TargetFacts(target_apps=frozenset({"web"}))
    out, losses = fit("segments", segment, facts)
    assert out["targetApps"] == [] and len(losses) == 1 and "cannot set" in losses[0]
    existing = canonical(
        "segments",
        {"id": "s", "name": "s", "type": "rule_based", "tags": [], "description": "old"},
    )
    out, losses = fit("segments", segment, facts, existing)
    assert out["type"] == "rule_based" and out["tags"] == [] and out["description"] == "old"
    assert any("type" in line for line in losses) and any("tags" in line for line in losses)


def test_fit_cannot_unlaunch_a_gate() -> None:
    """Overwriting a launched gate with an in-progress one is a loss: no endpoint un-launches."""
    desired = canonical("gates", _gate(status="In Progress", targetApps=[]))
    existing = canonical("gates", _gate(status="Launched", targetApps=[]))
    out, losses = fit("gates", desired, TargetFacts(environments=frozenset({"staging"})), existing)
    assert out["status"] == "Launched"
    assert losses == ["gate a_gate: status 'In Progress' dropped (the API cannot un-launch a "
                      "launched gate)"]  # fmt: skip


def test_diff_names_the_field_paths_that_differ() -> None:
    """Nested differences are reported by path; fields the desired object lacks are ignored."""
    want = {"rules": [{"name": "r", "passPercentage": 10.0}], "tags": ["a"], "name": "x"}
    found = {"rules": [{"name": "r", "passPercentage": 20}], "tags": ["a"], "name": "x", "z": 1}
    (only,) = diff(want, found)
    assert only.path == "rules[0].passPercentage" and str(only).endswith("wanted 10.0, found 20")
    assert diff(want, {**found, "rules": [{"name": "r", "passPercentage": 10}]}) == []
    assert [d.path for d in diff(want, None)] == ["(object)"]


def test_same_is_json_equality() -> None:
    """1 equals 1.0, but a boolean is never a number."""
    assert same({"a": [1, 2.0]}, {"a": [1.0, 2]})
    assert not same({"a": True}, {"a": 1})
    assert not same([1], [1, 1])


def test_topological_order_and_cycles() -> None:
    """Referenced ids come first, ties keep input order, and cycles are reported."""
    order, cycles = topological(
        ["a", "b", "c", "d"], {"a": ["c"], "c": ["d"], "b": [], "d": ["outside"]}
    )
    assert order == ["d", "c", "a", "b"] and cycles == []
    order, cycles = topological(["x", "y", "z"], {"x": ["y"], "y": ["x", "z"]})
    assert cycles == [["x", "y"]] and order.index("z") < order.index("x")
    assert sorted(order) == ["x", "y", "z"]
    _, cycles = topological(["s"], {"s": ["s"]})
    assert cycles == [["s"]]


@pytest.mark.parametrize(
    ("prefix", "ok"), [("", True), ("copy_", True), ("q3-", True), ("Copy_", False), ("a.b", False)]
)
def test_prefix_must_fit_every_id_pattern(prefix: str, ok: bool) -> None:
    """Prefixes are lower-case letters, digits, '_' and '-' (segment and layer ids allow no more)."""
    assert (check_prefix(prefix) is None) is ok
