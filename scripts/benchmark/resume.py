"""Resume cost: opening a large checkpoint, and a real kill -9 resumed.

``resume`` in ``bench/results.json``: the time to open (read, verify, repair-check) a
100,000-record checkpoint; then a real ``bulkops apply`` killed with SIGKILL mid-run and
resumed: reconciliation reads (GETs of in-doubt objects during the resume) against the
in-flight cap, and mutations lost or applied twice.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import time
import uuid
from collections import Counter
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from bulkops.emulator.http import PREFIX
from bulkops.engine.journal import Journal, read_records
from bulkops.engine.mutations import Expect, InverseCall, Mutation
from bulkops.engine.plans import Plan, PlanHeader, ProjectRef, canonical_json, read_plan
from bulkops.engine.reconcile import replay
from bulkops.testing import cli_env, fork_cli, run_cli

from .common import (
    BENCH_KEY,
    BENCH_PROJECT,
    CLI_TIMEOUT,
    NO_QUOTA,
    bench_state,
    disable_calls,
    serve,
    write_calls,
    writes,
)
from .section import BenchConfig, Say, Section, Target

__all__ = ["SECTION", "run", "targets"]


def _plan_document(n: int) -> dict[str, Any]:
    """A valid plan of ``n`` gate disables as the journal's first record holds it.

    Built from one :class:`Mutation`'s JSON by substitution (constructing 50,000 models
    would time pydantic, not the checkpoint), with the hash :meth:`Plan.compute_hash`
    gives: ``sha256`` of the canonical JSON with an empty ``hash``.
    """
    gid = "__GATE__"
    template = Mutation(
        key=f"gate:disable:{gid}",
        project=BENCH_PROJECT,
        action="disable",
        object=f"gate/{gid}",
        method="PUT",
        path=f"/gates/{gid}/disable",
        read=f"/gates/{gid}",
        before=Expect(fields={"isEnabled": True}),
        after=Expect(fields={"isEnabled": False}),
        before_image={"isEnabled": True},
        inverse=(InverseCall(method="PUT", path=f"/gates/{gid}/enable"),),
        idempotent=True,
    )
    base = template.model_dump(mode="json")

    def mutation(i: int) -> dict[str, Any]:
        doc = dict(base)
        for name in ("key", "object", "path", "read"):
            doc[name] = str(base[name]).replace(gid, f"r_{i}")
        doc["inverse"] = [
            {**call, "path": str(call["path"]).replace(gid, f"r_{i}")} for call in base["inverse"]
        ]
        return doc

    header = PlanHeader(
        job="apply-calls",
        params={},
        projects=[ProjectRef(id=BENCH_PROJECT, name="Bench Project")],
        created=dt.datetime.now(dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
        plan_id=uuid.uuid4().hex,
    )
    doc: dict[str, Any] = {
        "header": header.model_dump(mode="json"),
        "mutations": [mutation(i) for i in range(n)],
    }
    doc["header"]["hash"] = ""
    doc["header"]["hash"] = hashlib.sha256(canonical_json(doc).encode()).hexdigest()
    return doc


def _checkpoint_read(records: int, tmp: Path, *, thorough: bool) -> dict[str, Any]:
    """Write the checkpoint of a ``records // 2``-mutation plan, fully applied, and time
    opening it the way ``bulkops resume`` does (``Journal.open``: read, verify every
    CRC and sequence number, check the tail)."""
    n = records // 2
    doc = _plan_document(n)
    path = tmp / "resume-read.ckpt"
    journal = Journal.create(path, {"t": "plan", "plan": doc, "options": {}})
    now = time.time()
    for m in doc["mutations"]:
        key = m["key"]
        journal.append({"t": "intent", "key": key, "attempt": 1, "at": now})
        journal.append(
            {"t": "outcome", "key": key, "result": "applied", "status": 200, "error": None,
             "attempts": 1, "at": now}
        )  # fmt: skip
    journal.close()
    del doc
    started = time.perf_counter()
    opened, recs = Journal.open(path)
    open_s = time.perf_counter() - started
    opened.close()
    out: dict[str, Any] = {
        "records": len(recs),
        "mutations": n,
        "bytes": path.stat().st_size,
        "seconds": round(open_s, 3),
    }
    if thorough:
        started = time.perf_counter()
        read_records(path)
        out["read_only_seconds"] = round(time.perf_counter() - started, 3)
        # What else a resume does before its first request: verify the plan, replay.
        started = time.perf_counter()
        plan = Plan.from_json(recs[0]["plan"])
        out["plan_verify_seconds"] = round(time.perf_counter() - started, 3)
        started = time.perf_counter()
        states = replay(recs, [m.key for m in plan.mutations])
        out["replay_seconds"] = round(time.perf_counter() - started, 3)
        out["settled"] = sum(1 for st in states.values() if st.state == "applied")
    return out


def _kill_and_resume(cfg: BenchConfig, tmp: Path) -> dict[str, Any]:
    k = cfg.kill_mutations
    base = bench_state({"k": k})
    calls_file = write_calls(tmp / "kill-calls.jsonl", disable_calls("k", k))
    plan_path = tmp / "kill.plan"
    ckpt = tmp / "kill.ckpt"
    log_path = tmp / "kill.log"
    with serve(base, log_path, quotas=False) as emu:
        env = cli_env(BENCH_KEY, emu.url, tmp / "state-kill")
        cli = run_cli(
            ["plan", *NO_QUOTA, "-o", str(plan_path), "apply-calls", "--file", str(calls_file)],
            env, tmp, "kill-plan", timeout=CLI_TIMEOUT,
        )  # fmt: skip
        if cli.code != 0:
            return {"error": f"plan failed ({cli.code}): {cli.tail()}"}
        apply = fork_cli(
            ["apply", *NO_QUOTA, "--yes", "--checkpoint", str(ckpt), str(plan_path)],
            env, tmp, "kill-apply",
        )  # fmt: skip
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:
            text = log_path.read_text() if log_path.exists() else ""
            if text.count('"applied":true') >= k // 2:
                break
            if apply.poll():
                return {"error": f"the apply ended before it could be killed: {apply.tail()}"}
            time.sleep(0.002)
        apply.kill()
        plan = read_plan(plan_path)
        states = replay(read_records(ckpt), [m.key for m in plan.mutations])
        in_doubt = {m.key for m in plan.mutations if states[m.key].state == "in_doubt"}
        remaining = sum(1 for st in states.values() if st.state in ("pending", "in_doubt"))
        time.sleep(0.1)  # requests the killed process had in flight still reach the log
        killed_at = len(emu.entries())
        resumed = run_cli(
            ["resume", *NO_QUOTA, str(ckpt)], env, tmp, "kill-resume", timeout=CLI_TIMEOUT
        )
        entries = emu.entries()
    doubt_reads = {PREFIX + str(m.read) for m in plan.mutations if m.key in in_doubt}
    planned_reads = {PREFIX + str(m.read) for m in plan.mutations}
    after = entries[killed_at:]
    applied = Counter(str(e["path"]) for e in writes(entries) if e.get("applied"))
    planned = [PREFIX + m.path for m in plan.mutations]
    out: dict[str, Any] = {
        "applied_at_kill": sum(1 for e in writes(entries[:killed_at]) if e.get("applied")),
        "in_doubt_at_kill": len(in_doubt),
        "remaining_at_kill": remaining,
        "reconcile_reads": sum(
            1 for e in after if e.get("method") == "GET" and e.get("path") in doubt_reads
        ),
        "reads_on_resume": sum(
            1 for e in after if e.get("method") == "GET" and e.get("path") in planned_reads
        ),
        "in_flight_cap": cfg.in_flight,
        "lost": sum(1 for p in planned if applied[p] == 0),
        "duplicated": sum(applied[p] - 1 for p in planned if applied[p] > 1),
        "resume_exit_code": resumed.code,
    }
    if resumed.code != 0:
        out["error"] = resumed.tail()
    return out


def run(cfg: BenchConfig, tmp: Path, say: Say) -> dict[str, Any]:
    """Checkpoint read time, and reconciliation reads after a real kill."""
    say(f"resume: open and verify a {cfg.checkpoint_records:,}-record checkpoint")
    out = _checkpoint_read(cfg.checkpoint_records, tmp, thorough=not cfg.quick)
    say(f"resume: kill -9 a {cfg.kill_mutations}-mutation apply halfway, then resume")
    out.update(_kill_and_resume(cfg, tmp))
    return out


def targets(resume: Mapping[str, Any]) -> list[Target]:
    """Open in 2 s at most; at most one read per write in flight; nothing lost or doubled."""
    out = [Target(f"resume: open {resume['records']:,}-record checkpoint (s)",
                  resume["seconds"], "≤ 2", resume["seconds"] <= 2)]  # fmt: skip
    if "reconcile_reads" not in resume:
        return [*out, Target("resume: reconciliation reads after kill -9",
                             resume.get("error"), "≤ cap", False)]  # fmt: skip
    reads, cap = resume["reconcile_reads"], resume["in_flight_cap"]
    lost, dup = resume["lost"], resume["duplicated"]
    return [
        *out,
        Target("resume: reconciliation reads after kill -9", reads, f"≤ {cap}", reads <= cap),
        Target("resume: lost / applied twice", f"{lost} / {dup}", "0 / 0",
               lost == 0 and dup == 0 and resume.get("resume_exit_code") == 0),
    ]  # fmt: skip


SECTION = Section("resume", run, targets)
