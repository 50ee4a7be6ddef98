"""Projects that require reviews, through the real CLI against a forked emulator with
``--require-reviews`` (the emulator's request log and its reviews are the ground truth):
kill -9s never make a second review, approved reviews are committed once, a rejected one
is reported and never retried, for archive-gates, rewrite-rules and import-overrides."""

from __future__ import annotations

import contextlib
import json
import os
import random
import signal
import time
import urllib.request
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import jsonschema
import pytest
from engine_support import seeded_state

from bulkops.cli.documents import schema_path
from bulkops.emulator import EmulatorState
from bulkops.emulator.seed import EMPTY_KEY
from bulkops.engine.journal import read_records
from bulkops.engine.reconcile import replay
from bulkops.testing import (
    CliRun,
    Emulator,
    RequestLogTail,
    applied_counts,
    cli_env,
    fork_cli,
    resume_through_reviews,
    run_cli,
    serve_forked,
    wait_cli,
)

V1 = "/console/v1"
RULE = {"name": "Everyone", "passPercentage": 100, "conditions": [{"type": "public"}]}


@pytest.fixture(scope="module", name="seed")
def _seed() -> EmulatorState:
    """The empty project: 100 plain gates, 6 gates with a rule, made once for the module."""
    rules = [
        ("POST", "/gates", {"name": f"ruled_{i}", "description": "d", "rules": [RULE]})
        for i in range(6)
    ]
    return seeded_state(gates=100, calls=rules)


def _env(emulator: Emulator, tmp_path: Path) -> dict[str, str]:
    return cli_env(EMPTY_KEY, emulator.url, tmp_path / "state")


def _writes(emulator: Emulator) -> list[dict[str, Any]]:
    return [e for e in emulator.log() if e["method"] != "GET" and e["path"].startswith(V1)]


def _opened(emulator: Emulator) -> Counter[str]:
    """Reviews opened per object (``kind/id``), from the request log."""
    return Counter(
        "/".join(e["path"].removeprefix(V1 + "/").split("/")[:2])
        for e in _writes(emulator)
        if (e.get("review") or {}).get("event") == "opened"
    )


def _kill_while_sending(
    emulator: Emulator,
    first: list[str],
    ck: Path,
    env: dict[str, str],
    tmp_path: Path,
    *,
    kills: int,
    tag: str,
) -> tuple[int, CliRun]:
    """Run ``first`` (then ``resume ck``) and SIGKILL it ``kills`` times while it sends;
    then let one resume finish. The kills made, and that last run."""
    rng = random.Random(f"{tag}-20261205")
    # Polled every few milliseconds: read as it grows, not whole each time (which would
    # itself be a CPU hog delaying the emulator and the CLI).
    tail = RequestLogTail(emulator.log_path)
    made = 0
    for cycle in range(kills * 4):
        argv = ["resume", str(ck)] if ck.exists() else first
        tail.poll()
        sent = tail.writes
        run = fork_cli(argv, env, tmp_path, f"{tag}{cycle}")
        deadline = time.monotonic() + 15
        while tail.writes == sent and time.monotonic() < deadline and not run.poll():
            time.sleep(0.005)
            tail.poll()
        if run.code is not None:
            break  # finished before a write could be interrupted: nothing left to kill
        time.sleep(rng.uniform(0.0, 0.12))
        if not run.poll():
            os.kill(run.pid, signal.SIGKILL)
        if wait_cli(run) == 137:
            made += 1
            assert read_records(ck)[0]["t"] == "plan"  # parses after every kill
        if made >= kills:
            break
    return made, run_cli(["resume", str(ck)], env, tmp_path, f"{tag}-end")


