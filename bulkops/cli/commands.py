"""The engine's commands: plain ``async def`` functions the CLI calls once.

``jobs``, ``plan`` (read-only: diff, counts, ETA, optionally a plan file), ``run`` (the
same, then apply with ``--apply``), ``apply`` (exactly a plan file), ``resume``,
``status`` and ``undo``. Each composes the same parts and talks to the user through a
:class:`~bulkops.cli.output.Ui`:

* :mod:`~bulkops.cli.job_loading`: the job, its options and its verify hook;
* :mod:`~bulkops.cli.run_setup`: settings from the keys read, the key's project, the
  run knobs, limiter and send log, the checkpoint;
* :mod:`~bulkops.cli.safety`: the rules every writing command passes before it sends
  anything (project match, ``--max-mutations``, locks, confirmation);
* :mod:`~bulkops.cli.output` and :mod:`~bulkops.cli.reports`: what is printed and
  written;
* :mod:`~bulkops.cli.exit_codes`: what each returns.

The argument parsing in front of them is :mod:`bulkops.cli.engine`.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Callable, Coroutine, Mapping
from dataclasses import replace
from pathlib import Path
from typing import Any

import structlog
from pydantic import BaseModel
from rich.markup import escape

from ..api.client import ConsoleClient
from ..engine.failpoints import Failpoints
from ..engine.journal import Journal, read_records
from ..engine.locks import default_state_dir
from ..engine.mutations import JobContext, Mutation
from ..engine.plans import Plan, ProjectRef, check_keys, write_plan
from ..engine.ratelimit import history_from_records
from ..engine.reconcile import replay, undo_mutations
from ..engine.reviews import forecast
from ..engine.runner import RunOptions, RunResult, run_plan
from ..engine.states import FINAL_STATES, KeyState, State
from ..engine.stopping import Stop
from ..errors import RefusedError
from ..keyguard import KeyGuard
from ..settings import ApiKeys, Settings
from .exit_codes import ExitCode, exit_code_for_run
from .job_loading import LoadedJob, Verifier, builtin_jobs, job_verifier, plan_verifier
from .output import ProgressView, Ui, format_duration, render_plan, render_summary
from .reports import report_rows, status_summary, write_report
from .run_setup import (
    EngineOptions,
    OtherClients,
    PlanRun,
    checkpoint_plan,
    create_checkpoint,
    default_checkpoint,
    estimate,
    key_project,
    merge_histories,
    plan_record,
    quota_limiter,
    require_checkpoint,
    run_knobs,
    send_log,
    target_settings,
    undo_checkpoint,
)
from .safety import check_project, check_size, checkpoint_lock, confirm, project_lock

__all__ = [
    "CheckpointCommand",
    "apply_plan",
    "list_jobs",
    "plan_job",
    "resume",
    "status",
    "undo",
]

log = structlog.get_logger()

EVENT_PLANNED = "plan.created"
EVENT_CONFIRMED = "apply.confirmed"

CheckpointCommand = Callable[[Path, ApiKeys, EngineOptions, Ui], Coroutine[Any, Any, ExitCode]]
"""A command on a checkpoint with a key: :func:`resume` and :func:`undo`."""


def list_jobs(ui: Ui, describe: Callable[[LoadedJob], list[str]]) -> ExitCode:
    """Print every built-in job, its description's first line, and its options."""
    for job in builtin_jobs():
        first = job.description.splitlines()[0] if job.description else ""
        ui.out.print(f"[bold]{escape(job.name)}[/]  {escape(first)}", highlight=False)
        for line in describe(job):
            ui.out.print(f"    {escape(line)}", highlight=False)
    ui.out.print(
        escape(
            "Your own job: `bulkops run ./my_job.py [options]` (a module with Params and plan())."
        ),
        highlight=False,
    )
    return ExitCode.OK


# -- running a plan ------------------------------------------------------------------------


