"""The job registry: every built-in job, by the name ``bulkops run NAME`` takes.

Installed as ``bulkops.jobs`` (the folder is ``jobs/`` at the top of the repository).
One module or package per job; a job's own parsers, planners and builders live with
it. The contract every job follows is :mod:`bulkops.job`. The registry is an explicit
list that fails loudly: a module without ``plan`` or ``Params``, or two jobs with one
name, is an error at import time.
"""

from __future__ import annotations

from types import ModuleType

from bulkops.job import check_job_module, job_name

from . import apply_calls, archive_gates, copy_project, import_overrides, rewrite_rules

__all__ = ["JOBS", "check_job_module", "job_name"]


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
