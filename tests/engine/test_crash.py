"""Crash, corruption and fault tests: real processes, real HTTP, the emulator's request log.

The invariants (Jepsen's set checker, reliability notes section 7): every planned
mutation is applied exactly once (none lost, none doubled), the checkpoint parses after
every kill, ambiguous writes are settled by a read and never resent blind, and the
server never sees more attempts than its quota in any window.
"""

from __future__ import annotations

import json
import os
import random
import signal
import time
from collections import Counter
from pathlib import Path
from typing import Any

import pytest
from engine_support import seeded_state

from bulkops.emulator import EmulatorState
from bulkops.emulator.seed import EMPTY_KEY
from bulkops.engine.failpoints import FAILPOINT_ENV, FAILPOINT_STEPS
from bulkops.engine.journal import read_records
from bulkops.testing import (
    Emulator,
    applied_counts,
    fork_cli,
    run_cli,
    serve_forked,
    wait_cli,
)

V1 = "/console/v1"


@pytest.fixture(scope="module", name="seed")
def _seed() -> EmulatorState:
    """The empty project with 240 gates, made once for the module."""
    return seeded_state(gates=240)


def _env(emulator: Emulator, tmp_path: Path, **extra: str) -> dict[str, str]:
    return {
        "STATSIG_CONSOLE_API_KEY": EMPTY_KEY,
        "STATSIG_API_URL": emulator.url,
        "BULKOPS_STATE_DIR": str(tmp_path / "state"),
        **extra,
    }


def _mixed_calls(n: int, *, start: int = 0) -> list[dict[str, Any]]:
    """``n`` calls cycling create, archive, override-add (each on its own object)."""
    calls: list[dict[str, Any]] = []
    for i in range(n):
        j = start + i // 3
        kind = i % 3
        if kind == 0:
            calls.append({"method": "POST", "path": "/gates", "body": {"name": f"new gate {j}"}})
        elif kind == 1:
            calls.append(
                {
                    "method": "PUT",
                    "path": f"/gates/seed_gate_{j}/archive",
                    "body": {"archiveReason": "t"},
                }
            )
        else:
            calls.append(
                {
                    "method": "PATCH",
                    "path": f"/gates/seed_gate_{j + 120}/overrides",
                    "body": {"passingUserIDs": [f"u{j}", f"v{j}"], "failingUserIDs": []},
                }
            )
    return calls


def _write_calls(tmp_path: Path, calls: list[dict[str, Any]]) -> Path:
    path = tmp_path / "calls.jsonl"
    path.write_text("".join(json.dumps(c) + "\n" for c in calls))
    return path


def _run_calls(path: Path, *flags: str) -> list[str]:
    """``bulkops run apply-calls --file PATH --apply --yes FLAGS…``."""
    return ["run", "apply-calls", "--file", str(path), "--apply", "--yes", *flags]


def _plan_calls(env: dict[str, str], tmp_path: Path, path: Path, plan: Path) -> None:
    run = run_cli(
        ["plan", "apply-calls", "--file", str(path), "-o", str(plan)], env, tmp_path, "plan"
    )
    assert run.code == 0, run.stderr()


def _crash(
    env: dict[str, str], tmp_path: Path, argv: list[str], failpoint: str, tag: str = "crash"
) -> None:
    """Run ``argv`` until the failpoint kills it (exit 137, as ``kill -9``)."""
    run = run_cli(argv, {**env, FAILPOINT_ENV: failpoint}, tmp_path, tag)
    assert run.code == 137, (failpoint, run.stderr()[-2000:])


def _check_exactly_once(emulator: Emulator, calls: list[dict[str, Any]]) -> None:
    """Every call applied exactly once per the emulator; creates never resent into a 400."""
    entries = emulator.log()
    counts = applied_counts(entries)
    creates = sum(1 for c in calls if c["method"] == "POST" and c["path"] == "/gates")
    for call in calls:
        key = (call["method"], V1 + call["path"])
        expected = creates if call["path"] == "/gates" else 1
        assert counts[key] == expected, f"{key} applied {counts[key]} times"
    assert sum(counts.values()) == len(calls)
    rejected_creates = [e for e in entries if e["path"] == V1 + "/gates" and e["status"] == 400]
    assert rejected_creates == [], "a create was sent again after it had been applied"
    assert [e for e in entries if e.get("fault") == "quota"] == [], (
        "the server's quota was exceeded"
    )


