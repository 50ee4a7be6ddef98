"""apply-calls: line validation, and the effects derived for each endpoint shape."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from jobs_support import job_context, run_mutations

from bulkops.api.client import ConsoleClient, read_object
from bulkops.engine.mutations import Expect, Mutation
from bulkops.engine.quota import quota_class_for
from bulkops.engine.reconcile import Match, judge
from bulkops.errors import InputError
from bulkops.jobs import JOBS, apply_calls, check_job_module
from bulkops.jobs.apply_calls.planner import CallPlanner, RawCall


def _file(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "calls.jsonl"
    path.write_text(text)
    return path


def test_apply_calls_is_registered() -> None:
    """The registry knows the job and it has the job contract."""
    assert JOBS["apply-calls"] is apply_calls
    check_job_module(apply_calls)


def test_every_bad_line_is_listed_with_its_number(tmp_path: Path) -> None:
    """All problems are reported at once, by line number; good lines are not named."""
    path = _file(
        tmp_path,
        '{"method": "PUT", "path": "/gates/a/archive"}\n'
        "\n"
        "[1, 2]\n"
        '{"method": "GET", "path": "/gates"}\n'
        '{"method": "PUT", "path": "https://evil/x"}\n'
        '{"method": "PUT", "path": "/gates/a b"}\n'
        '{"method": "PUT", "path": "/x", "key": "same"}\n'
        '{"method": "PUT", "path": "/y", "key": "same"}\n'
        '{"method": "PUT", "path": "/console/v1"}\n'
        '{"method": "PUT", "path": "/z", "headers": {}}\n',
    )
    with pytest.raises(InputError) as info:
        apply_calls.load_calls(path)
    message = info.value.message
    assert "7 bad line(s)" in message
    for line in (3, 4, 5, 6, 8, 9, 10):
        assert f"line {line}:" in message
    assert "line 1:" not in message and "line 7:" not in message
    assert "also used on line 7" in message


def test_a_file_of_bad_lines_lists_fifty_and_says_how_many_more(tmp_path: Path) -> None:
    """A thousand bad lines do not flood the terminal, and none goes unmentioned."""
    path = _file(tmp_path, '{"method": "GET", "path": "/gates"}\n' * 1000)
    with pytest.raises(InputError) as info:
        apply_calls.load_calls(path)
    lines = info.value.message.splitlines()
    assert lines[0].endswith("1000 bad line(s); nothing was sent:")
    assert lines[1].startswith("  line 1:") and lines[50].startswith("  line 50:")
    assert lines[51:] == ["  … and 950 more"]


def test_good_lines_get_default_keys(tmp_path: Path) -> None:
    """A call without a key is named by its line, method and path."""
    path = _file(
        tmp_path,
        '{"method": "put", "path": "/console/v1/gates/a/archive", "body": {}}\n\n'
        '{"method": "DELETE", "path": "/gates/b", "key": "drop-b"}\n',
    )
    calls = apply_calls.load_calls(path)
    assert [(n, c.method, key) for n, c, key in calls] == [
        (1, "PUT", "L1:PUT /gates/a/archive"),
        (3, "DELETE", "drop-b"),
    ]
    with pytest.raises(InputError, match="no calls"):
        apply_calls.load_calls(_file(tmp_path, "\n\n"))


def test_quota_classes() -> None:
    """Segment id-list writes spend the id_list quota; everything else the mutation one."""
    assert quota_class_for("PATCH", "/segments/s/id_list") == "id_list"
    assert quota_class_for("POST", "/console/v1/segments/s/id_list/reset") == "id_list"
    assert quota_class_for("PUT", "/segments/s/archive") == "mutation"


async def _plan(client: ConsoleClient, *calls: tuple[str, str, Any]) -> list[Mutation]:
    planner = CallPlanner(client, "empty")
    return [await planner.plan(RawCall(m, p, b), key=f"k{i}") for i, (m, p, b) in enumerate(calls)]


async def test_state_actions_observe_status_fields(client: ConsoleClient) -> None:
    """Archive, unarchive, enable, disable and launch are checked by the gate's fields."""
    await client.call("POST", "/gates", {"name": "state_gate", "description": "t"})
    archive, unarchive, disable, enable, launch = await _plan(
        client,
        ("PUT", "/gates/state_gate/archive", {}),
        ("PUT", "/gates/state_gate/unarchive", {}),
        ("PUT", "/gates/state_gate/disable", None),
        ("PUT", "/gates/state_gate/enable", None),
        ("PUT", "/gates/state_gate/launch", None),
    )
    assert archive.read == "/gates/state_gate" and archive.idempotent
    assert archive.before == Expect(fields={"status": "In Progress"})
    assert archive.after == Expect(fields={"status": "Archived"})
    assert archive.inverse[0].path == "/gates/state_gate/unarchive"
    assert unarchive.before == Expect(fields={"status": "Archived"})  # planned after the archive
    assert disable.after == Expect(fields={"isEnabled": False})
    assert disable.inverse[0].path == "/gates/state_gate/enable"
    assert enable.before == Expect(fields={"isEnabled": False})
    assert launch.after == Expect(fields={"status": "Launched"}) and not launch.inverse


