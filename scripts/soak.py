"""The long crash and fault soaks (reliability notes §7, T1/T3/T5/T14), run by ``scripts/soak``.

Three parts, each against a forked emulator (:mod:`bulkops.testing`) with real CLI
processes and the emulator's request log as the ground truth:

1. **kill storm** (T1, T3): a mixed workload of every job kind, run as one checkpoint per
   job in sequence (apply-calls with creates, archives, override adds, description
   patches and disables; archive-gates; rewrite-rules; import-overrides with gate and
   id-list segment targets; copy-project from a second project), each SIGKILLed at random
   moments and resumed until it completes. After every kill the checkpoint must parse to
   a valid prefix that starts with the plan, hold no applied/ambiguous outcome without an
   intent, and hold at least as many intents as writes the server has seen. After each
   job: every planned ``(method, path)`` applied exactly as often as planned (0 lost,
   0 duplicated, 0 unexpected), no write rejected as a resend, and a second plan of the
   job (apart from apply-calls) plans nothing.
2. **fault mix** (T5): the same workload on a fresh emulator injecting 20% 429 (half with
   Retry-After), 5% 500, 2% reset (half before and half after applying) and 1% hang past
   the client timeout; a run stopped by the retry budget is resumed. Same exactly-once
   checks; after-apply faults on non-idempotent writes settled by a read, never resent;
   every quota window recounted from the request log at the emulator's time scale.
3. **reviews**: the fault mix once more, in a project that requires reviews
   (``--require-reviews``): writes open reviews instead of applying; each run that ends
   waiting for review (exit 5) has every pending review approved, as a person would, and
   is resumed until done. On top of the exactly-once checks (a change that went through
   review counts as applied by its commit): every review opened is committed exactly
   once, none is left open, and no change has two reviews (0 duplicate reviews).
4. **model** (T14): ``tests/engine/test_model.py`` with ``BULKOPS_MODEL_EXAMPLES`` examples.

Prints progress and a markdown summary (``--markdown FILE`` also writes it); exit 1 if
any check failed.
"""

from __future__ import annotations

import argparse
import contextlib
import datetime as dt
import json
import os
import platform
import random
import signal
import subprocess
import sys
import tempfile
import time
from collections import Counter
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import unquote

from bulkops.api.paths import WRITE_METHODS
from bulkops.api.reviews import review_target
from bulkops.emulator import EmulatorState
from bulkops.emulator.app import quota_class
from bulkops.emulator.seed import EMPTY_KEY, apply_seed
from bulkops.emulator.state import KeyInfo, Project
from bulkops.engine.journal import read_records
from bulkops.engine.quota import DEFAULT_ID_LIST_QUOTA, DEFAULT_QUOTA, ID_LIST_CLASS
from bulkops.engine.reconcile import replay
from bulkops.errors import JournalError
from bulkops.testing import (
    Call,
    Emulator,
    RequestLogTail,
    cli_env,
    fork_cli,
    run_cli,
    seed_over_api,
    serve_forked,
    wait_cli,
)

ROOT = Path(__file__).resolve().parent.parent

V1 = "/console/v1"
SOURCE_KEY = "console-soak-source-project"
SOURCE_PROJECT = "soak_source"
FAULTS = "429=0.2,500=0.05,reset=0.02,hang=0.01"
AFTER_FAULTS = ("500-after", "reset-after", "hang-after")
# Share of the workload's mutations per job (the rest goes to apply-calls).
SHARES = {
    "archive-gates": 0.15,
    "rewrite-rules": 0.15,
    "import-overrides": 0.15,
    "copy-project": 0.15,
}


def say(text: str) -> None:
    print(text, flush=True)


# -- the workload ---------------------------------------------------------------------


@dataclass
class Sizes:
    """How many objects each job touches (each is one mutation)."""

    calls: int
    archive: int
    rewrite: int
    imports: int
    copies: int

    @classmethod
    def for_total(cls, total: int) -> Sizes:
        parts = {k: max(5, round(total * v)) for k, v in SHARES.items()}
        calls = max(10, total - sum(parts.values()))
        return cls(
            calls=calls,
            archive=parts["archive-gates"],
            rewrite=parts["rewrite-rules"],
            imports=parts["import-overrides"],
            copies=parts["copy-project"],
        )

    @property
    def total(self) -> int:
        return self.calls + self.archive + self.rewrite + self.imports + self.copies


_RULE = {
    "name": "Rollout",
    "passPercentage": 10,
    "conditions": [{"type": "user_id", "operator": "any", "targetValue": ["u_1", "u_2"]}],
}


