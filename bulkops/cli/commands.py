"""The engine's commands: plain ``async def`` functions the CLI calls once.

``plan`` (read-only: diff, counts, ETA, optionally a plan file), ``run`` (the same, then
apply with ``--apply``), ``apply`` (exactly a plan file), ``resume``, ``status`` and
``undo``. Safety rules every writing command follows, in this order:

1. nothing is sent before the plan is verified (hash), the checkpoint (for resume)
   verified, and the key's project (``GET /project``) matched against the plan's;
2. ``--max-mutations`` refuses larger plans; the per-project lock and the checkpoint's
   lock are taken (a second runner is refused, naming the holder's pid);
3. a confirmation shows the project, counts and ETA; without a terminal, ``--yes`` is
   required, else nothing is sent (exit 2);
4. the plan is the checkpoint's first record, written before the first request.
"""

from __future__ import annotations

import datetime as dt
import importlib.util
import json
import os
import re
import sys
import uuid
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from types import ModuleType
from typing import Any

import structlog
from pydantic import BaseModel, ValidationError
from rich.console import Console
from rich.markup import escape

from .. import __version__
from ..api.client import ConsoleClient
from ..engine.failpoints import Failpoints
from ..engine.journal import Journal, read_records
from ..engine.locks import (
    default_state_dir,
    exclusive_lock,
    lock_path_for_journal,
    lock_path_for_project,
)
from ..engine.mutations import JobContext, Mutation
from ..engine.plans import Plan, ProjectRef, read_plan, write_plan
from ..engine.quota import (
    DEFAULT_ID_LIST_QUOTA,
    DEFAULT_QUOTA,
    ID_LIST_CLASS,
    MUTATION_CLASS,
    QuotaWindow,
)
from ..engine.ratelimit import QuotaLimiter, SendLog, history_from_records
from ..engine.reconcile import replay, undo_mutations
from ..engine.runner import RunOptions, RunResult, run_plan
from ..engine.states import FINAL_STATES, KeyState
from ..engine.stopping import Stop
from ..errors import ApiError, PlanError, RefusedError, UsageError
from ..files import fsync_directory
from ..settings import API_KEY_ENV, Settings
from .output import ProgressView, format_duration, render_plan, render_summary
from .reports import report_rows, status_summary, write_report

__all__ = [
    "EngineOptions",
    "LoadedJob",
    "Ui",
    "apply_plan_file",
    "exit_code",
    "list_jobs",
    "load_job",
    "parse_params",
    "plan_job",
    "resume",
    "status",
    "undo",
]

log = structlog.get_logger()

EXIT_OK, EXIT_FAILED, EXIT_INTERRUPTED = 0, 1, 130
EVENT_PLANNED = "plan.created"
EVENT_CONFIRMED = "apply.confirmed"


@dataclass(frozen=True)
class EngineOptions:
    """Engine knobs from the command line; None means "not given" (a resume then uses
    what the checkpoint recorded, else the default)."""

    api_url: str | None = None
    timeout: float | None = None
    no_review_header: bool = False
    quotas: tuple[QuotaWindow, ...] | None = None
    id_list_quotas: tuple[QuotaWindow, ...] | None = None
    time_scale: float | None = None
    max_in_flight: int | None = None
    retry_budget: float | None = None
    yes: bool = False
    max_mutations: int | None = None
    checkpoint: Path | None = None
    report: Path | None = None
    output: Path | None = None
    show: int = 50
    apply: bool = False


@dataclass
class Ui:
    """Where output goes and how the user answers."""

    out: Console
    err: Console
    interactive: bool
    live: bool
    ask: Callable[[str], str] = field(default=input)
    handle_signals: bool = True


@dataclass(frozen=True)
class LoadedJob:
    """A job module and the name it is known by."""

    name: str
    module: ModuleType

    @property
    def params_model(self) -> type[BaseModel]:
        model: type[BaseModel] = self.module.Params
        return model

    @property
    def description(self) -> str:
        return (self.module.__doc__ or "").strip()


# -- jobs -------------------------------------------------------------------------


