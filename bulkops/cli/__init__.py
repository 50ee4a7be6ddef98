"""The ``bulkops`` command line.

* :mod:`.main`: the command table (:data:`~.main.COMMANDS`), the parser, ``main()``;
* :mod:`.exit_codes`: the exit codes (the contract) and which one an error or run ends
  with;
* :mod:`.invocation`: what every command that uses a key does around its work (keys
  refused on the command line, read from the environment once, redacted in logs and
  errors);
* the engine's commands: :mod:`.engine` (their arguments) calls :mod:`.commands` (plan,
  run, apply, resume, status, undo, jobs), which composes :mod:`.job_loading` (the
  job), :mod:`.run_setup` (settings, project, limiter, checkpoint) and :mod:`.safety`
  (the rules before anything is sent), and prints through :mod:`.output` and
  :mod:`.reports`;
* the other commands: :mod:`.snapshot`, :mod:`.emulator` and :mod:`.demo` (which opens
  with :mod:`.census`).
"""

from __future__ import annotations

from .main import build_parser, main

__all__ = ["build_parser", "main"]