def build_state(sizes: Sizes) -> EmulatorState:
    """The empty project seeded for every job, and a source project for copy-project."""
    state = EmulatorState()
    apply_seed(state, "empty")
    state.add_project(
        Project(id=SOURCE_PROJECT, name="Soak source"), {SOURCE_KEY: KeyInfo(SOURCE_PROJECT)}
    )
    segments = max(1, sizes.imports // 10)
    configs = max(1, sizes.copies // 5)
    target: list[Call] = [
        *(
            ("POST", "/gates", {"name": f"ac_gate_{i}", "description": "seeded"})
            for i in range(sizes.calls)
        ),
        *(
            ("POST", "/gates", {"name": f"arc_gate_{i}", "description": "stale"})
            for i in range(sizes.archive)
        ),
        *(
            ("POST", "/gates", {"name": f"rw_gate_{i}", "rules": [_RULE]})
            for i in range(sizes.rewrite)
        ),
        *(("POST", "/gates", {"name": f"io_gate_{i}"}) for i in range(sizes.imports - segments)),
        *(
            ("POST", "/segments", {"name": f"io_seg_{i}", "type": "id_list"})
            for i in range(segments)
        ),
    ]
    source: list[Call] = [
        *(
            ("POST", "/gates", {"name": f"src_gate_{i}", "rules": [_RULE]})
            for i in range(sizes.copies - configs)
        ),
        *(("POST", "/dynamic_configs", {"name": f"src_config_{i}"}) for i in range(configs)),
    ]

    seed_over_api(state, {EMPTY_KEY: target, SOURCE_KEY: source})
    return state


@dataclass
class Job:
    """One job of the workload: how to plan it, and whether a re-plan must be empty."""

    name: str
    argv: list[str]
    replan_empty: bool = True


def write_inputs(sizes: Sizes, work: Path) -> list[Job]:
    """The input files and the ``plan`` arguments of each job."""
    calls: list[dict[str, Any]] = []
    kinds = ("create", "archive", "override", "patch", "disable")
    for i in range(sizes.calls):
        kind = kinds[i % len(kinds)]
        gate = f"/gates/ac_gate_{i}"
        if kind == "create":
            calls.append({"method": "POST", "path": "/gates", "body": {"name": f"ac_new_{i}"}})
        elif kind == "archive":
            calls.append(
                {"method": "PUT", "path": f"{gate}/archive", "body": {"archiveReason": "soak"}}
            )
        elif kind == "override":
            body = {"passingUserIDs": [f"p{i}", f"q{i}"], "failingUserIDs": [f"f{i}"]}
            calls.append({"method": "PATCH", "path": f"{gate}/overrides", "body": body})
        elif kind == "patch":
            calls.append({"method": "PATCH", "path": gate, "body": {"description": f"soak {i}"}})
        else:
            calls.append({"method": "PUT", "path": f"{gate}/disable", "body": {}})
    (work / "calls.jsonl").write_text("".join(json.dumps(c) + "\n" for c in calls))
    (work / "rewrite.toml").write_text(
        '[select]\nkinds = ["gates"]\nids = ["rw_gate_*"]\n\n'
        '[[rewrite]]\nop = "set-pass-percentage"\nrule = "Rollout"\nvalue = 55\n'
    )
    segments = max(1, sizes.imports // 10)
    rows = ["kind,id,unit_id,value,environment,unit_type"]
    for i in range(sizes.imports - segments):
        rows += [f"gate,io_gate_{i},iu_{i}_a,pass,,", f"gate,io_gate_{i},iu_{i}_b,fail,,"]
    for i in range(segments):
        rows += [f"segment,io_seg_{i},su_{i}_{k},,," for k in range(3)]
    (work / "overrides.csv").write_text("\n".join(rows) + "\n")
    return [
        Job(
            "apply-calls", ["apply-calls", "--file", str(work / "calls.jsonl")], replan_empty=False
        ),
        Job("archive-gates", ["archive-gates", "--id", "arc_gate_*"]),
        Job("rewrite-rules", ["rewrite-rules", "--file", str(work / "rewrite.toml")]),
        Job("import-overrides", ["import-overrides", "--file", str(work / "overrides.csv")]),
        Job(
            "copy-project",
            [
                "copy-project",
                "--source-key-env",
                "SOAK_SOURCE_KEY",
                "--target-key-env",
                "STATSIG_CONSOLE_API_KEY",
                "--prefix",
                "cp_",
            ],
        ),
    ]


# -- the request log ------------------------------------------------------------------


def _bare(path: str) -> str:
    return unquote(path.split("?", 1)[0])


def windows_report(entries: Sequence[dict[str, Any]], time_scale: float) -> dict[str, Any]:
    """The most attempts any window of each quota held, recounted from the request log."""
    out: dict[str, Any] = {}
    by_class: dict[tuple[str, str], list[float]] = {}
    for e in entries:
        klass = quota_class(str(e["method"]), str(e["path"]))
        if klass is not None and str(e["path"]).startswith(V1):
            by_class.setdefault((str(e.get("project")), klass), []).append(float(e["time"]))
    for (project, klass), times in sorted(by_class.items()):
        times.sort()
        windows = DEFAULT_ID_LIST_QUOTA if klass == ID_LIST_CLASS else DEFAULT_QUOTA
        for w in windows:
            span = w.seconds / time_scale
            worst, j = 0, 0
            for i, t in enumerate(times):
                while times[j] <= t - span:
                    j += 1
                worst = max(worst, i - j + 1)
            out[f"{project}/{klass} {w.limit}/{w.seconds:g}s"] = {
                "max": worst,
                "limit": w.limit,
                "ok": worst <= w.limit,
                "attempts": len(times),
            }
    return out


# -- checks -----------------------------------------------------------------------------


@dataclass
class JobResult:
    job: str
    mutations: int = 0
    kills: int = 0
    runs: int = 0
    stops: int = 0
    torn_tails: int = 0
    lost: int = 0
    duplicated: int = 0
    unexpected: int = 0
    rejected: int = 0
    blind_resends: int = 0
    unread_after_faults: int = 0
    states: dict[str, int] = field(default_factory=dict)
    writes: int = 0
    reads: int = 0
    replan: int | None = None
    idempotent_resends: int = 0
    transient_failed: int = 0
    rerun: dict[str, int] = field(default_factory=dict)
    review_rounds: int = 0
    reviews_opened: int = 0
    reviews_committed: int = 0
    duplicate_reviews: int = 0
    reviews_left_open: int = 0
    details: list[str] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)
    seconds: float = 0.0

    @property
    def ok(self) -> bool:
        return not self.problems


def check_checkpoint(ck: Path, writes_seen: int, result: JobResult) -> None:
    """After a kill: valid prefix, plan first, no outcome without intent, intents ≥ writes."""
    if not ck.exists():
        return
    try:
        records = read_records(ck)
    except JournalError as exc:
        result.problems.append(f"checkpoint invalid after kill {result.kills}: {exc}")
        return
    try:
        read_records(ck, strict=True)
    except JournalError:
        result.torn_tails += 1
    if not records or records[0].get("t") != "plan":
        result.problems.append(f"kill {result.kills}: checkpoint does not start with the plan")
        return
    intents: set[str] = set()
    count = 0
    for r in records:
        if r.get("t") == "intent":
            intents.add(r["key"])
            count += 1
        elif r.get("t") == "outcome" and r.get("result") in ("applied", "ambiguous"):
            if r["key"] not in intents:
                result.problems.append(f"kill {result.kills}: outcome without intent {r['key']}")
    if writes_seen > count:
        result.problems.append(
            f"kill {result.kills}: the server saw {writes_seen} writes, the journal has "
            f"only {count} intents"
        )


def check_job(
    result: JobResult,
    plan: dict[str, Any],
    entries: Sequence[dict[str, Any]],
    ck: Path,
    *,
    faults: bool,
    reviews: bool = False,
) -> None:
    """Exactly once per the request log, journal states, no resends (and, with faults,
    after-apply faults settled by reads; with reviews, writes that may open one count as
    never to be resent, idempotent or not)."""
    mutations = plan["mutations"]
    result.mutations = len(mutations)
    planned = Counter((m["method"], V1 + _bare(m["path"])) for m in mutations)
    writes = [e for e in entries if e["method"] in WRITE_METHODS]
    applied = applied_through_reviews(writes, result)
    result.writes = len(writes)
    result.reads = sum(1 for e in entries if e["method"] == "GET")
    idempotent = {(m["method"], V1 + _bare(m["path"])) for m in mutations if m.get("idempotent")}
    for key, n in planned.items():
        if n > applied[key]:
            result.lost += n - applied[key]
            result.details.append(f"lost {key[0]} {key[1]}: planned {n}, applied {applied[key]}")
        elif applied[key] > n and key in idempotent:
            # Sent again by value after an ambiguous attempt (retry.decide): same state.
            result.idempotent_resends += applied[key] - n
        elif applied[key] > n:
            result.duplicated += applied[key] - n
            result.details.append(
                f"duplicated {key[0]} {key[1]}: planned {n}, applied {applied[key]}"
            )
    result.unexpected = sum(n for key, n in applied.items() if key not in planned)
    result.details += [f"unexpected {k[0]} {k[1]}" for k in applied if k not in planned]
    result.rejected = sum(
        1 for e in writes if 400 <= int(e["status"]) < 500 and int(e["status"]) != 429
    )
    records = read_records(ck)
    states = replay(records, [m["key"] for m in mutations])
    result.states = dict(Counter(st.state for st in states.values()))
    if faults:
        ordered = sorted(entries, key=lambda e: e["time"])
        unique = [
            m
            for m in mutations
            if (not m.get("idempotent") or (reviews and review_target(m["path"]) is not None))
            and planned[(m["method"], V1 + _bare(m["path"]))] == 1
        ]
        for m in unique:
            key = (m["method"], V1 + _bare(m["path"]))
            read = V1 + _bare(m["read"]) if m.get("read") else None
            hits = [i for i, e in enumerate(ordered) if (e["method"], e["path"]) == key]
            for i in hits:
                if ordered[i].get("fault") not in AFTER_FAULTS:
                    continue
                if any(j > i for j in hits):
                    result.blind_resends += 1
                if read and not any(
                    e["method"] == "GET" and e["path"] == read for e in ordered[i + 1 :]
                ):
                    result.unread_after_faults += 1
    for name in (
        "lost",
        "duplicated",
        "unexpected",
        "rejected",
        "blind_resends",
        "unread_after_faults",
        "duplicate_reviews",
        "reviews_left_open",
    ):
        if getattr(result, name):
            result.problems.append(f"{name}: {getattr(result, name)}")
    result.problems += result.details[:10]
    bad = {k: v for k, v in result.states.items() if k not in ("applied", "skipped")}
    if result.rerun and bad.keys() == {"failed"} and bad["failed"] == result.transient_failed:
        rerun_bad = {
            k: v for k, v in result.rerun.items() if k not in ("planned", "applied", "skipped")
        }
        bad = rerun_bad  # finished by the second run; exactly-once is checked over both
    if bad:
        result.problems.append(f"journal states not settled as applied/skipped: {bad}")


def _review(entry: dict[str, Any]) -> tuple[str, str] | None:
    review = entry.get("review")
    if isinstance(review, dict) and review.get("id"):
        return str(review.get("event")), str(review["id"])
    return None


def applied_through_reviews(
    writes: Sequence[dict[str, Any]], result: JobResult
) -> Counter[tuple[str, str]]:
    """How often each ``(method, path)`` changed state: directly, or by the commit of the
    review it opened (counted as the write that opened it). Counts the reviews opened and
    committed, the changes that opened more than one review, and the reviews left open."""
    applied = Counter((e["method"], e["path"]) for e in writes if e.get("applied"))
    opened: dict[str, tuple[str, str]] = {}
    committed: Counter[str] = Counter()
    for e in writes:
        found = _review(e)
        if found is None:
            continue
        event, review_id = found
        if event == "opened":
            opened[review_id] = (e["method"], e["path"])
        elif event == "committed":
            committed[review_id] += 1
            applied[(e["method"], e["path"])] -= 1
            if review_id in opened:
                applied[opened[review_id]] += 1
    applied = +applied
    per_change = Counter(opened.values())
    result.reviews_opened += len(opened)
    result.reviews_committed += sum(committed.values())
    result.duplicate_reviews += sum(n - 1 for n in per_change.values() if n > 1)
    result.duplicate_reviews += sum(n - 1 for n in committed.values() if n > 1)
    result.reviews_left_open += sum(1 for r in opened if committed[r] == 0)
    result.details += [f"{n} reviews for {k[0]} {k[1]}" for k, n in per_change.items() if n > 1]
    return applied


# -- running jobs -------------------------------------------------------------------------


@dataclass
class Context:
    emulator: Emulator
    tail: RequestLogTail
    work: Path
    env: dict[str, str]
    time_scale: float
    timeout: float | None = None
    rng: random.Random = field(default_factory=random.Random)
    rate: float = 300.0  # writes per second, refined as the storm goes
    tag: int = 0
    reviews: bool = False  # approve what waits for review (exit 5), then resume

    def approve_reviews(self) -> int:
        """Approve every pending review, as a person in the console would; how many."""
        pending = [r["review_id"] for r in self.emulator.reviews("pending")]
        self.emulator.decide(pending, approve=True)
        return len(pending)

    def next_tag(self, prefix: str) -> str:
        self.tag += 1
        return f"{prefix}{self.tag}"


def plan_job(ctx: Context, job: Job, out: Path) -> dict[str, Any]:
    run = run_cli(["plan", *job.argv, "-o", str(out)], ctx.env, ctx.work, ctx.next_tag("plan"))
    if run.code != 0:
        raise RuntimeError(f"plan {job.name} failed ({run.code}): {run.stderr()[-3000:]}")
    return dict(json.loads(out.read_text()))


def _apply_argv(ctx: Context, plan: Path, ck: Path) -> list[str]:
    argv = [
        "apply",
        str(plan),
        "--yes",
        "--checkpoint",
        str(ck),
        "--time-scale",
        str(ctx.time_scale),
    ]
    if ctx.timeout is not None:
        argv += ["--timeout", str(ctx.timeout)]
    return argv


def settled(ck: Path) -> bool:
    """Whether every mutation of the checkpoint has a final state."""
    if not ck.exists():
        return False
    records = read_records(ck)
    keys = [m["key"] for m in records[0]["plan"]["mutations"]]
    return all(
        st.state in ("applied", "skipped", "failed", "conflict", "rejected")
        for st in replay(records, keys).values()
    )


def rerun_failed(ctx: Context, job: Job, ck: Path) -> dict[str, int]:
    """Run the job again (a new plan and checkpoint) until its items settle; the counts."""
    plan_path = ctx.work / f"{job.name}.rerun.plan.json"
    rck = ctx.work / f"{job.name}.rerun.ckpt"
    plan = plan_job(ctx, job, plan_path)
    for attempt in range(20):
        argv = ["resume", str(rck)] if rck.exists() else _apply_argv(ctx, plan_path, rck)
        if ctx.timeout is not None and argv[0] == "resume":
            argv += ["--timeout", str(ctx.timeout)]
        run = run_cli(argv, ctx.env, ctx.work, ctx.next_tag(f"{job.name}-rerun{attempt}-"))
        if ctx.reviews and run.code in (1, 5) and ctx.approve_reviews():
            continue
        if run.code == 0 or (run.code == 1 and settled(rck)):
            break
        if run.code != 1:
            raise RuntimeError(f"{job.name} rerun exited {run.code}: {run.stderr()[-3000:]}")
    states = replay(read_records(rck), [m["key"] for m in plan["mutations"]])
    counts = Counter(st.state for st in states.values())
    return {"planned": len(plan["mutations"]), **counts}


def _exited(pid: int) -> bool:
    """Whether a child has exited (a zombie, not yet reaped), without reaping it."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return True
    return stat.rsplit(")", 1)[-1].split()[0] in ("Z", "X")


def _wait_first_write(ctx: Context, run_pid: int, writes: int, deadline: float) -> bool:
    while time.monotonic() < deadline:
        ctx.tail.poll()
        if ctx.tail.writes > writes:
            return True
        if _exited(run_pid):
            return False
        time.sleep(0.002)
    return False


def run_job(ctx: Context, job: Job, *, kills: int, faults: bool) -> tuple[JobResult, int]:
    """Plan, apply (killing it ``kills`` times at random moments), resume to the end, check."""
    result = JobResult(job.name)
    started = time.monotonic()
    plan_path = ctx.work / f"{job.name}.plan.json"
    ck = ctx.work / f"{job.name}.ckpt"
    plan = plan_job(ctx, job, plan_path)
    n = len(plan["mutations"])
    ctx.tail.poll()
    begun = time.time()
    start_writes = ctx.tail.writes
    remaining_kills = kills
    while True:
        argv = ["resume", str(ck)] if ck.exists() else _apply_argv(ctx, plan_path, ck)
        if ctx.timeout is not None and argv[0] == "resume":
            argv += ["--timeout", str(ctx.timeout)]
        writes_before = ctx.tail.poll() and ctx.tail.writes
        run = fork_cli(argv, ctx.env, ctx.work, ctx.next_tag(job.name + "-"))
        result.runs += 1
        if remaining_kills > 0:
            done_writes = ctx.tail.writes - start_writes
            left = max(1, n - done_writes)
            # Aim well short of an even spread (the first half of what is left), so every
            # kill lands before the end even when the runner speeds up between kills.
            gap = min(2.0, max(0.002, left / (2 * remaining_kills + 3) / ctx.rate))
            waited = True
            if result.runs % 4 != 0:  # mostly while sending; sometimes while starting
                waited = _wait_first_write(ctx, run.pid, writes_before, time.monotonic() + 10)
            t0 = time.monotonic()
            w0 = ctx.tail.writes
            time.sleep(ctx.rng.uniform(0.0, 2 * gap))
            with contextlib.suppress(ProcessLookupError):
                os.kill(run.pid, signal.SIGKILL)
            code = wait_cli(run, timeout=900)
            ctx.tail.poll()
            if waited and code == 137:
                dt_ = time.monotonic() - t0
                if dt_ > 0.01 and ctx.tail.writes > w0:
                    ctx.rate = 0.8 * ctx.rate + 0.2 * ((ctx.tail.writes - w0) / dt_)
        else:
            code = wait_cli(run, timeout=1800)
            ctx.tail.poll()
        if code == 137:
            result.kills += 1
            remaining_kills -= 1
            check_checkpoint(ck, ctx.tail.writes - start_writes, result)
            if result.kills % 10 == 0:
                say(
                    f"    {job.name}: {result.kills} kills, "
                    f"{ctx.tail.writes - start_writes} writes seen of {n} mutations"
                )
            continue
        if code == 0:
            break
        if ctx.reviews and code in (1, 5) and ctx.approve_reviews():
            # Waiting for review (exit 5, or 1 with an item failed besides): people
            # approve, then a resume commits.
            result.review_rounds += 1
            if result.review_rounds > 50:
                result.problems.append(f"not done after {result.review_rounds} review rounds")
                break
            continue
        if code == 1 and settled(ck):
            break  # complete, with items failed (e.g. attempts exhausted): see check_job
        if code == 5:
            result.problems.append("exit 5 (waiting for review) with no review pending")
            break
        if code == 1:  # a run stopped by the retry budget: resumable
            result.stops += 1
            if result.stops > 50:
                result.problems.append(f"not done after {result.stops} resumable stops")
                break
            continue
        raise RuntimeError(f"{job.name}: run exited {code}: {run.stderr()[-3000:]}")
    first_states = Counter(
        st.state for st in replay(read_records(ck), [m["key"] for m in plan["mutations"]]).values()
    )
    if first_states.get("failed"):
        # Items whose attempts ran out (transient errors) are final in the checkpoint and
        # not retried by a resume; running the job again is the way to finish them.
        result.transient_failed = first_states["failed"]
        result.rerun = rerun_failed(ctx, job, ck)
    ended = time.time()
    # A request hung by the emulator is logged when it ends, after its client gave up.
    time.sleep(1.2 if faults else 0.05)
    entries = [e for e in ctx.tail.poll() if begun <= e["time"] < ended]
    check_job(result, plan, entries, ck, faults=faults, reviews=ctx.reviews)
    if job.replan_empty:
        again = plan_job(ctx, job, ctx.work / f"{job.name}.replan.json")
        result.replan = len(again["mutations"])
        if result.replan:
            result.problems.append(f"a second plan has {result.replan} mutations (expected 0)")
    result.seconds = time.monotonic() - started
    return result, remaining_kills


@contextlib.contextmanager
def emulator_for(
    state: EmulatorState,
    work: Path,
    *,
    time_scale: float,
    faults: str | None,
    seed: int,
    reviews: bool = False,
) -> Iterator[Emulator]:
    with serve_forked(
        state,
        work / "requests.log",
        time_scale=time_scale,
        faults=faults,
        hang_seconds=1.0,
        fault_seed=seed,
        require_reviews=reviews,
    ) as emulator:
        yield emulator


def _env(emulator: Emulator, work: Path) -> dict[str, str]:
    return cli_env(EMPTY_KEY, emulator.url, work / "state", SOAK_SOURCE_KEY=SOURCE_KEY)


def kill_storm(
    state: EmulatorState, jobs: list[Job], work: Path, *, kills: int, time_scale: float, seed: int
) -> dict[str, Any]:
    """Part 1: every job, SIGKILLed at random moments and resumed until done."""
    say(f"== kill storm: {kills} kills over {len(jobs)} jobs (time scale {time_scale:g})")
    results: list[JobResult] = []
    with emulator_for(state, work, time_scale=time_scale, faults=None, seed=seed) as emulator:
        ctx = Context(
            emulator, RequestLogTail(emulator.log_path), work, _env(emulator, work), time_scale
        )
        ctx.rng.seed(seed)
        shares = _kill_shares(jobs, kills)
        carry = 0
        for job, share in zip(jobs, shares, strict=True):
            say(f"  {job.name}: planning, then {share + carry} kills")
            result, carry = run_job(ctx, job, kills=share + carry, faults=False)
            results.append(result)
            say("  " + _line(result))
        entries = ctx.tail.poll()
    return {
        "jobs": results,
        "windows": windows_report(entries, time_scale),
        "quota_rejections": sum(1 for e in entries if e.get("fault") == "quota"),
    }


def _kill_shares(jobs: list[Job], kills: int) -> list[int]:
    weights = [SHARES.get(j.name, 1 - sum(SHARES.values())) for j in jobs]
    total = sum(weights)
    shares = [int(kills * w / total) for w in weights]
    shares[0] += kills - sum(shares)
    return shares


def fault_mix(
    state: EmulatorState,
    jobs: list[Job],
    work: Path,
    *,
    time_scale: float,
    seed: int,
    reviews: bool = False,
) -> dict[str, Any]:
    """Part 2 (and, ``reviews``, part 3): the same workload under the fault mix; resumed
    when the budget stops it (and, in a project requiring reviews, once its pending
    reviews are approved)."""
    what = " in a project that requires reviews" if reviews else ""
    say(f"== fault mix {FAULTS}{what} (time scale {time_scale:g}, client timeout 0.5 s, hang 1 s)")
    results: list[JobResult] = []
    with emulator_for(
        state, work, time_scale=time_scale, faults=FAULTS, seed=seed, reviews=reviews
    ) as emulator:
        ctx = Context(
            emulator, RequestLogTail(emulator.log_path), work, _env(emulator, work), time_scale
        )
        ctx.timeout = 0.5
        ctx.reviews = reviews
        for job in jobs:
            say(f"  {job.name}: planning and applying under faults")
            result, _ = run_job(ctx, job, kills=0, faults=True)
            results.append(result)
            say("  " + _line(result))
        entries = ctx.tail.poll()
    faults = Counter(
        e.get("fault") for e in entries if e["method"] in WRITE_METHODS and e.get("fault")
    )
    return {
        "jobs": results,
        "faults": dict(sorted(faults.items())),
        "windows": windows_report(entries, time_scale),
        "quota_rejections": faults.get("quota", 0),
    }


def _line(r: JobResult) -> str:
    states = ", ".join(f"{k} {v}" for k, v in sorted(r.states.items()))
    status = "ok" if r.ok else "FAILED: " + "; ".join(r.problems[:5])
    reviews = (
        f"reviews {r.reviews_opened} opened, {r.reviews_committed} committed, "
        f"{r.duplicate_reviews} duplicate, {r.review_rounds} approval rounds, "
        if r.reviews_opened or r.review_rounds
        else ""
    )
    return (
        f"{r.job}: {r.mutations} mutations, {r.kills} kills, {r.runs} runs, {r.stops} budget "
        f"stops, lost {r.lost}, duplicated {r.duplicated}, {reviews}writes {r.writes}, "
        f"reads {r.reads}, [{states}], {r.seconds:.1f} s — {status}"
    )


def model_run(examples: int) -> dict[str, Any]:
    """Part 3: the Hypothesis state machine until ``examples`` examples have passed.

    Hypothesis's own count of examples can differ a little from the number of machines
    that ran to their end and passed the final checks (each writes one line to
    ``BULKOPS_MODEL_STATS``); pytest is run again for any shortfall.
    """
    say(f"== model: tests/engine/test_model.py with {examples} examples")
    started = time.monotonic()
    stats = Path(tempfile.mkstemp(prefix="bulkops-model-", suffix=".jsonl")[1])
    runs: list[dict[str, Any]] = []
    ok, sessions, out = True, 0, ""
    while ok and len(runs) < examples and sessions < 5:
        sessions += 1
        env = {
            **os.environ,
            "BULKOPS_MODEL_EXAMPLES": str(max(11, examples - len(runs))),
            "BULKOPS_MODEL_STATS": str(stats),
        }
        proc = subprocess.run(
            [
                sys.executable,
                "-m",
                "pytest",
                "tests/engine/test_model.py",
                "-q",
                "-p",
                "no:cacheprovider",
            ]
            + ["-k", "state_machine"],
            cwd=ROOT,
            env=env,
            capture_output=True,
            text=True,
            check=False,
        )
        out = proc.stdout + proc.stderr
        ok = proc.returncode == 0
        # One line per example that ran to its end and passed the final checks.
        runs = [json.loads(line) for line in stats.read_text().splitlines() if line.strip()]
        say(out if not ok else f"  pytest session {sessions}: {len(runs)} examples passed so far")
    stats.unlink(missing_ok=True)
    return {
        "ok": ok,
        "passing": len(runs),
        "cli_runs": sum(int(r["steps"]) for r in runs),
        "failing": 0 if ok else 1,
        "sessions": sessions,
        "seconds": time.monotonic() - started,
    }


# -- the summary --------------------------------------------------------------------------


def _windows_md(windows: dict[str, Any]) -> list[str]:
    return [
        f"| {name} | {w['attempts']} | {w['max']} | {w['limit']} | {'ok' if w['ok'] else '**EXCEEDED**'} |"
        for name, w in windows.items()
    ]


def _rerun(j: JobResult) -> str:
    if not j.transient_failed:
        return "0"
    rest = ", ".join(f"{k} {v}" for k, v in sorted(j.rerun.items()) if k != "planned")
    return f"{j.transient_failed} → re-run planned {j.rerun.get('planned')}: {rest}"


def markdown(report: dict[str, Any]) -> str:
    m = report["machine"]
    lines = [
        f"### Soak run {m['date']}",
        "",
        f"Command: `{report['command']}` — {m['cores']} cores, Python {m['python']}, "
        f"{m['platform']}; wall time {report['seconds'] / 60:.1f} min.",
        "",
    ]
    titles = {
        "kills": "Kill storm (T1, T3)",
        "faults": "Fault mix (T5)",
        "reviews": "Fault mix with reviews required",
    }
    for part in ("kills", "faults", "reviews"):
        data = report.get(part)
        if not data:
            continue
        title = titles[part]
        jobs: list[JobResult] = data["jobs"]
        lines += [
            f"#### {title}: {sum(j.mutations for j in jobs)} mutations, "
            f"{sum(j.kills for j in jobs)} SIGKILLs, time scale {data['time_scale']:g}",
            "",
            "| job | mutations | kills | runs | budget stops | lost | duplicated | unexpected "
            "| rejected resends | idempotent resends | torn tails | writes | reads "
            "| journal states | failed, then re-run | 2nd plan | result |",
            "|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|",
        ]
        for j in jobs:
            states = ", ".join(f"{k} {v}" for k, v in sorted(j.states.items()))
            lines.append(
                f"| {j.job} | {j.mutations} | {j.kills} | {j.runs} | {j.stops} | {j.lost} | "
                f"{j.duplicated} | {j.unexpected} | {j.rejected} | {j.idempotent_resends} | "
                f"{j.torn_tails} | {j.writes} | "
                f"{j.reads} | {states} | {_rerun(j)} | {'-' if j.replan is None else j.replan} | "
                f"{'ok' if j.ok else 'FAILED: ' + '; '.join(j.problems[:3])} |"
            )
        lines.append("")
        if part == "reviews":
            lines += [
                "| job | reviews opened | committed | duplicate reviews | left open "
                "| approval rounds | lost |",
                "|---|---|---|---|---|---|---|",
                *(
                    f"| {j.job} | {j.reviews_opened} | {j.reviews_committed} | "
                    f"{j.duplicate_reviews} | {j.reviews_left_open} | {j.review_rounds} | "
                    f"{j.lost} |"
                    for j in jobs
                ),
                "",
            ]
        if part in ("faults", "reviews"):
            faults = ", ".join(f"{k} {v}" for k, v in data["faults"].items())
            blind = sum(j.blind_resends for j in jobs)
            unread = sum(j.unread_after_faults for j in jobs)
            lines += [
                f"Faults injected on writes: {faults}. Blind resends after an after-apply "
                f"fault on a non-idempotent write: {blind}; such faults not followed by a "
                f"read of the object: {unread}.",
                "",
            ]
        lines += [
            f"Quota windows recounted from the request log (server 429s for quota: "
            f"{data['quota_rejections']}):",
            "",
            "| project/class window | attempts | max in any window | limit | |",
            "|---|---|---|---|---|",
            *_windows_md(data["windows"]),
            "",
        ]
    model = report.get("model")
    if model:
        lines += [
            f"#### Model (T14): {model['passing']} passing examples ({model['cli_runs']} CLI "
            f"processes, {model['sessions']} pytest session(s)), {model['failing']} failing, "
            f"{model['seconds']:.0f} s — {'ok' if model['ok'] else 'FAILED'}",
            "",
        ]
    lines.append(f"**Overall: {'PASS' if report['ok'] else 'FAIL'}**")
    return "\n".join(lines) + "\n"


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="scripts/soak", description=__doc__.splitlines()[0])
    parser.add_argument("--kills", type=int, help="SIGKILLs in the storm (200; quick 30)")
    parser.add_argument("--mutations", type=int, help="mutations per part (2000; quick 300)")
    parser.add_argument("--examples", type=int, help="Hypothesis examples (500; quick 30)")
    parser.add_argument(
        "--quick", action="store_true", help="a few minutes: 30 kills, 300 mutations, 30 examples"
    )
    parser.add_argument("--kill-scale", type=float, default=600.0, help="time scale, kill storm")
    parser.add_argument("--fault-scale", type=float, default=60.0, help="time scale, fault mix")
    parser.add_argument("--seed", type=int, default=20240601)
    parser.add_argument(
        "--skip", action="append", default=[], choices=["kills", "faults", "reviews", "model"]
    )
    parser.add_argument("--markdown", type=Path, help="also write the markdown summary here")
    parser.add_argument("--keep", action="store_true", help="keep the work directory")
    args = parser.parse_args(argv)
    quick = {"kills": 30, "mutations": 300, "examples": 30}
    full = {"kills": 200, "mutations": 2000, "examples": 500}
    for name, value in (quick if args.quick else full).items():
        if getattr(args, name) is None:
            setattr(args, name, value)
    if args.quick:
        args.fault_scale = max(args.fault_scale, 120.0)
    started = time.monotonic()
    report: dict[str, Any] = {
        "command": "scripts/soak " + " ".join(sys.argv[1:] if argv is None else argv),
        "machine": {
            "cores": os.cpu_count(),
            "python": platform.python_version(),
            "platform": f"{platform.system()} {platform.machine()}",
            "date": dt.datetime.now(dt.UTC).strftime("%Y-%m-%d %H:%M UTC"),
        },
    }
    sizes = Sizes.for_total(args.mutations)
    work = Path(tempfile.mkdtemp(prefix="bulkops-soak-"))
    say(f"soak: work directory {work}; {sizes.total} mutations per part: {sizes}")
    ok = True
    try:
        if {"kills", "faults", "reviews"} - set(args.skip):
            t = time.monotonic()
            state = build_state(sizes)
            say(f"seeded the emulator state in {time.monotonic() - t:.1f} s")
        if "kills" not in args.skip:
            d = work / "kills"
            d.mkdir()
            jobs = write_inputs(sizes, d)
            report["kills"] = kill_storm(
                state, jobs, d, kills=args.kills, time_scale=args.kill_scale, seed=args.seed
            )
            report["kills"]["time_scale"] = args.kill_scale
            part = report["kills"]
            ok &= all(j.ok for j in part["jobs"]) and all(w["ok"] for w in part["windows"].values())
            total_kills = sum(j.kills for j in part["jobs"])
            if total_kills < args.kills:
                say(f"  note: {total_kills} kills landed (fewer than {args.kills})")
                ok = False
        if "faults" not in args.skip:
            d = work / "faults"
            d.mkdir()
            jobs = write_inputs(sizes, d)
            report["faults"] = fault_mix(
                state, jobs, d, time_scale=args.fault_scale, seed=args.seed
            )
            report["faults"]["time_scale"] = args.fault_scale
            part = report["faults"]
            ok &= all(j.ok for j in part["jobs"]) and all(w["ok"] for w in part["windows"].values())
            ok &= part["quota_rejections"] == 0
        if "reviews" not in args.skip:
            d = work / "reviews"
            d.mkdir()
            jobs = write_inputs(sizes, d)
            report["reviews"] = fault_mix(
                state, jobs, d, time_scale=args.fault_scale, seed=args.seed + 1, reviews=True
            )
            report["reviews"]["time_scale"] = args.fault_scale
            part = report["reviews"]
            ok &= all(j.ok for j in part["jobs"]) and all(w["ok"] for w in part["windows"].values())
            ok &= part["quota_rejections"] == 0
            ok &= sum(j.reviews_opened for j in part["jobs"]) > 0
        if "model" not in args.skip:
            report["model"] = model_run(args.examples)
            ok &= report["model"]["ok"] and report["model"]["passing"] >= args.examples
    finally:
        if not args.keep:
            subprocess.run(["rm", "-rf", str(work)], check=False)
    report["ok"] = ok
    report["seconds"] = time.monotonic() - started
    text = markdown(report)
    say("")
    say(text)
    if args.markdown:
        args.markdown.write_text(text)
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