def load_job(spec: str) -> LoadedJob:
    """A built-in job by name, or a job module loaded from a ``.py`` file.

    Raises:
        UsageError: unknown name, unreadable file, or a module without the job contract.
    """
    from ..jobs import JOBS, check_job_module

    if spec in JOBS:
        return LoadedJob(spec, JOBS[spec])
    if not (spec.endswith(".py") or "/" in spec):
        known = ", ".join(sorted(JOBS))
        raise UsageError(
            f"unknown job {spec!r}", hint=f"known jobs: {known}; or a path to a .py file"
        )
    path = Path(spec)
    if not path.is_file():
        raise UsageError(f"job file {spec} does not exist")
    name = re.sub(r"[^A-Za-z0-9_]", "_", path.stem)
    module_spec = importlib.util.spec_from_file_location(f"bulkops_userjob_{name}", path)
    if module_spec is None or module_spec.loader is None:
        raise UsageError(f"cannot load job file {spec}")
    module = importlib.util.module_from_spec(module_spec)
    sys.modules[module_spec.name] = module
    try:
        module_spec.loader.exec_module(module)
        check_job_module(module, spec)
    except TypeError as exc:
        raise UsageError(str(exc)) from exc
    return LoadedJob(f"file:{path.name}", module)


def parse_params(job: LoadedJob, values: Mapping[str, Any]) -> BaseModel:
    """Validate job options into the job's ``Params``.

    Raises:
        UsageError: listing every invalid option.
    """
    try:
        return job.params_model.model_validate(dict(values))
    except ValidationError as exc:
        problems = []
        for err in exc.errors():
            where = ".".join(str(p) for p in err.get("loc", ())) or "options"
            problems.append(f"--{where.replace('_', '-')}: {err.get('msg')}")
        raise UsageError(f"bad options for job {job.name}: " + "; ".join(problems)) from exc


def list_jobs(ui: Ui, describe: Callable[[LoadedJob], list[str]]) -> int:
    """Print every built-in job, its description's first line, and its options."""
    from ..jobs import JOBS

    for name, module in JOBS.items():
        job = LoadedJob(name, module)
        first = job.description.splitlines()[0] if job.description else ""
        ui.out.print(f"[bold]{escape(name)}[/]  {escape(first)}", highlight=False)
        for line in describe(job):
            ui.out.print(f"    {escape(line)}", highlight=False)
    ui.out.print(
        escape(
            "Your own job: `bulkops run ./my_job.py [options]` (a module with Params and plan())."
        ),
        highlight=False,
    )
    return EXIT_OK


# -- shared plumbing ------------------------------------------------------------------


def _settings(
    opts: EngineOptions, *, respect_reviews: bool, key_env: str = API_KEY_ENV
) -> Settings:
    overrides: dict[str, Any] = {"respect_reviews": respect_reviews}
    if opts.timeout is not None:
        overrides["timeout"] = opts.timeout
    return Settings.from_env(key_env, base_url=opts.api_url, **overrides)


def _key_env(params: Mapping[str, Any]) -> str:
    """The variable holding the key of the project a plan writes to.

    A job whose plan writes to a project named by another variable says so with a
    ``target_key_env`` option (copy-project); otherwise ``STATSIG_CONSOLE_API_KEY``.
    """
    value = params.get("target_key_env")
    return value if isinstance(value, str) and value else API_KEY_ENV


# After a run that ended with every mutation applied or skipped: the job's own check
# of the result (``async def verify(ctx, params, done) -> list[str]`` in the job
# module, ``done`` being those mutations); each line is printed and turns exit 0 into 1.
Verifier = Callable[[Plan, RunResult, ConsoleClient], Awaitable[list[str]]]


def _verifier(module: ModuleType | None, params: BaseModel | None) -> Verifier | None:
    hook = getattr(module, "verify", None) if module is not None else None
    if hook is None or params is None:
        return None

    async def verify(plan: Plan, result: RunResult, client: ConsoleClient) -> list[str]:
        extra: list[ConsoleClient] = []

        def open_client(key_env: str) -> ConsoleClient:
            other = ConsoleClient(
                Settings.from_env(
                    key_env, base_url=client.settings.base_url, timeout=client.settings.timeout
                )
            )
            extra.append(other)
            return other

        ctx = JobContext(
            client=client,
            project_id=plan.target_project,
            project_name=plan.project_name(plan.target_project),
            settings=client.settings,
            log=structlog.get_logger(job=plan.header.job),
            plan_id=plan.header.plan_id,
            open_client=open_client,
        )
        done = [m for m in plan.mutations if result.states[m.key].state in ("applied", "skipped")]
        try:
            return [str(line) for line in await hook(ctx, params, done)]
        finally:
            for other in extra:
                await other.aclose()

    return verify


