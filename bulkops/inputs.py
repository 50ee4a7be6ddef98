"""The files a user gives bulkops: text that must be UTF-8, and what kind of file each is.

Every reader of an input file (import-overrides CSV and JSON lines, apply-calls JSON
lines, rewrite files and ``--python`` functions, job files, snapshots given to the
emulator or to ``refs``, ``refs`` settings files, plans) decodes through here, so bytes
that are not UTF-8 are one clear error, :class:`~bulkops.errors.InputError` (exit 2),
naming the file, the line, the column and the byte offset, never a
``UnicodeDecodeError`` traceback:

* :func:`read_text` reads a whole file;
* :func:`utf8_errors` wraps a reader that streams (a 100,000-row CSV is never held
  whole): a decode error raised inside it is located in the file and re-raised.

A file given where another kind is expected (a plan to ``resume``, a checkpoint to
``apply``, a report, a snapshot, some other JSON) is told for what it is:
:func:`identify` looks at its first bytes and returns a :class:`FileKind`, and
:func:`require_kind` refuses a file of another kind, naming both and what to do with
the one given.
"""

from __future__ import annotations

import codecs
import enum
import io
import re
import tokenize
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from .errors import InputError

__all__ = [
    "FileKind",
    "Utf8Position",
    "identify",
    "not_utf8",
    "check_source",
    "read_text",
    "require_kind",
    "utf8_errors",
    "utf8_position",
]

_BOM = b"\xef\xbb\xbf"
_SNIFF = 65536  # bytes read to tell what a file is
_UTF8_HINT = (
    'save the file as UTF-8 (a spreadsheet\'s "CSV UTF-8"; an editor\'s "UTF-8" encoding): '
    "bulkops reads text files as UTF-8 only"
)


@dataclass(frozen=True)
class Utf8Position:
    """Where the first byte that is not UTF-8 sits: 1-based line and column (in
    characters), 0-based byte offset in the file, and the byte."""

    line: int
    column: int
    offset: int
    byte: int

    def __str__(self) -> str:
        return (
            f"line {self.line}, column {self.column} (byte offset {self.offset}): "
            f"byte 0x{self.byte:02x} is not UTF-8"
        )


def utf8_position(data: bytes) -> Utf8Position | None:
    """The first position in ``data`` that is not UTF-8 (a leading BOM allowed), or None."""
    start = len(_BOM) if data.startswith(_BOM) else 0
    try:
        data[start:].decode("utf-8")
    except UnicodeDecodeError as exc:
        offset = start + exc.start
        line_start = data.rfind(b"\n", 0, offset) + 1
        prefix = data[max(line_start, start) : offset].decode("utf-8", "replace")
        return Utf8Position(
            line=data.count(b"\n", 0, offset) + 1,
            column=len(prefix) + 1,
            offset=offset,
            byte=data[offset],
        )
    return None


def _read_bytes(path: Path, what: str, limit: int = -1) -> bytes:
    """The file's bytes (the first ``limit`` of them when given), or an
    :class:`InputError` naming ``what`` it is and why it cannot be read."""
    name = f"{what} {path}" if what else str(path)
    try:
        with Path(path).open("rb") as f:
            return f.read(limit)
    except IsADirectoryError:
        raise InputError(f"{name} is a directory, not a file") from None
    except FileNotFoundError:
        raise InputError(f"{name} does not exist") from None
    except OSError as exc:
        raise InputError(f"{name} cannot be read: {exc.strerror}") from exc


def not_utf8(path: Path, what: str, data: bytes | None = None) -> InputError:
    """The error for a ``what`` file that is not UTF-8, naming where (``data``: its
    bytes, read again when not given)."""
    if data is None:
        data = _read_bytes(path, what)
    position = utf8_position(data)
    where = str(position) if position is not None else "it is not UTF-8 text"
    return InputError(f"{what} {path}: {where}; nothing was sent", hint=_UTF8_HINT)


def read_text(path: Path, *, what: str) -> str:
    """The text of a ``what`` file (``"calls file"``, ``"rewrite file"``…), UTF-8 with an
    optional BOM.

    Raises:
        InputError: it cannot be read (missing, a directory, no permission), or it is
            not UTF-8 (naming the line, column and byte offset).
    """
    data = _read_bytes(path, what)
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError:
        raise not_utf8(path, what, data) from None


def check_source(path: Path, *, what: str) -> None:
    """Check that a Python file (a job, a ``--python`` function) decodes as its coding
    declaration says (UTF-8 when it has none), before it is imported.

    Raises:
        InputError: it cannot be read, or it is not UTF-8 (naming where).
    """
    data = _read_bytes(path, what)
    try:
        encoding, _ = tokenize.detect_encoding(io.BytesIO(data).readline)
    except SyntaxError:  # a coding declaration naming no known codec, or a bad BOM
        encoding = "utf-8"
    if codecs.lookup(encoding).name == "utf-8" and utf8_position(data) is not None:
        raise not_utf8(path, what, data)


