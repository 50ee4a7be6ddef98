"""The exit codes of every ``bulkops`` command, and which one an error or a run ends with.

The contract other tools (CI jobs, wrappers, the soak) rely on:

    ===  =====================================================================
    0    ok: every mutation applied or skipped (or nothing to do)
    1    some items failed or conflicted, or a job's verification differs
    2    bad usage or input (options, params, a plan, a file): nothing was sent
    3    refused: a lock held, a stale or edited plan, a corrupt checkpoint,
         a key of another project, a file path that is a symbolic link
    4    cannot reach or authenticate to the API (URL, network, TLS, a bad,
         read-only or wrong-type key): nothing was sent
    5    changes are waiting for review: nothing failed, some writes opened
         reviews (the rest applied or wait behind them); resume after approval
    6    ``status``: the checkpoint has work left (resumable), or a run holds it
    7    stopped: no space left, or a file-size limit, while writing a file;
         the checkpoint is resumable once there is room
    130  interrupted (Ctrl-C): the checkpoint is resumable
    141  stdout was closed early (``bulkops plan … | head``): a quiet exit
    143  terminated (SIGTERM): the checkpoint is resumable
    ===  =====================================================================

``status`` exits 0 when the checkpoint is complete with every mutation applied or
skipped, 1 complete with failures, conflicts or rejections, 5 only reviews are left to
wait for, 6 incomplete or running, 3 damaged.
"""

from __future__ import annotations

from enum import IntEnum
from typing import TYPE_CHECKING

from ..errors import (
    ApiAccessError,
    BulkOpsError,
    InputError,
    JournalError,
    NoSpaceError,
    PlanError,
    RefusedError,
    UsageError,
)

if TYPE_CHECKING:  # the engine is imported by the commands that run it, not by every start
    from ..engine.runner import RunResult

__all__ = ["ExitCode", "exit_code_for_error", "exit_code_for_run", "exit_code_for_status"]


class ExitCode(IntEnum):
    """What a command returns (see the module docstring for the contract)."""

    OK = 0
    FAILED = 1
    USAGE = 2
    REFUSED = 3
    API_ACCESS = 4
    REVIEW_PENDING = 5
    INCOMPLETE = 6
    NO_SPACE = 7
    INTERRUPTED = 130
    BROKEN_PIPE = 141
    TERMINATED = 143


def exit_code_for_error(exc: BulkOpsError) -> ExitCode:
    """The exit code of a command that ended with ``exc``."""
    if isinstance(exc, NoSpaceError):
        return ExitCode.NO_SPACE
    if isinstance(exc, UsageError | InputError | PlanError):
        return ExitCode.USAGE
    if isinstance(exc, RefusedError | JournalError):
        return ExitCode.REFUSED
    if isinstance(exc, ApiAccessError):
        return ExitCode.API_ACCESS
    return ExitCode.FAILED


def exit_code_for_run(result: RunResult, *, applied_before: int = 0) -> ExitCode:
    """0 all applied or skipped; 5 only reviews are left to wait for; 130 interrupted
    (143 terminated); 7 no space left; 4 the key was refused (401/403) before anything
    applied (``applied_before``: mutations the checkpoint had applied when the run
    started); 1 anything else."""
    from ..engine.stopping import Stop

    if result.stop is Stop.INTERRUPTED:
        return ExitCode.INTERRUPTED
    if result.stop is Stop.TERMINATED:
        return ExitCode.TERMINATED
    if result.stop is Stop.NO_SPACE:
        return ExitCode.NO_SPACE
    if result.stop is Stop.UNAUTHORIZED and result.counts()["applied"] <= applied_before:
        return ExitCode.API_ACCESS
    if result.ok:
        return ExitCode.OK
    return ExitCode.REVIEW_PENDING if result.waiting_for_review else ExitCode.FAILED


_STATUS_CODES = {
    "complete": ExitCode.OK,
    "complete_with_problems": ExitCode.FAILED,
    "reviews_pending": ExitCode.REVIEW_PENDING,
    "incomplete": ExitCode.INCOMPLETE,
    "running": ExitCode.INCOMPLETE,
    "damaged": ExitCode.REFUSED,
}


def exit_code_for_status(state: str) -> ExitCode:
    """The exit code of ``bulkops status`` for a checkpoint in ``state`` (the ``state``
    of :func:`bulkops.cli.reports.status_summary`)."""
    return _STATUS_CODES[state]