def _plan_verifier(plan: Plan) -> Verifier | None:
    """The verify hook of a built-in job's plan (None for file jobs and undo plans)."""
    from ..jobs import JOBS

    module = JOBS.get(plan.header.job)
    if module is None or getattr(module, "verify", None) is None:
        return None
    try:
        params = module.Params.model_validate(plan.header.params)
    except ValidationError:
        return None
    return _verifier(module, params)


async def _project(client: ConsoleClient) -> ProjectRef:
    """The key's project: id from ``GET /project``, name from ``GET /settings/project``."""
    data = await client.data("GET", "/project")
    project_id = str(data.get("id")) if isinstance(data, dict) and data.get("id") else ""
    if not project_id:
        raise PlanError("GET /project did not name the key's project")
    name = project_id
    try:
        settings = await client.data("GET", "/settings/project")
        if isinstance(settings, dict) and settings.get("name"):
            name = str(settings["name"])
    except ApiError:
        pass  # the name is for people; the id is what is checked
    return ProjectRef(id=project_id, name=name)


def _check_project(plan: Plan, project: ProjectRef) -> None:
    target = plan.target_project
    if target and target != project.id:
        raise RefusedError(
            f"the key opens project {project.id} ({project.name}), but the plan writes to "
            f"project {target} ({plan.project_name(target)}); nothing was sent",
            hint="use the key of the plan's project",
        )


def _check_size(plan: Plan, opts: EngineOptions) -> None:
    if opts.max_mutations is not None and len(plan.mutations) > opts.max_mutations:
        raise RefusedError(
            f"the plan has {len(plan.mutations)} mutations, more than --max-mutations "
            f"{opts.max_mutations}; nothing was sent"
        )


def _option(opts_value: Any, recorded: Mapping[str, Any], name: str, default: Any) -> Any:
    if opts_value is not None:
        return opts_value
    if name in recorded and recorded[name] is not None:
        return recorded[name]
    return default


def _windows(value: Any, default: tuple[QuotaWindow, ...]) -> tuple[QuotaWindow, ...]:
    if value is None:
        return default
    return tuple(w if isinstance(w, QuotaWindow) else QuotaWindow.parse(str(w)) for w in value)


def _run_settings(opts: EngineOptions, recorded: Mapping[str, Any] | None = None) -> dict[str, Any]:
    """The effective quota and concurrency knobs (recorded in the checkpoint)."""
    rec = recorded or {}
    quotas = _windows(_option(opts.quotas, rec, "quota", None), DEFAULT_QUOTA)
    id_quotas = _windows(
        _option(opts.id_list_quotas, rec, "id_list_quota", None), DEFAULT_ID_LIST_QUOTA
    )
    return {
        "quota": [str(w) for w in quotas],
        "id_list_quota": [str(w) for w in id_quotas],
        "time_scale": float(_option(opts.time_scale, rec, "time_scale", 1.0)),
        "max_in_flight": int(_option(opts.max_in_flight, rec, "max_in_flight", 4)),
        "retry_budget": float(_option(opts.retry_budget, rec, "retry_budget", 0.2)),
    }


def _limiter(knobs: Mapping[str, Any], history: Mapping[str, list[float]]) -> QuotaLimiter:
    scale = knobs["time_scale"]
    windows = {
        MUTATION_CLASS: tuple(QuotaWindow.parse(w).scaled(scale) for w in knobs["quota"]),
        ID_LIST_CLASS: tuple(QuotaWindow.parse(w).scaled(scale) for w in knobs["id_list_quota"]),
    }
    return QuotaLimiter(windows, max_in_flight=knobs["max_in_flight"], history=history)


def _sendlog(state_dir: Path, project_id: str) -> SendLog:
    lock = lock_path_for_project(state_dir, project_id)
    return SendLog(state_dir / "sends" / (lock.stem.removeprefix("project-") + ".json"))


