"""Per-item reports (JSON and CSV) and the checkpoint status summary.

A report has one row per planned mutation: key, action, object, method, path, the
final state, HTTP status, attempts, the reason when it did not apply and the review its
write opened. Files are created 0600 (bodies are not included: they may hold user ids).
The status summary is what ``bulkops status CKPT`` prints, read without changing the
checkpoint: counts per state, and the reviews still waiting (id, object, age).
"""

from __future__ import annotations

import csv
import io
import json
import time
from collections import Counter
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from ..engine.journal import Damage
from ..engine.plans import Plan
from ..engine.states import FINAL_STATES, OK_STATES, KeyState
from ..files import write_private
from .documents import STATUS_SCHEMA
from .output import UNSETTLED

__all__ = ["REPORT_FIELDS", "REPORT_SCHEMA", "report_rows", "status_summary", "write_report"]

REPORT_SCHEMA = "bulkops.report/1"  # the JSON report's marker: tells the file's kind


REPORT_FIELDS = (
    "key",
    "action",
    "object",
    "method",
    "path",
    "state",
    "status",
    "attempts",
    "reason",
    "created_id",
    "review_id",
)


def report_rows(plan: Plan, states: Mapping[str, KeyState]) -> list[dict[str, Any]]:
    """One row per mutation, in plan order."""
    rows = []
    for m in plan.mutations:
        st = states.get(m.key) or KeyState()
        reason = st.reason or (st.error if st.state not in ("applied", "skipped") else None)
        rows.append(
            {
                "key": m.key,
                "action": m.action,
                "object": m.object,
                "method": m.method,
                "path": m.path,
                "state": st.state,
                "status": st.status,
                "attempts": st.attempts,
                "reason": reason,
                "created_id": st.created_id,
                "review_id": st.review_id,
            }
        )
    return rows


def write_report(path: Path, rows: Sequence[Mapping[str, Any]]) -> list[Path]:
    """Write ``rows`` as JSON (``.json``), CSV (``.csv``) or both (any other name).

    Returns:
        The files written (each 0600, written atomically).
    """
    path = Path(path)
    targets: list[Path]
    if path.suffix == ".json" or path.suffix == ".csv":
        targets = [path]
    else:
        targets = [path.with_name(path.name + ".json"), path.with_name(path.name + ".csv")]
    for target in targets:
        if target.suffix == ".json":
            text = (
                json.dumps(
                    {"schema": REPORT_SCHEMA, "items": list(rows)}, indent=1, ensure_ascii=False
                )
                + "\n"
            )
        else:
            buffer = io.StringIO()
            writer = csv.DictWriter(buffer, fieldnames=REPORT_FIELDS, extrasaction="ignore")
            writer.writeheader()
            for row in rows:
                writer.writerow(
                    {k: "" if row.get(k) is None else row.get(k) for k in REPORT_FIELDS}
                )
            text = buffer.getvalue()
        write_private(target, text)
    return targets


def status_summary(
    plan: Plan,
    records: Sequence[Mapping[str, Any]],
    states: Mapping[str, KeyState],
    *,
    damage: Damage | None = None,
    running: Mapping[str, Any] | None = None,
    now: float | None = None,
) -> dict[str, Any]:
    """What a checkpoint says: the plan, the runs, how many mutations are in each state,
    the reviews still waiting (oldest first, with their age at ``now``), and where it
    stands (``state``): ``running`` (``running`` holds the lock holder's details),
    ``damaged`` (``damage``: records after it are not trusted; the counts are those of
    the records before it), ``incomplete``, ``reviews_pending`` (only reviews are left to
    wait for), ``complete_with_problems`` or ``complete``.
    """
    counts = Counter(st.state for st in states.values())
    runs = [r for r in records if r.get("t") == "run"]
    starts = [r for r in runs if r.get("event") == "start"]
    ends = [r for r in runs if r.get("event") != "start"]
    last_end = ends[-1] if ends else None
    # The last run record is a start: that run was killed, or is still going (running).
    # (Records past a damage are not read: the end record may be among them.)
    open_run = (
        bool(runs) and runs[-1].get("event") == "start" and running is None and damage is None
    )
    done = all(st.state in FINAL_STATES for st in states.values())
    problems = [
        {"key": k, "state": st.state, "reason": st.reason or st.error or UNSETTLED}
        for k, st in states.items()
        if st.state in ("failed", "conflict", "rejected", "in_doubt")
    ]
    clock = time.time() if now is None else now
    by_key = plan.by_key()
    reviews = sorted(
        (
            {
                "review_id": st.review_id,
                "key": key,
                "object": by_key[key].object if key in by_key else "",
                "opened_at": st.review_at,
                "age_seconds": None if st.review_at is None else max(0.0, clock - st.review_at),
            }
            for key, st in states.items()
            if st.state == "pending_review"
        ),
        key=lambda r: (r["opened_at"] or 0.0, r["key"]),
    )
    # As a run's exit 5: some wait for review, the rest applied, skipped or waiting
    # behind them, and the last run ended (a killed one leaves work to resume).
    only_reviews = (
        bool(reviews)
        and not open_run
        and {st.state for st in states.values()} <= {*OK_STATES, "pending_review", "pending"}
    )
    if damage is not None:
        state = "damaged"
    elif running is not None:
        state = "running"
    elif only_reviews:
        state = "reviews_pending"
    elif not done:
        state = "incomplete"
    elif all(st.state in OK_STATES for st in states.values()):
        state = "complete"
    else:
        state = "complete_with_problems"
    return {
        "schema": STATUS_SCHEMA,
        "state": state,
        "job": plan.header.job,
        "plan_id": plan.header.plan_id,
        "plan_hash": plan.header.hash,
        "created": plan.header.created,
        "projects": [p.model_dump() for p in plan.header.projects],
        "target_project": plan.target_project,
        "mutations": len(plan.mutations),
        "counts": {
            "applied": counts.get("applied", 0),
            "skipped": counts.get("skipped", 0),
            "failed": counts.get("failed", 0),
            "conflict": counts.get("conflict", 0),
            "rejected": counts.get("rejected", 0),
            "pending_review": counts.get("pending_review", 0),
            "unsettled": counts.get("in_doubt", 0),
            "pending": counts.get("pending", 0),
        },
        "reviews": reviews,
        "runs": len(starts),
        "last_run": dict(last_end) if last_end else None,
        "ended_without_record": open_run,
        "running": _running(running),
        "damage": None
        if damage is None
        else {
            "line": damage.line,
            "offset": damage.offset,
            "problem": damage.problem,
            "records_before": len(records),
        },
        "complete": done and damage is None,
        "resumable": state in ("incomplete", "reviews_pending"),
        "applied": [k for k, st in states.items() if st.state == "applied"],
        "problems": problems[:100],
        "problems_total": len(problems),
        "records": len(records),
    }


def _running(holder: Mapping[str, Any] | None) -> dict[str, Any] | None:
    if holder is None:
        return None
    pid = holder.get("pid")
    return {
        "pid": pid if isinstance(pid, int) else None,
        "host": holder.get("host"),
        "since": holder.get("started"),
        "command": next((c for c in ("resume", "undo") if holder.get(c)), "run"),
    }