def test_archive_100_gates_through_10_kills_one_review_each_committed_once(
    seed: EmulatorState, tmp_path: Path
) -> None:
    """100 archives in a project that requires reviews, SIGKILLed 10 times while opening
    their reviews: exactly one review per gate (never two). All approved, then a resume
    killed 5 more times while committing: every gate archived exactly once, through its
    review's commit, each review committed once. The server allows 25 writes a second
    and the tool is told 20: a 1-second window leaves the limiter 15 ms of margin, less
    than a process on a loaded 2-core machine can be held back (in the full suite beside
    a CPU hog, a request admitted on time reached the emulator 92 ms late and the server
    counted a 26th). The burst a restart could cause is test_crash's to catch."""
    ck = tmp_path / "ck"
    first = ["run", "archive-gates", "--id", "seed_gate_*", "--apply", "--yes",
             "--checkpoint", str(ck), "--quota", "20/1s", "--review-description", "cleanup"]  # fmt: skip
    with serve_forked(
        seed, tmp_path / "requests.log", time_scale=1, quota=["25/1s"], require_reviews=True
    ) as emulator:
        env = _env(emulator, tmp_path)
        kills, run = _kill_while_sending(emulator, first, ck, env, tmp_path, kills=10, tag="open")
        assert kills == 10
        assert run.code == 5, run.stderr()[-2000:]
        # The run's last line says what it waits for, as status does.
        assert "waiting for review 100, rejected 0" in run.stdout().splitlines()[-1]
        reviews = emulator.reviews()
        per_gate = Counter(r["object_id"] for r in reviews)
        assert len(per_gate) == 100 and set(per_gate.values()) == {1}
        assert set(_opened(emulator).values()) == {1}
        assert all(r["status"] == "pending" for r in reviews)
        assert all(r["description"].startswith("cleanup — bulkops archive-gates") for r in reviews)
        status = run_cli(["status", str(ck), "--json"], env, tmp_path, "status")
        summary = json.loads(status.stdout())
        assert summary["counts"]["pending_review"] == 100 and len(summary["reviews"]) == 100
        oldest = reviews[0]
        text = run_cli(["status", str(ck)], env, tmp_path, "status-text").stdout()
        assert f"review {oldest['review_id']}  gate/{oldest['object_id']}" in text
        assert "waiting for review (100):" in text and "s ago" in text

        emulator.decide([r["review_id"] for r in reviews], approve=True)
        kills, run = _kill_while_sending(
            emulator, ["resume", str(ck)], ck, env, tmp_path, kills=5, tag="commit"
        )
        assert kills == 5
        assert run.code == 0, run.stderr()[-2000:]
        counts = applied_counts(_writes(emulator))
        commits = {
            (r["object_id"], r["review_id"]): counts[
                ("PUT", f"{V1}/gates/{r['object_id']}/reviews/{r['review_id']}/commit")
            ]
            for r in reviews
        }
        assert set(commits.values()) == {1}
        assert not any(path.endswith("/archive") for _, path in counts)  # never applied directly
        assert {r["status"] for r in emulator.reviews()} == {"committed"}
        assert [e for e in emulator.log() if e.get("fault") == "quota"] == []
    states = replay(read_records(ck))
    assert Counter(st.state for st in states.values()) == {"applied": 100}


def test_a_rejected_review_is_reported_and_never_retried(
    seed: EmulatorState, tmp_path: Path
) -> None:
    """One review rejected with a reason, the others approved: the resume commits those,
    reports the rejection (exit 1) and a later resume sends nothing at all."""
    ck = tmp_path / "ck"
    argv = ["run", "archive-gates", "--id", "seed_gate_1?", "--apply", "--yes",
            "--checkpoint", str(ck)]  # fmt: skip
    with serve_forked(seed, tmp_path / "requests.log", require_reviews=True) as emulator:
        env = _env(emulator, tmp_path)
        run = run_cli(argv, env, tmp_path, "run")
        assert run.code == 5, run.stderr()
        assert "10 change(s) are waiting for review" in run.stderr()
        waiting = run_cli(["status", str(ck), "--json"], env, tmp_path, "waiting")
        assert waiting.code == 5  # status: only reviews are left to wait for
        summary = json.loads(waiting.stdout())
        jsonschema.validate(summary, json.loads(schema_path(summary["schema"]).read_text()))
        assert summary["state"] == "reviews_pending" and len(summary["reviews"]) == 10
        reviews = emulator.reviews("pending")
        refused = reviews[0]
        emulator.decide([refused["review_id"]], approve=False, reason="not this one")
        emulator.decide([r["review_id"] for r in reviews[1:]], approve=True)
        run = run_cli(["resume", str(ck)], env, tmp_path, "resume")
        assert run.code == 1, run.stderr()
        why = f"review {refused['review_id']} was rejected: not this one"
        assert f"rejected gate:archive:{refused['object_id']}: {why}" in run.stdout()
        done = run_cli(["status", str(ck)], env, tmp_path, "status")
        status = done.stdout()
        assert "applied 9" in status and "rejected 1" in status and why in status
        assert done.code == 1  # complete, with a rejection
        sent = len(_writes(emulator))
        again = run_cli(["resume", str(ck)], env, tmp_path, "again")
        assert again.code == 1 and len(_writes(emulator)) == sent
        assert (
            applied_counts(_writes(emulator))[("PUT", f"{V1}/gates/{refused['object_id']}/archive")]
            == 0
        )