def _merge(*histories: Mapping[str, Sequence[float]]) -> dict[str, list[float]]:
    out: dict[str, list[float]] = {}
    for history in histories:
        for klass, times in history.items():
            out.setdefault(klass, []).extend(times)
    return {k: sorted(set(v)) for k, v in out.items()}


def _default_checkpoint(state_dir: Path, plan: Plan) -> Path:
    stamp = dt.datetime.now(dt.UTC).strftime("%Y%m%d-%H%M%S")
    job = re.sub(r"[^A-Za-z0-9_.-]", "_", plan.header.job)[:40]
    return state_dir / "checkpoints" / f"{job}-{stamp}-{plan.header.plan_id[:8]}.ckpt"


def _confirm(ui: Ui, opts: EngineOptions, project: ProjectRef, plan: Plan, eta: float) -> None:
    counts = ", ".join(f"{n} {action}" for action, n in plan.counts().items())
    reviews = "on" if plan.header.respect_reviews and not opts.no_review_header else "OFF"
    ui.err.print(
        f"About to apply {len(plan.mutations)} mutations ({escape(counts)}) to project "
        f"[bold]{escape(project.name)}[/] ({escape(project.id)}); ETA ≈ {format_duration(eta)}; "
        f"review header {reviews}.",
        highlight=False,
    )
    if opts.yes:
        return
    if not ui.interactive:
        raise UsageError(
            "not confirmed: stdin is not a terminal, so --yes is required; nothing was sent",
            hint="re-run with --yes once you have checked the plan",
        )
    answer = ui.ask("Type the project name or id to apply: ").strip()
    if answer not in (project.id, project.name):
        raise UsageError("not confirmed; nothing was sent")


def _create_journal(path: Path, first: dict[str, Any]) -> Journal:
    """Create the checkpoint so that it appears whole or not at all.

    The journal is written under a temporary name and hard-linked into place once its
    first record is durable, so a kill during creation never leaves a checkpoint
    without its plan (which could neither be resumed nor replaced).
    """
    tmp = path.with_name(f".{path.name}.{os.getpid()}.new")
    tmp.unlink(missing_ok=True)
    journal = Journal.create(tmp, first)
    try:
        os.link(tmp, path)
    except FileExistsError:
        journal.close()
        tmp.unlink(missing_ok=True)
        raise RefusedError(f"checkpoint {path} already exists; nothing was sent") from None
    except BaseException:
        journal.close()
        raise
    tmp.unlink()
    fsync_directory(path.parent)
    journal.path = path
    return journal


def exit_code(result: RunResult) -> int:
    """0 all applied or skipped; 130 interrupted; 1 anything else."""
    if result.stop is Stop.INTERRUPTED:
        return EXIT_INTERRUPTED
    return EXIT_OK if result.ok else EXIT_FAILED


async def _execute(
    plan: Plan,
    *,
    client: ConsoleClient,
    journal: Journal,
    records: Sequence[Mapping[str, Any]],
    knobs: Mapping[str, Any],
    history: Mapping[str, list[float]],
    sendlog: SendLog,
    opts: EngineOptions,
    ui: Ui,
    checkpoint: Path,
    limiter: QuotaLimiter | None = None,
    verify: Verifier | None = None,
) -> int:
    limiter = limiter or _limiter(knobs, history)
    view = ProgressView(ui.err, limiter, live=ui.live)
    options = RunOptions(
        max_in_flight=knobs["max_in_flight"],
        budget_ratio=knobs["retry_budget"],
        handle_signals=ui.handle_signals,
        failpoints=Failpoints.from_env(),
    )
    try:
        result = await run_plan(
            plan,
            client=client,
            journal=journal,
            records=records,
            limiter=limiter,
            sendlog=sendlog,
            options=options,
            observer=view,
        )
    finally:
        view.close()
    render_summary(ui.out, result, plan)
    if opts.report is not None:
        written = write_report(opts.report, report_rows(plan, result.states))
        ui.err.print("report: " + ", ".join(str(p) for p in written), highlight=False)
    if not result.ok:
        ui.err.print(
            f"checkpoint: {checkpoint}  (`bulkops status {checkpoint}`, "
            f"`bulkops resume {checkpoint}`)",
            highlight=False,
        )
    else:
        ui.err.print(
            f"checkpoint: {checkpoint}  (undo with `bulkops undo {checkpoint}`)", highlight=False
        )
    code = exit_code(result)
    if verify is not None and result.ok:
        problems = await verify(plan, result, client)
        for line in problems:
            ui.out.print(f"  differs: {escape(line)}", highlight=False)
        if problems:
            ui.err.print(f"verification: {len(problems)} difference(s) found", highlight=False)
            code = EXIT_FAILED
        else:
            ui.out.print("verification: the target matches", highlight=False)
    return code


