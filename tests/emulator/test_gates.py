"""Gates end to end: the client's typed methods against the emulator over real HTTP."""

from __future__ import annotations

import json
from typing import Any
from urllib.parse import parse_qsl, urlsplit

import aiohttp
import pytest
from pydantic import SecretStr

from bulkops.api.client import ConsoleClient
from bulkops.api.models import Gate, Rule, dump
from bulkops.api.transport import ApiRequest, ApiResponse
from bulkops.emulator.seed import EMPTY_READ_ONLY_KEY
from bulkops.errors import BadRequest, Forbidden, NotFound
from bulkops.settings import Settings

EVERYONE = {"name": "everyone", "passPercentage": 10, "conditions": [{"type": "public"}]}
EMPLOYEES = {
    "name": "employees",
    "passPercentage": 100,
    "conditions": [{"type": "email", "operator": "str_contains_any", "targetValue": ["@corp.com"]}],
}


def passes(gate_id: str, name: str = "uses gate") -> dict[str, Any]:
    """A rule that passes users who pass ``gate_id``."""
    return {
        "name": name,
        "passPercentage": 100,
        "conditions": [{"type": "passes_gate", "targetValue": gate_id}],
    }


def audit_count(project) -> int:
    """How many audit-log entries the project holds."""
    return len(project.audit_log)


def statuses(state, method: str, suffix: str) -> list[int]:
    """The statuses of captured ``method`` exchanges whose path ends with ``suffix``."""
    return [
        e["status"] for e in state.capture if e["method"] == method and e["path"].endswith(suffix)
    ]


# -- create, read, update, delete ---------------------------------------------------------


async def test_create_read_round_trip(client, project):
    """A created gate gets its id from the name, defaults, rule ids and version 1; GET returns it."""
    gate = await client.gates.create(
        {"name": "A Gate", "description": "d", "tags": ["t"], "rules": [EVERYONE, EMPLOYEES]}
    )
    assert gate.id == "a_gate"
    assert (gate.status, gate.type, gate.typeReason, gate.isEnabled) == (
        "In Progress",
        "TEMPORARY",
        "NONE",
        True,
    )
    assert gate.version == 1
    first = gate.rules[0]
    assert first.baseID and len(first.baseID) == 22
    assert first.id == f"{first.baseID}:10.00:1"
    assert [r.name for r in gate.rules] == ["everyone", "employees"]
    again = await client.gates.get("a_gate")
    assert again.model_dump() == gate.model_dump()
    assert project.store("gates")["a_gate"]["rules"][1]["conditions"][0]["operator"] == (
        "str_contains_any"
    )


async def test_create_is_201_with_message(client, state):
    """POST /gates answers 201 "Gate created successfully."."""
    body = await client.call("POST", "/gates", {"name": "my gate", "id": "explicit.id-1"})
    assert body["message"] == "Gate created successfully."
    assert body["data"]["id"] == "explicit.id-1"
    assert statuses(state, "POST", "/gates") == [201]


@pytest.mark.parametrize(
    ("body", "prop"),
    [
        ({"name": "ab"}, "name"),
        ({"name": "bad/name"}, "name"),
        ({"name": "fine", "id": "has space"}, "id"),
        ({"name": "fine", "description": "x" * 1001}, "description"),
        ({"name": "fine", "isEnabled": "yes"}, "isEnabled"),
        ({"name": "fine", "tags": "t"}, "tags"),
        ({"name": "fine", "type": "STALE"}, "type"),
        ({"name": "fine", "rules": {"name": "r"}}, "rules"),
        ({"description": "no name"}, "name"),
    ],
)
async def test_create_rejects_bad_fields(client, project, body, prop):
    """Wrong types and out-of-range values are BadRequest naming the field; nothing is stored."""
    with pytest.raises(BadRequest) as info:
        await client.gates.create(body)
    assert info.value.status == 400
    assert info.value.errors[0]["property"] == prop
    assert project.store("gates") == {}
    assert audit_count(project) == 0


