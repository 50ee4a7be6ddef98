"""The job author's API: everything a job module needs, from one stable import path.

A job is a module (built in under ``bulkops.jobs``, or a ``.py`` file given to ``bulkops
run``) with a docstring (its description), a ``Params`` pydantic model (its options;
``extra="forbid"``) and ``async def plan(ctx, params)`` yielding :class:`Mutation`
objects. It reads through ``ctx.client``'s resources (``ctx.client.gates.items(…)``
yields each gate as the API sent it) and never writes: the engine sends what it
yields, under the quota, journaled, resumable and undoable. A mutation's paths are
built from routes, with no I/O (``GATES.path(gate_id, "archive")``). Optionally
``async def verify(ctx, params, done) -> list[str]`` checks the result after a
complete run (each line is a difference and makes the exit code 1). A job that reads
another project takes the *name* of the variable holding its key in a ``Params`` field
ending in ``_key_env`` (copy-project's ``source_key_env``; ``target_key_env`` names the
project the plan writes to): the CLI reads every such variable once and redacts its key
everywhere, and ``ctx.open_client(variable)`` gives a read client on that project::

    from bulkops.job import GATES, Expect, InverseCall, JobContext, Mutation

See ``examples/my_job.py`` for a whole job in one file, and
:class:`~bulkops.engine.mutations.Mutation` for the contract of a mutation.
"""

from __future__ import annotations

import inspect
from collections.abc import Sequence
from types import ModuleType
from typing import TYPE_CHECKING

from pydantic import BaseModel

from .api.models import OVERRIDE_LISTS
from .api.paths import (
    DYNAMIC_CONFIGS,
    EXPERIMENTS,
    GATES,
    HOLDOUTS,
    LAYERS,
    ROUTES,
    SEGMENTS,
    TAGS,
    UNIT_ID_TYPES,
    Route,
    encode_id,
)
from .engine.mutations import CREATED_ID, Expect, InverseCall, JobContext, JobModule, Mutation
from .engine.quota import ID_LIST_CLASS, MUTATION_CLASS

if TYPE_CHECKING:
    from .api.client import ConsoleClient

__all__ = [
    "CREATED_ID",
    "DYNAMIC_CONFIGS",
    "EXPERIMENTS",
    "GATES",
    "HOLDOUTS",
    "ID_LIST_CLASS",
    "LAYERS",
    "MUTATION_CLASS",
    "OVERRIDE_LISTS",
    "ROUTES",
    "SEGMENTS",
    "TAGS",
    "UNIT_ID_TYPES",
    "Expect",
    "InverseCall",
    "JobContext",
    "JobModule",
    "Mutation",
    "Route",
    "check_job_module",
    "delete_created",
    "encode_id",
    "job_name",
    "listing",
    "unknown_tags",
]

LISTED = 50
"""How many problems an error lists before it says how many more there are."""


def delete_created(path: str) -> InverseCall:
    """The undo of a create: ``DELETE path`` while the object exists, done once it does not."""
    return InverseCall(
        method="DELETE",
        path=path,
        before=Expect(exists=True),
        after=Expect(exists=False),
        idempotent=True,
        action="delete",
    )


def listing(title: str, lines: Sequence[str], *, limit: int = LISTED) -> str:
    """``title:`` and the first ``limit`` lines, one per line, then how many more there are:
    a job's refusal names every kind of problem without flooding the terminal."""
    shown = lines[:limit]
    more = f"\n  … and {len(lines) - len(shown):,} more" if len(lines) > len(shown) else ""
    return f"{title}:\n  " + "\n  ".join(shown) + more


async def unknown_tags(client: ConsoleClient, tags: Sequence[str], project: str) -> list[str]:
    """A line per tag of ``tags`` the project behind ``client`` (``project``: how the line
    names it) does not have, naming the tags it has: a mistyped ``--tag`` selects nothing,
    and a plan should say why rather than look like a project with nothing to do."""
    if not tags:
        return []
    names = sorted({str(tag.get("name")) async for tag in client.tags.items()})
    shown = ", ".join(names[:20]) + (", …" if len(names) > 20 else "")
    return [
        f"tag {tag!r}: {project} has no such tag, so nothing carries it "
        f"(its tags: {shown or 'none'})"
        for tag in tags
        if tag not in names
    ]


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