async def _apply(
    plan: Plan,
    *,
    client: ConsoleClient,
    project: ProjectRef,
    opts: EngineOptions,
    ui: Ui,
    show_diff: bool,
    recorded: Mapping[str, Any] | None = None,
    verify: Verifier | None = None,
) -> int:
    _check_project(plan, project)
    _check_size(plan, opts)
    if not plan.mutations:
        ui.out.print("Nothing to do: the plan has no mutations.")
        return EXIT_OK
    state_dir = default_state_dir()
    checkpoint = opts.checkpoint or _default_checkpoint(state_dir, plan)
    if checkpoint.exists():
        raise RefusedError(
            f"checkpoint {checkpoint} already exists; nothing was sent",
            hint=f"resume it with `bulkops resume {checkpoint}`, or pass another --checkpoint",
        )
    knobs = _run_settings(opts, recorded)
    run_info = {"checkpoint": str(checkpoint), "job": plan.header.job}
    with exclusive_lock(
        lock_path_for_project(state_dir, project.id), what=f"project {project.id}", info=run_info
    ):
        sendlog = _sendlog(state_dir, project.id)
        history = sendlog.load()
        limiter = _limiter(knobs, history)
        eta = limiter.eta(plan.quota_counts())
        if show_diff:
            render_plan(ui.out, plan, eta=eta, project_name=project.name, show=opts.show)
        _confirm(ui, opts, project, plan, eta)
        log.info(EVENT_CONFIRMED, project=project.id, mutations=len(plan.mutations))
        with exclusive_lock(
            lock_path_for_journal(checkpoint), what=f"checkpoint {checkpoint}", info=run_info
        ):
            journal = _create_journal(
                checkpoint,
                {
                    "t": "plan",
                    "plan": plan.to_json(),
                    "options": {
                        **knobs,
                        "respect_reviews": client.settings.respect_reviews,
                        "tool_version": __version__,
                    },
                },
            )
            ui.err.print(f"checkpoint: {checkpoint}", highlight=False)
            try:
                return await _execute(
                    plan,
                    client=client,
                    journal=journal,
                    records=(),
                    knobs=knobs,
                    history=history,
                    sendlog=sendlog,
                    opts=opts,
                    ui=ui,
                    checkpoint=checkpoint,
                    limiter=limiter,
                    verify=verify,
                )
            finally:
                journal.close()


# -- commands ----------------------------------------------------------------------


async def plan_job(
    job: LoadedJob, params: BaseModel, opts: EngineOptions, ui: Ui, *, run: bool
) -> int:
    """``bulkops plan`` (``run=False``) and ``bulkops run`` (``run=True``).

    Plans read-only, prints the diff, counts and ETA, writes ``-o PLAN`` if given; a
    ``run`` with ``--apply`` then applies the plan (confirmation, checkpoint).
    """
    settings = _settings(
        opts,
        respect_reviews=not opts.no_review_header,
        key_env=_key_env(params.model_dump(mode="json")),
    )
    extra: list[ConsoleClient] = []

    def open_client(key_env: str) -> ConsoleClient:
        other = ConsoleClient(
            Settings.from_env(
                key_env,
                base_url=settings.base_url,
                timeout=settings.timeout,
                respect_reviews=settings.respect_reviews,
            )
        )
        extra.append(other)
        return other

    async with ConsoleClient(settings) as client:
        project = await _project(client)
        plan_id = uuid.uuid4().hex
        ctx = JobContext(
            client=client,
            project_id=project.id,
            project_name=project.name,
            settings=settings,
            log=structlog.get_logger(job=job.name),
            plan_id=plan_id,
            open_client=open_client,
        )
        projects = [project]
        try:
            mutations: list[Mutation] = [m async for m in job.module.plan(ctx, params)]
            for other in extra:
                ref = await _project(other)
                if ref.id not in {p.id for p in projects}:
                    projects.append(ref)
        finally:
            for other in extra:
                await other.aclose()
        plan = Plan.build(
            job=job.name,
            params=params.model_dump(mode="json"),
            projects=projects,
            mutations=mutations,
            respect_reviews=settings.respect_reviews,
            plan_id=plan_id,
        )
        log.info(
            EVENT_PLANNED, job=job.name, mutations=len(plan.mutations), plan_hash=plan.header.hash
        )
        state_dir = default_state_dir()
        knobs = _run_settings(opts)
        eta = _limiter(knobs, _sendlog(state_dir, project.id).load()).eta(plan.quota_counts())
        for line in ctx.notes:
            ui.out.print(escape(line), highlight=False)
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
            return EXIT_OK
        return await _apply(
            plan,
            client=client,
            project=project,
            opts=opts,
            ui=ui,
            show_diff=False,
            verify=_verifier(job.module, params),
        )