async def test_duplicate_name_or_id_is_400(client):
    """A second gate with a taken id or name gets 400 "Name is already in use"."""
    await client.gates.create({"name": "dup gate"})
    with pytest.raises(BadRequest, match="Name is already in use"):
        await client.gates.create({"name": "dup gate"})
    with pytest.raises(BadRequest, match="Name is already in use"):
        await client.gates.create({"name": "other", "id": "dup_gate"})
    await client.gates.create({"name": "second"})
    with pytest.raises(BadRequest, match="Name is already in use"):
        await client.gates.patch("second", {"name": "dup gate"})


async def test_duplicate_rule_names_are_400(client):
    """Two rules with one name: 400 "Duplicate rule name(s) given"."""
    with pytest.raises(BadRequest, match=r"Duplicate rule name\(s\) given"):
        await client.gates.create({"name": "g dup rules", "rules": [EVERYONE, EVERYONE]})


class _RawBody:
    """A transport that sends ``request.json`` verbatim when it is bytes (malformed bodies)."""

    def __init__(self) -> None:
        self._session: aiohttp.ClientSession | None = None

    async def handle(self, request: ApiRequest) -> ApiResponse:
        if self._session is None:
            self._session = aiohttp.ClientSession()
        data = request.json if isinstance(request.json, bytes) else json.dumps(request.json)
        async with self._session.request(
            request.method, request.url, data=data, headers=dict(request.headers)
        ) as resp:
            return ApiResponse(resp.status, dict(resp.headers), await resp.read())

    async def aclose(self) -> None:
        if self._session is not None:
            await self._session.close()


async def test_malformed_json_is_bad_request(emulator_url, project):
    """A body that is not JSON is 400 with the generic message, as a BadRequest."""
    settings = Settings(api_key=SecretStr("console-emulator-empty"), base_url=emulator_url)
    async with ConsoleClient(settings, transport=_RawBody()) as raw:
        with pytest.raises(BadRequest, match="Invalid request") as info:
            await raw.call("POST", "/gates", b'{"name": "broken"')
    assert info.value.errors[0]["property"] == "body"
    assert project.store("gates") == {}


async def test_unknown_gate_is_not_found(client):
    """Every per-gate operation on an unknown id is 404 "Gate not found."."""
    calls = [
        client.gates.get("nope"),
        client.gates.patch("nope", {"description": "x"}),
        client.gates.delete("nope"),
        client.gates.enable("nope"),
        client.gates.archive("nope"),
        client.gates.get_overrides("nope"),
        client.gates.get_rules("nope"),
    ]
    for call in calls:
        with pytest.raises(NotFound, match=r"^404 .*Gate not found\."):
            await call
    with pytest.raises(NotFound, match=r"Gate not found\."):
        await anext(client.gates.versions("nope"))
    with pytest.raises(NotFound, match=r"Gate not found\."):
        await anext(client.gates.gate_references("nope"))


async def test_full_update_replaces_and_keeps_base_ids(client):
    """POST /gates/{id} needs isEnabled/description/rules; rules with ids keep their baseID."""
    gate = await client.gates.create({"name": "full", "rules": [EVERYONE, EMPLOYEES]})
    with pytest.raises(BadRequest) as info:
        await client.gates.update("full", {"description": "no rules", "isEnabled": True})
    assert info.value.errors[0]["property"] == "rules"
    kept = gate.rules[0].model_copy(update={"passPercentage": 25})
    updated = await client.gates.update(
        "full",
        {
            "isEnabled": True,
            "description": "new",
            "rules": [dump(kept), {"name": "brand new", "passPercentage": 0, "conditions": []}],
        },
    )
    assert updated.version == 2
    assert [r.name for r in updated.rules] == ["everyone", "brand new"]
    assert updated.rules[0].baseID == gate.rules[0].baseID
    assert updated.rules[0].id == f"{gate.rules[0].baseID}:25.00:2"
    assert updated.rules[1].baseID not in {r.baseID for r in gate.rules}
    assert updated.description == "new"


async def test_update_with_unknown_rule_id_is_400(client):
    """A rule carrying an id the gate does not have: 400 with the service's message."""
    await client.gates.create({"name": "ids", "rules": [EVERYONE]})
    with pytest.raises(BadRequest, match="A provided rule ID does not match an existing rule ID"):
        await client.gates.patch("ids", {"rules": [{**EVERYONE, "id": "nope"}]})