async def _execute(
    run: PlanRun,
    *,
    opts: EngineOptions,
    ui: Ui,
    verify: Verifier | None = None,
    applied_before: int = 0,
) -> ExitCode:
    """Run the plan under its checkpoint's journal, then summarise, report and verify.

    ``applied_before``: mutations the checkpoint had applied when the run started (a
    key refused before this run applied anything exits 4).
    """
    plan, checkpoint, knobs = run.plan, run.checkpoint, run.knobs
    view = ProgressView(ui.err, run.limiter, live=ui.live)
    options = RunOptions(
        max_in_flight=knobs["max_in_flight"],
        budget_ratio=knobs["retry_budget"],
        handle_signals=ui.handle_signals,
        failpoints=Failpoints.from_env(),
        checkpoint=str(checkpoint),
        review_note=str(knobs.get("review_description") or ""),
    )
    try:
        result = await run_plan(
            plan,
            client=run.client,
            journal=run.journal,
            records=run.records,
            limiter=run.limiter,
            sendlog=run.sendlog,
            options=options,
            observer=view,
        )
    finally:
        view.close()
    render_summary(ui.out, result, plan)
    if opts.report is not None:
        written = write_report(opts.report, report_rows(plan, result.states))
        ui.err.print("report: " + ", ".join(str(p) for p in written), highlight=False)
    if result.waiting_for_review:
        _say_waiting(ui, result, checkpoint)
    elif not result.ok:
        ui.err.print(
            f"checkpoint: {checkpoint}  (`bulkops status {checkpoint}`, "
            f"`bulkops resume {checkpoint}`)",
            highlight=False,
        )
    else:
        ui.err.print(
            f"checkpoint: {checkpoint}  (undo with `bulkops undo {checkpoint}`)", highlight=False
        )
    code = exit_code_for_run(result, applied_before=applied_before)
    if result.stop is Stop.UNAUTHORIZED:
        var = run.client.settings.key_env or "the key's variable"
        ui.err.print(
            f"The API refused the key in {var} at {run.client.settings.base_url}: a "
            "read-only key (403) may read but not write; a revoked or wrong key gets 401. "
            f"Export a Console API key with write access in {var}, then "
            f"`bulkops resume {checkpoint}`.",
            highlight=False,
        )
    if verify is not None and result.ok:
        problems = await verify(plan, result, run.client)
        for line in problems:
            ui.out.print(f"  differs: {escape(line)}", highlight=False)
        if problems:
            ui.err.print(f"verification: {len(problems)} difference(s) found", highlight=False)
            code = ExitCode.FAILED
        else:
            ui.out.print("verification: the target matches", highlight=False)
    return code


def _say_waiting(ui: Ui, result: RunResult, checkpoint: Path) -> None:
    """Tell the user what waits for review, and what to do (exit 5)."""
    waiting = sum(1 for st in result.states.values() if st.state == State.PENDING_REVIEW)
    behind = sum(1 for st in result.states.values() if st.state == State.PENDING)
    ui.err.print(
        f"{waiting} change(s) are waiting for review"
        + (f" ({behind} more wait behind them)" if behind else "")
        + ": once they are approved in the console, `bulkops resume "
        f"{checkpoint}` commits them (`bulkops status {checkpoint}` lists them).",
        highlight=False,
    )


async def _planned(client: ConsoleClient, mutations: list[Mutation], ui: Ui) -> list[Mutation]:
    """The mutations, those that will open a review marked (when the review header is
    on), with what the plan step learnt about reviews printed."""
    found = await forecast(client, mutations)
    for line in found.notes:
        ui.out.print(escape(line), highlight=False)
    return found.mutations