def _finish(argv_env: dict[str, str], ck: Path, tmp_path: Path, tag: str, tries: int = 6) -> None:
    for attempt in range(tries):
        run = run_cli(["resume", str(ck)], argv_env, tmp_path, f"{tag}{attempt}")
        if run.code == 0:
            return
        assert run.code == 1, run.stderr()  # a stopped run (retry budget) is resumable
    raise AssertionError(f"not done after {tries} resumes: {run.stdout()[-1500:]}")


def test_kill_9_at_random_moments_loses_and_doubles_nothing(
    seed: EmulatorState, tmp_path: Path
) -> None:
    """300 mixed mutations, SIGKILLed at 20+ random moments and resumed until done."""
    calls = _mixed_calls(300)
    path = _write_calls(tmp_path, calls)
    plan, ck = tmp_path / "plan.json", tmp_path / "ck"
    rng = random.Random(20240601)
    with serve_forked(seed, tmp_path / "requests.log", time_scale=10) as emulator:
        env = _env(emulator, tmp_path)
        _plan_calls(env, tmp_path, path, plan)
        kills = 0
        for cycle in range(40):
            if ck.exists():
                argv = ["resume", str(ck)]
            else:
                argv = ["apply", str(plan), "--yes", "--checkpoint", str(ck), "--time-scale", "10"]
            writes = len(_writes(emulator))
            run = fork_cli(argv, env, tmp_path, f"c{cycle}")
            if cycle % 4 != 3:
                # Mostly while sending: wait for this process's first write first.
                deadline = time.monotonic() + 10
                while len(_writes(emulator)) == writes and time.monotonic() < deadline:
                    time.sleep(0.005)
            time.sleep(rng.uniform(0.0, 0.25))
            os.kill(run.pid, signal.SIGKILL)
            code = wait_cli(run)
            if ck.exists():
                records = read_records(ck)  # parses after every kill (torn tail allowed)
                assert records[0]["t"] == "plan"
            if code == 137:
                kills += 1
            if kills >= 20:
                break
        assert kills >= 20
        _finish(env, ck, tmp_path, "final")
        _check_exactly_once(emulator, calls)
    states = Counter()
    for record in read_records(ck):
        if record["t"] == "outcome":
            states[record["result"]] += 1
    assert states["failed"] == 0 and states["conflict"] == 0


def _writes(emulator: Emulator) -> list[dict[str, Any]]:
    return [e for e in emulator.log() if e["method"] != "GET"]


def _next_position(step: str, hit: int) -> int:
    # A crash before the intent is durable, or before the request left, leaves the
    # mutation to be sent again; a crash after the send leaves it applied.
    return hit if step in ("before-intent", "before-read", "after-intent") else hit + 1


def test_a_crash_at_every_protocol_step_of_every_kind_recovers(
    seed: EmulatorState, tmp_path: Path
) -> None:
    """Each failpoint × {create, archive, override add}: recovered, nothing lost or doubled."""
    calls = _mixed_calls(60, start=40)
    kinds = ["create", "archive", "override-add"]
    path = _write_calls(tmp_path, calls)
    plan, ck = tmp_path / "plan.json", tmp_path / "ck"
    with serve_forked(seed, tmp_path / "requests.log", time_scale=60) as emulator:
        env = _env(emulator, tmp_path)
        _plan_calls(env, tmp_path, path, plan)
        keys = [m["key"] for m in json.loads(plan.read_text())["mutations"]]
        todo = {(step, kind) for step in FAILPOINT_STEPS for kind in kinds}
        position = 0
        in_doubt = False  # the mutation at `position` has an intent without outcome

        def target_for(step: str, kind: str) -> int:
            distance = (kinds.index(kind) - position) % 3
            if step == "before-read" and in_doubt and distance == 0:
                distance = 3  # settled by a read first, never re-read as new: the next one
            return position + distance

        while todo:
            step, kind = min(todo, key=lambda sk: (target_for(*sk), sk))
            target = target_for(step, kind)
            # Every mutation from `position` on reaches each step, except that one in
            # doubt is settled by a read and then sent, without a before-read step.
            hits = target - position + 1 - (step == "before-read" and in_doubt)
            failpoint = f"{step}:{hits}"
            argv = (
                ["resume", str(ck)]
                if ck.exists()
                else ["apply", str(plan), "--yes", "--checkpoint", str(ck), "--max-in-flight", "1"]
            )
            _crash(env, tmp_path, argv, failpoint, f"{step}-{kind}")
            last = read_records(ck)[-1]
            if step != "before-intent":
                assert last["key"] == keys[target], (failpoint, last)
                assert last["t"] == ("outcome" if step == "after-outcome" else "intent")
            todo.discard((step, kind))
            position = _next_position(step, target)
            in_doubt = step in ("before-read", "after-intent")
        _finish(env, ck, tmp_path, "final")
        _check_exactly_once(emulator, calls)


