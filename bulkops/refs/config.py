"""A repository's code-reference settings: ``.bulkops/coderefs.toml``.

The file lives in the scanned repository (the root given to ``bulkops refs``, or the top
of its git checkout), so the people who own the code say how it names their flags::

    [match]
    delimiters = "\\"'`"        # an id counts only between two of these (the default)
    whole_word = false          # true: any character that cannot be part of a name
                                # delimits an id, as with `grep -w`
    case_variants = false       # true: camelCase, PascalCase, SCREAMING_SNAKE and
                                # kebab-case spellings of every id are aliases too
    sdk_calls = ["isEnabled"]   # your wrappers around the SDK: hits inside them are
                                # SDK calls, and names built inside them are warned about

    [aliases]                   # other names an object goes by in this code
    checkout_one_click = ["OneClickCheckout", "one-click"]

    [[alias_patterns]]          # each match's first group (or group `name`) is looked
    regex = 'Flags\\.(\\w+)'      # up among the ids, their case variants and aliases
    paths = ["src/**/*.ts"]     # optional: only in these files (gitignore-style)

    [ignore]
    paths = ["vendor/", "*.min.js"]   # gitignore-style, on top of .gitignore files

Aliases and constants are matched as whole words (no delimiters needed); ids between
delimiters. Any unknown key or wrong type is an error naming the file and the key.
"""

from __future__ import annotations

import re
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ..errors import InputError
from ..inputs import read_text

if TYPE_CHECKING:
    from pathspec import PathSpec

__all__ = ["CONFIG_PATH", "DEFAULT_DELIMITERS", "AliasPattern", "RefsConfig", "load_config"]

CONFIG_PATH = ".bulkops/coderefs.toml"
DEFAULT_DELIMITERS = "\"'`"
_WORD = re.compile(r"[A-Za-z0-9_]")
_SECTIONS = {
    "match": {"delimiters", "whole_word", "case_variants", "sdk_calls"},
    "aliases": None,  # keys are object ids
    "alias_patterns": {"regex", "paths"},
    "ignore": {"paths"},
}


@dataclass(frozen=True)
class AliasPattern:
    """A regex alias: the text of its ``name`` group (else group 1) names an object."""

    regex: re.Pattern[bytes]
    paths: tuple[str, ...] = ()

    @cached_property
    def _spec(self) -> PathSpec[Any]:
        import pathspec  # only a config with paths needs it

        return pathspec.GitIgnoreSpec.from_lines(list(self.paths))

    def applies_to(self, rel: str) -> bool:
        """Whether the pattern is used in the file ``rel`` (every file, without ``paths``;
        the gitignore-style spec is compiled once, on first use)."""
        return not self.paths or self._spec.match_file(rel)

    def names(self, data: bytes) -> list[tuple[int, bytes]]:
        """(offset, name) of every match in ``data``."""
        group: int | str = "name" if "name" in self.regex.groupindex else 1
        return [(m.start(group), m.group(group)) for m in self.regex.finditer(data)]


@dataclass(frozen=True)
class RefsConfig:
    """How one repository is matched (see the module docstring for the file)."""

    delimiters: str = DEFAULT_DELIMITERS
    whole_word: bool = False
    case_variants: bool = False
    sdk_calls: tuple[str, ...] = ()
    aliases: Mapping[str, tuple[str, ...]] = field(default_factory=dict)
    alias_patterns: tuple[AliasPattern, ...] = ()
    ignore: tuple[str, ...] = ()
    source: Path | None = None


def _strings(value: Any, where: str) -> tuple[str, ...]:
    if not isinstance(value, list) or not all(isinstance(v, str) and v for v in value):
        raise InputError(f"{where}: expected a list of non-empty strings")
    return tuple(value)


