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

import contextlib
import uuid
from collections.abc import Callable, Coroutine, Mapping
from dataclasses import replace
from pathlib import Path
from typing import Any

import anyio
import structlog
from pydantic import BaseModel
from rich.markup import escape
from rich.table import Table

from ..api.client import ConsoleClient, read_object
from ..engine.failpoints import Failpoints
from ..engine.journal import Journal, read_prefix, read_records
from ..engine.locks import default_state_dir, lock_holder, lock_path_for_journal
from ..engine.mutations import JobContext, Mutation
from ..engine.plans import Plan, ProjectRef, check_keys, write_plan
from ..engine.ratelimit import history_from_records
from ..engine.reconcile import replay, undo_mutations
from ..engine.reviews import forecast
from ..engine.runner import RunOptions, RunResult, run_plan
from ..engine.states import FINAL_STATES, OK_STATES, KeyState, State
from ..engine.stopping import Stop
from ..errors import ApiError, NoSpaceError, RefusedError, UsageError
from ..keyguard import KeyGuard
from ..settings import TARGET_KEY_ENV_OPTION, ApiKeys, Settings
from .documents import counts_of, counts_text, jobs_document, plan_document, run_document
from .exit_codes import ExitCode, exit_code_for_run, exit_code_for_status
from .job_loading import LoadedJob, Verifier, builtin_jobs, job_verifier, plan_verifier
from .output import ProgressView, Ui, format_duration, render_notes, render_plan, render_summary
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


def list_jobs(ui: Ui, options: Callable[[LoadedJob], list[dict[str, Any]]]) -> ExitCode:
    """Print every built-in job, its description's first line, and its options (a table
    per job that wraps to the terminal's width)."""
    jobs: list[dict[str, Any]] = []
    for job in builtin_jobs():
        first = job.description.splitlines()[0] if job.description else ""
        found = options(job)
        jobs.append({"name": job.name, "description": first, "options": found})
        ui.out.print(f"[bold]{escape(job.name)}[/]  {escape(first)}", highlight=False)
        table = Table.grid(padding=(0, 2))
        table.add_column(width=2)  # the indent
        table.add_column(overflow="fold")
        table.add_column(overflow="fold")
        for option in found:
            table.add_row("", escape(option["usage"]), escape(option["description"]))
        ui.out.print(table)
    ui.out.print(
        escape(
            "Your own job: `bulkops run ./my_job.py [options]` (a module with Params and plan())."
        ),
        highlight=False,
    )
    ui.result(f"{len(jobs)} jobs: " + ", ".join(j["name"] for j in jobs), jobs_document(jobs))
    return ExitCode.OK


# -- running a plan ------------------------------------------------------------------------


def _run_line(states: Mapping[str, KeyState], checkpoint: Path | None, code: int) -> str:
    where = f"; checkpoint {checkpoint}" if checkpoint is not None else ""
    return f"{counts_text(counts_of(states), settled_only=True)}{where} (exit {int(code)})"


def _tell_run(
    ui: Ui,
    command: str,
    plan: Plan,
    project: ProjectRef,
    checkpoint: Path | None,
    states: Mapping[str, KeyState],
    code: int,
    **more: Any,
) -> None:
    """A run's summary line, or its ``bulkops.run/1`` document (``more``: what
    :func:`~bulkops.cli.documents.run_document` takes besides)."""
    ui.result(
        _run_line(states, checkpoint, code) if states else "nothing to do (exit 0)",
        run_document(
            command=command,
            plan=plan,
            project=project,
            checkpoint=checkpoint,
            states=states,
            exit_code=code,
            **more,
        ),
    )


def _report(ui: Ui, opts: EngineOptions, plan: Plan, states: Mapping[str, KeyState]) -> list[Path]:
    """Write ``--report`` if asked; a report that cannot be written (the disk that just
    filled up) is told, and the run's outcome stands."""
    if opts.report is None:
        return []
    try:
        written = write_report(opts.report, report_rows(plan, states))
    except (OSError, NoSpaceError) as exc:
        why = exc.message if isinstance(exc, NoSpaceError) else exc.strerror
        ui.err.print(f"report {opts.report} could not be written: {why}", highlight=False)
        return []
    ui.err.print("report: " + ", ".join(str(p) for p in written), highlight=False)
    return written