async def test_patch_changes_only_given_fields(client):
    """PATCH /gates/{id} leaves rules and other fields alone and bumps the version."""
    gate = await client.gates.create({"name": "partial", "tags": ["a"], "rules": [EVERYONE]})
    patched = await client.gates.patch("partial", {"description": "only this", "type": "PERMANENT"})
    assert patched.description == "only this"
    assert patched.type == "PERMANENT"
    assert patched.tags == ["a"]
    assert [r.id for r in patched.rules] == [r.id for r in gate.rules]
    assert patched.version == gate.version + 1
    assert patched.lastModifiedTime is not None


async def test_delete_removes_gate_and_overrides(client, project):
    """DELETE /gates/{id} answers the message only; the gate and its overrides are gone."""
    await client.gates.create({"name": "doomed"})
    await client.gates.set_overrides("doomed", {"passingUserIDs": ["u"], "failingUserIDs": []})
    body = await client.call("DELETE", "/gates/doomed")
    assert body == {"message": "Gate deleted successfully."}
    assert "doomed" not in project.store("gates")
    assert "doomed" not in project.overrides["gates"]
    with pytest.raises(NotFound):
        await client.gates.get("doomed")


# -- status ---------------------------------------------------------------------------------


async def test_status_transitions(client):
    """launch/disable/enable/archive/unarchive follow the status state machine."""
    await client.gates.create({"name": "lifecycle"})
    assert (await client.gates.launch("lifecycle")).status == "Launched"
    disabled = await client.gates.disable("lifecycle")
    assert (disabled.status, disabled.isEnabled) == ("Disabled", False)
    assert (await client.gates.enable("lifecycle")).status == "Launched"  # launch remembered
    archived = await client.gates.archive("lifecycle", reason="done")
    assert archived.status == "Archived"
    with pytest.raises(BadRequest, match="archived"):
        await client.gates.enable("lifecycle")
    assert (await client.gates.unarchive("lifecycle")).status == "In Progress"
    off = await client.gates.update(
        "lifecycle", {"isEnabled": False, "description": "", "rules": []}
    )
    assert off.status == "Disabled"
    assert (await client.gates.enable("lifecycle")).status == "In Progress"
    await client.gates.disable("lifecycle")
    await client.gates.archive("lifecycle")
    assert (await client.gates.unarchive("lifecycle")).status == "Disabled"


async def test_create_disabled_gate(client):
    """A gate created with isEnabled false starts Disabled."""
    gate = await client.gates.create({"name": "born off", "isEnabled": False})
    assert gate.status == "Disabled"


async def test_repeated_state_action_changes_nothing(client, project):
    """Enabling an enabled gate answers 200 without a new version or audit entry."""
    gate = await client.gates.create({"name": "steady"})
    before = audit_count(project)
    again = await client.gates.enable("steady")
    assert again.version == gate.version
    assert audit_count(project) == before


# -- references and archive checks ----------------------------------------------------------


async def test_references_are_computed_from_rules(client, project):
    """gate/dynamic_config/experiment references come from rule conditions and targetingGateID."""
    await client.gates.create({"name": "base"})
    await client.gates.create({"name": "user one", "rules": [passes("base")]})
    await client.gates.create(
        {
            "name": "user two",
            "rules": [
                {
                    "name": "fails",
                    "passPercentage": 100,
                    "conditions": [{"type": "fails_gate", "targetValue": ["base"]}],
                }
            ],
        }
    )
    await client.gates.create({"name": "unrelated", "rules": [EVERYONE]})
    await client.dynamic_configs.create({"name": "cfg", "rules": [passes("base")]})
    await client.experiments.create({"name": "exp", "targetingGateID": "base"})
    gates = [g.id async for g in client.gates.gate_references("base", limit=1)]
    assert gates == ["user_one", "user_two"]
    configs = [c.id async for c in client.gates.dynamic_config_references("base")]
    assert configs == ["cfg"]
    experiments = [e.id async for e in client.gates.experiment_references("base")]
    assert experiments == ["exp"]
    assert [g async for g in client.gates.gate_references("unrelated")] == []