async def apply_plan_file(path: Path, opts: EngineOptions, ui: Ui) -> int:
    """``bulkops apply PLAN``: execute exactly that plan (refused if edited or for another
    project)."""
    plan = read_plan(path)
    settings = _settings(
        opts,
        respect_reviews=plan.header.respect_reviews and not opts.no_review_header,
        key_env=_key_env(plan.header.params),
    )
    async with ConsoleClient(settings) as client:
        project = await _project(client)
        return await _apply(
            plan,
            client=client,
            project=project,
            opts=opts,
            ui=ui,
            show_diff=True,
            verify=_plan_verifier(plan),
        )


def _require_checkpoint(checkpoint: Path) -> None:
    if not checkpoint.exists():
        raise UsageError(f"checkpoint {checkpoint} does not exist")


def _plan_of(records: Sequence[Mapping[str, Any]], source: str) -> tuple[Plan, dict[str, Any]]:
    if not records or records[0].get("t") != "plan":
        raise RefusedError(f"{source}: not a bulkops checkpoint (no plan record first)")
    plan = Plan.from_json(records[0].get("plan"), source=source)
    options = records[0].get("options")
    return plan, dict(options) if isinstance(options, dict) else {}


async def resume(checkpoint: Path, opts: EngineOptions, ui: Ui) -> int:
    """``bulkops resume CKPT``: settle what is uncertain, skip what is done, continue.

    The checkpoint is locked and verified (a torn tail is repaired, damage before the
    end refused) before any request is made.
    """
    _require_checkpoint(checkpoint)
    with exclusive_lock(
        lock_path_for_journal(checkpoint), what=f"checkpoint {checkpoint}", info={"resume": True}
    ):
        journal, records = Journal.open(checkpoint)
        try:
            plan, recorded = _plan_of(records, f"checkpoint {checkpoint}")
            keys = [m.key for m in plan.mutations]
            states = replay(records, keys)
            if all(st.state in FINAL_STATES for st in states.values()):
                ui.out.print("Nothing to resume: every mutation is settled.")
                _print_counts(ui, states)
                return (
                    EXIT_OK
                    if all(st.state in ("applied", "skipped") for st in states.values())
                    else EXIT_FAILED
                )
            respect = bool(recorded.get("respect_reviews", plan.header.respect_reviews))
            settings = _settings(
                opts, respect_reviews=respect, key_env=_key_env(plan.header.params)
            )
            knobs = _run_settings(opts, recorded)
            async with ConsoleClient(settings) as client:
                project = await _project(client)
                _check_project(plan, project)
                state_dir = default_state_dir()
                with exclusive_lock(
                    lock_path_for_project(state_dir, project.id),
                    what=f"project {project.id}",
                    info={"checkpoint": str(checkpoint), "job": plan.header.job},
                ):
                    sendlog = _sendlog(state_dir, project.id)
                    history = _merge(sendlog.load(), history_from_records(records, plan))
                    todo = sum(1 for st in states.values() if st.state not in FINAL_STATES)
                    ui.err.print(
                        f"resuming {checkpoint}: {todo} of {len(plan.mutations)} mutations left "
                        f"on project {project.name} ({project.id})",
                        highlight=False,
                    )
                    return await _execute(
                        plan,
                        client=client,
                        journal=journal,
                        records=records,
                        knobs=knobs,
                        history=history,
                        sendlog=sendlog,
                        opts=opts,
                        ui=ui,
                        checkpoint=checkpoint,
                        verify=_plan_verifier(plan),
                    )
        finally:
            journal.close()


