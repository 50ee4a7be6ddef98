"""Which files of a source tree are scanned, and which are not (and why).

In a git checkout the list is git's own: ``git ls-files -z --cached --others
--exclude-standard`` (tracked files, and untracked ones no ``.gitignore`` — nested ones
and negations included — or ``.git/info/exclude`` ignores). Elsewhere the tree is walked
with the same rules applied per directory (``pathspec``'s gitignore semantics, the
deepest file deciding, an excluded directory never entered). In both, ``.bulkopsignore``
files (same syntax, any directory) and the config's ``[ignore] paths`` exclude more.

Dot-directories are scanned unless ignored; ``.git`` itself never is. Symlinks are never
followed (so a symlink loop cannot hang a scan; git does not follow them either): each is
counted as skipped. Every path left out by an ignore rule is counted too.
"""

from __future__ import annotations

import os
import stat
import subprocess
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from .config import CONFIG_PATH

if TYPE_CHECKING:
    from pathspec import PathSpec

__all__ = ["IGNORE_FILE", "Listing", "list_files"]

IGNORE_FILE = ".bulkopsignore"
_GITIGNORE = ".gitignore"
SYMLINK = "symlink (not followed)"


@dataclass
class Listing:
    """The files of one root to scan (paths relative to it, ``/``-separated).

    Attributes:
        root: The directory scanned.
        files: The files to read.
        skipped: (path, reason) of every entry left out other than by ignore rules.
        ignored: How many paths ignore rules left out (git mode: what git reports).
        method: ``git`` or ``walk``.
    """

    root: Path
    files: list[str] = field(default_factory=list)
    skipped: list[tuple[str, str]] = field(default_factory=list)
    ignored: int = 0
    method: str = "walk"


class _Rules:
    """Gitignore-style rule files by directory; the deepest matching file decides."""

    def __init__(self) -> None:
        self.specs: dict[str, PathSpec[Any]] = {}

    def add(self, directory: str, lines: Iterable[str]) -> None:
        import pathspec

        spec: PathSpec[Any] = pathspec.GitIgnoreSpec.from_lines(list(lines))
        previous = self.specs.get(directory)
        if previous is not None:
            spec = previous + spec
        self.specs[directory] = spec

    def add_file(self, directory: str, path: Path) -> None:
        try:
            text = path.read_text(encoding="utf-8", errors="replace")
        except OSError:
            return
        self.add(directory, text.splitlines())

    def ignored(self, rel: str, is_dir: bool = False) -> bool:
        if not self.specs:
            return False
        parts = rel.split("/")
        for depth in range(len(parts) - 1, -1, -1):
            directory = "/".join(parts[:depth])
            spec = self.specs.get(directory)
            if spec is None:
                continue
            sub = "/".join(parts[depth:]) + ("/" if is_dir else "")
            include = spec.check_file(sub).include
            if include is not None:
                return include
        return False

    def ignored_within(self, rel: str) -> bool:
        """``rel`` or one of its directories is ignored (git mode: no directory pruning)."""
        parts = rel.split("/")
        return any(self.ignored("/".join(parts[:i]), True) for i in range(1, len(parts))) or (
            self.ignored(rel)
        )


def _git_files(root: Path) -> tuple[list[str], int] | None:
    """(files, ignored count) from git, or None when ``root`` is not in a checkout."""
    base = ["git", "-C", str(root), "ls-files", "-z", "--exclude-standard"]
    try:
        listed = subprocess.Popen(
            [*base, "--cached", "--others"],
            stdout=subprocess.PIPE,
            stderr=subprocess.DEVNULL,
            stdin=subprocess.DEVNULL,
        )
        ignored = subprocess.Popen(
            [*base, "--others", "--ignored", "--directory"],
            stdout=subprocess.PIPE,
            stderr=subprocess.DEVNULL,
            stdin=subprocess.DEVNULL,
        )
    except OSError:
        return None
    out, _ = listed.communicate()
    ignored_out, _ = ignored.communicate()
    if listed.returncode != 0:
        return None
    files = list(dict.fromkeys(os.fsdecode(p) for p in out.split(b"\0") if p))
    return files, sum(1 for p in ignored_out.split(b"\0") if p)


def _walk(root: Path, rules: _Rules, listing: Listing) -> None:
    stack = [""]
    while stack:
        directory = stack.pop()
        base = root / directory if directory else root
        for name in (_GITIGNORE, IGNORE_FILE):
            candidate = base / name
            if candidate.is_file():
                rules.add_file(directory, candidate)
        try:
            entries = list(os.scandir(base))  # order: the report sorts by path
        except OSError as exc:
            listing.skipped.append((directory or ".", f"unreadable directory: {exc.strerror}"))
            continue
        for entry in entries:
            rel = f"{directory}/{entry.name}" if directory else entry.name
            if entry.name == ".git":
                continue
            try:  # the directory entry's type: no system call per file
                is_dir = entry.is_dir(follow_symlinks=False)
                if rules.ignored(rel, is_dir):
                    listing.ignored += 1
                elif entry.is_symlink():
                    listing.skipped.append((rel, SYMLINK))
                elif is_dir:
                    stack.append(rel)
                elif entry.is_file(follow_symlinks=False):
                    listing.files.append(rel)
                else:
                    listing.skipped.append((rel, "not a regular file"))
            except OSError as exc:
                listing.skipped.append((rel, f"unreadable: {exc.strerror}"))


def list_files(root: Path, ignore: Sequence[str] = (), *, use_git: bool = True) -> Listing:
    """The files under ``root`` to scan, and everything left out (see the module docstring).

    Args:
        root: A directory, or a single file (listed alone).
        ignore: More gitignore-style patterns (the config's ``[ignore] paths``).
        use_git: Ask git in a checkout (False: always walk, as outside one).
    """
    listing = Listing(root)
    if root.is_file() and not root.is_symlink():
        listing.files.append("")
        return listing
    rules = _Rules()
    if ignore:
        rules.add("", ignore)
    from_git = _git_files(root) if use_git else None
    if from_git is None:
        _walk(root, rules, listing)
        files = listing.files
    else:
        listing.method = "git"
        files, listing.ignored = from_git
        for rel in files:
            if rel == IGNORE_FILE or rel.endswith("/" + IGNORE_FILE):
                rules.add_file(rel.rpartition("/")[0], root / rel)
        listing.files = []
        for rel in files:
            if rules.ignored_within(rel):
                listing.ignored += 1
                continue
            try:
                mode = os.lstat(root / rel).st_mode
            except OSError as exc:
                # Tracked but deleted in the working tree: nothing to read.
                listing.skipped.append((rel, f"listed by git but unreadable: {exc.strerror}"))
                continue
            if stat.S_ISLNK(mode):
                listing.skipped.append((rel, SYMLINK))
            elif stat.S_ISDIR(mode):
                listing.skipped.append((rel, "a directory in the index (a git submodule)"))
            elif stat.S_ISREG(mode):
                listing.files.append(rel)
            else:
                listing.skipped.append((rel, "not a regular file"))
        files = listing.files
    listing.files = [f for f in files if f != CONFIG_PATH]
    return listing