async def test_archive_of_referenced_gate_needs_force(client, project):
    """Archiving a gate in use is 400 naming every reference, unless forceArchive is set."""
    await client.gates.create({"name": "used"})
    await client.gates.create({"name": "user", "rules": [passes("used")]})
    await client.dynamic_configs.create({"name": "cfg user", "rules": [passes("used")]})
    await client.experiments.create({"name": "exp user", "targetingGateID": "used"})
    before = audit_count(project)
    with pytest.raises(BadRequest) as info:
        await client.gates.archive("used")
    message = str(info.value)
    assert "user" in message and "cfg_user" in message and "exp_user" in message
    assert {e["property"] for e in info.value.errors} == {"gates", "dynamicConfigs", "experiments"}
    assert (await client.gates.get("used")).status == "In Progress"
    assert audit_count(project) == before
    forced = await client.gates.archive("used", force=True)
    assert forced.status == "Archived"


async def test_rules_must_reference_existing_objects(client):
    """A rule naming an unknown gate or segment, or its own gate, is 400."""
    with pytest.raises(BadRequest, match=r"Gates with IDs \[ghost\] do not exist"):
        await client.gates.create({"name": "refs ghost", "rules": [passes("ghost")]})
    segment_rule = {
        "name": "seg",
        "passPercentage": 100,
        "conditions": [{"type": "passes_segment", "targetValue": "no_segment"}],
    }
    with pytest.raises(BadRequest, match="Segments with IDs"):
        await client.gates.create({"name": "refs seg", "rules": [segment_rule]})
    await client.gates.create({"name": "selfish"})
    with pytest.raises(BadRequest, match="cannot reference itself"):
        await client.gates.patch("selfish", {"rules": [passes("selfish")]})


# -- list filters and pagination ----------------------------------------------------------


async def test_list_filters(client, project):
    """GET /gates filters by type, typeReason, idType, tags, creator, pass and rollout rates."""
    await client.gates.create({"name": "perm", "type": "PERMANENT", "tags": ["x"]})
    await client.gates.create(
        {"name": "stable", "idType": "stableID", "tags": ["y"], "rules": [EVERYONE]}
    )
    await client.gates.create(
        {"name": "full on", "rules": [{**EVERYONE, "passPercentage": 100}], "creatorID": "me"}
    )
    await client.gates.create({"name": "stale one"})
    project.store("gates")["stale_one"].update(type="STALE", typeReason="STALE_NO_RULES")
    await client.gates.create({"name": "gone"})
    await client.gates.archive("gone")
    await client.gates.launch("perm")

    async def ids(**filters: Any) -> list[str]:
        return [g.id async for g in client.gates.list(**filters)]

    assert await ids() == ["perm", "stable", "full_on", "stale_one"]
    assert await ids(include_archived=True) == ["perm", "stable", "full_on", "stale_one", "gone"]
    assert await ids(type="STALE") == ["stale_one"]
    assert await ids(type_reason="STALE_NO_RULES") == ["stale_one"]
    assert await ids(id_type=["stableID", "customID"]) == ["stable"]
    assert await ids(tags=["x", "y"]) == ["perm", "stable"]
    assert await ids(creator_id="me") == ["full_on"]
    assert await ids(rollout_rate="100") == ["full_on"]
    assert await ids(rollout_rate="INBETWEEN") == ["stable"]
    assert await ids(rollout_rate="0") == ["perm", "stale_one"]
    assert await ids(pass_rate="100") == ["perm", "full_on"]
    assert await ids(pass_rate=["0", "INBETWEEN"]) == ["stable", "stale_one"]
    with pytest.raises(BadRequest, match="Invalid enum value"):
        await ids(type="NOPE")