def test_a_torn_tail_is_repaired_and_resumed(seed: EmulatorState, tmp_path: Path) -> None:
    """A checkpoint cut inside its last record (or missing its newline) resumes after a repair."""
    calls = _mixed_calls(12, start=80)
    path = _write_calls(tmp_path, calls)
    with serve_forked(seed, tmp_path / "requests.log", time_scale=60) as emulator:
        env = _env(emulator, tmp_path)
        ck = tmp_path / "ck"
        _crash(
            env,
            tmp_path,
            _run_calls(path, "--max-in-flight", "1", "--checkpoint", str(ck)),
            "after-outcome:4",
        )
        data = ck.read_bytes()
        last_start = data.rstrip(b"\n").rfind(b"\n") + 1
        cuts = sorted({last_start + 1, (last_start + len(data)) // 2, len(data) - 1})
        for n, cut in enumerate(cuts):
            torn = tmp_path / f"torn{n}.ckpt"
            torn.write_bytes(data[:cut] + (b"\0" * 64 if n == 0 else b""))
            torn.chmod(0o600)
            run = run_cli(["resume", str(torn)], env, tmp_path, f"torn{n}")
            assert run.code == 0, run.stderr()
            assert list(tmp_path.glob(f"torn{n}.ckpt.broken.*")), "no backup of the torn file"
        _check_exactly_once(emulator, calls)


def test_damage_in_the_middle_is_refused_before_any_request(
    seed: EmulatorState, tmp_path: Path
) -> None:
    """One flipped byte in a middle record: exit 3 and not a single request."""
    path = _write_calls(tmp_path, _mixed_calls(6, start=90))
    with serve_forked(seed, tmp_path / "requests.log", time_scale=60) as emulator:
        env = _env(emulator, tmp_path)
        ck = tmp_path / "ck"
        _crash(env, tmp_path, _run_calls(path, "--checkpoint", str(ck)), "after-outcome:3")
        lines = ck.read_bytes().split(b"\n")
        middle = len(lines) // 2
        line = bytearray(lines[middle])
        line[len(line) // 2] ^= 0x01
        lines[middle] = bytes(line)
        ck.write_bytes(b"\n".join(lines))
        before = len(emulator.log())
        run = run_cli(["resume", str(ck)], env, tmp_path, "resume")
        assert run.code == 3, run.stderr()
        assert len(emulator.log()) == before
        assert not list(tmp_path.glob("ck.broken.*"))


def test_a_fault_mix_completes_without_loss_doubling_or_blind_resends(
    seed: EmulatorState, tmp_path: Path
) -> None:
    """429s, 5xx and resets before/after applying, and hangs: settled by reads, quota kept."""
    calls = _mixed_calls(60, start=0)
    path = _write_calls(tmp_path, calls)
    ck = tmp_path / "ck"
    with serve_forked(
        seed,
        tmp_path / "requests.log",
        time_scale=600,
        faults="429=0.2,500=0.05,reset=0.02,hang=0.01",
        hang_seconds=2,
        fault_seed=3,
    ) as emulator:
        env = _env(emulator, tmp_path)
        argv = _run_calls(path, "--checkpoint", str(ck), "--time-scale", "600", "--timeout", "0.5")
        run = run_cli(argv, env, tmp_path, "run")
        if run.code != 0:
            assert run.code == 1, run.stderr()
            _finish(env, ck, tmp_path, "resume")
        entries = sorted(emulator.log(), key=lambda e: e["time"])  # by arrival, not by end
        _check_exactly_once(emulator, calls)
    faults = Counter(e.get("fault") for e in entries if e["method"] != "GET")
    assert faults["429"] + faults["429-retry-after"] > 0
    assert faults["500-after"] + faults["reset-after"] + faults["hang-after"] > 0
    # After a fault that hid an applied PATCH, that PATCH is never sent again.
    for index, entry in enumerate(entries):
        if entry["method"] == "PATCH" and entry.get("fault") in (
            "500-after",
            "reset-after",
            "hang-after",
        ):
            later = [
                e
                for e in entries[index + 1 :]
                if (e["method"], e["path"]) == ("PATCH", entry["path"])
            ]
            assert later == [], f"blind resend of {entry['path']}"
            reads = [
                e
                for e in entries[index + 1 :]
                if e["method"] == "GET" and e["path"] == entry["path"]
            ]
            assert reads, f"{entry['path']} was not read back"
    reconciled = [r for r in read_records(ck) if r["t"] == "reconciled"]
    assert reconciled and {r["verdict"] for r in reconciled} <= {"applied", "not_applied"}


def test_a_thousand_mutations_without_a_single_429(tmp_path: Path) -> None:
    """With both windows binding, 1,000 mutations meet 0 server 429s."""
    units = [f"unit_{i}" for i in range(8)]
    state = seeded_state(calls=[("POST", "/unit_id_types", {"name": u}) for u in units])
    calls = [
        {
            "method": "PATCH",
            "path": f"/unit_id_types/{units[i % 8]}",
            "body": {"description": f"v{i}"},
        }
        for i in range(1000)
    ]
    path = _write_calls(tmp_path, calls)
    quota = ["150/0.5s", "600/2s"]
    with serve_forked(state, tmp_path / "requests.log", time_scale=1, quota=quota) as emulator:
        env = _env(emulator, tmp_path)
        run = run_cli(
            _run_calls(path, "--quota", quota[0], "--quota", quota[1]), env, tmp_path, "run"
        )
        assert run.code == 0, run.stderr()[-2000:]
        entries = emulator.log()
    writes = [e for e in entries if e["method"] == "PATCH"]
    assert len(writes) == 1000 and all(e["status"] == 200 for e in writes)
    assert sum(1 for e in writes if e["applied"]) == 1000
    span = writes[-1]["time"] - writes[0]["time"]
    assert span >= 2.0  # the long window really did bind


def test_a_restart_right_after_a_kill_does_not_burst(seed: EmulatorState, tmp_path: Path) -> None:
    """Killed with the window full and restarted at once: the server sees no excess."""
    calls = [
        {"method": "PUT", "path": f"/gates/seed_gate_{i}/archive", "body": {"archiveReason": "t"}}
        for i in range(150, 200)
    ]
    path = _write_calls(tmp_path, calls)
    ck = tmp_path / "ck"
    with serve_forked(seed, tmp_path / "requests.log", time_scale=1, quota=["20/1s"]) as emulator:
        env = _env(emulator, tmp_path)
        argv = _run_calls(path, "--quota", "20/1s", "--checkpoint", str(ck))
        run = fork_cli(argv, env, tmp_path, "first")
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            puts = [e for e in emulator.log() if e["method"] == "PUT"]
            if len(puts) >= 18:
                break
            time.sleep(0.005)
        os.kill(run.pid, signal.SIGKILL)
        assert wait_cli(run) == 137
        _finish(env, ck, tmp_path, "again")
        _check_exactly_once(emulator, calls)
        puts = [e["time"] for e in emulator.log() if e["method"] == "PUT"]
    for i, t in enumerate(puts):
        assert sum(1 for u in puts[: i + 1] if u > t - 1.0) <= 20


@pytest.mark.parametrize("step", FAILPOINT_STEPS)
def test_a_crash_at_each_step_of_opening_and_committing_a_review(
    seed: EmulatorState, tmp_path: Path, step: str
) -> None:
    """An archive that opens a review, killed at ``step``; resumed: one review (never
    two). Approved, its commit killed at ``step`` (commits have no pre-write read):
    resumed, committed once, the gate archived once and never directly."""
    gate = f"seed_gate_{200 + FAILPOINT_STEPS.index(step)}"
    ck = tmp_path / "ck"
    argv = ["run", "archive-gates", "--id", gate, "--apply", "--yes", "--checkpoint", str(ck),
            "--max-in-flight", "1"]  # fmt: skip
    with serve_forked(seed, tmp_path / "requests.log", require_reviews=True) as emulator:
        env = _env(emulator, tmp_path)
        _crash(env, tmp_path, argv, f"{step}:1", "open")
        run = run_cli(["resume", str(ck)], env, tmp_path, "open-resume")
        assert run.code == 5, run.stderr()
        [review] = emulator.reviews()
        assert review["object_id"] == gate and review["status"] == "pending"
        emulator.decide([review["review_id"]], approve=True)
        crashed = run_cli(["resume", str(ck)], {**env, FAILPOINT_ENV: f"{step}:1"}, tmp_path, "c")
        assert crashed.code == (0 if step == "before-read" else 137), crashed.stderr()
        run = run_cli(["resume", str(ck)], env, tmp_path, "commit-resume")
        assert run.code == 0, run.stderr()
        counts = applied_counts(emulator.log())
        commit = f"{V1}/gates/{gate}/reviews/{review['review_id']}/commit"
        assert counts == Counter({("PUT", commit): 1})
        assert [r["status"] for r in emulator.reviews()] == ["committed"]
