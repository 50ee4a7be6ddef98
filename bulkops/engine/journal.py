"""The write-ahead checkpoint journal: an append-only file of framed, chained records.

Each record is one line::

    <crc32, 8 lowercase hex digits> <compact JSON object>\\n

The JSON object holds ``seq`` (0, 1, 2, …, one per line) and the caller's fields. The CRC
is **chained** as in etcd's WAL and SQLite's WAL frames: ``crc32(json_bytes, prev_crc)``
with ``prev_crc = 0`` for the first record, so a lost, reordered or edited line breaks
the chain. The first record also carries ``"format": "bulkops-journal/1"``.

Writes follow the write-ahead rules of the reliability notes (section 2): the file is
created with ``O_EXCL`` and mode 0600 and its directory is fsynced; every record goes
out in **one** ``os.write`` on an ``O_APPEND`` descriptor (short writes are errors);
fsync happens when the caller asks (before each send). A failed write or fsync makes the
journal unusable (PostgreSQL's "fsyncgate": a retried fsync can falsely succeed).

Reading applies etcd's ``Repair`` rule. Damage confined to the *end* of the file (a
torn last record, a missing final newline, zeros or garbage appended by a crash) is
backed up to ``<path>.broken.<unix time>``, truncated away and fsynced. Damage followed by
further records, or a sequence gap, is corruption: :class:`~bulkops.errors.JournalError`
naming the file and line, and nothing is changed.
"""

from __future__ import annotations

import gc
import json
import os
import time
import zlib
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType
from typing import Any

import structlog

from .. import files
from ..errors import JournalError, NoSpaceError
from ..keyguard import PATTERN_ONLY, KeyGuard

__all__ = [
    "JOURNAL_FORMAT",
    "Damage",
    "Journal",
    "read_prefix",
    "read_records",
]

log = structlog.get_logger()

JOURNAL_FORMAT = "bulkops-journal/1"

EVENT_REPAIRED = "journal.repaired"

_HEX = frozenset(b"0123456789abcdef")
_DECODER = json.JSONDecoder()
_CRC_WIDTH = 8
_NEWLINE = b"\n"


# ensure_ascii (the default) keeps every line pure ASCII; compact separators, no NaN.
# One encoder for every record: json.dumps with arguments builds a new one per call.
_ENCODE = json.JSONEncoder(separators=(",", ":"), allow_nan=False).encode


def _frame(
    seq: int, record: Mapping[str, Any], prev_crc: int, guard: KeyGuard | None = None
) -> tuple[bytes, int]:
    body: dict[str, Any] = {"seq": seq}
    body.update(record)
    body["seq"] = seq  # a caller's own "seq" never overrides the frame's
    text = _ENCODE(body)
    if guard is not None and guard.holds_key(text):
        raise _key_in_record(body, guard)
    payload = text.encode("ascii")
    crc = zlib.crc32(payload, prev_crc)
    return b"%08x %s\n" % (crc, payload), crc


def _key_in_record(record: Mapping[str, Any], guard: KeyGuard) -> JournalError:
    key = record.get("key")
    named = f" of mutation {key}" if isinstance(key, str) and not guard.holds_key(key) else ""
    where = guard.find(dict(record)) or "?"
    return JournalError(
        f"a checkpoint record ({record.get('t', '?')}{named}) would hold an API key in its "
        f"field {where}; it was not written (a checkpoint never holds a key)",
        hint="resume later settles by a read whatever this record would have said",
    )


def _parse(line: bytes, prev_crc: int) -> tuple[dict[str, Any] | None, int, str]:
    """Check one line against the chain: (record or None, its crc, problem)."""
    if len(line) < _CRC_WIDTH + 3 or line[_CRC_WIDTH] != 0x20:
        return None, 0, "not a journal frame"
    payload = line[_CRC_WIDTH + 1 :]
    crc = zlib.crc32(payload, prev_crc)
    if b"%08x" % crc != line[:_CRC_WIDTH]:
        return None, crc, "CRC mismatch"
    # end != len(text) catches trailing data after the object.
    try:
        text = payload.decode("ascii")
        record, end = _DECODER.raw_decode(text)
    except ValueError:  # UnicodeDecodeError is a ValueError
        return None, crc, "CRC matches but the JSON is invalid"
    if end != len(text) or not isinstance(record, dict):
        return None, crc, "CRC matches but the record is not one JSON object"
    return record, crc, ""


