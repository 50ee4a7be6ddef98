"""States and results: the plain strings that checkpoints, reports and status output hold."""

from __future__ import annotations

import csv
import io
import json

from bulkops.engine.reconcile import Verdict, replay
from bulkops.engine.states import FINAL_STATES, OK_STATES, KeyState, Result, State


def test_each_result_leaves_its_mutation_in_the_documented_state() -> None:
    """ambiguous means in doubt, not_applied means pending; the rest keep their name.
    A review still open is not final (a resume follows it); a rejected one is."""
    assert {r.value: r.state.value for r in Result} == {
        "applied": "applied",
        "skipped": "skipped",
        "failed": "failed",
        "conflict": "conflict",
        "ambiguous": "in_doubt",
        "not_applied": "pending",
        "pending_review": "pending_review",
        "rejected": "rejected",
    }
    assert {v.value: v.result.state.value for v in Verdict} == {
        "applied": "applied",
        "not_applied": "pending",
        "conflict": "conflict",
        "pending_review": "pending_review",
        "rejected": "rejected",
    }
    assert FINAL_STATES == {"applied", "skipped", "failed", "conflict", "rejected"}
    assert OK_STATES == {"applied", "skipped"}


def test_states_and_results_are_written_as_their_plain_strings() -> None:
    """Journal records, JSON and CSV reports and messages read exactly as plain strings."""
    record = {"result": Result.NOT_APPLIED, "state": State.IN_DOUBT}
    assert json.dumps(record) == '{"result": "not_applied", "state": "in_doubt"}'
    out = io.StringIO()
    csv.writer(out).writerow([State.APPLIED, Result.AMBIGUOUS])
    assert out.getvalue() == "applied,ambiguous\r\n"
    assert f"{State.PENDING} {Result.FAILED}" == "pending failed"
    assert State.CONFLICT == "conflict" and "skipped" in OK_STATES


def test_a_reason_is_kept_only_where_a_mutation_ends() -> None:
    """An ambiguous outcome keeps no reason; the final one records it and its seq."""
    st = KeyState()
    st.settle(Result.AMBIGUOUS, reason="500 PUT /gates/g/archive", seq=4)
    assert (st.state, st.reason, st.settled_at) == (State.IN_DOUBT, None, -1)
    st.settle(Result.CONFLICT, reason="read shows neither", seq=7)
    assert (st.state, st.reason, st.settled_at) == (State.CONFLICT, "read shows neither", 7)


def test_replay_reads_the_journal_into_states() -> None:
    """A failed outcome is final with its error as the reason; unknown results change nothing."""
    records = [
        {"seq": 1, "t": "intent", "key": "a", "attempt": 1},
        {"seq": 2, "t": "outcome", "key": "a", "result": "failed", "status": 400, "error": "bad"},
        {"seq": 3, "t": "intent", "key": "b", "attempt": 1},
        {"seq": 4, "t": "outcome", "key": "b", "result": "from the future", "attempts": 1},
        {"seq": 5, "t": "reconciled", "key": "b", "verdict": "conflict", "reason": "neither"},
    ]
    states = replay(records)
    assert (states["a"].state, states["a"].reason, states["a"].settled_at) == ("failed", "bad", 2)
    assert (states["b"].state, states["b"].reason, states["b"].settled_at) == (
        "conflict",
        "neither",
        5,
    )
    assert all(type(st.state) is State for st in states.values())


def test_replay_keeps_the_review_a_write_opened_and_its_fate() -> None:
    """An outcome naming a review leaves it pending_review with the id and its time; a
    commit's intent puts it in doubt (still with the id); a rejection is final with its
    reason."""
    records = [
        {"seq": 1, "t": "intent", "key": "a", "attempt": 1},
        {"seq": 2, "t": "outcome", "key": "a", "result": "pending_review", "attempts": 1,
         "review_id": "rv1", "at": 100.0},
        {"seq": 3, "t": "intent", "key": "b", "attempt": 1},
        {"seq": 4, "t": "outcome", "key": "b", "result": "pending_review", "attempts": 1,
         "review_id": "rv2", "at": 101.0},
        {"seq": 5, "t": "intent", "key": "a", "attempt": 2, "commit": "rv1"},
        {"seq": 6, "t": "reconciled", "key": "b", "verdict": "rejected", "review_id": "rv2",
         "reason": "review rv2 was rejected: not now", "at": 200.0},
    ]  # fmt: skip
    states = replay(records)
    assert (states["a"].state, states["a"].review_id, states["a"].review_at) == (
        "in_doubt",
        "rv1",
        100.0,
    )
    assert (states["b"].state, states["b"].reason, states["b"].review_id) == (
        "rejected",
        "review rv2 was rejected: not now",
        "rv2",
    )
    assert states["b"].review_at == 101.0  # when it was opened, not when it was rejected
