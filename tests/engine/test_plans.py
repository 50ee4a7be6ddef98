"""Plan files: hashed, private, refused once edited; plans are validated when built."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from bulkops.engine.mutations import Expect, Mutation
from bulkops.engine.plans import (
    Plan,
    ProjectRef,
    check_keys,
    read_plan,
    validate_mutations,
    write_plan,
)
from bulkops.errors import BulkOpsError, InputError, PlanError, RefusedError
from bulkops.keyguard import KeyGuard

PROJECT = ProjectRef(id="p1", name="Project One")


def _m(
    key: str, *, obj: str | None = None, deps: tuple[str, ...] = (), project: str = "p1"
) -> Mutation:
    return Mutation(
        key=key,
        project=project,
        action="archive",
        object=obj or f"gate/{key}",
        method="PUT",
        path=f"/gates/{key}/archive",
        body={},
        read=f"/gates/{key}",
        before=Expect(fields={"status": "In Progress"}),
        after=Expect(fields={"status": "Archived"}),
        depends_on=deps,
        idempotent=True,
    )


def _plan(*mutations: Mutation) -> Plan:
    return Plan.build(job="test", params={"n": 1}, projects=[PROJECT], mutations=list(mutations))


def test_build_hashes_the_plan_and_counts_actions() -> None:
    """A built plan carries a sha256 of its content, counts and quota classes."""
    plan = _plan(_m("a"), _m("b"))
    assert len(plan.header.hash) == 64
    assert plan.compute_hash() == plan.header.hash
    assert plan.counts() == {"archive": 2}
    assert plan.quota_counts() == {"mutation": 2}
    assert plan.target_project == "p1"
    assert plan.project_name("p1") == "Project One"


def test_plan_file_round_trips_and_is_private(tmp_path: Path) -> None:
    """A written plan reads back identical, with mode 0600."""
    plan = _plan(_m("a"), _m("b", deps=("a",)))
    path = tmp_path / "plan.json"
    write_plan(path, plan)
    assert os.stat(path).st_mode & 0o777 == 0o600
    again = read_plan(path)
    assert again == plan


@pytest.mark.parametrize(
    "edit",
    [
        lambda d: d["mutations"][0].update(path="/gates/other/archive"),
        lambda d: d["header"]["projects"][0].update(id="p2"),
        lambda d: d["mutations"].pop(),
        lambda d: d["header"].update(hash="0" * 64),
    ],
)
def test_an_edited_plan_is_refused(tmp_path: Path, edit) -> None:
    """Changing anything in a plan file (even the hash) makes it unusable."""
    path = tmp_path / "plan.json"
    write_plan(path, _plan(_m("a"), _m("b")))
    data = json.loads(path.read_text())
    edit(data)
    path.write_text(json.dumps(data))
    with pytest.raises(RefusedError):
        read_plan(path)


def test_a_plan_others_can_read_is_refused(tmp_path: Path) -> None:
    """Plans may hold user ids: group/other permission bits are refused."""
    path = tmp_path / "plan.json"
    write_plan(path, _plan(_m("a")))
    path.chmod(0o644)
    with pytest.raises(RefusedError, match="accessible to group or others"):
        read_plan(path)


def test_garbage_and_missing_plans(tmp_path: Path) -> None:
    """A file that is not a plan says what it is; a plan that does not parse is refused;
    a missing one is a usage problem."""
    path = tmp_path / "plan.json"
    path.write_text("{not json")
    path.chmod(0o600)
    with pytest.raises(InputError, match="is a JSON file that bulkops did not write, not a "):
        read_plan(path)
    path.write_text('{"header": {"format": "bulkops-plan/1", "job": ')
    with pytest.raises(RefusedError, match="the plan does not parse as JSON"):
        read_plan(path)
    with pytest.raises(PlanError):
        read_plan(tmp_path / "nope.json")


@pytest.mark.parametrize(
    ("mutations", "message"),
    [
        ([_m("a"), _m("a")], "two mutations have the key"),
        ([_m("a", deps=("zzz",))], "not in the plan"),
        ([_m("a", deps=("b",)), _m("b", deps=("a",))], "cycle"),
        ([_m("a", project="p9")], "not named"),
    ],
)
def test_invalid_plans_are_refused_when_built(mutations: list[Mutation], message: str) -> None:
    """Duplicate keys, unknown or cyclic dependencies, foreign projects: PlanError."""
    with pytest.raises(PlanError, match=message):
        validate_mutations(mutations, project_ids={"p1"})


@pytest.mark.parametrize(
    ("edit", "message"),
    [
        (lambda d: d["mutations"][0].update(method="GET"), "method"),
        (lambda d: d["mutations"][0].update(path="gates/a/archive"), "path"),
        (lambda d: d["mutations"][0].update(quota_class="burst"), "quota_class"),
        (lambda d: d["mutations"][0].update(colour="red"), "colour"),
        (lambda d: d["mutations"][1].update(depends_on=["missing"]), "missing"),
        (lambda d: d["mutations"][1].update(key="a"), "a"),
    ],
)
def test_a_forged_plan_with_a_recomputed_hash_is_still_validated(
    tmp_path: Path, edit, message
) -> None:
    """The fast load of a plan whose hash matches still refuses content we never write."""
    from bulkops.engine.plans import _hash_document

    path = tmp_path / "plan.json"
    write_plan(path, _plan(_m("a"), _m("b")))
    data = json.loads(path.read_text())
    edit(data)
    data["header"]["hash"] = _hash_document(data)
    path.write_text(json.dumps(data))
    os.chmod(path, 0o600)
    with pytest.raises(BulkOpsError, match=message):
        read_plan(path)


def test_a_plan_missing_a_default_field_still_loads(tmp_path: Path) -> None:
    """A plan written without an optional field (an older writer) takes the full path and loads."""
    from bulkops.engine.plans import _hash_document

    path = tmp_path / "plan.json"
    plan = _plan(_m("a"), _m("b", deps=("a",)))
    write_plan(path, plan)
    data = json.loads(path.read_text())
    for mutation in data["mutations"]:
        mutation.pop("before_image", None)
    data["header"]["hash"] = _hash_document(data)
    path.write_text(json.dumps(data))
    os.chmod(path, 0o600)
    assert read_plan(path).mutations == plan.mutations


def test_a_plan_holding_a_key_is_refused_naming_mutation_and_field(tmp_path: Path) -> None:
    """Built with the run's keys, or read from a file, a plan holding a key is refused:
    the mutation (by position when its own key holds one) and the field, never the value."""
    leaky = _m("b").model_copy(update={"body": {"archiveReason": "by plainsourcekey42"}})
    with pytest.raises(PlanError, match=r"mutation 2 \(b\): the field body\.archiveReason") as info:
        Plan.build(
            job="t",
            params={},
            projects=[PROJECT],
            mutations=[_m("a"), leaky],
            guard=KeyGuard.of(["plainsourcekey42"]),
        )
    assert "plainsourcekey42" not in str(info.value)
    named = _m("a").model_copy(update={"key": "rotate console-abc123def456"})
    with pytest.raises(PlanError, match=r"^mutation 1: the field key holds an API key") as info:
        _plan(named)
    assert "abc123def456" not in str(info.value)
    with pytest.raises(PlanError, match="header field params.note holds an API key"):
        Plan.build(
            job="t", params={"note": "console-abc123def456"}, projects=[PROJECT], mutations=[]
        )


def test_a_plan_file_holding_a_key_is_refused_on_read(tmp_path: Path) -> None:
    """A plan file with a key-shaped string (an older writer; its hash still matches) is
    refused by read_plan, and by check_keys for the values of the run's keys."""
    from bulkops.engine.plans import _hash_document

    path = tmp_path / "plan.json"
    write_plan(path, _plan(_m("a"), _m("b")))
    data = json.loads(path.read_text())
    data["mutations"][1]["body"] = {"note": "client-Zx81KqLm0Pw7Rt2Yv5Nb"}
    data["header"]["hash"] = _hash_document(data)
    path.write_text(json.dumps(data))
    os.chmod(path, 0o600)
    with pytest.raises(PlanError, match=r"mutation 2 \(b\): the field body\.note"):
        read_plan(path)
    plan = _plan(_m("a"), _m("plainsourcekey42"))
    check_keys(plan, KeyGuard())  # no key-shaped string in it
    with pytest.raises(PlanError, match="^mutation 2: the field key"):
        check_keys(plan, KeyGuard.of(["plainsourcekey42"]))
