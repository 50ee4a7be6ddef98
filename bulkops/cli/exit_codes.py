"""The exit codes of every ``bulkops`` command, and which one an error or a run ends with.

The contract other tools (CI jobs, wrappers, the soak) rely on:

    ===  =====================================================================
    0    ok: every mutation applied or skipped (or nothing to do)
    1    some items failed or conflicted, or a job's verification differs
    2    bad usage or input (options, params, a plan, a file): nothing was sent
    3    refused: a lock held, a stale or edited plan, a corrupt checkpoint,
         a key of another project
    130  interrupted (Ctrl-C, SIGTERM): the checkpoint is resumable
    ===  =====================================================================
"""

from __future__ import annotations

from enum import IntEnum
from typing import TYPE_CHECKING

from ..errors import BulkOpsError, InputError, JournalError, PlanError, RefusedError, UsageError

if TYPE_CHECKING:  # the engine is imported by the commands that run it, not by every start
    from ..engine.runner import RunResult

__all__ = ["ExitCode", "exit_code_for_error", "exit_code_for_run"]


class ExitCode(IntEnum):
    """What a command returns (see the module docstring for the contract)."""

    OK = 0
    FAILED = 1
    USAGE = 2
    REFUSED = 3
    INTERRUPTED = 130


def exit_code_for_error(exc: BulkOpsError) -> ExitCode:
    """The exit code of a command that ended with ``exc``."""
    if isinstance(exc, UsageError | InputError | PlanError):
        return ExitCode.USAGE
    if isinstance(exc, RefusedError | JournalError):
        return ExitCode.REFUSED
    return ExitCode.FAILED


def exit_code_for_run(result: RunResult) -> ExitCode:
    """0 all applied or skipped; 130 interrupted; 1 anything else."""
    from ..engine.stopping import Stop

    if result.stop is Stop.INTERRUPTED:
        return ExitCode.INTERRUPTED
    return ExitCode.OK if result.ok else ExitCode.FAILED