def _through_kills_and_reviews(
    emulator: Emulator, first: list[str], ck: Path, env: dict[str, str], tmp_path: Path, tag: str
) -> None:
    """Two kills while the job opens its reviews, then approvals and resumes to the end:
    one review per object, each committed once."""
    kills, run = _kill_while_sending(emulator, first, ck, env, tmp_path, kills=2, tag=tag)
    assert run.code == 5, run.stdout()[-1500:] + run.stderr()[-1500:]
    run = resume_through_reviews(emulator, ck, env, tmp_path, f"{tag}-r")
    assert run.code == 0, run.stdout()[-1500:] + run.stderr()[-1500:]
    opened = _opened(emulator)
    assert opened and set(opened.values()) == {1}
    reviews = emulator.reviews()
    assert len(reviews) == sum(opened.values()) and {r["status"] for r in reviews} == {"committed"}
    counts = applied_counts(_writes(emulator))
    commits = [n for (_, path), n in counts.items() if path.endswith("/commit")]
    assert len(commits) == len(reviews) and set(commits) == {1}
    states = replay(read_records(ck))
    assert {st.state for st in states.values()} == {"applied"}


@contextlib.contextmanager
def _job_through_reviews(seed: EmulatorState, tmp_path: Path, job: list[str]) -> Iterator[Emulator]:
    """``bulkops run JOB --apply`` against an emulator requiring reviews, through kills and
    reviews to the end (:func:`_through_kills_and_reviews`); the emulator, for more checks."""
    ck = tmp_path / "ck"
    first = ["run", *job, "--apply", "--yes", "--checkpoint", str(ck), "--quota", "10/1s"]
    with serve_forked(
        seed, tmp_path / "requests.log", time_scale=1, quota=["10/1s"], require_reviews=True
    ) as emulator:
        env = _env(emulator, tmp_path)
        _through_kills_and_reviews(emulator, first, ck, env, tmp_path, job[0])
        yield emulator


def test_rewrite_rules_on_review_required_gates(seed: EmulatorState, tmp_path: Path) -> None:
    """Each rewrite opens one review (kills or not); approved and committed, the rules are
    rewritten once."""
    spec = tmp_path / "rewrite.toml"
    spec.write_text(
        '[select]\nkinds = ["gates"]\nids = ["ruled_*"]\n\n'
        '[[rewrite]]\nop = "set-pass-percentage"\nrule = "Everyone"\nvalue = 40\n'
    )
    with _job_through_reviews(seed, tmp_path, ["rewrite-rules", "--file", str(spec)]) as emulator:
        assert len(emulator.reviews()) == 6
        for i in range(6):
            gate = _get(emulator, f"/gates/ruled_{i}")
            assert [r["passPercentage"] for r in gate["rules"]] == [40]


def test_import_overrides_on_review_required_gates(seed: EmulatorState, tmp_path: Path) -> None:
    """Each gate's override import opens one review; committed, the ids are there once."""
    rows = ["kind,id,unit_id,value,environment,unit_type"] + [
        f"gate,seed_gate_{i},user_{i}_{j},pass,," for i in range(8) for j in range(3)
    ]
    csv = tmp_path / "overrides.csv"
    csv.write_text("\n".join(rows) + "\n")
    with _job_through_reviews(seed, tmp_path, ["import-overrides", "--file", str(csv)]) as emulator:
        assert len(emulator.reviews()) == 8
        for i in range(8):
            overrides = _get(emulator, f"/gates/seed_gate_{i}/overrides")
            assert sorted(overrides["passingUserIDs"]) == [f"user_{i}_{j}" for j in range(3)]


def test_without_the_review_header_changes_apply_directly(
    seed: EmulatorState, tmp_path: Path
) -> None:
    """``--no-review-header``: recorded in the checkpoint, applied at once, no review."""
    ck = tmp_path / "ck"
    argv = ["run", "archive-gates", "--id", "seed_gate_5?", "--apply", "--yes",
            "--checkpoint", str(ck), "--no-review-header"]  # fmt: skip
    with serve_forked(seed, tmp_path / "requests.log", require_reviews=True) as emulator:
        run = run_cli(argv, _env(emulator, tmp_path), tmp_path, "run")
        assert run.code == 0, run.stderr()
        assert emulator.reviews() == []
        assert "review header OFF" in run.stderr()
    assert read_records(ck)[0]["options"]["respect_reviews"] is False


def _get(emulator: Emulator, path: str) -> Any:
    request = urllib.request.Request(emulator.url + path, headers={"STATSIG-API-KEY": EMPTY_KEY})
    with urllib.request.urlopen(request, timeout=30) as response:
        return json.load(response)["data"]
