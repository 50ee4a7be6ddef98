"""Loading a job: a built-in by name or a ``.py`` file, its options, its verify hook.

:func:`load_job` finds the module (:class:`LoadedJob`), :func:`parse_params` validates
the options given on the command line into its ``Params``, and :func:`job_verifier` /
:func:`plan_verifier` wrap its optional ``verify`` hook, which the commands call after a
run that applied or skipped everything. How the options become command-line flags is
:mod:`bulkops.cli.engine`'s business; what the job contract is, :mod:`bulkops.job`'s.
"""

from __future__ import annotations

import importlib.util
import re
import sys
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType
from typing import Any

import structlog
from pydantic import BaseModel, ValidationError

from ..api.client import ConsoleClient
from ..engine.mutations import JobContext
from ..engine.plans import Plan
from ..engine.runner import RunResult
from ..errors import InputError, UsageError
from ..inputs import check_source
from ..settings import ApiKeys
from .run_setup import OtherClients

__all__ = [
    "LoadedJob",
    "Verifier",
    "builtin_jobs",
    "job_verifier",
    "load_job",
    "parse_params",
    "plan_verifier",
]

# After a run that ended with every mutation applied or skipped: the job's own check
# of the result (``async def verify(ctx, params, done) -> list[str]`` in the job
# module, ``done`` being those mutations); each line is printed and turns exit 0 into 1.
Verifier = Callable[[Plan, RunResult, ConsoleClient], Awaitable[list[str]]]


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


def builtin_jobs() -> list[LoadedJob]:
    """Every built-in job, in the registry's order."""
    from ..jobs import JOBS

    return [LoadedJob(name, module) for name, module in JOBS.items()]


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
    check_source(path, what="job file")
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
    except SyntaxError as exc:
        raise InputError(
            f"job file {spec}: line {exc.lineno}, column {exc.offset}: {exc.msg}; nothing was sent"
        ) from None
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


def job_verifier(module: ModuleType, params: BaseModel, keys: ApiKeys) -> Verifier | None:
    """The job's ``verify`` hook as a :data:`Verifier` (None if it has none).

    The hook gets a :class:`JobContext` on the run's client; clients it opens on other
    projects use the keys read for the command, and are closed after it.
    """
    hook = getattr(module, "verify", None)
    if hook is None:
        return None

    async def verify(plan: Plan, result: RunResult, client: ConsoleClient) -> list[str]:
        others = OtherClients(keys, client.settings)
        ctx = JobContext(
            client=client,
            project_id=plan.target_project,
            project_name=plan.project_name(plan.target_project),
            settings=client.settings,
            log=structlog.get_logger(job=plan.header.job),
            plan_id=plan.header.plan_id,
            open_client=others.open,
        )
        done = [m for m in plan.mutations if result.states[m.key].state in ("applied", "skipped")]
        try:
            return [str(line) for line in await hook(ctx, params, done)]
        finally:
            await others.aclose()

    return verify


def plan_verifier(plan: Plan, keys: ApiKeys) -> Verifier | None:
    """The verify hook of a built-in job's plan (None for file jobs and undo plans)."""
    from ..jobs import JOBS

    module = JOBS.get(plan.header.job)
    if module is None or getattr(module, "verify", None) is None:
        return None
    try:
        params = module.Params.model_validate(plan.header.params)
    except ValidationError:
        return None
    return job_verifier(module, params, keys)
