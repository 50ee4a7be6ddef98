"""Scanning: one multi-literal automaton over each file's bytes, files in parallel.

:func:`scan` lists every root (:mod:`.listing`), builds one Aho-Corasick automaton per
repository configuration over every name (:mod:`.names`) and runs it over each file's
raw bytes (``ahocorasick_rs``, DFA, leftmost-longest). A match counts only when the
bytes around it bound it (an id between two delimiters; an alias, a constant or a call
name as a whole word); line, column, the line and its context are computed for those
only. Files are matched in forked worker processes, each inheriting the automata built
once in the parent. A second, much smaller pass looks for the constants the first found
holding an id (``CHECKOUT_GATE = "checkout_one_click"``): their uses are references too.

Why this is complete: with names made of identifier characters only, a match that the
leftmost-longest search skips overlaps one it reports, and the boundary byte it would
need lies inside that match, which is an identifier character — so it could not count.
When some name holds another character (``checkout-one-click``), every overlapping
match is examined instead.

Never silent: a file with a NUL byte in its first 8 KiB is skipped as binary, one that
cannot be read is skipped with the reason, and both are counted; a file is read whole
(long lines included); nothing is capped.
"""

from __future__ import annotations

import contextlib
import os
import re
import signal
import threading
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import NamedTuple

import ahocorasick_rs

from .classify import CONSTANT, Classifier, dynamic_prefix
from .config import RefsConfig
from .listing import Listing, list_files
from .names import ALIAS, CALL, ID, OVERRIDE_CALLS, NameTable, build_names, case_variants
from .names import CONSTANT as ROLE_CONSTANT
from .objects import FlagObject

__all__ = ["BINARY_PROBE", "Hit", "Scan", "Warning", "scan"]

