"""What the job tests share: job contexts, running mutations through the engine, and the
environment and writes of a forked emulator's command-line runs."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import structlog

from bulkops import testing
from bulkops.api.client import ConsoleClient
from bulkops.api.paths import WRITE_METHODS
from bulkops.emulator.demo import DEMO_SOURCE_KEY
from bulkops.engine.journal import Journal
from bulkops.engine.mutations import JobContext, Mutation
from bulkops.engine.plans import Plan, ProjectRef
from bulkops.engine.quota import QuotaWindow
from bulkops.engine.ratelimit import QuotaLimiter
from bulkops.engine.reconcile import undo_mutations
from bulkops.engine.runner import RunOptions, RunResult, run_plan
from bulkops.testing import Emulator

__all__ = [
    "WRITES",
    "cli_env",
    "job_context",
    "run",
    "run_mutations",
    "undo",
    "writes",
]

WRITES = WRITE_METHODS
_WIDE_OPEN = (QuotaWindow(1_000_000, 1),)


def job_context(
    client: ConsoleClient,
    project_id: str,
    *,
    plan_id: str = "test",
    open_client: Callable[[str], ConsoleClient] | None = None,
) -> JobContext:
    """A job's context on ``client``'s project (named by its id)."""
    extra: dict[str, Any] = {} if open_client is None else {"open_client": open_client}
    return JobContext(
        client=client,
        project_id=project_id,
        project_name=project_id,
        settings=client.settings,
        log=structlog.get_logger(),
        plan_id=plan_id,
        **extra,
    )


async def run(client: ConsoleClient, plan: Plan, path: Path, *, in_flight: int = 4) -> RunResult:
    """Apply ``plan`` through the engine (journal at ``path``, quotas wide open); all must apply."""
    journal = Journal.create(path, {"t": "plan", "plan": plan.to_json()})
    try:
        result = await run_plan(
            plan,
            client=client,
            journal=journal,
            limiter=QuotaLimiter(
                {"mutation": _WIDE_OPEN, "id_list": _WIDE_OPEN}, max_in_flight=in_flight
            ),
            options=RunOptions(max_in_flight=in_flight),
        )
    finally:
        journal.close()
    failed = [(k, s.state, s.error) for k, s in result.states.items() if s.state != "applied"]
    assert result.ok, failed[:5]
    return result


async def run_mutations(
    client: ConsoleClient, mutations: Sequence[Mutation], path: Path, *, job: str = "test"
) -> tuple[Plan, RunResult]:
    """Plan ``mutations`` (on the first one's project) and :func:`run` them."""
    project = mutations[0].project if mutations else "empty"
    plan = Plan.build(
        job=job,
        params={},
        projects=[ProjectRef(id=project, name=project)],
        mutations=list(mutations),
    )
    return plan, await run(client, plan, path)


async def undo(
    client: ConsoleClient, plan: Plan, result: RunResult, path: Path, *, in_flight: int = 4
) -> RunResult:
    """Run the undo of a finished run; every mutation of it must be undoable."""
    mutations, not_undoable = undo_mutations(plan, result.states)
    assert not not_undoable
    undone = Plan.build(job="undo", params={}, projects=plan.header.projects, mutations=mutations)
    return await run(client, undone, path, in_flight=in_flight)


def cli_env(emulator: Emulator, tmp_path: Path, key: str = DEMO_SOURCE_KEY) -> dict[str, str]:
    """The environment of a ``bulkops`` command run against ``emulator`` with ``key``."""
    return testing.cli_env(key, emulator.url, tmp_path / "state")


def writes(emulator: Emulator) -> list[dict[str, Any]]:
    """The emulator's logged write requests, in order."""
    return [e for e in emulator.log() if e["method"] in WRITES]