async def test_creates_updates_and_deletes(client: ConsoleClient) -> None:
    """A create expects absence then presence and undoes by delete; updates name their fields."""
    await client.call("POST", "/gates", {"name": "upd_gate", "description": "old"})
    create, patch, full, delete = await _plan(
        client,
        ("POST", "/gates", {"name": "Fresh Gate", "description": "d"}),
        ("PATCH", "/gates/upd_gate", {"description": "new"}),
        ("POST", "/gates/upd_gate", {"description": "newer", "isEnabled": True, "rules": []}),
        ("DELETE", "/gates/upd_gate", None),
    )
    assert create.object == "gate/fresh_gate" and create.read == "/gates/fresh_gate"
    assert create.before == Expect(exists=False) and create.after.exists is True
    assert create.inverse[0].method == "DELETE" and not create.idempotent
    assert patch.before.fields == {"description": "old"}
    assert patch.after.fields == {"description": "new"} and not patch.idempotent
    assert patch.inverse[0].body == {"description": "old"}
    assert full.idempotent and full.before.fields["description"] == "new"  # chained
    assert delete.before == Expect(exists=True) and delete.after == Expect(exists=False)
    assert not delete.inverse


async def test_gate_overrides_add_remove_replace(client: ConsoleClient) -> None:
    """Adds expect the ids present; the undo removes exactly the ids that were new."""
    await client.call("POST", "/gates", {"name": "ovr_gate", "description": "t"})
    await client.call(
        "POST", "/gates/ovr_gate/overrides", {"passingUserIDs": ["old"], "failingUserIDs": []}
    )
    add, env_add, remove, replace = await _plan(
        client,
        (
            "PATCH",
            "/gates/ovr_gate/overrides",
            {"passingUserIDs": ["old", "new1"], "failingUserIDs": ["bad"]},
        ),
        (
            "PATCH",
            "/gates/ovr_gate/overrides",
            {
                "environmentOverrides": [
                    {
                        "environment": "staging",
                        "unitID": "userID",
                        "passingIDs": ["s1"],
                        "failingIDs": [],
                    }
                ]
            },
        ),
        ("DELETE", "/gates/ovr_gate/overrides", {"passingUserIDs": ["old"], "failingUserIDs": []}),
        ("POST", "/gates/ovr_gate/overrides", {"passingUserIDs": ["x"], "failingUserIDs": []}),
    )
    assert add.after == Expect(
        contains={"passingUserIDs": ["old", "new1"], "failingUserIDs": ["bad"]}
    )
    assert add.before == Expect(excludes={"passingUserIDs": ["new1"], "failingUserIDs": ["bad"]})
    assert add.inverse[0].method == "DELETE"
    assert add.inverse[0].body == {"passingUserIDs": ["new1"], "failingUserIDs": ["bad"]}
    env_path = "environmentOverrides[environment=staging,unitID=userID].passingIDs"
    assert env_add.after == Expect(contains={env_path: ["s1"]})
    assert remove.after == Expect(excludes={"passingUserIDs": ["old"]})
    assert remove.inverse[0].method == "PATCH"
    assert replace.idempotent and replace.after.fields["passingUserIDs"] == ["x"]
    current = await read_object(client, "/gates/ovr_gate/overrides")
    assert judge(add, current) is Match.BEFORE
    await client.call("PATCH", "/gates/ovr_gate/overrides", add.body)
    assert judge(add, await read_object(client, "/gates/ovr_gate/overrides")) is Match.AFTER