async def test_pagination_follows_relative_next_page(client, state):
    """105 gates list in pages of 7 through relative nextPage links that keep the filters."""
    state.quotas_enabled = False
    for n in range(105):
        await client.gates.create({"name": f"gate {n:03d}", "tags": ["bulk"]})
    listed = [g.id async for g in client.gates.list(tags="bulk", limit=7)]
    assert listed == [f"gate_{n:03d}" for n in range(105)]
    pages = [e for e in state.capture if e["method"] == "GET" and e["path"].endswith("/gates")]
    assert len(pages) == 15
    first = await client.call("GET", "/gates", params={"tags": "bulk", "limit": 7, "page": 2})
    meta = first["pagination"]
    link = urlsplit(meta["nextPage"])
    assert link.scheme == "" and link.path == "/console/v1/gates"
    assert dict(parse_qsl(link.query)) == {"tags": "bulk", "page": "3", "limit": "7"}
    assert meta["previousPage"].endswith("page=1&limit=7")
    assert (meta["itemsPerPage"], meta["pageNumber"], meta["totalItems"]) == (7, 2, 105)
    last = await client.call("GET", "/gates", params={"limit": 7, "page": 15})
    assert last["pagination"]["nextPage"] is None
    assert len(last["data"]) == 7


# -- overrides ------------------------------------------------------------------------------


async def test_overrides_replace_add_remove(client, state):
    """POST replaces the given lists, PATCH adds (deduplicated), DELETE removes; all 201."""
    await client.gates.create({"name": "ovr"})
    empty = await client.gates.get_overrides("ovr")
    assert (empty.passingUserIDs, empty.failingUserIDs, empty.environmentOverrides) == ([], [], [])
    await client.gates.set_overrides("ovr", {"passingUserIDs": ["a", "b"], "failingUserIDs": ["z"]})
    replaced = await client.gates.set_overrides(
        "ovr", {"passingUserIDs": ["c"], "failingUserIDs": [], "passingCustomIDs": ["k"]}
    )
    assert (replaced.passingUserIDs, replaced.failingUserIDs) == (["c"], [])
    added = await client.gates.add_overrides(
        "ovr", {"passingUserIDs": ["c", "d", "d"], "failingUserIDs": ["y"]}
    )
    assert (added.passingUserIDs, added.failingUserIDs) == (["c", "d"], ["y"])
    assert added.passingCustomIDs == ["k"]
    removed = await client.gates.remove_overrides(
        "ovr", {"passingUserIDs": ["c", "absent"], "failingUserIDs": ["y"]}
    )
    assert (removed.passingUserIDs, removed.failingUserIDs) == (["d"], [])
    assert (await client.gates.get_overrides("ovr")).model_dump() == removed.model_dump()
    for method in ("GET", "POST", "PATCH", "DELETE"):
        assert set(statuses(state, method, "/gates/ovr/overrides")) == {201}


async def test_environment_overrides(client):
    """The environmentOverrides variant merges per (environment, unitID)."""
    await client.gates.create({"name": "env ovr"})
    entry = {"environment": "staging", "unitID": "userID", "passingIDs": ["a"], "failingIDs": []}
    await client.gates.set_overrides("env_ovr", {"environmentOverrides": [entry]})
    more = {**entry, "passingIDs": ["a", "b"], "failingIDs": ["c"]}
    other = {"environment": None, "unitID": "stableID", "passingIDs": ["s"], "failingIDs": []}
    added = await client.gates.add_overrides("env_ovr", {"environmentOverrides": [more, other]})
    assert added.environmentOverrides == [
        {
            "environment": "staging",
            "unitID": "userID",
            "passingIDs": ["a", "b"],
            "failingIDs": ["c"],
        },
        other,
    ]
    removed = await client.gates.remove_overrides("env_ovr", {"environmentOverrides": [other]})
    assert [e["unitID"] for e in removed.environmentOverrides] == ["userID"]
    with pytest.raises(BadRequest, match="Unknown environment"):
        await client.gates.add_overrides(
            "env_ovr", {"environmentOverrides": [{**entry, "environment": "moon"}]}
        )


