"""structlog configuration: bound context, ISO UTC times, redaction, console and JSON file.

Configured once by the CLI (:func:`configure_logging`). Library modules only do
``log = structlog.get_logger()`` and emit dotted event names with key-value pairs.
The chain is ``merge_contextvars`` → ``add_log_level`` → ISO UTC ``TimeStamper`` →
exception text → **redaction** (every string, recursively, through
:func:`bulkops.errors.redact` plus the exact secrets given) → the sinks: a console
(ConsoleRenderer on a terminal, JSON otherwise; warnings and up unless verbose) and an
optional ``--log-file`` that gets every event as one JSON line (created 0600, never
through a symbolic link; an existing file keeps its mode: :func:`bulkops.files.open_append`).
Redaction runs last before rendering, so no call site can skip it.
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
        pretty: bool,
        log_file: IO[str] | None,
    ) -> None:
        self.console = console
        self.console_level = console_level
        self.log_file = log_file
        self._json = structlog.processors.JSONRenderer(sort_keys=False)
        self._pretty = (
            structlog.dev.ConsoleRenderer(
                colors=True, exception_formatter=structlog.dev.plain_traceback
            )
            if pretty
            else None
        )

    def __call__(self, logger: WrappedLogger, method: str, event_dict: EventDict) -> EventDict:
        level = LEVELS.get(str(event_dict.get("level", "info")), 20)
        if self.log_file is not None:
            self.log_file.write(str(self._json(logger, method, dict(event_dict))) + "\n")
            self.log_file.flush()
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
) -> Callable[[], None]:
    """Configure structlog for one command; returns a function that closes the log file.

    Args:
        console: Where console events go (default: stderr). Pretty on a terminal,
            JSON lines otherwise.
        verbose: Show info events on the console too (default: warnings and up).
        log_file: Append every event (info and up) as a JSON line; created 0600.

    Raises:
        RefusedError: ``log_file`` is a symbolic link.
        OSError: it cannot be opened.
        secrets: Exact values to redact besides key-looking tokens (the API key).
    """
    stream = sys.stderr if console is None else console
    handle: IO[str] | None = None
    if log_file is not None:
        handle = os.fdopen(files.open_append(log_file, what="log file"), "a", encoding="utf-8")
    pretty = bool(getattr(stream, "isatty", lambda: False)())
    sinks = _Sinks(console, LEVELS["info" if verbose else "warning"], pretty, handle)
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