def _print_counts(ui: Ui, states: Mapping[str, KeyState]) -> None:
    counts: dict[str, int] = {}
    for st in states.values():
        counts[st.state] = counts.get(st.state, 0) + 1
    ui.out.print(", ".join(f"{k} {v}" for k, v in sorted(counts.items())), highlight=False)


def status(checkpoint: Path, ui: Ui, *, as_json: bool) -> int:
    """``bulkops status CKPT [--json]``: what the checkpoint says, read-only."""
    _require_checkpoint(checkpoint)
    records = read_records(checkpoint)
    plan, _recorded = _plan_of(records, f"checkpoint {checkpoint}")
    states = replay(records, [m.key for m in plan.mutations])
    summary = status_summary(plan, records, states)
    summary["checkpoint"] = str(checkpoint)
    if as_json:
        ui.out.print_json(json.dumps(summary))
        return EXIT_OK
    c = summary["counts"]
    ui.out.print(
        f"checkpoint {escape(str(checkpoint))}\n"
        f"  job {escape(summary['job'])}, plan {summary['plan_hash'][:12]}, created {summary['created']}\n"
        f"  project {escape(summary['target_project'])}, {summary['mutations']} mutations, "
        f"{summary['runs']} run(s)\n"
        f"  applied {c['applied']}, skipped {c['skipped']}, failed {c['failed']}, "
        f"conflict {c['conflict']}, unsettled {c['unsettled']}, not yet sent {c['pending']}",
        highlight=False,
    )
    if summary["ended_without_record"]:
        ui.out.print("  the last run ended without a record (killed?): resume reconciles it")
    for problem in summary["problems"][:20]:
        ui.out.print(
            f"  {escape(problem['state'])} {escape(problem['key'])}: {escape(str(problem['reason'] or ''))}",
            highlight=False,
        )
    ui.out.print(
        "  complete"
        if summary["complete"]
        else f"  resumable: `bulkops resume {escape(str(checkpoint))}`",
        highlight=False,
    )
    return EXIT_OK


def _undo_checkpoint(checkpoint: Path) -> Path:
    candidate = checkpoint.with_name(checkpoint.name + ".undo")
    n = 2
    while candidate.exists():
        candidate = checkpoint.with_name(f"{checkpoint.name}.undo{n}")
        n += 1
    return candidate


async def undo(checkpoint: Path, opts: EngineOptions, ui: Ui) -> int:
    """``bulkops undo CKPT [--apply]``: plan the inverses of every applied mutation in
    reverse order; dry-run unless ``--apply``; runs with its own checkpoint."""
    _require_checkpoint(checkpoint)
    with exclusive_lock(
        lock_path_for_journal(checkpoint), what=f"checkpoint {checkpoint}", info={"undo": True}
    ):
        records = read_records(checkpoint)
    plan, recorded = _plan_of(records, f"checkpoint {checkpoint}")
    states = replay(records, [m.key for m in plan.mutations])
    mutations, not_undoable = undo_mutations(plan, states)
    respect = bool(recorded.get("respect_reviews", plan.header.respect_reviews))
    settings = _settings(
        opts,
        respect_reviews=respect and not opts.no_review_header,
        key_env=_key_env(plan.header.params),
    )
    async with ConsoleClient(settings) as client:
        project = await _project(client)
        _check_project(plan, project)
        undo_plan = Plan.build(
            job="undo",
            params={"checkpoint": str(checkpoint), "plan_hash": plan.header.hash},
            projects=plan.header.projects,
            mutations=mutations,
            respect_reviews=settings.respect_reviews,
        )
        knobs = _run_settings(opts, recorded)
        eta = _limiter(knobs, _sendlog(default_state_dir(), project.id).load()).eta(
            undo_plan.quota_counts()
        )
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
            return EXIT_OK
        target = opts.checkpoint or _undo_checkpoint(checkpoint)
        return await _apply(
            undo_plan,
            client=client,
            project=project,
            opts=replace(opts, checkpoint=target),
            ui=ui,
            show_diff=False,
            recorded=recorded,
        )