async def test_override_limits_and_shapes(client, project):
    """Over 2000 ids per list, a missing list or an empty body is 400 and changes nothing."""
    await client.gates.create({"name": "big"})
    ids = [f"u{n}" for n in range(2000)]
    await client.gates.set_overrides("big", {"passingUserIDs": ids, "failingUserIDs": []})
    before = audit_count(project)
    with pytest.raises(BadRequest, match="Bad Request") as info:
        await client.gates.set_overrides(
            "big", {"passingUserIDs": [*ids, "x"], "failingUserIDs": []}
        )
    assert "2000" in info.value.errors[0]["errorMessage"]
    with pytest.raises(BadRequest, match="2000"):
        await client.gates.add_overrides(
            "big", {"passingUserIDs": ["one more"], "failingUserIDs": []}
        )
    with pytest.raises(BadRequest) as info:
        await client.gates.set_overrides("big", {"passingUserIDs": ["a"]})
    assert info.value.errors[0]["property"] == "failingUserIDs"
    with pytest.raises(BadRequest, match="Invalid request"):
        await client.gates.set_overrides("big", {})
    with pytest.raises(BadRequest):
        await client.gates.set_overrides("big", {"passingUserIDs": [""], "failingUserIDs": []})
    assert len((await client.gates.get_overrides("big")).passingUserIDs) == 2000
    assert audit_count(project) == before


# -- rules ----------------------------------------------------------------------------------


async def test_rule_endpoints(client):
    """Add one/many, update many/one (by id or baseID), delete, read: ids and order hold."""
    gate = await client.gates.add_rule(
        (await client.gates.create({"name": "ruled"})).id, Rule.model_validate(EVERYONE)
    )
    first = gate.rules[0]
    gate = await client.gates.add_rules("ruled", [EMPLOYEES, {**EVERYONE, "name": "third"}])
    assert [r.name for r in gate.rules] == ["everyone", "employees", "third"]
    assert gate.rules[0].id == first.id
    gate = await client.gates.update_rules(
        "ruled",
        [{"id": first.id, "passPercentage": 50}, {"baseID": gate.rules[2].baseID, "name": "3rd"}],
    )
    assert gate.rules[0].id == f"{first.baseID}:50.00:2"
    assert gate.rules[2].name == "3rd"
    gate = await client.gates.update_rule("ruled", first.baseID, {"environments": ["staging"]})
    assert gate.rules[0].environments == ["staging"]
    assert gate.rules[0].baseID == first.baseID
    gate = await client.gates.delete_rule("ruled", gate.rules[1].id)
    assert [r.name for r in gate.rules] == ["everyone", "3rd"]
    rules = await client.gates.get_rules("ruled")
    assert [r.model_dump() for r in rules] == [r.model_dump() for r in gate.rules]
    envelope = await client.call("GET", "/gates/ruled/rules")
    assert envelope["data"][0]["rules"][0]["baseID"] == first.baseID
    assert envelope["pagination"]["totalItems"] == 1


async def test_rule_endpoint_errors(client, project):
    """Unknown rule ids and duplicate names are 400 with the service's messages."""
    await client.gates.create({"name": "rule errs", "rules": [EVERYONE, EMPLOYEES]})
    before = audit_count(project)
    with pytest.raises(BadRequest, match="does not match an existing rule ID"):
        await client.gates.update_rule("rule_errs", "missing", {"passPercentage": 1})
    with pytest.raises(BadRequest, match="does not match an existing rule ID"):
        await client.gates.delete_rule("rule_errs", "missing")
    with pytest.raises(BadRequest, match="does not match an existing rule ID"):
        await client.gates.update_rules("rule_errs", [{"id": "missing", "passPercentage": 1}])
    rule_id = project.store("gates")["rule_errs"]["rules"][0]["id"]
    with pytest.raises(BadRequest, match=r"Duplicate rule name\(s\) given"):
        await client.gates.update_rule("rule_errs", rule_id, {"name": "employees"})
    with pytest.raises(BadRequest, match=r"Duplicate rule name\(s\) given"):
        await client.gates.add_rule("rule_errs", EMPLOYEES)
    with pytest.raises(BadRequest):
        await client.gates.update_rule("rule_errs", rule_id, {"passPercentage": 101})
    with pytest.raises(BadRequest):
        await client.gates.add_rule(
            "rule_errs", {"name": "bad", "passPercentage": 5, "conditions": [{"type": "nope"}]}
        )
    assert audit_count(project) == before


