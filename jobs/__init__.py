"""The job registry: every built-in job, by the name ``bulkops run NAME`` takes.

A job is a module with a docstring (its description), a ``Params`` pydantic model
(its options; ``extra="forbid"``) and ``async def plan(ctx, params)`` yielding
:class:`bulkops.mutations.Mutation` objects. It reads through ``ctx.client`` and never
writes. The registry is an explicit list that fails loudly: a module without ``plan``
or ``Params``, or two jobs with one name, is an error at import time.
"""

from __future__ import annotations

import inspect
from types import ModuleType

from pydantic import BaseModel

from . import apply_calls, archive_gates, copy_project, import_overrides, rewrite_rules

__all__ = ["JOBS", "check_job_module", "job_name"]


def job_name(module: ModuleType) -> str:
    """A job's name: its ``NAME``, else the module name with dashes (``apply-calls``)."""
    name = getattr(module, "NAME", None)
    if isinstance(name, str) and name:
        return name
    return module.__name__.rsplit(".", 1)[-1].replace("_", "-")


def check_job_module(module: ModuleType, source: str | None = None) -> ModuleType:
    """Check ``module`` has the job contract; returns it.

    Raises:
        TypeError: ``Params`` is missing or not a pydantic model, or ``plan`` is missing
            or not an async generator function.
    """
    where = source or module.__name__
    params = getattr(module, "Params", None)
    if not (isinstance(params, type) and issubclass(params, BaseModel)):
        raise TypeError(f"job {where}: needs a `Params` pydantic model")
    plan = getattr(module, "plan", None)
    if not inspect.isasyncgenfunction(plan):
        raise TypeError(f"job {where}: needs `async def plan(ctx, params)` that yields mutations")
    return module


def _registry(*modules: ModuleType) -> dict[str, ModuleType]:
    jobs: dict[str, ModuleType] = {}
    for module in modules:
        check_job_module(module)
        name = job_name(module)
        if name in jobs:
            raise ValueError(
                f"duplicate job name {name!r}: {jobs[name].__name__} and {module.__name__}"
            )
        jobs[name] = module
    return jobs


JOBS: dict[str, ModuleType] = _registry(
    apply_calls, archive_gates, copy_project, import_overrides, rewrite_rules
)