BINARY_PROBE = 8192  # a NUL byte this early means binary (git and grep look at 8 KiB too)
_PARALLEL_FILES = 256  # fewer files are scanned in this process (a fork costs more)
_CHUNK = 32  # files dealt to the processes in turn
_WORD = frozenset(b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789_")
_NOT_WORD = re.compile(rb"[^A-Za-z0-9_\n]")


class Hit(NamedTuple):
    """One reference: a name found in a file, where, and what kind of hit it is (a tuple:
    workers send thousands back, and tuples pickle several times faster than classes).

    Attributes:
        file: Index of the file in :attr:`Scan.files`.
        line: 1-based line number.
        column: 1-based column, in characters (bytes that are not UTF-8 count one each).
        name: The text found (an id, an alias, a constant's name).
        role: How the name was looked for (``id``, ``alias``, ``variant``, ``constant``).
        targets: Indexes of the objects it names.
        kind: ``sdk_call``, ``test_override``, ``constant``, ``comment``, ``string``
            or ``identifier`` (an alias or constant used as a name).
        call: The SDK or override call it sits in ("" if none).
        constant: For ``constant``: the name it defines.
        text: The line (without its line break).
        before: Up to ``context`` lines before it; ``after``: after it.
    """

    file: int
    line: int
    column: int
    name: str
    role: str
    targets: tuple[int, ...]
    kind: str
    call: str
    constant: str
    text: str
    before: tuple[str, ...] = ()
    after: tuple[str, ...] = ()


class Warning(NamedTuple):
    """A name built at run time inside an SDK call: it cannot be matched to an object.

    ``prefix`` is its fixed start (``checkout_`` of ``f"checkout_{x}"``; "" if none).
    """

    file: int
    line: int
    column: int
    call: str
    prefix: str
    text: str


@dataclass
class Scan:
    """What a scan found: hits, warnings, and every file it read or skipped."""

    objects: Sequence[FlagObject]
    files: list[str] = field(default_factory=list)
    hits: list[Hit] = field(default_factory=list)
    warnings: list[Warning] = field(default_factory=list)
    skipped: list[tuple[str, str]] = field(default_factory=list)
    ignored: int = 0
    scanned: int = 0
    bytes: int = 0
    methods: list[str] = field(default_factory=list)
    configs: list[str] = field(default_factory=list)
    constants: dict[str, tuple[int, ...]] = field(default_factory=dict)


_Entry = tuple[str, tuple[int, ...], bytes, str, bool]


class _Matcher:
    """One repository's automaton, its names and how to classify what it finds."""

    def __init__(self, table: NameTable, config: RefsConfig) -> None:
        self.names = table.names
        # Per pattern: (role, targets, bytes, text, must sit between delimiters).
        self.entries: list[_Entry] = [
            (n.role, n.targets, n.text, n.text.decode("utf-8", "replace"),
             n.role == ID and not config.whole_word)
            for n in table.names
        ]  # fmt: skip
        self.delimiters = frozenset(config.delimiters.encode())
        self.classifier = Classifier(OVERRIDE_CALLS)
        self.overlapping = bool(_NOT_WORD.search(b"\n".join(n.text for n in self.names)))
        kind = (
            ahocorasick_rs.MATCHKIND_STANDARD
            if self.overlapping
            else (ahocorasick_rs.MATCHKIND_LEFTMOST_LONGEST)
        )
        self.automaton = ahocorasick_rs.BytesAhoCorasick(
            table.patterns, matchkind=kind, implementation=ahocorasick_rs.Implementation.DFA
        )
        self.patterns = config.alias_patterns
        self.lookup: dict[bytes, tuple[int, ...]] = {}
        if self.patterns:
            for name in table.names:
                if name.role != CALL:
                    self.lookup[name.text] = name.targets
            # A regex alias may capture any spelling of an id, enabled or not.
            for name in table.names:
                if name.role == ID:
                    for variant in case_variants(name.text.decode()):
                        self.lookup.setdefault(variant.encode(), name.targets)


@dataclass
class _Work:
    """What the workers need, set before they fork (inherited, never pickled)."""

    roots: list[str]
    files: list[tuple[int, str]]  # (root index, path relative to it)
    matchers: list[_Matcher]
    context: int
    locals_: dict[str, int]  # constant -> the only file it counts in (pass 2)


_WORK: _Work | None = None


def _read(path: str) -> bytes:
    """The whole file (os-level calls: half the cost of ``open().read()`` per file)."""
    fd = os.open(path, os.O_RDONLY | getattr(os, "O_CLOEXEC", 0))
    try:
        size = os.fstat(fd).st_size
        data = os.read(fd, size + 1)  # one read; more only if the file grew meanwhile
        if len(data) <= size:
            return data
        chunks = [data]
        while chunk := os.read(fd, 1 << 20):
            chunks.append(chunk)
        return b"".join(chunks)
    finally:
        os.close(fd)


def _line_bounds(data: bytes, start: int) -> tuple[int, int]:
    begin = data.rfind(b"\n", 0, start) + 1
    end = data.find(b"\n", start)
    return begin, len(data) if end < 0 else end


def _text(line: bytes) -> str:
    """A line for people: UTF-8, else Latin-1 (every byte is a character there)."""
    line = line.rstrip(b"\r")
    try:
        return line.decode("utf-8")
    except UnicodeDecodeError:
        return line.decode("latin-1")


def _context(
    data: bytes, begin: int, end: int, count: int
) -> tuple[tuple[str, ...], tuple[str, ...]]:
    before: list[str] = []
    at = begin
    while len(before) < count and at > 0:
        prev = data.rfind(b"\n", 0, at - 1) + 1
        before.insert(0, _text(data[prev : at - 1]))
        at = prev
    after: list[str] = []
    at = end
    while len(after) < count and at < len(data) - 1:
        nxt = data.find(b"\n", at + 1)
        nxt = len(data) if nxt < 0 else nxt
        after.append(_text(data[at + 1 : nxt]))
        at = nxt
    return tuple(before), tuple(after)


def _load(index: int) -> tuple[bytes | None, str | None]:
    """A file's bytes, or None and why it is skipped (unreadable, binary)."""
    work = _WORK
    assert work is not None
    root_index, rel = work.files[index]
    path = os.path.join(work.roots[root_index], rel) if rel else work.roots[root_index]
    try:
        data = _read(path)
    except OSError as exc:
        return None, f"unreadable: {exc.strerror or exc}"
    if b"\0" in data[:BINARY_PROBE]:
        return None, "binary (a NUL byte in the first 8 KiB)"
    return data, None


def _scan_file(
    index: int, data: bytes, found: Sequence[tuple[int, int, int]]
) -> tuple[list[Hit], list[Warning]]:
    """The hits and warnings of one file, from the automaton's matches in it."""
    work = _WORK
    assert work is not None
    root_index, rel = work.files[index]
    path = rel or work.roots[root_index]
    matcher = work.matchers[root_index]
    entries = matcher.entries
    candidates: Iterable[tuple[int, int, _Entry]]
    if matcher.patterns:
        found_all = [(s, e, entries[i]) for i, s, e in found]
        for pattern in matcher.patterns:
            if not pattern.applies_to(rel):
                continue
            for offset, text in pattern.names(data):
                targets = matcher.lookup.get(text)
                if targets:
                    entry = (ALIAS, targets, text, text.decode("utf-8", "replace"), False)
                    found_all.append((offset, offset + len(text), entry))
        # A regex alias may find what the automaton found: keep each place once.
        candidates = sorted({c[:2]: c for c in found_all}.values(), key=lambda c: c[0])
    else:
        candidates = [(s, e, entries[i]) for i, s, e in found]
    size = len(data)
    delimiters = matcher.delimiters
    hits: list[Hit] = []
    warnings: list[Warning] = []
    classifier = matcher.classifier
    extension = ""
    local = work.locals_
    context = work.context
    line_no, counted_to, begin, line_end = 1, 0, 0, -1
    line = b""
    line_text = ""
    ascii_line = True
    line_calls: list[tuple[int, bytes]] = []  # SDK call names on the line: (offset, name)
    line_hit = False
    for start, end, (role, targets, text, name, delimited) in candidates:
        # The bounds: an id between delimiters, anything else as a whole word.
        before = data[start - 1] if start else 0x0A
        after = data[end] if end < size else 0x0A
        if delimited:
            if before not in delimiters or after not in delimiters:
                continue
        elif before in _WORD or after in _WORD:
            continue
        if role == ROLE_CONSTANT:
            owner = local.get(name)
            if owner is not None and owner != index:
                continue
        if start >= line_end:  # the first name on a new line
            if line_calls and not line_hit:
                _dynamic(classifier, index, line_no, line, line_calls, warnings)
            line_no += data.count(b"\n", counted_to, start)
            counted_to = start
            begin, line_end = _line_bounds(data, start)
            line = data[begin:line_end]
            line_text, ascii_line = "", line.isascii()
            line_calls, line_hit = [], False
        if role == CALL:
            line_calls.append((start - begin, text))
            continue
        if not line_hit:
            line_hit = True
            line_text = _text(line)
            extension = extension or (os.path.splitext(rel or path)[1].lower() or ".")
        offset = start - begin
        column = offset + 1 if ascii_line else len(line[:offset].decode("utf-8", "replace")) + 1
        kind, call, constant = classifier.kind(
            line, offset, end - begin, role == ID, extension, line_calls
        )
        above, below = _context(data, begin, line_end, context) if context else ((), ())
        hits.append(
            Hit(
                index,
                line_no,
                column,
                name,
                role,
                targets,
                kind,
                call,
                constant,
                line_text,
                above,
                below,
            )  # fmt: skip
        )
    if line_calls and not line_hit:
        _dynamic(classifier, index, line_no, line, line_calls, warnings)
    return hits, warnings


def _dynamic(
    classifier: Classifier,
    index: int,
    line_no: int,
    line: bytes,
    calls: Sequence[tuple[int, bytes]],
    warnings: list[Warning],
) -> None:
    """Warn about a line whose SDK call gets a name built at run time (no id on it)."""
    for offset, _ in calls:
        arguments = classifier.arguments_at(line, offset)
        if arguments is None:
            continue
        prefix = dynamic_prefix(line[arguments:])
        if prefix is not None:
            column = len(line[:offset].decode("utf-8", "replace")) + 1
            name = line[offset:arguments].split(b"(")[0].split(b"<")[0].strip().decode()
            text = _text(line)
            warnings.append(
                Warning(index, line_no, column, name, prefix.decode("utf-8", "replace"), text)
            )
            return


_Result = tuple[int, list[Hit], list[Warning], str | None, int]


def _scan_share(indexes: Sequence[int]) -> list[_Result]:
    """Scan files one by one (joining small files for one automaton call was measured
    no faster once the SDK's call names are among the patterns)."""
    work = _WORK
    assert work is not None
    results: list[_Result] = []
    for index in indexes:
        data, skipped = _load(index)
        if data is None:
            results.append((index, [], [], skipped, 0))
            continue
        matcher = work.matchers[work.files[index][0]]
        found = matcher.automaton.find_matches_as_indexes(data, overlapping=matcher.overlapping)
        hits, warnings = _scan_file(index, data, found) if found or matcher.patterns else ([], [])
        results.append((index, hits, warnings, None, len(data)))
    return results


def _fork_share(indexes: Sequence[int]) -> tuple[int, int]:
    """Scan ``indexes`` in a forked child; returns (pid, the pipe its results come on)."""
    import pickle  # only a parallel scan needs it (12 ms of start-up)

    read_end, write_end = os.pipe()
    pid = os.fork()
    if pid == 0:  # the child: scan, send the results, leave without cleanup handlers
        code = 0
        try:
            os.close(read_end)
            payload: object = _scan_share(indexes)
        except BaseException as exc:  # reported to the parent, which raises it
            payload, code = RuntimeError(f"scanning worker failed: {exc!r}"), 1
        try:
            with os.fdopen(write_end, "wb") as out:
                pickle.dump(payload, out, protocol=pickle.HIGHEST_PROTOCOL)
        finally:
            os._exit(code)
    os.close(write_end)
    return pid, read_end


def _run(work: _Work, workers: int) -> list[_Result]:
    """Scan every file of ``work``: this process takes one share, forked children the
    others (they inherit the automata; a fork is cheaper than a pool, measured)."""
    global _WORK
    _WORK = work
    count = len(work.files)
    chunks = [range(i, min(i + _CHUNK, count)) for i in range(0, count, _CHUNK)]
    # Forking a process that runs other threads can copy a held lock: scan here then.
    if workers <= 1 or count < _PARALLEL_FILES or threading.active_count() > 1:
        workers = 1
    shares = [[i for chunk in chunks[w::workers] for i in chunk] for w in range(workers)]
    children: list[tuple[int, int]] = []
    try:
        children = [_fork_share(share) for share in shares[1:]]
        results = _scan_share(shares[0])
        import pickle

        for pid, read_end in children:
            with os.fdopen(read_end, "rb") as pipe:
                payload = pickle.load(pipe)
            os.waitpid(pid, 0)
            if isinstance(payload, BaseException):
                raise payload
            results += payload
        children = []
        return results
    finally:
        for pid, _ in children:  # interrupted: stop the others
            with contextlib.suppress(OSError):
                os.kill(pid, signal.SIGTERM)
                os.waitpid(pid, 0)
        _WORK = None


def scan(
    roots: Sequence[Path],
    objects: Sequence[FlagObject],
    configs: Sequence[RefsConfig],
    *,
    context: int = 0,
    workers: int | None = None,
    use_git: bool = True,
) -> Scan:
    """Find every reference to ``objects`` under ``roots`` (each with its config).

    Args:
        roots: Directories (or files) to scan.
        objects: What to look for.
        configs: One per root (:func:`~.config.load_config`).
        context: Lines of context kept around each hit.
        workers: Processes matching files (default: one per core, one when the
            cores are busy).
        use_git: List a git checkout's files with git (False: walk it).
    """
    result = Scan(objects)
    listings: list[Listing] = []
    files: list[tuple[int, str]] = []
    for index, (root, config) in enumerate(zip(roots, configs, strict=True)):
        listing = list_files(root, config.ignore, use_git=use_git)
        listings.append(listing)
        result.methods.append(listing.method)
        if config.source is not None:
            result.configs.append(str(config.source))
        result.ignored += listing.ignored
        result.skipped += [(_display(root, rel), why) for rel, why in listing.skipped]
        files += [(index, rel) for rel in listing.files]
    result.files = [_display(roots[r], rel) for r, rel in files]  # str joins: 10k Paths cost 0.1 s
    # Roots with the same settings (wherever they were read from) share one automaton.
    built: list[tuple[RefsConfig, _Matcher]] = []
    matchers = []
    for config in configs:
        same = replace(config, source=None)
        matcher = next((m for c, m in built if c == same), None)
        if matcher is None:
            matcher = _Matcher(build_names(objects, config), config)
            built.append((same, matcher))
        matchers.append(matcher)
    workers = workers or _default_workers()
    work = _Work([str(r) for r in roots], files, matchers, context, {})
    definitions: dict[str, set[int]] = {}
    locals_: dict[str, set[int]] = {}
    for index, hits, warnings, skipped, size in _run(work, workers):
        if skipped is not None:
            result.skipped.append((result.files[index], skipped))
            continue
        result.scanned += 1
        result.bytes += size
        result.hits += hits
        result.warnings += warnings
        for hit in hits:
            if hit.kind == CONSTANT and hit.constant:
                definitions.setdefault(hit.constant, set()).update(hit.targets)
                if not Classifier.exported(hit.text.encode(), hit.constant):
                    locals_.setdefault(hit.constant, set()).add(index)
    if definitions:
        _constants_pass(result, work, definitions, locals_, configs, workers)
    files_ = result.files
    result.skipped.sort()
    result.hits.sort(key=lambda h: (files_[h.file], h.line, h.column))
    result.warnings.sort(key=lambda w: (files_[w.file], w.line, w.column))
    return result


def _default_workers() -> int:
    """One process per core, unless the cores are already busy: with less than one core
    idle (the load average), a second process only competes for the same core (measured
    on 2 busy cores: 0.85 s with two processes, 0.55 s with one)."""
    cores = os.cpu_count() or 1
    try:
        load = os.getloadavg()[0]
    except OSError:  # not on every platform
        return cores
    return cores if load <= cores - 1 else 1


def _constants_pass(
    result: Scan,
    work: _Work,
    definitions: dict[str, set[int]],
    locals_: dict[str, set[int]],
    configs: Sequence[RefsConfig],
    workers: int,
) -> None:
    """Look for the uses of every constant that holds an id (whole words, every file)."""
    result.constants = {name: tuple(sorted(t)) for name, t in sorted(definitions.items())}
    # With the call names, so a constant passed to an SDK call is classified as one.
    table = build_names([], RefsConfig(), constants=result.constants)
    matcher = _Matcher(
        table, RefsConfig(sdk_calls=tuple(c for cfg in configs for c in cfg.sdk_calls))
    )
    # A constant declared locally (not exported) in one file counts in that file only.
    scoped = {name: next(iter(files)) for name, files in locals_.items() if len(files) == 1}
    skipped = {path for path, _ in result.skipped}
    keep = [i for i, path in enumerate(result.files) if path not in skipped]
    pass_two = _Work(
        work.roots, [work.files[i] for i in keep], [matcher] * len(work.roots), work.context, {}
    )
    position = {original: new for new, original in enumerate(keep)}
    pass_two.locals_ = {name: position[f] for name, f in scoped.items() if f in position}
    defined = {(h.file, h.line, h.constant) for h in result.hits if h.kind == CONSTANT}
    for new_index, hits, _, _, _ in _run(pass_two, workers):
        original = keep[new_index]
        for hit in hits:
            if (original, hit.line, hit.name) in defined:
                continue
            result.hits.append(hit._replace(file=original))


def _display(root: Path, rel: str) -> str:
    """The path a report shows: the root as given, joined with the path under it."""
    base = root.as_posix()
    if not rel:
        return base
    return rel if base == "." else f"{base.rstrip('/')}/{rel}"