def _looks_like_record(line: bytes) -> bool:
    """A well-formed frame whose JSON has a seq, whatever its CRC: a real record, not residue."""
    if len(line) < _CRC_WIDTH + 3 or line[_CRC_WIDTH] != 0x20:
        return False
    if not _HEX.issuperset(line[:_CRC_WIDTH]):
        return False
    try:
        record = json.loads(line[_CRC_WIDTH + 1 :])
    except ValueError:
        return False
    return isinstance(record, dict) and isinstance(record.get("seq"), int)


@dataclass(frozen=True)
class Damage:
    """Where a journal is damaged before its end: the 1-based line, its byte offset,
    what is wrong (``CRC mismatch``…), and the whole message."""

    line: int
    offset: int
    problem: str
    message: str


@dataclass
class _Scan:
    records: list[dict[str, Any]]
    crc: int  # chained CRC of the last valid record
    good_end: int  # byte offset just after the last valid record
    torn: bool  # bytes after good_end form a torn tail to cut away
    torn_line: int  # 1-based line number where the torn tail starts
    damage: Damage | None = None  # corruption before the end (only with keep_prefix)


def _scan(path: Path, data: bytes, *, keep_prefix: bool = False) -> _Scan:
    """Verify the whole file; raise JournalError for corruption (or, with
    ``keep_prefix``, return the records before it and where it is), report a torn tail."""
    # Decoding 100,000 small dicts triggers many generation-0/1 collections that find
    # nothing (the records hold no cycles); pausing the cyclic GC saves about 20%.
    gc_was_enabled = gc.isenabled()
    gc.disable()
    try:
        scan = _scan_unpaused(path, data)
    finally:
        if gc_was_enabled:
            gc.enable()
    if scan.damage is not None and not keep_prefix:
        raise JournalError(
            scan.damage.message,
            hint=f"keep the file for inspection; `bulkops status {path}` shows what the "
            f"records before the damage say, `bulkops undo {path} --from-damaged` undoes "
            "what they applied",
        )
    return scan


def _scan_unpaused(path: Path, data: bytes) -> _Scan:
    lines = data.split(_NEWLINE)
    tail = lines.pop()  # b"" when the file ends with a newline, else an unterminated line
    records: list[dict[str, Any]] = []
    prev = 0
    offset = 0
    bad_index: int | None = None
    damage: Damage | None = None
    problem = ""
    # The hot loop inlines _parse (100,000 records must verify well under 2 s); any line
    # that fails a check goes through _parse again to name the problem. raw_decode on a
    # str skips json.loads' encoding sniffing and wrappers: about 3x faster per line.
    crc32, raw_decode, append = zlib.crc32, _DECODER.raw_decode, records.append
    for index, line in enumerate(lines):
        payload = line[_CRC_WIDTH + 1 :]
        crc = crc32(payload, prev)
        if line[_CRC_WIDTH : _CRC_WIDTH + 1] == b" " and b"%08x" % crc == line[:_CRC_WIDTH]:
            try:
                text = payload.decode("ascii")
                record, end = raw_decode(text)
            except ValueError:
                text, record, end = "", None, -1
            if end == len(text) and type(record) is dict and record.get("seq") == index:
                append(record)
                prev = crc
                offset += len(line) + 1
                continue
        parsed, crc, problem = _parse(line, prev)
        if parsed is None:
            bad_index = index
            break
        # CRC and JSON are fine, so the seq is what failed. A line with a valid CRC cannot
        # be a torn write: a wrong seq is a gap or an edit.
        problem = f"sequence gap (expected seq {index}, found {parsed.get('seq')!r})"
        message = (
            f"journal {path}: line {index + 1} (byte offset {offset}): {problem}; the journal "
            "was edited or records were lost, so it is not used"
        )
        damage = Damage(index + 1, offset, problem, message)
        break

    torn, torn_line = False, 0
    if damage is None and bad_index is not None:
        # etcd's rule: only damage at the very end is a torn write. Anything that still
        # looks like a record after the bad line means the middle of the file is damaged.
        later = lines[bad_index + 1 :]
        if any(_looks_like_record(line) for line in later) or _looks_like_record(tail):
            message = (
                f"journal {path}: line {bad_index + 1} (byte offset {offset}): {problem}, and "
                "records follow it; this is corruption, not a torn write, so it was not repaired"
            )
            damage = Damage(bad_index + 1, offset, problem, message)
        else:
            torn, torn_line = True, bad_index + 1
    elif damage is None:
        torn, torn_line = bool(tail), len(lines) + 1

    if damage is not None and not records:
        raise JournalError(
            damage.message, hint="its first line is damaged; keep the file for inspection"
        )
    if not records:
        # Only a journal's first record, cut short, proves that nothing was sent under
        # it: every intent comes after that record. Anything else proves nothing.
        only_first = bad_index is None or (not any(lines[1:]) and not tail)
        raise JournalError(
            f"journal {path} holds no complete record"
            + (f" (line 1: {problem})" if bad_index == 0 else ""),
            hint="its first record (the plan) was being written when the process stopped: "
            "no intent was ever recorded after it, so nothing was sent under it"
            if only_first
            else "its first line is damaged, so it cannot tell what was sent; keep it for "
            "inspection",
        )
    if records[0].get("format") != JOURNAL_FORMAT:
        raise JournalError(
            f"journal {path}: line 1: not a {JOURNAL_FORMAT} journal "
            f"(format {records[0].get('format')!r})"
        )
    return _Scan(records, prev, offset, torn, torn_line, damage)


