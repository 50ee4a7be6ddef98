"""Reconciliation: the journal's story per key, and settling doubts by reading objects."""

from __future__ import annotations

from bulkops.api.client import ConsoleClient
from bulkops.engine.mutations import Expect, InverseCall, Mutation
from bulkops.engine.reconcile import Match, Verdict, judge, replay, settle, undo_mutations
from bulkops.engine.states import KeyState
from bulkops.jobs.apply_calls.planner import CallPlanner, RawCall


def _rec(seq: int, t: str, key: str, **fields: object) -> dict[str, object]:
    return {"seq": seq, "t": t, "key": key, **fields}


def test_replay_folds_intents_outcomes_and_verdicts() -> None:
    """An intent alone is a doubt; outcomes and verdicts settle or reopen it."""
    records = [
        {"seq": 0, "t": "plan"},
        _rec(1, "intent", "a", attempt=1),
        _rec(2, "outcome", "a", result="applied", status=200, attempts=1),
        _rec(3, "intent", "b", attempt=1),
        _rec(4, "intent", "c", attempt=1),
        _rec(5, "outcome", "c", result="ambiguous", status=500, attempts=1),
        _rec(6, "intent", "d", attempt=1),
        _rec(7, "outcome", "d", result="ambiguous", attempts=1),
        _rec(8, "reconciled", "d", verdict="not_applied"),
        _rec(9, "intent", "e", attempt=1),
        _rec(10, "outcome", "e", result="ambiguous", attempts=1),
        _rec(11, "reconciled", "e", verdict="applied"),
        _rec(12, "outcome", "f", result="skipped", attempts=0),
        _rec(13, "intent", "g", attempt=2),
        _rec(14, "outcome", "g", result="not_applied", status=429, attempts=2),
        _rec(15, "outcome", "h", result="applied", attempts=1, created_id="tag_9"),
    ]
    states = replay(records, keys=["a", "b", "c", "d", "e", "f", "g", "h", "z"])
    assert {k: s.state for k, s in states.items()} == {
        "a": "applied",
        "b": "in_doubt",
        "c": "in_doubt",
        "d": "pending",
        "e": "applied",
        "f": "skipped",
        "g": "pending",
        "h": "applied",
        "z": "pending",
    }
    assert states["e"].settled_at == 11
    assert states["g"].attempts == 2 and states["g"].status == 429
    assert states["h"].created_id == "tag_9"


async def _gate(client: ConsoleClient, name: str) -> None:
    await client.call("POST", "/gates", {"name": name, "description": "t"})


async def test_settle_reads_the_object_back(client: ConsoleClient) -> None:
    """After-state: applied; before-state: not applied; anything else: conflict."""
    await _gate(client, "g_one")
    planner = CallPlanner(client, "empty")
    archive = await planner.plan(
        RawCall("PUT", "/gates/g_one/archive", {"archiveReason": "t"}), key="k"
    )
    assert judge(archive, {"status": "In Progress"}) is Match.BEFORE
    assert await settle(client, archive) == (Verdict.NOT_APPLIED, "read shows status=In Progress")
    await client.call("PUT", "/gates/g_one/archive", {"archiveReason": "t"})
    verdict, _ = await settle(client, archive)
    assert verdict is Verdict.APPLIED
    await client.call("PUT", "/gates/g_one/unarchive", {})
    await client.call("PUT", "/gates/g_one/disable")
    verdict, reason = await settle(client, archive)
    assert verdict is Verdict.CONFLICT and "neither" in reason


async def test_settle_overrides_by_the_ids_they_hold(client: ConsoleClient) -> None:
    """An override add is applied when every id is there, not applied when none is."""
    await _gate(client, "g_two")
    planner = CallPlanner(client, "empty")
    add = await planner.plan(
        RawCall(
            "PATCH",
            "/gates/g_two/overrides",
            {"passingUserIDs": ["u1", "u2"], "failingUserIDs": []},
        ),
        key="k",
    )
    assert (await settle(client, add))[0] is Verdict.NOT_APPLIED
    await client.call(
        "PATCH", "/gates/g_two/overrides", {"passingUserIDs": ["u1"], "failingUserIDs": []}
    )
    assert (await settle(client, add))[0] is Verdict.CONFLICT  # half there: not ours
    await client.call(
        "PATCH", "/gates/g_two/overrides", {"passingUserIDs": ["u2"], "failingUserIDs": []}
    )
    assert (await settle(client, add))[0] is Verdict.APPLIED


async def test_unverifiable_mutations_are_never_resent_blind(client: ConsoleClient) -> None:
    """Without a read: idempotent ones may be sent again, others are a conflict."""
    m = Mutation(
        key="k", project="empty", action="post", object="/x", method="POST", path="/x", body={}
    )
    verdict, reason = await settle(client, m)
    assert verdict is Verdict.CONFLICT and "check by hand" in reason
    verdict, _ = await settle(client, m.model_copy(update={"idempotent": True}))
    assert verdict is Verdict.NOT_APPLIED


def _m(key: str, deps: tuple[str, ...] = (), inverse: bool = True) -> Mutation:
    return Mutation(
        key=key,
        project="p",
        action="archive",
        object=f"gate/{key}",
        method="PUT",
        path=f"/gates/{key}/archive",
        read=f"/gates/{key}",
        before=Expect(fields={"status": "In Progress"}),
        after=Expect(fields={"status": "Archived"}),
        inverse=(InverseCall(method="PUT", path=f"/gates/{key}/unarchive", body={}),)
        if inverse
        else (),
        depends_on=deps,
    )


def test_undo_reverses_applied_mutations_newest_first() -> None:
    """Only applied ones are undone, newest first, with dependencies reversed."""
    mutations = [_m("a"), _m("b", deps=("a",)), _m("c"), _m("d", inverse=False)]
    states = {
        "a": KeyState(state="applied", settled_at=3),
        "b": KeyState(state="applied", settled_at=9),
        "c": KeyState(state="failed", settled_at=5),
        "d": KeyState(state="applied", settled_at=7),
    }
    undo, skipped = undo_mutations(mutations, states)
    assert [m.key for m in undo] == ["undo:b", "undo:a"]
    assert undo[1].depends_on == ("undo:b",)
    assert skipped == [("d", "archive has no inverse")]