@contextmanager
def utf8_errors(path: Path, *, what: str) -> Iterator[None]:
    """Turn a ``UnicodeDecodeError`` raised inside the block (a streaming reader of
    ``path``) into :func:`not_utf8`'s error, which locates it in the file.

    Raises:
        InputError: the file is not UTF-8.
    """
    try:
        yield
    except UnicodeDecodeError:
        raise not_utf8(path, what) from None


# -- what kind of file is this? -------------------------------------------------------------


class FileKind(enum.Enum):
    """What a file is, as far as its first bytes tell: ``(description, what to do with it)``."""

    CHECKPOINT = (
        "a bulkops checkpoint",
        "see it with `bulkops status {p}`, continue it with `bulkops resume {p}`, "
        "undo it with `bulkops undo {p}`",
    )
    PLAN = ("a bulkops plan file", "apply it with `bulkops apply {p}`")
    SNAPSHOT = (
        "a project snapshot (an emulator seed)",
        "serve it with `bulkops emulator --seed {p}`",
    )
    REPORT = (
        "a per-item report (written by --report)",
        "a report is for reading; `status`, `resume` and `undo` take the checkpoint it came from",
    )
    OUTPUT = ("the --json output of a bulkops command", "it is for reading, or for a program")
    OVERRIDES = (
        "an import-overrides file",
        "plan it with `bulkops plan import-overrides --file {p}`",
    )
    CALLS = ("an apply-calls file", "plan it with `bulkops plan apply-calls --file {p}`")
    JSON = ("a JSON file that bulkops did not write", "")
    TEXT = ("a text file that bulkops did not write", "")
    BINARY = ("a binary file (not text)", "")
    EMPTY = ("an empty file", "")

    @property
    def description(self) -> str:
        """``a bulkops plan file``."""
        return self.value[0]

    def use(self, path: Path) -> str:
        """What to do with a file of this kind, a sentence (empty when bulkops has no
        use for it)."""
        return self.value[1].format(p=path)


# Any journal line (the first may be the damaged one): a CRC, a space, then the seq first.
_JOURNAL_LINE = re.compile(rb'^[0-9a-f]{8} \{"seq":\d+,', re.M)
_FORMAT = re.compile(rb'"(?:format|schema)"\s*:\s*"(bulkops[-.][a-z-]+)/\d+"')
_REPORT_CSV = b"key,action,object,method,path,state"
_CALL_LINE = re.compile(rb'^\s*\{.*"method"\s*:.*"path"\s*:|^\s*\{.*"path"\s*:.*"method"\s*:')
_FORMATS = {
    b"bulkops-plan": FileKind.PLAN,
    b"bulkops-snapshot": FileKind.SNAPSHOT,
    b"bulkops.report": FileKind.REPORT,
}


def identify(path: Path) -> FileKind:
    """What ``path`` is, from its first 64 KiB (a 100 MB plan is not parsed for this).

    Raises:
        InputError: it cannot be read.
    """
    head = _read_bytes(path, "", _SNIFF).removeprefix(_BOM)
    if not head.strip():
        return FileKind.EMPTY
    if _JOURNAL_LINE.search(head):  # before the NUL test: a crash may append zeros
        return FileKind.CHECKPOINT
    if b"\0" in head:
        return FileKind.BINARY
    first = head.split(b"\n", 1)[0]
    if first.replace(b"\r", b"").startswith(_REPORT_CSV):
        return FileKind.REPORT
    if first.replace(b" ", b"").lower().startswith(b"kind,id,unit_id"):
        return FileKind.OVERRIDES
    stripped = head.lstrip()
    if stripped[:1] in (b"{", b"["):
        found = _FORMAT.search(head[:4096])
        if found is not None:
            name = found.group(1)
            return _FORMATS.get(name, FileKind.OUTPUT if b"." in name else FileKind.JSON)
        if re.match(rb'\{\s*"items"\s*:\s*\[', stripped):
            return FileKind.REPORT
        if _CALL_LINE.match(first):
            return FileKind.CALLS
        if b'"unit_id"' in first and b'"kind"' in first:
            return FileKind.OVERRIDES
        return FileKind.JSON
    return FileKind.TEXT


def require_kind(path: Path, expected: FileKind) -> None:
    """Refuse a file that is not of the ``expected`` kind.

    Raises:
        InputError: it is another kind, told as such with what to do with it (exit 2).
    """
    kind = identify(path)
    if kind is not expected:
        raise InputError(
            f"{path} is {kind.description}, not {expected.description}; nothing was sent",
            hint=kind.use(path) or None,
        )