async def _apply(
    plan: Plan,
    client: ConsoleClient,
    project: ProjectRef,
    opts: EngineOptions,
    ui: Ui,
    *,
    show_diff: bool,
    guard: KeyGuard,
    recorded: Mapping[str, Any] | None = None,
    verify: Verifier | None = None,
) -> ExitCode:
    """Apply a new plan: the safety rules in their order, a new checkpoint (refusing any
    record that holds one of ``guard``'s keys), the run."""
    check_project(plan, project)
    check_size(plan, opts)
    if not plan.mutations:
        ui.out.print("Nothing to do: the plan has no mutations.")
        return ExitCode.OK
    state_dir = default_state_dir()
    checkpoint = opts.checkpoint or default_checkpoint(state_dir, plan)
    if checkpoint.exists():
        raise RefusedError(
            f"checkpoint {checkpoint} already exists; nothing was sent",
            hint=f"resume it with `bulkops resume {checkpoint}`, or pass another --checkpoint",
        )
    knobs = run_knobs(opts, recorded)
    url = client.settings.base_url
    run_info = {"checkpoint": str(checkpoint), "job": plan.header.job, "url": url}
    with project_lock(state_dir, url, project.id, run_info):
        sendlog = send_log(state_dir, url, project.id)
        history = sendlog.load()
        limiter = quota_limiter(knobs, history)
        eta = limiter.eta(plan.quota_counts())
        if show_diff:
            render_plan(ui.out, plan, eta=eta, project_name=project.name, show=opts.show)
        confirm(ui, opts, project, plan, eta)
        log.info(EVENT_CONFIRMED, project=project.id, mutations=len(plan.mutations))
        with checkpoint_lock(checkpoint, run_info):
            journal = create_checkpoint(
                checkpoint, plan_record(plan, knobs, client.settings), guard=guard
            )
            ui.err.print(f"checkpoint: {checkpoint}", highlight=False)
            run = PlanRun(plan, client, checkpoint, journal, (), knobs, sendlog, limiter)
            try:
                return await _execute(run, opts=opts, ui=ui, verify=verify)
            finally:
                journal.close()


# -- the commands --------------------------------------------------------------------------


async def plan_job(
    job: LoadedJob, params: BaseModel, keys: ApiKeys, opts: EngineOptions, ui: Ui, *, run: bool
) -> ExitCode:
    """``bulkops plan`` (``run=False``) and ``bulkops run`` (``run=True``).

    Plans read-only, prints the diff, counts and ETA, writes ``-o PLAN`` if given; a
    ``run`` with ``--apply`` then applies the plan (confirmation, checkpoint).
    """
    options = params.model_dump(mode="json")
    guard = keys.guard()
    settings = target_settings(keys, opts, options, respect_reviews=not opts.no_review_header)
    async with ConsoleClient(settings) as client:
        project = await key_project(client)
        plan_id = uuid.uuid4().hex
        others = OtherClients(keys, settings)
        ctx = JobContext(
            client=client,
            project_id=project.id,
            project_name=project.name,
            settings=settings,
            log=structlog.get_logger(job=job.name),
            plan_id=plan_id,
            open_client=others.open,
            key_guard=guard,
        )
        projects = [project]
        try:
            for ref in await others.connect(options):
                if ref.id not in {p.id for p in projects}:
                    projects.append(ref)
            mutations: list[Mutation] = [m async for m in job.module.plan(ctx, params)]
        finally:
            await others.aclose()
        mutations = await _planned(client, mutations, ui)
        plan = Plan.build(
            job=job.name,
            params=options,
            projects=projects,
            mutations=mutations,
            respect_reviews=settings.respect_reviews,
            plan_id=plan_id,
            guard=guard,
        )
        log.info(
            EVENT_PLANNED, job=job.name, mutations=len(plan.mutations), plan_hash=plan.header.hash
        )
        eta = estimate(plan, run_knobs(opts), settings.base_url, project.id)
        for line in ctx.notes:
            ui.out.print(escape(guard.redact(line)), highlight=False)
        render_plan(ui.out, plan, eta=eta, project_name=project.name, show=opts.show)
        if opts.output is not None:
            write_plan(opts.output, plan)
            ui.err.print(
                f"plan written to {opts.output} (apply it with `bulkops apply {opts.output}`)",
                highlight=False,
            )
        if not run or not opts.apply:
            if run:
                ui.out.print(
                    f"Dry run: nothing was sent. Add --apply to apply these "
                    f"{len(plan.mutations)} mutations.",
                    highlight=False,
                )
            return ExitCode.OK
        verify = job_verifier(job.module, params, keys)
        return await _apply(
            plan, client, project, opts, ui, show_diff=False, guard=guard, verify=verify
        )


