"""The single journal writer: appends in call order, fsyncs on one syncer thread.

The runner's workers never touch the :class:`~bulkops.engine.journal.Journal` directly:
every record goes through one :class:`JournalWriter`, so appends never interleave, and
durability is a separate step a worker waits for only where the write-ahead rule needs
it (an intent, before its send). Group commit: one fsync covers every record appended
before it starts, so intents appended while an fsync runs share the next one.
"""

from __future__ import annotations

import asyncio
import contextlib
import threading
import time
from typing import Any

from ..errors import JournalError
from .journal import Journal

__all__ = ["GROUP_COMMIT_WINDOW", "SYNC_EVERY", "JournalWriter"]

SYNC_EVERY = 1.0  # seconds between fsyncs of outcome records (intents are always synced)
# How long the syncer thread lets intents gather before an fsync that nobody waits for
# yet (their reads are in flight): fewer fsyncs, and no send waits longer for it.
GROUP_COMMIT_WINDOW = 0.0005


class JournalWriter:
    """The single journal writer: appends in call order; fsyncs on one syncer thread.

    Records are appended straight away from the event loop's thread (one ``os.write``
    each; the loop runs one task at a time, so the order of calls is the order in the
    file). Durability is a separate step: :meth:`request` wakes a dedicated syncer
    thread, whose fsync covers every record appended before it starts (group commit:
    intents appended while an fsync runs share the next one), and :meth:`durable` waits
    for a record to be on disk. The thread tells the loop only when someone waits
    (``call_soon_threadsafe``); an fsync that nobody waits for costs the loop nothing
    but the wake-up of the thread. Outcomes are not waited for: the next intent's fsync
    or a periodic request (every ``SYNC_EVERY`` s) covers them.

    The syncer thread is asyncio's business (aiohttp, and so the runner, runs on
    asyncio only); it keeps no reference to the loop beyond the run.
    """

    def __init__(self, journal: Journal) -> None:
        self.journal = journal
        self.fsyncs = 0
        self._lock = threading.Condition()
        self._wanted = -1  # fsync until every seq up to this one is on disk
        self._waiters: list[tuple[int, asyncio.Future[None]]] = []
        self._closing = False
        self._error: JournalError | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None
        self._last_sync = time.monotonic()

    @property
    def failed(self) -> bool:
        """A write or fsync failed: the journal is unusable (its JournalError propagates)."""
        return self.journal.failed

    def start(self) -> None:
        """Start the syncer thread (in the running event loop)."""
        self._loop = asyncio.get_running_loop()
        self._thread = threading.Thread(
            target=self._sync_forever, name="bulkops-journal-sync", daemon=True
        )
        self._thread.start()

    def append(self, record: dict[str, Any]) -> int:
        """Append ``record`` now; its seq. Durable only once :meth:`durable` says so."""
        seq = self.journal.append(record)
        if time.monotonic() - self._last_sync >= SYNC_EVERY:
            self.request(seq)
        return seq

    def request(self, seq: int) -> None:
        """Have the syncer make everything through ``seq`` durable; do not wait."""
        if seq <= self._wanted or self.journal.synced_seq > seq:
            return  # already asked for (``_wanted`` only grows), or already on disk
        with self._lock:
            if seq > self._wanted:
                self._wanted = seq
                self._lock.notify()

    async def durable(self, seq: int) -> None:
        """Return once every record through ``seq`` is on disk.

        Raises:
            JournalError: The fsync failed (the journal is unusable).
        """
        if self.journal.synced_seq > seq:
            return
        assert self._loop is not None, "the writer was not started"
        future: asyncio.Future[None] = self._loop.create_future()
        with self._lock:
            if self._error is not None:
                raise self._error
            if self.journal.synced_seq > seq:
                return
            self._waiters.append((seq, future))
            if seq > self._wanted:
                self._wanted = seq
                self._lock.notify()
        await future

    async def write(self, record: dict[str, Any], *, sync: bool = False) -> int:
        """Append ``record``; its seq. With ``sync``, return only once it is on disk."""
        seq = self.append(record)
        if sync:
            await self.durable(seq)
        return seq

    async def close(self) -> None:
        """Make everything appended durable, then stop the syncer thread."""
        try:
            if not self.failed and self.journal.synced_seq < self.journal.next_seq:
                await self.durable(self.journal.next_seq - 1)
        finally:
            self.stop()

    def stop(self) -> None:
        """Stop the syncer thread once it has done what was asked (safe to call twice)."""
        with self._lock:
            self._closing = True
            self._lock.notify()
        if self._thread is not None:
            self._thread.join()
            self._thread = None

    def _sync_forever(self) -> None:
        journal = self.journal
        while True:
            with self._lock:
                while journal.synced_seq > self._wanted and not self._closing:
                    self._lock.wait()
                if journal.synced_seq > self._wanted:
                    return  # closing, and nothing left to sync
                if not self._waiters and not self._closing:
                    # Nobody waits yet (the intents' reads are in flight): let the
                    # intents of the next moment join this fsync. A waiter wakes it.
                    self._lock.wait(GROUP_COMMIT_WINDOW)
            try:
                journal.sync()  # covers every record appended before it starts
            except JournalError as exc:
                with self._lock:
                    self._error = exc
                    waiters, self._waiters = self._waiters, []
                self._notify([f for _, f in waiters], exc)
                return
            self.fsyncs += 1
            self._last_sync = time.monotonic()
            with self._lock:
                synced = journal.synced_seq
                done = [f for s, f in self._waiters if s < synced]
                if done:
                    self._waiters = [(s, f) for s, f in self._waiters if s >= synced]
            if done:
                self._notify(done, None)

    def _notify(self, futures: list[asyncio.Future[None]], error: JournalError | None) -> None:
        if not futures or self._loop is None:
            return
        with contextlib.suppress(RuntimeError):  # the loop is closed: nobody waits any more
            self._loop.call_soon_threadsafe(_settle_futures, futures, error)


def _settle_futures(futures: list[asyncio.Future[None]], error: JournalError | None) -> None:
    for future in futures:
        if not future.done():  # a waiter cancelled meanwhile
            if error is None:
                future.set_result(None)
            else:
                future.set_exception(error)
