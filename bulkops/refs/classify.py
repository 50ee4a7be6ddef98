"""What kind of reference a hit is, read from its line: SDK call, test override, constant,
comment, string or identifier; names built at run time beside SDK calls; constants.

Everything here looks at one line's bytes (the matcher found the hit; this says what it
is), so it runs in the scanning workers. The rules are deliberately plain, and where they
guess, they guess towards "still a reference": a hit is never dropped for its kind.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence

__all__ = [
    "CALL",
    "COMMENT",
    "CONSTANT",
    "IDENTIFIER",
    "OVERRIDE",
    "STRING",
    "Classifier",
    "comment_start",
    "dynamic_prefix",
]

CALL, OVERRIDE, CONSTANT, COMMENT, STRING, IDENTIFIER = (
    "sdk_call",
    "test_override",
    "constant",
    "comment",
    "string",
    "identifier",
)

_HASH_COMMENTS = frozenset(
    ".py .pyi .rb .sh .bash .zsh .yaml .yml .toml .pl .r .ex .exs .cr .coffee .tf .cfg .ini"
    " .conf .mk .nim .jl".split()
)
_DASH_COMMENTS = frozenset(".sql .lua .hs .elm".split())
_DECLARATION = re.compile(
    rb"^[ \t]*(?P<kw>(?:(?:export|public|private|protected|internal|static|final|const|let|var"
    rb"|val|readonly|lazy|open|override|late|pub|def|fileprivate|nonisolated)[ \t]+)*)"
    rb"(?:[A-Za-z_][\w<>\[\]?]*[ \t]+)?(?P<name>[A-Za-z_]\w*)[ \t]*"
    rb"(?::[ \t]*[A-Za-z_][\w.<>\[\]?, ]*)?(?P<op>:=|=|:)[ \t]*[@]?(?P<q>[\"'`])"
)
_TAIL = re.compile(rb"[\"'`](?:\.freeze)?[ \t]*(?P<comma>,)?[ \t]*;?[ \t]*(?:$|//|#)")
_PROPERTY_FILES = frozenset(".js .jsx .ts .tsx .mjs .cjs .vue .svelte".split())
_DYNAMIC = re.compile(
    rb"""(?:\bf|\$)?(?P<q>["'`])(?P<prefix>[\w.:/-]*)(?:\{|\$\{|\$[A-Za-z_]|#\{|\\\(|%[sdv])"""
    rb"""|(?P<q2>["'`])(?P<prefix2>[\w.:/-]*)(?P=q2)[ \t]*(?:\+|\.\.|<>)"""
)


def comment_start(line: bytes, extension: str) -> int:
    """Where a line comment starts outside strings (-1: none). Lines inside a block
    comment (``*``, ``/*`` first) start at 0."""
    stripped = line.lstrip()
    if stripped[:2] in (b"/*", b"* ", b"*\t", b"*/") or stripped == b"*" or stripped[:4] == b"<!--":
        return len(line) - len(stripped)
    markers: tuple[bytes, ...]
    if extension in _HASH_COMMENTS:
        markers = (b"#",)
    elif extension in _DASH_COMMENTS:
        markers = (b"--",)
    else:
        markers = (b"//",)
    for marker in markers:
        if marker in line:
            break
    else:
        return -1
    quote = 0
    i, n = 0, len(line)
    while i < n:
        c = line[i]
        if quote:
            if c == 0x5C:  # a backslash escapes the next byte
                i += 2
                continue
            if c == quote:
                quote = 0
        elif c in (0x22, 0x27, 0x60):
            quote = c
        else:
            for marker in markers:
                if line.startswith(marker, i):
                    return i
        i += 1
    return -1


def dynamic_prefix(arguments: bytes) -> bytes | None:
    """The fixed start of a name built at run time in a call's arguments
    (``f"checkout_{x}"`` → ``checkout_``; ``"checkout_" + x`` too), or None when the
    arguments build no name from a string."""
    m = _DYNAMIC.search(arguments)
    if m is None:
        return None
    return m.group("prefix") if m.group("prefix") is not None else m.group("prefix2")


class Classifier:
    """Classifies hits. The SDK call names on a line (the config's wrappers among them)
    come from the automaton; ``overrides`` are those that make a test override."""

    def __init__(self, overrides: Iterable[str]) -> None:
        self.overrides = frozenset(o.encode() for o in overrides)
        # Called at a known offset: the name, optional generics, the parenthesis.
        self._call = re.compile(rb"[A-Za-z_]\w*[ \t]*(?:<[^>()]*>)?[ \t]*\(")

    def arguments_at(self, line: bytes, offset: int) -> int | None:
        """Where the arguments start when a call of an SDK name starts at ``offset``
        (``check_gate(``, ``useGate<T>(``), else None (the name is not called there)."""
        m = self._call.match(line, offset)
        return m.end() if m else None

    def open_call(self, line: bytes, at: int, calls: Sequence[tuple[int, bytes]]) -> bytes | None:
        """The innermost of ``calls`` (SDK call names on the line: offset, name) whose
        ``(`` is still open at ``at``, else None."""
        for offset, name in reversed(calls):
            if offset >= at:
                continue
            arguments = self.arguments_at(line, offset)
            if arguments is not None and line.count(b"(", arguments, at) >= line.count(
                b")", arguments, at
            ):
                return name
        return None

    def kind(
        self,
        line: bytes,
        start: int,
        end: int,
        delimited: bool,
        extension: str,
        calls: Sequence[tuple[int, bytes]],
    ) -> tuple[str, str, str]:
        """(kind, call name, constant name) of a hit at ``line[start:end]``; ``calls``
        are the SDK call names found on the line (offset, name)."""
        if comment_start(line[:start], extension) >= 0:
            return COMMENT, "", ""
        call = self.open_call(line, start, calls) if calls else None
        if call is not None:
            return (OVERRIDE if call in self.overrides else CALL), call.decode(), ""
        if delimited:
            constant = self.constant(line, start, end, extension)
            if constant:
                return CONSTANT, "", constant
            return STRING, "", ""
        return IDENTIFIER, "", ""

    @staticmethod
    def constant(line: bytes, start: int, end: int, extension: str) -> str:
        """The name a declaration on this line assigns the literal at ``start:end``
        (``CHECKOUT_GATE = "checkout_one_click"``), or ""; a keyword argument or an entry
        of a call's argument list is none."""
        m = _DECLARATION.match(line)
        if m is None or m.end() != start:
            return ""
        tail = _TAIL.match(line, end)
        if tail is None:
            return ""
        op = m.group("op")
        if op == b":":
            # An object literal's property: JavaScript/TypeScript only (elsewhere `:`
            # is a dict entry, a YAML key or a named argument).
            if extension not in _PROPERTY_FILES:
                return ""
        elif tail.group("comma"):
            return ""  # `name="…",`: a keyword argument on its own line
        name = m.group("name").decode()
        return name if len(name) >= 3 else ""

    @staticmethod
    def exported(line: bytes, name: str) -> bool:
        """A declaration other files can use: a SCREAMING_SNAKE or PascalCase name, one
        declared ``export``/``public``/``static``/``const``…, or a property."""
        if name.isupper() or name[:1].isupper():
            return True
        m = _DECLARATION.match(line)
        keywords = m.group("kw") if m else b""
        return bool(re.search(rb"\b(export|public|static|const|val|pub|internal)\b", keywords)) or (
            m is not None and m.group("op") == b":"
        )