async def apply_plan(plan: Plan, keys: ApiKeys, opts: EngineOptions, ui: Ui) -> ExitCode:
    """``bulkops apply PLAN``: execute exactly that plan, read and verified from its file
    (refused if edited or for another project)."""
    guard = keys.guard()
    check_keys(plan, guard)  # read before the keys were: their values are checked now
    respect = plan.header.respect_reviews and not opts.no_review_header
    settings = target_settings(keys, opts, plan.header.params, respect_reviews=respect)
    async with ConsoleClient(settings) as client:
        project = await key_project(client)
        verify = plan_verifier(plan, keys)
        if verify is not None:
            await _check_other_keys(keys, settings, plan.header.params)
        return await _apply(
            plan, client, project, opts, ui, show_diff=True, guard=guard, verify=verify
        )


async def _check_other_keys(keys: ApiKeys, settings: Settings, params: Mapping[str, Any]) -> None:
    """Before anything is sent: the other keys a job's verify hook will use work."""
    others = OtherClients(keys, settings)
    try:
        await others.connect(params)
    finally:
        await others.aclose()


async def resume(checkpoint: Path, keys: ApiKeys, opts: EngineOptions, ui: Ui) -> ExitCode:
    """``bulkops resume CKPT``: settle what is uncertain, skip what is done, continue.

    The checkpoint is locked and verified (a torn tail is repaired, damage before the
    end refused) before any request is made.
    """
    require_checkpoint(checkpoint)
    guard = keys.guard()
    with checkpoint_lock(checkpoint, {"resume": True}):
        journal, records = Journal.open(checkpoint, guard=guard)
        try:
            plan, recorded = checkpoint_plan(records, f"checkpoint {checkpoint}", guard)
            states = replay(records, [m.key for m in plan.mutations])
            if all(st.state in FINAL_STATES for st in states.values()):
                ui.out.print("Nothing to resume: every mutation is settled.")
                _print_counts(ui, states)
                return (
                    ExitCode.OK
                    if all(st.state in ("applied", "skipped") for st in states.values())
                    else ExitCode.FAILED
                )
            respect = bool(recorded.get("respect_reviews", plan.header.respect_reviews))
            settings = target_settings(keys, opts, plan.header.params, respect_reviews=respect)
            knobs = run_knobs(opts, recorded)
            async with ConsoleClient(settings) as client:
                project = await key_project(client)
                check_project(plan, project)
                verify = plan_verifier(plan, keys)
                if verify is not None:
                    await _check_other_keys(keys, settings, plan.header.params)
                state_dir = default_state_dir()
                url = settings.base_url
                run_info = {"checkpoint": str(checkpoint), "job": plan.header.job, "url": url}
                with project_lock(state_dir, url, project.id, run_info):
                    sendlog = send_log(state_dir, url, project.id)
                    history = merge_histories(sendlog.load(), history_from_records(records, plan))
                    todo = sum(1 for st in states.values() if st.state not in FINAL_STATES)
                    ui.err.print(
                        f"resuming {checkpoint}: {todo} of {len(plan.mutations)} mutations left "
                        f"on project {project.name} ({project.id})",
                        highlight=False,
                    )
                    limiter = quota_limiter(knobs, history)
                    run = PlanRun(
                        plan, client, checkpoint, journal, records, knobs, sendlog, limiter
                    )
                    applied = sum(1 for st in states.values() if st.state == State.APPLIED)
                    return await _execute(
                        run, opts=opts, ui=ui, verify=verify, applied_before=applied
                    )
        finally:
            journal.close()


def _print_counts(ui: Ui, states: Mapping[str, KeyState]) -> None:
    counts: dict[str, int] = {}
    for st in states.values():
        counts[st.state] = counts.get(st.state, 0) + 1
    ui.out.print(", ".join(f"{k} {v}" for k, v in sorted(counts.items())), highlight=False)