def _open(path: Path, flags: int) -> int:
    """Open a journal (never through a symlink) and check that it is private."""
    try:
        return files.open_private(path, flags | os.O_NOFOLLOW, what="journal")
    except OSError as exc:
        raise JournalError(f"journal {path} could not be opened: {exc.strerror}") from exc


def _backup(path: Path, data: bytes) -> Path:
    stamp = int(time.time())
    for n in range(1000):
        suffix = f".broken.{stamp}" if n == 0 else f".broken.{stamp}.{n}"
        backup = path.with_name(path.name + suffix)
        try:
            fd = files.create_private(backup)
        except FileExistsError:
            continue
        try:
            files.write_all(fd, data)
            files.fsync(fd)
        finally:
            os.close(fd)
        return backup
    raise JournalError(f"journal {path}: could not create a .broken backup")  # pragma: no cover


class Journal:
    """An open journal, ready for appends. Use :meth:`create` or :meth:`open`.

    Not safe for concurrent writers: one task appends (the runner's single writer), and
    an exclusive lock (:func:`bulkops.engine.locks.exclusive_lock`) keeps other processes out.
    """

    path: Path

    def __init__(
        self, path: Path, fd: int, next_seq: int, crc: int, guard: KeyGuard = PATTERN_ONLY
    ) -> None:
        """Wrap an open append descriptor; use :meth:`create` or :meth:`open` instead."""
        self.path = path
        self.guard = guard
        self._fd: int | None = fd
        self._next_seq = next_seq
        self._crc = crc
        self._synced_seq = next_seq  # every record below this seq is on disk
        self._failed: str | None = None
        self._error: NoSpaceError | None = None  # no room: every later write says so too

    @classmethod
    def create(
        cls, path: Path, first: Mapping[str, Any], *, guard: KeyGuard = PATTERN_ONLY
    ) -> Journal:
        """Create a new journal whose first record (seq 0) is ``first``.

        The file is created with ``O_EXCL`` and mode 0600; the record is written and the
        file and its directory are fsynced before this returns.

        Args:
            path: The journal file; its directory is created (0700) if missing.
            first: The header record (``{"t": "plan", ...}``); ``format`` is added.
            guard: Refuses any record holding an API key (give it the run's keys).

        Returns:
            The journal, open for appends.

        Raises:
            JournalError: The file already exists or could not be written, or ``first``
                holds an API key (then no file is left behind).
        """
        _frame(0, {"format": JOURNAL_FORMAT, **first}, 0, guard)  # refused before creating
        files.private_directory(path.parent)
        try:
            fd = files.create_private(path, append=True)
        except FileExistsError:
            raise JournalError(
                f"journal {path} already exists", hint="resume it, or choose another path"
            ) from None
        except OSError as exc:
            if exc.errno in files.NO_SPACE:
                raise files.no_space(path, exc.strerror) from exc
            raise JournalError(f"journal {path} could not be created: {exc.strerror}") from exc
        journal = cls(path, fd, 0, 0, guard)
        try:
            journal.append({"format": JOURNAL_FORMAT, **first}, sync=True)
            files.fsync_directory(path.parent)
        except BaseException:
            empty = os.fstat(fd).st_size == 0
            journal.close()
            if empty:  # refused before a byte was written (a key in it): leave nothing
                path.unlink(missing_ok=True)
            raise
        return journal

    @classmethod
    def open(
        cls, path: Path, *, guard: KeyGuard = PATTERN_ONLY
    ) -> tuple[Journal, list[dict[str, Any]]]:
        """Open an existing journal for appending, after verifying every record.

        A torn tail is repaired: the file is copied to ``<path>.broken.<unix time>``
        (0600), truncated after the last valid record and fsynced.

        Args:
            path: The journal file.
            guard: Refuses any record appended that holds an API key.

        Returns:
            The journal, open for appends, and its valid records in order.

        Raises:
            RefusedError: The file is group/other-accessible, not ours, or not a file.
            JournalError: Damage before the last record, a sequence gap, no complete
                first record, or an I/O error. Nothing was changed.
        """
        fd = _open(path, os.O_RDWR | os.O_APPEND)
        try:
            data = files.read_all(fd)
            scan = _scan(path, data)
            if scan.torn:
                backup = _backup(path, data)
                os.ftruncate(fd, scan.good_end)
                files.fsync(fd)
                files.fsync_directory(path.parent)
                log.warning(
                    EVENT_REPAIRED,
                    path=str(path),
                    line=scan.torn_line,
                    kept=len(scan.records),
                    cut_bytes=len(data) - scan.good_end,
                    backup=str(backup),
                )
        except OSError as exc:
            os.close(fd)
            raise JournalError(f"journal {path} could not be read: {exc.strerror}") from exc
        except BaseException:
            os.close(fd)
            raise
        return cls(path, fd, len(scan.records), scan.crc, guard), scan.records

    @property
    def next_seq(self) -> int:
        """The seq the next appended record will get."""
        return self._next_seq

    def _usable_fd(self) -> int:
        if self._error is not None:  # the same error again: one reason for one stop
            raise type(self._error)(self._error.message, hint=self._error.hint)
        if self._failed is not None:
            raise JournalError(f"journal {self.path} is unusable after an error: {self._failed}")
        if self._fd is None:
            raise JournalError(f"journal {self.path} is closed")
        return self._fd

    def _fail(self, what: str, exc: OSError | None = None) -> JournalError:
        self._failed = what
        detail = f": {exc.strerror}" if exc is not None else ""
        # A short write to a regular file means no room (the next write fails with
        # ENOSPC or EFBIG); either way nothing can follow it.
        if exc is None or exc.errno in files.NO_SPACE:
            self._error = NoSpaceError(
                f"no space left while writing {self.path} ({what}{detail}); stopped; resume "
                "when there is room",
                hint=f"free some space (or raise the file-size limit), then `bulkops resume "
                f"{self.path}`: the records written are intact, and a cut last line is "
                "repaired",
            )
            return self._error
        return JournalError(
            f"journal {self.path}: {what}{detail}; stopping (resume reconciles the rest)"
        )

    def append(self, record: Mapping[str, Any], *, sync: bool = False) -> int:
        """Append one record in a single ``os.write``.

        Args:
            record: JSON-serialisable fields (``t`` and the rest); ``seq`` is assigned.
            sync: fsync before returning (do this for intents, before the send).

        Returns:
            The record's seq.

        Raises:
            JournalError: The write was short or failed, or the fsync failed; the journal
                is unusable afterwards. Or the record holds an API key (nothing
                written; the journal stays usable).
            TypeError, ValueError: The record is not JSON-serialisable (nothing written).
        """
        fd = self._usable_fd()
        line, crc = _frame(self._next_seq, record, self._crc, self.guard)
        try:
            written = os.write(fd, line)
        except OSError as exc:
            raise self._fail("write failed", exc) from exc
        if written != len(line):
            raise self._fail(f"short write ({written} of {len(line)} bytes)")
        seq = self._next_seq
        self._next_seq += 1
        self._crc = crc
        if sync:
            self.sync()
        return seq

    @property
    def failed(self) -> bool:
        """A write or fsync failed: every further append or sync raises."""
        return self._failed is not None

    @property
    def synced_seq(self) -> int:
        """Every record with a seq below this one is on disk."""
        return self._synced_seq

    def sync(self) -> int:
        """fsync the file. A failure makes the journal unusable (never retry an fsync).

        May run in a worker thread while the owning thread keeps appending: records
        appended before the call are covered, later ones may or may not be.

        Returns:
            The seq below which every record is now durable.

        Raises:
            JournalError: The fsync failed.
        """
        target = self._next_seq
        fd = self._usable_fd()
        try:
            files.fsync(fd)
        except OSError as exc:
            raise self._fail("fsync failed", exc) from exc
        if target > self._synced_seq:
            self._synced_seq = target
        return target

    def close(self) -> None:
        """fsync pending appends and close. Safe to call twice."""
        if self._fd is None:
            return
        fd, self._fd = self._fd, None
        try:
            if self._synced_seq < self._next_seq and self._failed is None:
                try:
                    files.fsync(fd)
                except OSError as exc:
                    self._failed = "fsync failed"
                    raise JournalError(
                        f"journal {self.path}: fsync on close failed: {exc.strerror}"
                    ) from exc
        finally:
            os.close(fd)

    def __enter__(self) -> Journal:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    def __repr__(self) -> str:
        state = "closed" if self._fd is None else ("failed" if self._failed else "open")
        return f"Journal({str(self.path)!r}, next_seq={self._next_seq}, {state})"


