"""The JSON documents of ``--json``: one per command, each naming its versioned schema.

Every document is a JSON object whose ``schema`` names it (``bulkops.plan/1``…); the
schemas are JSON Schema files shipped beside this module (``schemas/<name>.json``,
:func:`schema_path`), and the tests validate real output against them. A version
changes only when a field is removed or changes meaning; fields may be added.

* ``bulkops.plan/1``: what ``plan``, a dry ``run`` and a dry ``undo`` would send
  (:func:`plan_document`);
* ``bulkops.run/1``: how ``run --apply``, ``apply``, ``resume`` and ``undo --apply``
  ended (:func:`run_document`);
* ``bulkops.status/1``: what a checkpoint says
  (:func:`bulkops.cli.reports.status_summary`);
* ``bulkops.jobs/1``: every job and its options (:func:`jobs_document`);
* ``bulkops.refs/1``: where code references the project's objects
  (:func:`bulkops.refs.report.render_json`);
* ``bulkops.error/1``: a command that failed before its own document (:func:`error_document`).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from ..engine.mutations import Mutation
from ..engine.plans import ABSENT, Plan, ProjectRef
from ..engine.runner import RunResult
from ..engine.states import KeyState, State

__all__ = [
    "ERROR_SCHEMA",
    "JOBS_SCHEMA",
    "PLAN_SCHEMA",
    "RUN_SCHEMA",
    "SCHEMAS",
    "counts_of",
    "counts_text",
    "error_document",
    "jobs_document",
    "plan_document",
    "run_document",
    "schema_path",
]

PLAN_SCHEMA = "bulkops.plan/1"
RUN_SCHEMA = "bulkops.run/1"
JOBS_SCHEMA = "bulkops.jobs/1"
ERROR_SCHEMA = "bulkops.error/1"
STATUS_SCHEMA = "bulkops.status/1"
REFS_SCHEMA = "bulkops.refs/1"
SCHEMAS = (PLAN_SCHEMA, RUN_SCHEMA, STATUS_SCHEMA, JOBS_SCHEMA, REFS_SCHEMA, ERROR_SCHEMA)

_SCHEMA_DIR = Path(__file__).with_name("schemas")


def schema_path(schema: str) -> Path:
    """The JSON Schema file of ``schema`` (``bulkops.plan/1`` → ``schemas/plan-1.json``)."""
    name, _, version = schema.removeprefix("bulkops.").partition("/")
    return _SCHEMA_DIR / f"{name}-{version}.json"


def _project(project: ProjectRef) -> dict[str, str]:
    return {"id": project.id, "name": project.name}


def _item(m: Mutation) -> dict[str, Any]:
    return {
        "key": m.key,
        "action": m.action,
        "object": m.object,
        "method": m.method,
        "path": m.path,
        "absent": m.absent,
        "changes": [{"what": w, "before": b, "after": a} for w, b, a in m.diff()],
    }


def plan_document(
    plan: Plan,
    *,
    command: str,
    project: ProjectRef,
    eta: float,
    plan_file: Path | None = None,
    notes: Sequence[str] = (),
    tables: Sequence[Mapping[str, Any]] = (),
    not_undoable: Sequence[tuple[str, str]] = (),
) -> dict[str, Any]:
    """``bulkops.plan/1``: the plan ``command`` made (or would apply), every mutation
    with its changes (not bounded by ``--show``), the job's notes and tables."""
    counts = plan.counts()
    absent = counts.get(ABSENT, 0)
    return {
        "schema": PLAN_SCHEMA,
        "command": command,
        "job": plan.header.job,
        "params": plan.header.params,
        "plan_id": plan.header.plan_id,
        "plan_hash": plan.header.hash,
        "project": _project(project),
        "mutations": len(plan.mutations) - absent,
        "absent": absent,
        "objects": len({m.object for m in plan.mutations}),
        "counts": counts,
        "eta_seconds": round(eta, 3),
        "plan_file": str(plan_file) if plan_file is not None else None,
        "notes": list(notes),
        "tables": [dict(t) for t in tables],
        "not_undoable": [{"key": k, "reason": r} for k, r in not_undoable],
        "items": [_item(m) for m in plan.mutations],
    }


def counts_of(states: Mapping[str, KeyState]) -> dict[str, int]:
    """Mutations per state, under the names reports and ``status`` use."""
    found = dict.fromkeys(State, 0)
    for st in states.values():
        found[State(st.state)] += 1
    return {
        "applied": found[State.APPLIED],
        "skipped": found[State.SKIPPED],
        "failed": found[State.FAILED],
        "conflict": found[State.CONFLICT],
        "rejected": found[State.REJECTED],
        "pending_review": found[State.PENDING_REVIEW],
        "unsettled": found[State.IN_DOUBT],
        "pending": found[State.PENDING],
    }


def counts_text(c: Mapping[str, int], *, settled_only: bool = False) -> str:
    """The counts of :func:`counts_of` as people read them, in one order everywhere.

    Reviews are named only when some are waiting or were rejected; with ``settled_only``
    what is left (unsettled, not yet sent) is named only when something is.
    """
    text = (
        f"applied {c['applied']}, skipped {c['skipped']}, failed {c['failed']}, "
        f"conflict {c['conflict']}"
    )
    if c["pending_review"] or c["rejected"]:
        text += f", waiting for review {c['pending_review']}, rejected {c['rejected']}"
    if not settled_only or c["unsettled"] or c["pending"]:
        text += f", unsettled {c['unsettled']}, not yet sent {c['pending']}"
    return text


def run_document(
    *,
    command: str,
    plan: Plan,
    project: ProjectRef,
    checkpoint: Path | None,
    states: Mapping[str, KeyState],
    exit_code: int,
    result: RunResult | None = None,
    reports: Sequence[Path] = (),
    differences: Sequence[str] | None = None,
) -> dict[str, Any]:
    """``bulkops.run/1``: how a run of ``plan`` ended (``result`` None: nothing ran, as
    for a plan with nothing left to do)."""
    problems = [
        {"key": k, "state": str(st.state), "reason": st.reason or st.error}
        for k, st in states.items()
        if st.state in (State.FAILED, State.CONFLICT, State.REJECTED, State.IN_DOUBT)
    ]
    return {
        "schema": RUN_SCHEMA,
        "command": command,
        "job": plan.header.job,
        "plan_hash": plan.header.hash,
        "project": _project(project),
        "checkpoint": str(checkpoint) if checkpoint is not None else None,
        "outcome": result.stop.value if result is not None else "complete",
        "reason": (result.reason or None) if result is not None else None,
        "exit_code": int(exit_code),
        "mutations": len(plan.mutations),
        "counts": counts_of(states),
        "requests_sent": result.sent if result is not None else 0,
        "retries": result.retries if result is not None else 0,
        "throttled": result.throttled if result is not None else 0,
        "elapsed_seconds": round(result.elapsed, 3) if result is not None else 0.0,
        "problems": problems,
        "reports": [str(p) for p in reports],
        "verification": None if differences is None else {"differences": list(differences)},
    }


def jobs_document(jobs: Sequence[Mapping[str, Any]]) -> dict[str, Any]:
    """``bulkops.jobs/1``: every built-in job with its options."""
    return {"schema": JOBS_SCHEMA, "jobs": [dict(j) for j in jobs]}


def error_document(message: str, hint: str | None, exit_code: int) -> dict[str, Any]:
    """``bulkops.error/1``: why a command with ``--json`` ended before its own document."""
    return {"schema": ERROR_SCHEMA, "error": message, "hint": hint, "exit_code": int(exit_code)}