async def test_experiment_overrides_and_segment_id_lists(client: ConsoleClient) -> None:
    """Experiment id overrides are read per group; id-list writes read the whole list."""
    await client.call("POST", "/experiments", {"name": "exp_one", "description": "t"})
    groups = (await client.data("GET", "/experiments/exp_one"))["groups"]
    group = groups[0]["name"]
    await client.call(
        "POST", "/segments", {"name": "seg_one", "type": "id_list", "description": "t"}
    )
    exp_add, seg_add, seg_remove, seg_reset = await _plan(
        client,
        (
            "PATCH",
            "/experiments/exp_one/overrides",
            {"overrides": [], "userIDOverrides": [{"groupID": group, "ids": ["e1", "e2"]}]},
        ),
        ("PATCH", "/segments/seg_one/id_list", {"ids": ["a", "b"]}),
        ("DELETE", "/segments/seg_one/id_list", {"ids": ["a"]}),
        ("POST", "/segments/seg_one/id_list/reset", {"ids": ["z"]}),
    )
    selector = f"userIDOverrides[groupID={group}].ids"
    assert exp_add.after == Expect(contains={selector: ["e1", "e2"]})
    await client.call("PATCH", "/experiments/exp_one/overrides", exp_add.body)
    assert judge(exp_add, await read_object(client, exp_add.read or "")) is Match.AFTER
    assert seg_add.quota_class == "id_list" and seg_add.read == "/segments/seg_one/id_list"
    assert seg_add.after == Expect(contains={"ids": ["a", "b"]})
    assert seg_remove.before == Expect(contains={"ids": ["a"]})  # planned after the add
    assert seg_reset.idempotent and seg_reset.after == Expect(fields={"ids": ["z"]})
    assert seg_reset.inverse[0].body == {"ids": ["b"]}


async def test_tags_and_unknown_endpoints(client: ConsoleClient) -> None:
    """A tag create is found by name; an unknown endpoint gets no read at all."""
    tag, unknown = await _plan(
        client,
        ("POST", "/tags", {"name": "team-x", "description": "d"}),
        ("POST", "/gates/anything/load_pulse", {}),
    )
    assert tag.read == "/tags" and tag.after == Expect(contains={"*.name": ["team-x"]})
    assert tag.inverse[0].path == "/tags/{created_id}"
    assert unknown.read is None and not unknown.verifiable and not unknown.inverse


async def test_the_job_plans_a_file_and_the_runner_applies_it(
    client: ConsoleClient, tmp_path: Path
) -> None:
    """Calls on one object chain (create, overrides, archive) and all apply in order."""
    calls = [
        {"method": "POST", "path": "/gates", "body": {"name": "chain gate", "description": "t"}},
        {
            "method": "PATCH",
            "path": "/gates/chain_gate/overrides",
            "body": {"passingUserIDs": ["u1"], "failingUserIDs": []},
        },
        {"method": "PUT", "path": "/gates/chain_gate/archive", "body": {"archiveReason": "t"}},
        {"method": "POST", "path": "/tags", "body": {"name": "chain-tag", "description": "d"}},
    ]
    path = _file(tmp_path, "".join(json.dumps(c) + "\n" for c in calls))
    ctx = job_context(client, "empty", plan_id="p")
    mutations = [m async for m in apply_calls.plan(ctx, apply_calls.Params(file=path))]
    assert mutations[1].depends_on == (mutations[0].key,)
    assert mutations[2].depends_on == (mutations[0].key,)
    _, result = await run_mutations(client, mutations, tmp_path / "ck")
    assert (await client.data("GET", "/gates/chain_gate"))["status"] == "Archived"
    assert result.states[mutations[3].key].created_id