async def _execute(
    run: PlanRun,
    *,
    command: str,
    project: ProjectRef,
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
    render_summary(ui.out, result, plan, problems=opts.show)
    written = _report(ui, opts, plan, result.states)
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
    differences: list[str] | None = None
    if verify is not None and result.ok:
        differences = await verify(plan, result, run.client)
        for line in differences:
            ui.out.print(f"  differs: {escape(line)}", highlight=False)
        if differences:
            ui.err.print(f"verification: {len(differences)} difference(s) found", highlight=False)
            code = ExitCode.FAILED
        else:
            ui.out.print("verification: the target matches", highlight=False)
    _tell_run(
        ui,
        command,
        plan,
        project,
        checkpoint,
        result.states,
        code,
        result=result,
        reports=written,
        differences=differences,
    )
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


# Reads in flight while an undo is planned (reads spend no mutation quota).
_PLAN_READS = 8


async def _absent_marked(client: ConsoleClient, mutations: list[Mutation]) -> list[Mutation]:
    """The undo's mutations, each whose object is already gone (and that does not create
    it) planned as "absent: nothing to do": an undo plan never shows ``exists → deleted``
    for an object someone deleted since. A read that fails leaves the mutation as it
    is (the read before its write settles it)."""
    gone: set[str] = set()
    todo = iter([m for m in mutations if m.read is not None and m.after.exists is not True])

    async def reader() -> None:
        for m in todo:  # a few readers take from one list: no task per mutation
            assert m.read is not None
            with contextlib.suppress(ApiError):
                if await read_object(client, m.read) is None:
                    gone.add(m.key)

    async with anyio.create_task_group() as tg:
        for _ in range(_PLAN_READS):
            tg.start_soon(reader)
    return [m.on_absent_object() if m.key in gone else m for m in mutations]


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
    command: str,
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
        _tell_run(ui, command, plan, project, None, {}, ExitCode.OK)
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
            line = render_plan(ui.out, plan, eta=eta, project_name=project.name, show=opts.show)
            ui.out.print(escape(line), highlight=False)
        confirm(ui, opts, project, plan, eta)
        log.info(EVENT_CONFIRMED, project=project.id, mutations=len(plan.mutations))
        with checkpoint_lock(checkpoint, run_info):
            journal = create_checkpoint(
                checkpoint, plan_record(plan, knobs, client.settings), guard=guard
            )
            ui.err.print(f"checkpoint: {checkpoint}", highlight=False)
            run = PlanRun(plan, client, checkpoint, journal, (), knobs, sendlog, limiter)
            try:
                return await _execute(
                    run, command=command, project=project, opts=opts, ui=ui, verify=verify
                )
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
        notes = [guard.redact(line) for line in ctx.notes]
        tables = [
            {**t, "rows": [[guard.redact(c) for c in row] for row in t["rows"]]} for t in ctx.tables
        ]
        render_notes(ui.out, notes, tables, show=opts.show)
        line = render_plan(ui.out, plan, eta=eta, project_name=project.name, show=opts.show)
        if opts.output is not None:
            write_plan(opts.output, plan)
            ui.err.print(
                f"plan written to {opts.output} (apply it with `bulkops apply {opts.output}`)",
                highlight=False,
            )
        if not run or not opts.apply:
            if run:
                line += ". Dry run: nothing was sent; add --apply to apply it"
            document = plan_document(
                plan,
                command="run" if run else "plan",
                project=project,
                eta=eta,
                plan_file=opts.output,
                notes=notes,
                tables=tables,
            )
            ui.result(line, document)
            return ExitCode.OK
        ui.out.print(escape(line), highlight=False)
        verify = job_verifier(job.module, params, keys)
        return await _apply(
            plan,
            client,
            project,
            opts,
            ui,
            command="run",
            show_diff=False,
            guard=guard,
            verify=verify,
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
            plan,
            client,
            project,
            opts,
            ui,
            command="apply",
            show_diff=True,
            guard=guard,
            verify=verify,
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
                code = (
                    ExitCode.OK
                    if all(st.state in OK_STATES for st in states.values())
                    else ExitCode.FAILED
                )
                target = ProjectRef(
                    id=plan.target_project, name=plan.project_name(plan.target_project)
                )
                _tell_run(ui, "resume", plan, target, checkpoint, states, code)
                return code
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
                        run,
                        command="resume",
                        project=project,
                        opts=opts,
                        ui=ui,
                        verify=verify,
                        applied_before=applied,
                    )
        finally:
            journal.close()


def status(checkpoint: Path, ui: Ui, *, show: int = 20) -> ExitCode:
    """``bulkops status CKPT [--json]``: what the checkpoint says, read-only.

    A run holding the checkpoint's lock is told as running (pid, host, since); damage
    before the end shows what the records before it say. The exit code tells where the
    checkpoint stands (:func:`~bulkops.cli.exit_codes.exit_code_for_status`).
    """
    require_checkpoint(checkpoint)
    records, damage = read_prefix(checkpoint)
    plan, _recorded = checkpoint_plan(records, f"checkpoint {checkpoint}")
    states = replay(records, [m.key for m in plan.mutations])
    holder = lock_holder(lock_path_for_journal(checkpoint))
    summary = status_summary(plan, records, states, damage=damage, running=holder)
    summary["checkpoint"] = str(checkpoint)
    code = exit_code_for_status(summary["state"])
    summary["exit_code"] = int(code)
    _print_status(ui, checkpoint, summary, show)
    ui.result(
        f"{summary['state'].replace('_', ' ')}: {counts_text(summary['counts'])} "
        f"(exit {int(code)})",
        summary,
    )
    return code


def _print_status(ui: Ui, checkpoint: Path, summary: Mapping[str, Any], show: int) -> None:
    path = escape(str(checkpoint))
    ui.out.print(
        f"checkpoint {path}\n"
        f"  job {escape(summary['job'])}, plan {summary['plan_hash'][:12]}, created {summary['created']}\n"
        f"  project {escape(summary['target_project'])}, {summary['mutations']} mutations, "
        f"{summary['runs']} run(s)\n"
        f"  {counts_text(summary['counts'])}",
        highlight=False,
    )
    damage, running = summary["damage"], summary["running"]
    if damage is not None:
        ui.out.print(
            f"  DAMAGED at line {damage['line']} (byte offset {damage['offset']}): "
            f"{escape(damage['problem'])}; the counts above are those of the "
            f"{damage['records_before']} verified records before it (later ones are not "
            "trusted)",
            highlight=False,
        )
        applied = summary["applied"]
        if applied:
            more = (
                f" … and {len(applied) - show} more (--show N, or --json)"
                if len(applied) > show
                else ""
            )
            ui.out.print(
                f"  applied before the damage ({len(applied)}): "
                + escape(", ".join(applied[:show]))
                + more,
                highlight=False,
            )
    if running is not None:
        ui.out.print(
            f"  running: pid {running['pid'] or '?'} on {escape(str(running['host'] or '?'))} "
            f"since {escape(str(running['since'] or '?'))} (a `bulkops {running['command']}`); "
            "resume is refused while it runs",
            highlight=False,
        )
    if summary["reviews"]:
        ui.out.print(f"  waiting for review ({len(summary['reviews'])}):", highlight=False)
    for review in summary["reviews"][:show]:
        age = review["age_seconds"]
        ui.out.print(
            f"    review {escape(str(review['review_id']))}  {escape(review['object'])}  "
            f"({escape(review['key'])}), opened "
            + ("at an unknown time" if age is None else f"{format_duration(age)} ago"),
            highlight=False,
        )
    if summary["ended_without_record"]:
        ui.out.print("  the last run ended without a record (killed?): resume reconciles it")
    for problem in summary["problems"][:show]:
        ui.out.print(
            f"  {escape(problem['state'])} {escape(problem['key'])}: {escape(str(problem['reason'] or ''))}",
            highlight=False,
        )
    if summary["problems_total"] > show:
        ui.out.print(f"  … and {summary['problems_total'] - show} more (see --report or --json)")
    state = summary["state"]
    what = {
        "incomplete": f"  resumable: `bulkops resume {path}`",
        "reviews_pending": f"  once approved in the console: `bulkops resume {path}` commits them",
        "damaged": "  not resumable: the journal cannot prove what happened after the damage; "
        f"`bulkops undo {path} --from-damaged` plans the inverse of what the verified "
        "records applied",
    }.get(state)
    if what is not None:
        ui.out.print(what, highlight=False)


async def undo(checkpoint: Path, keys: ApiKeys, opts: EngineOptions, ui: Ui) -> ExitCode:
    """``bulkops undo CKPT [--apply] [--from-damaged]``: plan the inverses of every applied
    mutation in reverse order; dry-run unless ``--apply``; runs with its own checkpoint.

    With ``--from-damaged``, a checkpoint damaged before its end is undone as far as
    its verified records go (those before the damage); mutations whose outcome they
    do not hold are listed, to check by hand.
    """
    require_checkpoint(checkpoint)
    damage = None
    with checkpoint_lock(checkpoint, {"undo": True}):
        if opts.from_damaged:
            records, damage = read_prefix(checkpoint)
            if damage is None:
                raise UsageError(
                    f"--from-damaged: checkpoint {checkpoint} is not damaged; nothing was sent",
                    hint=f"undo it without the option: `bulkops undo {checkpoint}`",
                )
        else:
            records = read_records(checkpoint)
    guard = keys.guard()
    plan, recorded = checkpoint_plan(records, f"checkpoint {checkpoint}", guard)
    states = replay(records, [m.key for m in plan.mutations])
    in_doubt = [k for k, st in states.items() if st.state == State.IN_DOUBT]
    if damage is not None:
        # A mutation the verified records leave unsettled (in doubt, or not yet sent)
        # may have been applied past the damage: each is undone as if applied, and the
        # undo's own read settles it (in the state it left: undone; in the state before
        # it: skipped; anything else: a conflict, never overwritten).
        unsettled = [k for k, st in states.items() if st.state not in FINAL_STATES]
        last = len(records)
        for index, key in enumerate(unsettled):
            states[key] = replace(states[key], state=State.APPLIED, settled_at=last + index)
        ui.err.print(
            f"checkpoint {checkpoint} is damaged at line {damage.line} (byte offset "
            f"{damage.offset}: {damage.problem}): undoing what the {len(records)} verified "
            f"records before it applied, and the {len(unsettled)} mutation(s) they leave "
            "unsettled (each is read first: one never applied is skipped); later records "
            "are not trusted",
            highlight=False,
        )
    mutations, not_undoable = undo_mutations(plan, states)
    if damage is None:
        not_undoable += [
            (k, "its outcome is not in the checkpoint: `bulkops resume` settles it first")
            for k in in_doubt
        ]
    respect = bool(recorded.get("respect_reviews", plan.header.respect_reviews))
    settings = target_settings(
        keys, opts, plan.header.params, respect_reviews=respect and not opts.no_review_header
    )
    async with ConsoleClient(settings) as client:
        project = await key_project(client)
        check_project(plan, project)
        undo_plan = Plan.build(
            job="undo",
            params={
                "checkpoint": str(checkpoint),
                "plan_hash": plan.header.hash,
                **({"damaged_at_line": damage.line} if damage is not None else {}),
                # The undo writes to the plan's project: a resume of it reads the same key.
                **_target_key_option(plan.header.params),
            },
            projects=plan.header.projects,
            mutations=await _planned(client, await _absent_marked(client, mutations), ui),
            respect_reviews=settings.respect_reviews,
            guard=guard,
        )
        eta = estimate(undo_plan, run_knobs(opts, recorded), settings.base_url, project.id)
        line = render_plan(
            ui.out, undo_plan, eta=eta, project_name=project.name, show=opts.show, title="Undo plan"
        )
        for key, reason in not_undoable[: opts.show]:
            ui.out.print(f"  cannot undo {escape(key)}: {escape(reason)}", highlight=False)
        if len(not_undoable) > opts.show:
            ui.out.print(f"  … and {len(not_undoable) - opts.show} more that cannot be undone")
        if not opts.apply:
            ui.result(
                f"{line}. Dry run: nothing was sent; add --apply to undo",
                plan_document(
                    undo_plan,
                    command="undo",
                    project=project,
                    eta=eta,
                    not_undoable=not_undoable,
                ),
            )
            return ExitCode.OK
        ui.out.print(escape(line), highlight=False)
        target = opts.checkpoint or undo_checkpoint(checkpoint)
        opts = replace(opts, checkpoint=target)
        return await _apply(
            undo_plan,
            client,
            project,
            opts,
            ui,
            command="undo",
            show_diff=False,
            guard=guard,
            recorded=recorded,
        )


def _target_key_option(params: Mapping[str, Any]) -> dict[str, Any]:
    """The option naming the target's key variable, where the plan's job has one."""
    value = params.get(TARGET_KEY_ENV_OPTION)
    return {TARGET_KEY_ENV_OPTION: value} if isinstance(value, str) and value else {}
