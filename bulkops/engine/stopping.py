"""How a run stops: the reasons (:class:`Stop`), Ctrl-C, and the waits a stop cuts short.

A stop ends dispatching: no mutation starts after it, and no attempt is sent after a
wait it interrupts (a backoff pause, a quota window), while requests already in flight
finish and their outcomes reach the journal. Ctrl-C (SIGINT/SIGTERM) stops the run the
same way (told apart: :attr:`Stop.INTERRUPTED`, :attr:`Stop.TERMINATED`, so the exit
code can follow the convention, 130 and 143); a second one cancels the requests in
flight too (their intents are reconciled on resume).
"""

from __future__ import annotations

import enum
import signal
from collections.abc import Iterator
from contextlib import contextmanager

import anyio
import structlog
from anyio import CancelScope

from .progress import EVENT_RUN_STOPPING, Observer

__all__ = ["Stop", "Stopping"]

log = structlog.get_logger()


class Stop(enum.Enum):
    """Why a run ended."""

    COMPLETE = "complete"
    INTERRUPTED = "interrupted"  # SIGINT (Ctrl-C)
    TERMINATED = "terminated"  # SIGTERM
    UNAUTHORIZED = "unauthorized"
    BUDGET = "retry budget exhausted"
    NO_SPACE = "no space"  # the journal could not be written: a full disk, a size limit


class Stopping:
    """Whether a run is stopping, and why (the first stop requested wins).

    Args:
        observer: Told once, when the stop is requested.
    """

    def __init__(self, observer: Observer) -> None:
        self.requested = False
        self.reason = Stop.COMPLETE
        self.detail = ""
        self._observer = observer
        self._event = anyio.Event()
        self._scopes: set[CancelScope] = set()

    def request(self, reason: Stop, detail: str) -> None:
        """Stop the run for ``reason`` (ignored once a stop was requested)."""
        if self.requested:
            return
        self.requested = True
        self.reason = reason
        self.detail = detail
        self._event.set()
        for scope in list(self._scopes):
            scope.cancel()  # nobody waits out a quota window to send after a stop
        log.warning(EVENT_RUN_STOPPING, reason=reason.value, detail=detail)
        self._observer.stop()

    def ended(self, reason: Stop, detail: str) -> None:
        """Record why a run that has already stopped did (an error it ended with, told
        by the caller: no warning here)."""
        self.requested = True
        self.reason = reason
        self.detail = detail

    async def watch_signals(self, scope: CancelScope) -> None:
        """Turn SIGINT/SIGTERM into a stop; a second one while stopping for a signal
        cancels ``scope``."""
        with anyio.open_signal_receiver(signal.SIGINT, signal.SIGTERM) as signals:
            async for signum in signals:
                if self.requested and self.reason in (Stop.INTERRUPTED, Stop.TERMINATED):
                    scope.cancel()
                    return
                if signum == signal.SIGTERM:
                    self.request(Stop.TERMINATED, "terminated: finishing the requests in flight")
                else:
                    self.request(Stop.INTERRUPTED, "interrupted: finishing the requests in flight")

    async def pause(self, delay: float) -> bool:
        """Sleep ``delay`` unless the run stops first; True if it is stopping."""
        if delay > 0 and not self.requested:
            with anyio.move_on_after(delay):
                await self._event.wait()
        return self.requested

    @contextmanager
    def interruptible(self) -> Iterator[None]:
        """A block that a stop requested while it runs cancels (and leaves quietly)."""
        with CancelScope() as scope:
            self._scopes.add(scope)
            try:
                yield
            finally:
                self._scopes.discard(scope)