def status(checkpoint: Path, ui: Ui, *, as_json: bool) -> ExitCode:
    """``bulkops status CKPT [--json]``: what the checkpoint says, read-only."""
    require_checkpoint(checkpoint)
    records = read_records(checkpoint)
    plan, _recorded = checkpoint_plan(records, f"checkpoint {checkpoint}")
    states = replay(records, [m.key for m in plan.mutations])
    summary = status_summary(plan, records, states)
    summary["checkpoint"] = str(checkpoint)
    if as_json:
        ui.out.print_json(json.dumps(summary))
        return ExitCode.OK
    c = summary["counts"]
    reviews = (
        f", waiting for review {c['pending_review']}, rejected {c['rejected']}"
        if c["pending_review"] or c["rejected"]
        else ""
    )
    ui.out.print(
        f"checkpoint {escape(str(checkpoint))}\n"
        f"  job {escape(summary['job'])}, plan {summary['plan_hash'][:12]}, created {summary['created']}\n"
        f"  project {escape(summary['target_project'])}, {summary['mutations']} mutations, "
        f"{summary['runs']} run(s)\n"
        f"  applied {c['applied']}, skipped {c['skipped']}, failed {c['failed']}, "
        f"conflict {c['conflict']}{reviews}, unsettled {c['unsettled']}, "
        f"not yet sent {c['pending']}",
        highlight=False,
    )
    if summary["reviews"]:
        ui.out.print(f"  waiting for review ({len(summary['reviews'])}):", highlight=False)
    for review in summary["reviews"][:50]:
        age = review["age_seconds"]
        ui.out.print(
            f"    review {escape(str(review['review_id']))}  {escape(review['object'])}  "
            f"({escape(review['key'])}), opened "
            + ("at an unknown time" if age is None else f"{format_duration(age)} ago"),
            highlight=False,
        )
    if summary["ended_without_record"]:
        ui.out.print("  the last run ended without a record (killed?): resume reconciles it")
    for problem in summary["problems"][:20]:
        ui.out.print(
            f"  {escape(problem['state'])} {escape(problem['key'])}: {escape(str(problem['reason'] or ''))}",
            highlight=False,
        )
    if summary["complete"]:
        ui.out.print("  complete", highlight=False)
    elif summary["reviews"]:
        ui.out.print(
            f"  once approved in the console: `bulkops resume {escape(str(checkpoint))}` "
            "commits them",
            highlight=False,
        )
    else:
        ui.out.print(f"  resumable: `bulkops resume {escape(str(checkpoint))}`", highlight=False)
    return ExitCode.OK


async def undo(checkpoint: Path, keys: ApiKeys, opts: EngineOptions, ui: Ui) -> ExitCode:
    """``bulkops undo CKPT [--apply]``: plan the inverses of every applied mutation in
    reverse order; dry-run unless ``--apply``; runs with its own checkpoint."""
    require_checkpoint(checkpoint)
    with checkpoint_lock(checkpoint, {"undo": True}):
        records = read_records(checkpoint)
    guard = keys.guard()
    plan, recorded = checkpoint_plan(records, f"checkpoint {checkpoint}", guard)
    states = replay(records, [m.key for m in plan.mutations])
    mutations, not_undoable = undo_mutations(plan, states)
    respect = bool(recorded.get("respect_reviews", plan.header.respect_reviews))
    settings = target_settings(
        keys, opts, plan.header.params, respect_reviews=respect and not opts.no_review_header
    )
    async with ConsoleClient(settings) as client:
        project = await key_project(client)
        check_project(plan, project)
        undo_plan = Plan.build(
            job="undo",
            params={"checkpoint": str(checkpoint), "plan_hash": plan.header.hash},
            projects=plan.header.projects,
            mutations=await _planned(client, mutations, ui),
            respect_reviews=settings.respect_reviews,
            guard=guard,
        )
        eta = estimate(undo_plan, run_knobs(opts, recorded), settings.base_url, project.id)
        render_plan(
            ui.out, undo_plan, eta=eta, project_name=project.name, show=opts.show, title="Undo plan"
        )
        for key, reason in not_undoable:
            ui.out.print(f"  cannot undo {escape(key)}: {escape(reason)}", highlight=False)
        if not opts.apply:
            ui.out.print(
                f"Dry run: nothing was sent. Add --apply to undo with these {len(mutations)} mutations.",
                highlight=False,
            )
            return ExitCode.OK
        target = opts.checkpoint or undo_checkpoint(checkpoint)
        opts = replace(opts, checkpoint=target)
        return await _apply(
            undo_plan, client, project, opts, ui, show_diff=False, guard=guard, recorded=recorded
        )
