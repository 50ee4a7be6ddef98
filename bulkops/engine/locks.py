"""Exclusion between runs: ``flock`` on lock files, per checkpoint and per project.

A ``flock(LOCK_EX | LOCK_NB)`` belongs to the open file description and the kernel drops
it when the holder's last descriptor closes, including when the process is killed, so a
local lock is never stale and needs no expiry or manual unlock (unlike restic's or
Terraform's file-presence locks). The lock file is created 0600 and never deleted:
unlinking it would race with a process that has just opened it (py-filelock's reasoning).
POSIX record locks (``fcntl.lockf``) are avoided because closing *any* descriptor of the
file drops them.

flock can silently do nothing on NFS mounted with ``nolock`` and on some SMB setups, so
lock files on network filesystems are refused where ``/proc/mounts`` tells us the type.
"""

from __future__ import annotations

import errno
import fcntl
import hashlib
import json
import os
import re
import socket
import time
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from .. import files
from ..errors import RefusedError

__all__ = [
    "NETWORK_FILESYSTEMS",
    "STATE_DIR_ENV",
    "default_state_dir",
    "exclusive_lock",
    "lock_holder",
    "lock_path_for_journal",
    "lock_path_for_project",
    "network_filesystem",
    "project_state_name",
]

STATE_DIR_ENV = "BULKOPS_STATE_DIR"

NETWORK_FILESYSTEMS = frozenset(
    {"nfs", "nfs4", "cifs", "smb", "smb3", "smbfs", "afs", "ncpfs", "9p", "fuse.sshfs"}
)

_SAFE_NAME = re.compile(r"[A-Za-z0-9_.-]{1,100}")
_MOUNTS_FILE = Path("/proc/mounts")
# The holder writes its details just after it wins the flock; a contender that loses the
# race by microseconds waits this long at most for them to appear.
_HOLDER_INFO_WAIT = 0.2


def default_state_dir(environ: Mapping[str, str] | None = None) -> Path:
    """The directory for locks, journals and send logs, created 0700 if missing.

    ``$BULKOPS_STATE_DIR``, else ``$XDG_STATE_HOME/bulkops``, else
    ``~/.local/state/bulkops`` (the XDG Base Directory default).

    Args:
        environ: The environment to read (``os.environ`` by default).

    Returns:
        The directory (it exists when this returns).
    """
    env = os.environ if environ is None else environ
    explicit = env.get(STATE_DIR_ENV, "")
    xdg = env.get("XDG_STATE_HOME", "")
    if explicit:
        directory = Path(explicit).expanduser()
    elif xdg and Path(xdg).is_absolute():  # the XDG spec says to ignore relative paths
        directory = Path(xdg) / "bulkops"
    else:
        directory = Path.home() / ".local" / "state" / "bulkops"
    files.private_directory(directory)
    return directory


def _safe_component(name: str) -> str:
    if _SAFE_NAME.fullmatch(name) and name not in {".", ".."}:
        return name
    # Keep it readable but collision-free: sanitised text plus a short hash of the original.
    digest = hashlib.sha256(name.encode()).hexdigest()[:12]
    return f"{re.sub(r'[^A-Za-z0-9_.-]', '_', name)[:60]}-{digest}"


def project_state_name(api_url: str, project_id: str) -> str:
    """The name of a project's state at one API URL: ``<id>@<host>-<hash of the URL>``.

    Keyed by the URL as well as the project: a rehearsal on the emulator (a snapshot
    keeps the project's id) and the production run are different quotas and must not
    block each other or share a send log.
    """
    parts = urlsplit(api_url)
    host = parts.netloc.lower() or "local"
    url = f"{parts.scheme.lower()}://{host}{parts.path.rstrip('/')}"
    digest = hashlib.sha256(url.encode()).hexdigest()[:10]
    readable_host = re.sub(r"[^A-Za-z0-9_.-]", "_", host)[:60]
    return f"{_safe_component(project_id)}@{readable_host}-{digest}"


def lock_path_for_project(state_dir: Path, api_url: str, project_id: str) -> Path:
    """The host-wide lock file for a project at one API URL:
    ``<state_dir>/locks/project-<id>@<host>-<hash>.lock`` (:func:`project_state_name`).

    Statsig's quota is shared by every key on a project, so two runs on the same project
    would halve each other's budget even with different checkpoints.
    """
    return state_dir / "locks" / f"project-{project_state_name(api_url, project_id)}.lock"


def lock_path_for_journal(journal: Path) -> Path:
    """The lock file guarding one checkpoint journal: ``<journal>.lock`` beside it."""
    return journal.with_name(journal.name + ".lock")


def _unescape_mount(field: str) -> str:
    # /proc/mounts escapes space, tab, newline and backslash as octal (\040 ...).
    return re.sub(r"\\([0-7]{3})", lambda m: chr(int(m.group(1), 8)), field)


