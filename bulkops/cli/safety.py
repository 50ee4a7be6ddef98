"""The safety policy: when a writing command may send anything at all.

Every writing command (``run --apply``, ``apply``, ``resume``, ``undo --apply``) follows
these rules, in this order, and sends nothing until all of them pass:

1. the plan is verified (its hash; for a resume, the checkpoint too) and the key's
   project (``GET /project``) is the plan's target: :func:`check_project`;
2. ``--max-mutations`` refuses larger plans (:func:`check_size`); the per-project lock
   and the checkpoint's lock are taken (:func:`project_lock`, :func:`checkpoint_lock`:
   a second runner is refused, naming the holder's pid);
3. a confirmation shows the project, counts, ETA and the review header; without a
   terminal ``--yes`` is required, and a person must type the project's name or id
   (:func:`confirm`);
4. the plan is the checkpoint's first record, written before the first request
   (:func:`bulkops.cli.run_setup.create_checkpoint`).

A rule that fails raises: :class:`~bulkops.errors.RefusedError` (exit 3) for a project
mismatch or a plan too large, :class:`~bulkops.errors.UsageError` (exit 2) for a run
not confirmed. Exit codes: :mod:`bulkops.cli.exit_codes`.
"""

from __future__ import annotations

from collections.abc import Mapping
from contextlib import AbstractContextManager
from pathlib import Path
from typing import Any

from rich.markup import escape

from ..engine.locks import exclusive_lock, lock_path_for_journal, lock_path_for_project
from ..engine.plans import Plan, ProjectRef
from ..errors import RefusedError, UsageError
from .output import Ui, format_duration
from .run_setup import EngineOptions

__all__ = ["check_project", "check_size", "checkpoint_lock", "confirm", "project_lock"]


def check_project(plan: Plan, project: ProjectRef) -> None:
    """Refuse a key whose project is not the one the plan writes to.

    Raises:
        RefusedError: naming both projects.
    """
    target = plan.target_project
    if target and target != project.id:
        raise RefusedError(
            f"the key opens project {project.id} ({project.name}), but the plan writes to "
            f"project {target} ({plan.project_name(target)}); nothing was sent",
            hint="use the key of the plan's project",
        )


def check_size(plan: Plan, opts: EngineOptions) -> None:
    """Refuse a plan with more mutations than ``--max-mutations``.

    Raises:
        RefusedError: the plan is larger.
    """
    if opts.max_mutations is not None and len(plan.mutations) > opts.max_mutations:
        raise RefusedError(
            f"the plan has {len(plan.mutations)} mutations, more than --max-mutations "
            f"{opts.max_mutations}; nothing was sent"
        )


def confirm(ui: Ui, opts: EngineOptions, project: ProjectRef, plan: Plan, eta: float) -> None:
    """Show what is about to be applied, and require ``--yes`` or the project typed.

    Raises:
        UsageError: not confirmed (no terminal and no ``--yes``, or a wrong answer).
    """
    counts = ", ".join(f"{n} {action}" for action, n in plan.counts().items())
    reviews = "on" if plan.header.respect_reviews and not opts.no_review_header else "OFF"
    needing = sum(1 for m in plan.mutations if m.review)
    if needing and reviews == "on":
        reviews += f" ({needing} will open reviews)"
    about = (
        f"About to apply {len(plan.mutations)} mutations ({counts}) to project "
        f"{project.name} ({project.id}); ETA ≈ {format_duration(eta)}; review header {reviews}."
    )
    if opts.yes or not ui.interactive:
        ui.err.print(escape(about), highlight=False)
    if opts.yes:
        return
    if not ui.interactive:
        raise UsageError(
            "not confirmed: stdin is not a terminal, so --yes is required; nothing was sent",
            hint="re-run with --yes once you have checked the plan",
        )
    # With the question, whatever --quiet or --json keep off the screen.
    answer = ui.ask(f"{about}\nType the project name or id to apply: ").strip()
    if answer not in (project.id, project.name):
        raise UsageError("not confirmed; nothing was sent")


def project_lock(
    state_dir: Path, api_url: str, project_id: str, info: Mapping[str, Any]
) -> AbstractContextManager[None]:
    """Hold the host-wide lock of a project at one API URL (one writer per project: the
    quota is per project; a rehearsal on the emulator is another API, not blocked);
    ``info`` tells a refused contender who holds it.

    Raises:
        RefusedError: another process holds it (naming its pid, host and URL).
    """
    path = lock_path_for_project(state_dir, api_url, project_id)
    return exclusive_lock(path, what=f"project {project_id} at {api_url}", info=info)


def checkpoint_lock(checkpoint: Path, info: Mapping[str, Any]) -> AbstractContextManager[None]:
    """Hold the lock of one checkpoint (one process appends to it, or reads it for an undo).

    Raises:
        RefusedError: another process holds it.
    """
    path = lock_path_for_journal(checkpoint)
    return exclusive_lock(path, what=f"checkpoint {checkpoint}", info=info)
