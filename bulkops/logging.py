"""structlog configuration: bound context, ISO UTC times, redaction, console and JSON file.

Configured once by the CLI (:func:`configure_logging`). Library modules only do
``log = structlog.get_logger()`` and emit dotted event names with key-value pairs.
The chain is ``merge_contextvars`` → ``add_log_level`` → ISO UTC ``TimeStamper`` →
exception text → **redaction** (every string, recursively, through
:func:`bulkops.errors.redact` plus the exact secrets given) → the sinks: a console
(human lines from structlog's ConsoleRenderer, coloured only on a terminal without
``NO_COLOR``, or JSON lines with ``--log-format json``; warnings and up unless verbose) and an
optional ``--log-file`` that gets every event as one JSON line (created 0600, never
through a symbolic link; an existing file keeps its mode: :func:`bulkops.files.open_append`).
Redaction runs last before rendering, so no call site can skip it. A log file that
cannot be written (a full disk) is told once on stderr and dropped: logging never stops
a run.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import IO, Any

import structlog
from structlog.typing import EventDict, WrappedLogger

from . import files
from .errors import redact

__all__ = ["LEVELS", "configure_logging", "redact_event"]

LEVELS = {"debug": 10, "info": 20, "warning": 30, "error": 40, "critical": 50}


def _scrub(value: Any, secrets: tuple[str, ...]) -> Any:
    if isinstance(value, str):
        return redact(value, *secrets)
    if isinstance(value, dict):
        return {k: _scrub(v, secrets) for k, v in value.items()}
    if isinstance(value, list | tuple | set):
        return [_scrub(v, secrets) for v in value]
    if value is None or isinstance(value, bool | int | float):
        return value
    return redact(str(value), *secrets)


def redact_event(secrets: Iterable[str]) -> Callable[[WrappedLogger, str, EventDict], EventDict]:
    """A processor that redacts key-looking tokens and ``secrets`` in every value."""
    known = tuple(s for s in secrets if s)

    def processor(logger: WrappedLogger, method: str, event_dict: EventDict) -> EventDict:
        return {k: _scrub(v, known) for k, v in event_dict.items()}

    return processor


class _Sinks:
    """The final processor: renders the (already redacted) event to each sink, then drops it."""

    def __init__(
        self,
        console: IO[str] | None,
        console_level: int,
        human: bool,
        colors: bool,
        log_file: IO[str] | None,
    ) -> None:
        self.console = console
        self.console_level = console_level
        self.log_file = log_file
        self._json = structlog.processors.JSONRenderer(sort_keys=False)
        self._pretty = (
            structlog.dev.ConsoleRenderer(
                colors=colors, exception_formatter=structlog.dev.plain_traceback
            )
            if human
            else None
        )

    def _to_file(self, line: str) -> None:
        assert self.log_file is not None
        try:
            self.log_file.write(line + "\n")
            self.log_file.flush()
        except (OSError, ValueError) as exc:
            # A log that cannot be written (the disk is full) must not stop a run:
            # say so once, on stderr, and go on without it.
            broken, self.log_file = self.log_file, None
            why = exc.strerror if isinstance(exc, OSError) else str(exc)
            name = getattr(broken, "name", "the log file")
            sys.stderr.write(
                f"warning: log file {name} could not be written ({why}); no more lines go to it\n"
            )

    def __call__(self, logger: WrappedLogger, method: str, event_dict: EventDict) -> EventDict:
        level = LEVELS.get(str(event_dict.get("level", "info")), 20)
        if self.log_file is not None:
            self._to_file(str(self._json(logger, method, dict(event_dict))))
        if level >= self.console_level:
            # Resolved at write time: a live progress bar swaps sys.stderr for a proxy
            # that prints above the bar.
            stream = self.console if self.console is not None else sys.stderr
            renderer = self._pretty or self._json
            stream.write(str(renderer(logger, method, dict(event_dict))) + "\n")
            stream.flush()
        raise structlog.DropEvent


def configure_logging(
    *,
    console: IO[str] | None = None,
    verbose: bool = False,
    log_file: Path | None = None,
    secrets: Iterable[str] = (),
    log_format: str = "human",
) -> Callable[[], None]:
    """Configure structlog for one command; returns a function that closes the log file.

    Args:
        console: Where console events go (default: stderr): human lines (coloured on a
            terminal, unless ``NO_COLOR`` is set), or JSON lines with ``log_format="json"``.
        verbose: Show info events on the console too (default: warnings and up).
        log_file: Append every event (info and up) as a JSON line; created 0600.
        secrets: Exact values to redact besides key-looking tokens (the API key).
        log_format: ``human`` or ``json``, for the console only (the file is JSON).

    Raises:
        RefusedError: ``log_file`` is a symbolic link.
        OSError: it cannot be opened.
    """
    stream = sys.stderr if console is None else console
    handle: IO[str] | None = None
    if log_file is not None:
        handle = os.fdopen(files.open_append(log_file, what="log file"), "a", encoding="utf-8")
    colors = bool(getattr(stream, "isatty", lambda: False)()) and "NO_COLOR" not in os.environ
    level = LEVELS["info" if verbose else "warning"]
    sinks = _Sinks(console, level, log_format != "json", colors, handle)
    structlog.configure(
        processors=[
            structlog.contextvars.merge_contextvars,
            structlog.processors.add_log_level,
            structlog.processors.TimeStamper(fmt="iso", utc=True),
            structlog.processors.format_exc_info,
            redact_event(secrets),
            sinks,
        ],
        # Events no sink wants are dropped before any processor runs.
        wrapper_class=structlog.make_filtering_bound_logger(
            min(sinks.console_level, LEVELS["info"] if handle is not None else LEVELS["warning"])
        ),
        logger_factory=structlog.ReturnLoggerFactory(),
        cache_logger_on_first_use=False,
    )

    def close() -> None:
        if handle is not None:
            handle.close()
        sinks.log_file = None

    return close
