"""The checkpoint journal: framing, chained CRCs, torn-tail repair, corruption refusal."""

from __future__ import annotations

import json
import os
import random
import stat
import time
import zlib
from pathlib import Path
from typing import Any

import pytest
from structlog.testing import capture_logs

from bulkops.engine.journal import JOURNAL_FORMAT, Journal, read_records
from bulkops.errors import JournalError, NoSpaceError, RefusedError
from bulkops.keyguard import KeyGuard

PLAN = {"t": "plan", "plan": {"job": "archive-gates", "project": "p1", "sha256": "ab" * 32}}


def intent(i: int) -> dict[str, Any]:
    return {"t": "intent", "key": f"gate:archive:g{i}", "attempt": 1, "at": 1.7e9 + i}


def outcome(i: int) -> dict[str, Any]:
    return {
        "t": "outcome",
        "key": f"gate:archive:g{i}",
        "result": "applied",
        "status": 200,
        "error": None,
        "attempts": 1,
        "at": 1.7e9 + i,
    }


def write_journal(path: Path, n: int) -> list[dict[str, Any]]:
    """A journal of ``n`` records (plan, then intent/outcome pairs); returns its records."""
    with Journal.create(path, PLAN) as journal:
        for i in range(n - 1):
            journal.append(intent(i // 2) if i % 2 == 0 else outcome(i // 2))
    return read_records(path)


def frame(seq: int, record: dict[str, Any], prev: int) -> tuple[bytes, int]:
    """Frame a record by hand, as a corrupting writer would."""
    payload = json.dumps({"seq": seq, **record}, separators=(",", ":")).encode()
    crc = zlib.crc32(payload, prev)
    return b"%08x %s\n" % (crc, payload), crc


def line_starts(data: bytes) -> list[int]:
    starts = [0]
    starts += [i + 1 for i, byte in enumerate(data) if byte == 0x0A][:-1]
    return starts


def put(path: Path, data: bytes) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data)
    path.chmod(0o600)


def broken_files(path: Path) -> list[Path]:
    return sorted(path.parent.glob(path.name + ".broken.*"))


def count_calls(monkeypatch: pytest.MonkeyPatch, name: str) -> list[tuple[Any, ...]]:
    """Record every call of ``os.<name>`` (still performing it) while the test runs."""
    calls: list[tuple[Any, ...]] = []
    real = getattr(os, name)

    def spy(*args: Any) -> Any:
        calls.append(args)
        return real(*args)

    monkeypatch.setattr(os, name, spy)
    return calls


@pytest.fixture(name="path")
def _path(tmp_path: Path) -> Path:
    """Where the journal under test lives."""
    return tmp_path / "run" / "journal.jsonl"


# --- writing ----------------------------------------------------------------------------


def test_create_append_open_round_trip(path: Path):
    """Records come back in order with seq and format; appends continue the chain."""
    with Journal.create(path, PLAN) as journal:
        assert journal.append(intent(0), sync=True) == 1
        assert journal.append(outcome(0)) == 2
    reopened, records = Journal.open(path)
    with reopened:
        assert [r["seq"] for r in records] == [0, 1, 2]
        assert records[0] == {"seq": 0, "format": JOURNAL_FORMAT, **PLAN}
        assert records[1] == {"seq": 1, **intent(0)}
        assert reopened.next_seq == 3
        assert reopened.append({"t": "run", "event": "complete", "seq": 99}) == 3
    assert read_records(path)[-1] == {"seq": 3, "t": "run", "event": "complete"}


def test_line_framing(path: Path):
    """Each line is '<crc32 hex> <compact json>' with the CRC chained from the previous one."""
    write_journal(path, 3)
    prev = 0
    for line in path.read_bytes().splitlines():
        crc_hex, payload = line.split(b" ", 1)
        assert b", " not in payload and b": " not in payload
        prev = zlib.crc32(payload, prev)
        assert crc_hex == b"%08x" % prev


def test_files_are_private(path: Path):
    """The journal is created 0600 in a 0700 directory, whatever the umask."""
    old = os.umask(0)
    try:
        write_journal(path, 2)
    finally:
        os.umask(old)
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert stat.S_IMODE(path.parent.stat().st_mode) == 0o700


def test_create_refuses_an_existing_file(path: Path):
    """create() never overwrites: O_EXCL."""
    write_journal(path, 2)
    before = path.read_bytes()
    with pytest.raises(JournalError, match="already exists"):
        Journal.create(path, PLAN)
    assert path.read_bytes() == before


def test_one_write_per_record_and_fsync_only_on_request(path: Path, monkeypatch):
    """A record is a single os.write, even a large one; fsync happens only with sync=True."""
    journal = Journal.create(path, PLAN)
    writes = count_calls(monkeypatch, "write")
    fsyncs = count_calls(monkeypatch, "fsync")
    journal.append({"t": "intent", "key": "k", "blob": "x" * 200_000})
    assert len(writes) == 1 and len(writes[0][1]) > 200_000
    assert fsyncs == []
    journal.append(intent(1), sync=True)
    assert len(writes) == 2 and len(fsyncs) == 1
    journal.close()  # nothing unsynced: no extra fsync
    assert len(fsyncs) == 1


def test_close_syncs_pending_appends_and_is_idempotent(path: Path, monkeypatch):
    """close() fsyncs unsynced records once; closing twice is harmless."""
    journal = Journal.create(path, PLAN)
    journal.append(intent(0))
    fsyncs = count_calls(monkeypatch, "fsync")
    journal.close()
    journal.close()
    assert len(fsyncs) == 1
    with pytest.raises(JournalError, match="closed"):
        journal.append(intent(1))


def test_short_write_makes_the_journal_unusable(path: Path, monkeypatch):
    """A short write (a full disk, a file-size limit) raises NoSpaceError, and every
    later append is refused with the same error: one reason for the stop."""
    journal = Journal.create(path, PLAN)
    real_write = os.write
    monkeypatch.setattr(os, "write", lambda fd, data: real_write(fd, data[:10]))
    with pytest.raises(NoSpaceError, match=r"no space left while writing .*short write"):
        journal.append(intent(0))
    monkeypatch.setattr(os, "write", real_write)
    with pytest.raises(NoSpaceError, match="short write"):
        journal.append(intent(1))
    journal.close()
    # What reached the disk is a torn tail, which the next open repairs.
    _, records = Journal.open(path)
    assert len(records) == 1


def test_failed_fsync_is_never_retried(path: Path, monkeypatch):
    """A failed fsync raises JournalError and the journal refuses further use (fsyncgate)."""
    journal = Journal.create(path, PLAN)

    def failing_fsync(fd: int) -> None:
        raise OSError(5, "Input/output error")

    monkeypatch.setattr(os, "fsync", failing_fsync)
    with pytest.raises(JournalError, match="fsync failed"):
        journal.append(intent(0), sync=True)
    with pytest.raises(JournalError, match="unusable"):
        journal.sync()
    journal.close()  # does not try the fsync again


def test_unserialisable_record_writes_nothing(path: Path):
    """A record that is not JSON is a programming error and leaves the journal usable."""
    with Journal.create(path, PLAN) as journal:
        with pytest.raises(TypeError):
            journal.append({"t": "intent", "key": object()})
        with pytest.raises(ValueError):
            journal.append({"t": "intent", "at": float("nan")})
        assert journal.append(intent(0)) == 1
    assert len(read_records(path)) == 2


def test_non_ascii_values_round_trip(path: Path):
    """Lines are pure ASCII; unicode values survive."""
    with Journal.create(path, PLAN) as journal:
        journal.append({"t": "outcome", "key": "gate:é✓", "error": "naïve\nline"})
    assert path.read_bytes().isascii()
    assert read_records(path)[1]["key"] == "gate:é✓"


# --- torn tails -------------------------------------------------------------------------


def test_cut_last_record_at_every_offset_is_repaired(tmp_path: Path):
    """A crash at any byte of the last record leaves a file that opens with the valid prefix."""
    original = tmp_path / "full" / "journal.jsonl"
    records = write_journal(original, 4)
    data = original.read_bytes()
    last_start = line_starts(data)[-1]
    for cut in range(last_start + 1, len(data)):  # cut == len - 1 loses only the newline
        path = tmp_path / f"cut{cut}" / "journal.jsonl"
        path.parent.mkdir()
        put(path, data[:cut])
        journal, got = Journal.open(path)
        assert got == records[:-1], cut
        assert path.read_bytes() == data[:last_start]
        [backup] = broken_files(path)
        assert backup.read_bytes() == data[:cut]
        assert stat.S_IMODE(backup.stat().st_mode) == 0o600
        # The repaired journal takes appends and verifies again.
        assert journal.append(records[-1]) == 3
        journal.close()
        assert read_records(path, strict=True) == records


def test_cut_exactly_at_a_record_boundary_needs_no_repair(path: Path):
    """A file that ends right after a complete record is simply shorter."""
    records = write_journal(path, 4)
    data = path.read_bytes()
    put(path, data[: line_starts(data)[-1]])
    journal, got = Journal.open(path)
    journal.close()
    assert got == records[:-1]
    assert broken_files(path) == []


@pytest.mark.parametrize("size", [1, 2, 9, 10, 63, 512, 4095, 4096])
@pytest.mark.parametrize("kind", ["zeros", "random"])
def test_appended_garbage_is_repaired(path: Path, size: int, kind: str):
    """Zeros or random bytes after the last record (a crash mid-append) are cut away."""
    records = write_journal(path, 5)
    data = path.read_bytes()
    rng = random.Random(size)
    garbage = bytes(size) if kind == "zeros" else rng.randbytes(size)
    put(path, data + garbage)
    with capture_logs() as logs:
        journal, got = Journal.open(path)
    journal.close()
    assert got == records
    assert path.read_bytes() == data
    assert len(broken_files(path)) == 1
    assert logs[0]["event"] == "journal.repaired"
    assert logs[0]["cut_bytes"] == size


def test_garbage_with_newlines_and_a_frame_prefix_is_repaired(path: Path):
    """Several garbage lines, even one that starts like a frame, are still a torn tail."""
    records = write_journal(path, 3)
    data = path.read_bytes()
    put(path, data + b'\n\n0000ffff {"seq"\n\x00\x00garbage\nzzzz')
    journal, got = Journal.open(path)
    journal.close()
    assert got == records


@pytest.mark.parametrize("record", [1, 3])
def test_flipped_byte_in_last_record_is_repaired(tmp_path: Path, record: int):
    """Any byte flipped in the last record is treated as a torn write: repaired, prefix kept."""
    original = tmp_path / "journal.jsonl"
    records = write_journal(original, record + 1)
    data = original.read_bytes()
    last_start = line_starts(data)[-1]
    for offset in range(last_start, len(data)):
        path = tmp_path / f"flip{offset}" / "journal.jsonl"
        path.parent.mkdir()
        damaged = bytearray(data)
        damaged[offset] ^= 0x01
        put(path, bytes(damaged))
        journal, got = Journal.open(path)
        journal.close()
        assert got == records[:-1], offset
        assert path.read_bytes() == data[:last_start]


# --- corruption -------------------------------------------------------------------------


@pytest.mark.parametrize("mask", [0x01, 0x80, 0xFF])
def test_flipped_byte_in_a_middle_record_is_refused(path: Path, mask: int):
    """Any byte damaged in a middle record: JournalError naming file and line, file untouched."""
    write_journal(path, 7)
    data = path.read_bytes()
    starts = line_starts(data)
    middle = 3  # line 4; valid records follow it
    for offset in range(starts[middle], starts[middle + 1]):
        damaged = bytearray(data)
        damaged[offset] ^= mask
        put(path, bytes(damaged))
        with pytest.raises(JournalError) as info:
            Journal.open(path)
        message = str(info.value)
        assert str(path) in message
        # Damage to the newline merges lines; either way the report points at line 4.
        assert "line 4" in message, (offset, message)
        assert path.read_bytes() == bytes(damaged)
        assert broken_files(path) == []
        with pytest.raises(JournalError):
            read_records(path)


def test_seq_gap_is_refused(path: Path):
    """Records with valid CRCs but a missing seq are refused, even as the last line."""
    prev = 0
    lines = []
    for seq, record in [(0, {"format": JOURNAL_FORMAT, **PLAN}), (1, intent(0)), (3, outcome(0))]:
        line, prev = frame(seq, record, prev)
        lines.append(line)
    put(path, b"".join(lines))
    with pytest.raises(
        JournalError, match=r"line 3 \(byte offset \d+\): sequence gap \(expected seq 2, found 3\)"
    ):
        Journal.open(path)
    assert path.read_bytes() == b"".join(lines)
    assert broken_files(path) == []


def test_deleted_middle_record_is_refused(path: Path):
    """A line removed from the middle breaks the CRC chain and is refused."""
    write_journal(path, 6)
    lines = path.read_bytes().splitlines(keepends=True)
    put(path, b"".join(lines[:2] + lines[3:]))
    with pytest.raises(JournalError, match="line 3"):
        Journal.open(path)


def test_swapped_records_are_refused(path: Path):
    """Two records swapped in the middle are refused."""
    write_journal(path, 6)
    lines = path.read_bytes().splitlines(keepends=True)
    lines[2], lines[3] = lines[3], lines[2]
    put(path, b"".join(lines))
    with pytest.raises(JournalError, match="line 3"):
        Journal.open(path)


def test_empty_or_headless_files_are_refused(path: Path):
    """A file with no complete first record, or not a bulkops journal, is refused untouched."""
    path.parent.mkdir(parents=True)
    put(path, b"")
    with pytest.raises(JournalError, match="no complete record"):
        Journal.open(path)
    whole = frame(0, {"format": JOURNAL_FORMAT, **PLAN}, 0)[0]
    put(path, whole[:20])
    with pytest.raises(JournalError, match="no complete record"):
        Journal.open(path)
    assert path.read_bytes() == whole[:20]
    put(path, frame(0, PLAN, 0)[0])
    with pytest.raises(JournalError, match="not a bulkops-journal/1 journal"):
        Journal.open(path)


# --- permissions ------------------------------------------------------------------------


@pytest.mark.parametrize("mode", [0o640, 0o604, 0o660, 0o644])
def test_group_or_other_access_is_refused(path: Path, mode: int):
    """A journal readable or writable by group or others is refused, not silently used."""
    write_journal(path, 2)
    path.chmod(mode)
    with pytest.raises(RefusedError, match=f"mode {mode:04o}") as info:
        Journal.open(path)
    assert info.value.hint == f"chmod 600 {path}"
    with pytest.raises(RefusedError):
        read_records(path)


def test_symlinked_journal_is_refused(path: Path, tmp_path: Path):
    """The journal is never opened through a symlink."""
    write_journal(path, 2)
    link = tmp_path / "link.jsonl"
    link.symlink_to(path)
    with pytest.raises(JournalError, match="could not be opened"):
        Journal.open(link)


# --- read_records -----------------------------------------------------------------------


def test_read_records_never_repairs(path: Path):
    """read_records returns the valid prefix of a torn file without touching it."""
    records = write_journal(path, 4)
    damaged = path.read_bytes()[:-5]
    put(path, damaged)
    assert read_records(path) == records[:-1]
    assert path.read_bytes() == damaged
    assert broken_files(path) == []
    with pytest.raises(JournalError, match="line 4: torn tail"):
        read_records(path, strict=True)


def test_missing_journal_is_a_journal_error(tmp_path: Path):
    """Opening a journal that does not exist says so."""
    with pytest.raises(JournalError, match="could not be opened"):
        Journal.open(tmp_path / "nope.jsonl")
    with pytest.raises(JournalError, match="could not be opened"):
        read_records(tmp_path / "nope.jsonl")


def test_hundred_thousand_records_verify_quickly(path: Path):
    """A 100,000-record journal is read and verified (timing printed for information)."""
    with Journal.create(path, PLAN) as journal:
        for i in range(99_999):
            journal.append(intent(i // 2) if i % 2 == 0 else outcome(i // 2))
    started = time.perf_counter()
    records = read_records(path)
    elapsed = time.perf_counter() - started
    size = path.stat().st_size / 1e6
    print(f"\nverified 100,000 records ({size:.1f} MB) in {elapsed:.3f} s")
    assert len(records) == 100_000
    assert records[-1]["seq"] == 99_999


# --- keys never reach a checkpoint ----------------------------------------------------------


def test_a_record_holding_a_key_is_refused_and_nothing_is_written(path: Path):
    """An appended record holding a key-shaped string or a key the run read: JournalError
    naming the record's mutation and field, nothing written, the journal still usable."""
    guard = KeyGuard.of(["plainsourcekey42"])
    with Journal.create(path, PLAN, guard=guard) as journal:
        before = path.read_bytes()
        bad = {**outcome(1), "created_id": "console-abc123def456"}
        with pytest.raises(JournalError, match=r"\(outcome of mutation gate:archive:g1\)"):
            journal.append(bad)
        with pytest.raises(JournalError, match="in its field error"):
            journal.append({**outcome(2), "error": "echo plainsourcekey42"})
        assert path.read_bytes() == before and not journal.failed
        journal.append(outcome(3))
    records = read_records(path)
    assert [r["seq"] for r in records] == [0, 1]
    text = path.read_text()
    assert "abc123def456" not in text and "plainsourcekey42" not in text


def test_a_first_record_holding_a_key_leaves_no_file(path: Path):
    """A plan record with a key is refused before a byte is written: no journal remains."""
    first = {"t": "plan", "plan": {"job": "x", "note": "secret-AbCdEf0123456789"}}
    with pytest.raises(JournalError, match=r"in its field plan\.note") as info:
        Journal.create(path, first)
    assert "AbCdEf0123456789" not in str(info.value)
    assert not path.exists()