def network_filesystem(path: Path, mounts: str | None = None) -> str | None:
    """The network filesystem type ``path`` lives on, or None (local, or unknown).

    Args:
        path: A file or directory (need not exist; its nearest existing parent is used).
        mounts: The text of ``/proc/mounts``; read from the system when None. Where it
            does not exist (not Linux), nothing is detected.
    """
    if mounts is None:
        try:
            mounts = _MOUNTS_FILE.read_text()
        except OSError:
            return None
    target = path.resolve()
    best, best_type = "", ""
    for line in mounts.splitlines():
        fields = line.split()
        if len(fields) < 3:
            continue
        mount_point, fs_type = _unescape_mount(fields[1]), fields[2]
        inside = (
            str(target) == mount_point
            or mount_point == "/"
            or str(target).startswith(mount_point.rstrip("/") + "/")
        )
        # The longest matching mount point is the one the path lives on.
        if inside and len(mount_point) >= len(best):
            best, best_type = mount_point, fs_type
    return best_type if best_type in NETWORK_FILESYSTEMS else None


def _read_holder(fd: int) -> dict[str, Any]:
    try:
        raw = os.pread(fd, 65536, 0)
        info = json.loads(raw) if raw.strip() else {}
    except (OSError, ValueError):
        return {}
    return info if isinstance(info, dict) else {}


def _holder(fd: int) -> dict[str, Any]:
    deadline = time.monotonic() + _HOLDER_INFO_WAIT
    while not (info := _read_holder(fd)).get("pid") and time.monotonic() < deadline:
        time.sleep(0.01)
    return info


def _busy(exc: OSError) -> bool:
    return exc.errno in (errno.EWOULDBLOCK, errno.EAGAIN, errno.EACCES)


def _acquire(fd: int) -> dict[str, Any] | None:
    """Take the exclusive flock on ``fd``: None once taken, else the holder's details.

    A holder that wrote no details within a moment is a probe (:func:`lock_holder`
    holds a shared lock for an instant, and writes nothing), or a holder that has just
    won the race: the flock is tried again until the details appear.
    """
    deadline = time.monotonic() + _HOLDER_INFO_WAIT
    while True:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            return None
        except OSError as exc:
            if not _busy(exc):
                raise
        info = _read_holder(fd)
        if info.get("pid") or time.monotonic() >= deadline:
            return info
        time.sleep(0.01)


def lock_holder(path: Path) -> dict[str, Any] | None:
    """Who holds the lock ``path`` right now: the details the holder wrote (pid, host,
    ``started``…; ``{}`` if it wrote none yet), or None when nobody holds it.

    Read-only: the file is never created, and the probe holds a shared flock for an
    instant only (a process taking the lock meanwhile tries again: :func:`_acquire`).
    A killed holder's details may stay in the file; the flock, not the details, tells
    whether it is alive.
    """
    try:
        fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC | os.O_NOFOLLOW)
    except OSError:
        return None  # no lock file (or a link, never followed): nobody holds it
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
        except OSError as exc:
            if not _busy(exc):
                raise
            return _holder(fd)
        fcntl.flock(fd, fcntl.LOCK_UN)
        return None
    finally:
        os.close(fd)


@contextmanager
def exclusive_lock(path: Path, *, what: str, info: Mapping[str, Any]) -> Iterator[None]:
    """Hold an exclusive ``flock`` on ``path`` for the duration of the block.

    The file is created 0600 (its directory 0700), never opened through a symbolic
    link, and never deleted. After acquiring, the
    holder's pid, host, start time and ``what`` plus ``info`` (e.g. ``run_id``, ``url``)
    are written into it, so a refused process can say who holds the lock (and, given a
    ``url``, against which API). ``info`` must not contain secrets.

    Args:
        path: The lock file.
        what: What is being locked, for messages (``"project abc"``, ``"journal x"``).
        info: Extra JSON-serialisable holder details.

    Raises:
        RefusedError: Another process (or another open of the file in this process)
            holds the lock, or the file is on a network filesystem where flock is not
            reliable.
    """
    files.private_directory(path.parent)
    fs_type = network_filesystem(path.parent)
    if fs_type is not None:
        raise RefusedError(
            f"{what}: the lock file {path} is on a {fs_type} filesystem, where locks are "
            "not reliable",
            hint="set BULKOPS_STATE_DIR to a local directory",
        )
    fd = files.open_or_create(path, what=f"the lock file of {what}")
    try:
        holder = _acquire(fd)
        if holder is not None:
            against = f", running against {holder['url']}" if holder.get("url") else ""
            raise RefusedError(
                f"{what} is locked by pid {holder.get('pid', '?')} on "
                f"{holder.get('host', '?')} since {holder.get('started', '?')}{against}",
                hint="wait for that run to finish, or stop it; a killed run frees the lock",
            ) from None
        holder_info = {
            **info,
            "pid": os.getpid(),
            "host": socket.gethostname(),
            "started": datetime.now(UTC).isoformat(timespec="seconds"),
            "what": what,
        }
        os.ftruncate(fd, 0)
        os.pwrite(fd, json.dumps(holder_info, default=str).encode() + b"\n", 0)
        try:
            yield
        finally:
            # Clear our details while still holding the lock; the file itself stays.
            os.ftruncate(fd, 0)
    finally:
        os.close(fd)  # closing the last descriptor releases the flock