# -- versions, audit, permissions ---------------------------------------------------------


async def test_versions_newest_first(client):
    """Every applied change adds a version; the list is newest first and paginated."""
    await client.gates.create({"name": "versioned"})
    await client.gates.patch("versioned", {"description": "two"})
    await client.gates.disable("versioned")
    versions = [g async for g in client.gates.versions("versioned", limit=2)]
    assert [v.version for v in versions] == [3, 2, 1]
    assert [v.status for v in versions] == ["Disabled", "In Progress", "In Progress"]
    assert versions[1].description == "two"


async def test_one_audit_entry_per_applied_change(client, project):
    """Each applied change writes exactly one audit entry with its actionType; reads write none."""
    await client.gates.create({"name": "audited"})
    await client.gates.patch("audited", {"description": "x"})
    await client.gates.add_rule("audited", EVERYONE)
    await client.gates.launch("audited")
    await client.gates.add_overrides("audited", {"passingUserIDs": ["u"], "failingUserIDs": []})
    await client.gates.get("audited")
    await client.gates.archive("audited")
    await client.gates.unarchive("audited")
    await client.gates.delete("audited")
    assert [e["actionType"] for e in project.audit_log] == [
        "gate_create",
        "gate_update",
        "config_conditions_update",
        "config_state_toggle",
        "gate_overrides_update",
        "gate_archive",
        "gate_unarchive",
        "config_delete",
    ]
    assert {e["targetID"] for e in project.audit_log} == {"audited"}


async def test_read_only_key_cannot_mutate(client, make_client, project):
    """A read-only key reads gates but every mutation is 403 Forbidden."""
    await client.gates.create({"name": "guarded"})
    reader = make_client(EMPTY_READ_ONLY_KEY)
    assert (await reader.gates.get("guarded")).id == "guarded"
    for call in (
        reader.gates.create({"name": "nope"}),
        reader.gates.archive("guarded"),
        reader.gates.set_overrides("guarded", {"passingUserIDs": [], "failingUserIDs": []}),
        reader.gates.delete("guarded"),
    ):
        with pytest.raises(Forbidden):
            await call
    assert list(project.store("gates")) == ["guarded"]


# -- analytics ------------------------------------------------------------------------------


async def test_pulse_and_alerts(client):
    """Pulse results, load history, load_pulse and alert resolution answer spec-shaped data."""
    gate = await client.gates.create(
        {
            "name": "measured",
            "rules": [EVERYONE],
            "monitoringMetrics": [{"name": "revenue", "type": "sum"}],
        }
    )
    rule_id = gate.rules[0].id
    assert rule_id is not None
    results = await client.gates.pulse_results("measured", rule_id, cuped=False, confidence=90)
    assert [m["metricName"] for m in results["monitoringMetrics"]] == ["revenue"]
    assert results == await client.gates.pulse_results(
        "measured", rule_id, cuped=False, confidence=90
    )
    history = [h async for h in client.gates.pulse_load_history("measured", rule_id, limit=2)]
    assert len(history) == 3
    await client.gates.load_pulse("measured", rule_id, refresh="incremental")
    with pytest.raises(BadRequest, match="rule ID"):
        await client.gates.load_pulse("measured", "missing")
    resolved = await client.gates.resolve_alert("measured", "revenue", reasoning="fixed")
    assert isinstance(resolved["resolvedAt"], int)
    with pytest.raises(NotFound, match="Metric not found"):
        await client.gates.resolve_alert("measured", "latency")
    with pytest.raises(NotFound, match="Rule not found"):
        await client.gates.pulse_results("measured", "missing")


async def test_models_keep_unknown_fields(client):
    """A gate read back keeps fields the model does not declare (checksPerHour, owner…)."""
    gate: Gate = await client.gates.create({"name": "extras", "monitoringMetrics": []})
    extra = gate.model_dump()
    assert extra["checksPerHour"] == 0
    assert extra["owner"]["ownerName"] == "CONSOLE API"