def _read(path: Path) -> bytes:
    """A journal's bytes, read-only (never through a link; refused if not private)."""
    fd = _open(path, os.O_RDONLY)
    try:
        return files.read_all(fd)
    except OSError as exc:
        raise JournalError(f"journal {path} could not be read: {exc.strerror}") from exc
    finally:
        os.close(fd)


def read_records(path: Path, *, strict: bool = False) -> list[dict[str, Any]]:
    """Read and verify a journal without changing it.

    Args:
        path: The journal file.
        strict: Also raise for a torn tail. By default the valid prefix is returned,
            exactly the records :meth:`Journal.open` would keep after its repair.

    Returns:
        The valid records in order.

    Raises:
        RefusedError: The file is group/other-accessible, not ours, or not a file.
        JournalError: Corruption before the last record, a sequence gap, no complete
            first record, a torn tail when ``strict``, or an I/O error.
    """
    data = _read(path)
    scan = _scan(path, data)
    if strict and scan.torn:
        raise JournalError(
            f"journal {path}: line {scan.torn_line}: torn tail "
            f"({len(data) - scan.good_end} bytes after the last valid record)",
            hint="opening it for a resume repairs it",
        )
    return scan.records


def read_prefix(path: Path) -> tuple[list[dict[str, Any]], Damage | None]:
    """Read a journal without changing it, keeping what is verified before any damage.

    Unlike :func:`read_records`, damage before the end is not an error: the records
    before it (each one's CRC chained from the first, so none of them was changed) are
    returned with where the damage is. What follows the damage is not trusted, so a
    resume stays refused; ``status`` and ``undo --from-damaged`` use the prefix.

    Returns:
        The verified records (a torn tail cut, as :func:`read_records` does), and the
        damage (None when there is none before the end).

    Raises:
        RefusedError: The file is group/other-accessible, not ours, or not a file.
        JournalError: No verified first record, or an I/O error.
    """
    scan = _scan(path, _read(path), keep_prefix=True)
    return scan.records, scan.damage