def _parse(document: Mapping[str, Any], path: Path) -> RefsConfig:
    for section, value in document.items():
        if section not in _SECTIONS:
            raise InputError(
                f"{path}: unknown section [{section}]; known: {', '.join(sorted(_SECTIONS))}"
            )
        known = _SECTIONS[section]
        entries = value if isinstance(value, list) else [value]
        for entry in entries:
            if not isinstance(entry, dict):
                raise InputError(f"{path}: [{section}] must be a table")
            unknown = set(entry) - known if known is not None else set()
            if unknown:
                raise InputError(
                    f"{path}: unknown key {sorted(unknown)[0]!r} in [{section}]; "
                    f"known: {', '.join(sorted(known or ()))}"
                )
    match = document.get("match", {})
    delimiters = match.get("delimiters", DEFAULT_DELIMITERS)
    if not isinstance(delimiters, str) or not delimiters or _WORD.search(delimiters):
        raise InputError(
            f"{path}: [match] delimiters must be a non-empty string of characters that "
            "cannot be part of a name (not letters, digits or _)"
        )
    if not delimiters.isascii():
        raise InputError(f"{path}: [match] delimiters must be ASCII characters")
    flags = {}
    for key in ("whole_word", "case_variants"):
        flags[key] = match.get(key, False)
        if not isinstance(flags[key], bool):
            raise InputError(f"{path}: [match] {key} must be true or false")
    sdk_calls = _strings(match.get("sdk_calls", []), f"{path}: [match] sdk_calls")
    for call in sdk_calls:
        if not re.fullmatch(r"[A-Za-z_][A-Za-z0-9_.]*", call):
            raise InputError(f"{path}: [match] sdk_calls: {call!r} is not a function name")
    aliases = {
        object_id: _strings(names, f"{path}: [aliases] {object_id}")
        for object_id, names in document.get("aliases", {}).items()
    }
    patterns = []
    raw_patterns = document.get("alias_patterns", [])
    if not isinstance(raw_patterns, list):
        raise InputError(f"{path}: alias_patterns must be an array of tables ([[alias_patterns]])")
    for index, entry in enumerate(raw_patterns):
        where = f"{path}: alias_patterns[{index}]"
        text = entry.get("regex")
        if not isinstance(text, str) or not text:
            raise InputError(f"{where}: 'regex' is required (a regular expression)")
        try:
            regex = re.compile(text.encode())
        except re.error as exc:
            raise InputError(f"{where}: bad regex {text!r}: {exc}") from exc
        if "name" not in regex.groupindex and regex.groups < 1:
            raise InputError(f"{where}: the regex needs a group capturing the name")
        patterns.append(AliasPattern(regex, _strings(entry.get("paths", []), f"{where} paths")))
    ignore = _strings(document.get("ignore", {}).get("paths", []), f"{path}: [ignore] paths")
    return RefsConfig(
        delimiters=delimiters,
        whole_word=flags["whole_word"],
        case_variants=flags["case_variants"],
        sdk_calls=sdk_calls,
        aliases=aliases,
        alias_patterns=tuple(patterns),
        ignore=ignore,
        source=path,
    )


def load_config(root: Path, explicit: Path | None = None) -> RefsConfig:
    """The settings for ``root``: ``explicit``, else ``root/.bulkops/coderefs.toml``, else
    the file at the top of the git checkout holding ``root``; defaults when there is none.

    Raises:
        InputError: the file is unreadable, not UTF-8 (naming the line and byte offset),
            not TOML, or has an unknown key or a wrong type (the message names the file
            and the key).
    """
    candidates = [explicit] if explicit is not None else _candidates(root)
    for path in candidates:
        if explicit is None and not path.is_file():
            continue
        try:
            document = tomllib.loads(read_text(path, what="code-reference settings"))
        except tomllib.TOMLDecodeError as exc:
            raise InputError(f"{path}: not valid TOML: {exc}") from exc
        return _parse(document, path)
    return RefsConfig()


def _candidates(root: Path) -> list[Path]:
    start = root.resolve()
    found = [start / CONFIG_PATH]
    for parent in (start, *start.parents):
        if (parent / ".git").exists():
            if parent != start:
                found.append(parent / CONFIG_PATH)
            break
    return found
