"""The demo: the whole product in one command, against an emulator in a child process.

``bulkops demo`` and ``scripts/demo`` (``python -m bulkops.cli.demo``) serve the ``demo``
seed from ``python -m bulkops emulator`` at a time scale, and run titled steps against
it: the census of the source project (:mod:`bulkops.cli.census`), then the real
``bulkops`` command line in child processes, as a user would run it (keys in the
environment, ``--yes`` since no one is at a terminal): plan, apply killed with SIGKILL
halfway and resumed, status, the reviews of the gates that require review approved and
committed, a rule rewrite, an override import (and a bad file refused), a project copy
with its verification, an undo, and a closing table built from the checkpoints and the
emulator's request log. Nothing leaves the machine.

* :mod:`.stage`: the emulator process, ``bulkops`` run as a user would, the output shown;
* :mod:`.steps`: the steps in order, and the closing table;
* :mod:`.main`: :func:`run_demo` and the command.
"""

from __future__ import annotations

from .main import DEFAULT_TIME_SCALE, demo_arguments, demo_command, main, run_demo
from .stage import DemoContext, DemoFailed, DemoResult, Step, Tally, excerpt, prepare_workdir
from .steps import STEPS, checkpoint_status, summary_table

__all__ = [
    "DEFAULT_TIME_SCALE",
    "STEPS",
    "DemoContext",
    "DemoFailed",
    "DemoResult",
    "Step",
    "Tally",
    "checkpoint_status",
    "demo_arguments",
    "demo_command",
    "excerpt",
    "main",
    "prepare_workdir",
    "run_demo",
    "summary_table",
]
