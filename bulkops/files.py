"""The one door for the files the tool writes: private (0600), atomic where replaced, fsynced.

Plans, checkpoint journals and their ``.broken`` backups, reports, snapshots, send logs,
lock files, ``--log-file`` logs and the emulator's request log may hold user ids and
targeting data, so every one of them is created mode 0600 in a directory created 0700,
and a file read back as ours is refused when group or others may access it.

Two rules hold for every file opened for writing here:

* **never through a symbolic link** (``O_NOFOLLOW``, or ``O_EXCL`` for new files): a
  link planted where a log or a lock will be written cannot redirect the write; one is
  refused, naming the file (:class:`~bulkops.errors.RefusedError`);
* **never a change of mode to a file the tool did not create**: a new file is made 0600;
  an existing log or lock file (one the user made, say) is appended to or locked as it
  is. A replaced file (:func:`write_private`) is a new file renamed over the old name.

Durability follows the reliability notes (section 2.3):
a file's fsync does not persist its directory entry, so a new or renamed entry gets its
directory fsynced too, and on macOS only ``F_FULLFSYNC`` reaches the disk.

Nothing here retries: a failed fsync is reported, never repeated (a retried fsync can
falsely succeed; PostgreSQL's "fsyncgate").
"""

from __future__ import annotations

import errno
import os
import stat
import sys
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

from .errors import NoSpaceError, RefusedError, UsageError

__all__ = [
    "NO_SPACE",
    "check_output",
    "check_private",
    "create_private",
    "fsync",
    "fsync_directory",
    "make_private",
    "open_append",
    "open_or_create",
    "open_private",
    "private_directory",
    "read_all",
    "write_all",
    "no_space",
    "write_private",
]

# What a write meets on a full disk, over a disk quota, or past a file-size limit
# (RLIMIT_FSIZE; Python ignores SIGXFSZ, so the write fails with EFBIG instead).
NO_SPACE = frozenset({errno.ENOSPC, errno.EFBIG, errno.EDQUOT})

_NEW = os.O_CREAT | os.O_EXCL | os.O_CLOEXEC | os.O_NOFOLLOW
_PRIVATE = 0o600


def fsync(fd: int) -> None:
    """Flush ``fd``'s data to the disk.

    Raises:
        OSError: The fsync failed (do not retry it: the data may be lost already).
    """
    # On macOS fsync() does not flush the drive's cache; F_FULLFSYNC does (reliability §2.3).
    if sys.platform == "darwin":  # pragma: no cover - exercised on macOS only
        import fcntl

        fcntl.fcntl(fd, fcntl.F_FULLFSYNC)
    else:
        os.fsync(fd)


def fsync_directory(directory: Path) -> None:
    """fsync a directory, so a new or renamed entry in it survives a crash."""
    # A file's fsync does not persist its directory entry; the directory needs its own.
    fd = os.open(directory, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def private_directory(directory: Path) -> None:
    """Create ``directory`` (and its parents) mode 0700 if missing."""
    directory.mkdir(mode=0o700, parents=True, exist_ok=True)


def make_private(fd: int) -> None:
    """Set mode 0600 on an open file, whatever the umask made of it."""
    os.fchmod(fd, _PRIVATE)


def create_private(path: Path, *, append: bool = False) -> int:
    """Create a new file, mode 0600, for writing; its descriptor.

    ``O_EXCL``: an existing file (or a symlink in its place) is never opened.

    Raises:
        FileExistsError: ``path`` exists.
        OSError: It could not be created.
    """
    flags = _NEW | os.O_WRONLY | (os.O_APPEND if append else 0)
    fd = os.open(path, flags, _PRIVATE)
    try:
        make_private(fd)
    except BaseException:
        os.close(fd)
        raise
    return fd


def _refuse_links(path: Path, what: str, opener: Callable[[], int]) -> int:
    """``opener()``, with a symbolic link at ``path`` refused by name."""
    try:
        return opener()
    except OSError as exc:
        # O_NOFOLLOW fails with ELOOP on a link (EMLINK on FreeBSD).
        if exc.errno in (errno.ELOOP, errno.EMLINK) and path.is_symlink():
            raise RefusedError(
                f"{what} {path} is a symbolic link; bulkops never writes through a link "
                "(it could point anywhere)",
                hint="give the path of a regular file, or a new name",
            ) from None
        raise


def _open_or_new(path: Path, flags: int, *, what: str) -> int:
    """Open ``path`` with ``flags``, never through a link: a new file is created 0600; an
    existing one keeps its mode."""
    while True:
        try:
            fd = _refuse_links(path, what, lambda: os.open(path, flags | _NEW, _PRIVATE))
        except FileExistsError:
            pass
        else:
            try:
                make_private(fd)  # ours: whatever the umask made of it
            except BaseException:
                os.close(fd)
                raise
            return fd
        try:
            return _refuse_links(
                path, what, lambda: os.open(path, flags | os.O_CLOEXEC | os.O_NOFOLLOW)
            )
        except FileNotFoundError:
            continue  # removed between the two opens: create it after all


def open_or_create(path: Path, *, what: str = "lock file") -> int:
    """Open ``path`` for reading and writing (a lock file), never through a link; a new
    file is created 0600, an existing one keeps its mode.

    Raises:
        RefusedError: ``path`` is a symbolic link.
        OSError: It could not be opened.
    """
    return _open_or_new(path, os.O_RDWR, what=what)


def open_append(path: Path, *, what: str) -> int:
    """Open ``path`` to append to it (a log), never through a link; a new file is
    created 0600, an existing one keeps its mode.

    Raises:
        RefusedError: ``path`` is a symbolic link.
        OSError: It could not be opened.
    """
    return _open_or_new(path, os.O_WRONLY | os.O_APPEND, what=what)


def open_private(path: Path, flags: int, *, what: str) -> int:
    """Open a file the tool wrote and check that it is still private; its descriptor.

    Args:
        path: The file.
        flags: ``os.open`` flags (``O_CLOEXEC`` is added).
        what: What the file is, for messages (``"journal"``, ``"plan"``).

    Raises:
        OSError: It could not be opened.
        RefusedError: See :func:`check_private`.
    """
    fd = os.open(path, flags | os.O_CLOEXEC)
    try:
        check_private(fd, path, what=what)
    except BaseException:
        os.close(fd)
        raise
    return fd


def check_private(fd: int, path: Path, *, what: str) -> None:
    """Refuse a file that is not a regular file of ours that only we may access.

    Raises:
        RefusedError: It is not a regular file, belongs to another user, or group or
            others have permission bits on it (it may hold targeting data).
    """
    st = os.fstat(fd)
    if not stat.S_ISREG(st.st_mode):
        raise RefusedError(f"{what} {path} is not a regular file")
    if st.st_uid != os.geteuid():
        raise RefusedError(
            f"{what} {path} belongs to another user (uid {st.st_uid})",
            hint=f"run as the user who created the {what}",
        )
    if st.st_mode & 0o077:
        raise RefusedError(
            f"{what} {path} is accessible to group or others "
            f"(mode {stat.S_IMODE(st.st_mode):04o}); it may hold targeting data",
            hint=f"chmod 600 {path}",
        )


def read_all(fd: int) -> bytes:
    """Everything from ``fd``'s position to the end."""
    chunks: list[bytes] = []
    while chunk := os.read(fd, 1 << 20):
        chunks.append(chunk)
    return b"".join(chunks)


def write_all(fd: int, data: bytes) -> None:
    """Write all of ``data`` (``os.write`` may write less than asked)."""
    view = memoryview(data)
    while view:
        view = view[os.write(fd, view) :]


def write_private(path: Path, data: str | bytes, *, durable: bool = True) -> None:
    """Replace ``path`` with ``data`` atomically, mode 0600.

    The data goes to a new temporary file beside ``path``, which is renamed over it, so
    a killed process leaves either the old or the new version, never a mix.

    Args:
        path: The file (its directory must exist).
        data: The content; text is UTF-8 encoded.
        durable: fsync the file before the rename and the directory after it, so the
            new version also survives an OS crash.

    Raises:
        NoSpaceError: No room: a full disk, a quota or a file-size limit (naming
            ``path``; the temporary file is removed).
        OSError: The file could not be written otherwise (the temporary file is removed).
    """
    path = Path(path)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.{uuid.uuid4().hex[:8]}.tmp")
    with _writing(path):
        fd = create_private(tmp)
        try:
            try:
                write_all(fd, data.encode() if isinstance(data, str) else data)
                if durable:
                    fsync(fd)
            finally:
                os.close(fd)
            os.replace(tmp, path)
        except BaseException:
            tmp.unlink(missing_ok=True)
            raise
        if durable:
            fsync_directory(path.parent)


def no_space(path: Path, strerror: str | None) -> NoSpaceError:
    """The error of a write to ``path`` that found no room (see :data:`NO_SPACE`)."""
    return NoSpaceError(
        f"no space left while writing {path} ({strerror or 'no space'}); stopped",
        hint="free some space (or raise the file-size limit), then run the command again; "
        "a run's checkpoint resumes with `bulkops resume`",
    )


@contextmanager
def _writing(path: Path) -> Iterator[None]:
    """Turn a full disk, a quota or a file-size limit met while writing ``path`` into
    :class:`~bulkops.errors.NoSpaceError` naming it (other ``OSError``s pass)."""
    try:
        yield
    except OSError as exc:
        if exc.errno in NO_SPACE:
            raise no_space(path, exc.strerror) from exc
        raise


def check_output(path: Path, option: str) -> None:
    """Check, before anything is sent, that ``path`` (given as ``option``) can be
    written: its directory exists (none is ever created for it) and is writable, and
    it is not a directory itself.

    Raises:
        UsageError: naming the option, the path and what is wrong (exit 2).
    """
    directory = path.parent
    problem = None
    if path.is_dir():
        problem = "it is a directory"
    elif not directory.exists():
        problem = f"the directory {directory} does not exist (bulkops does not create it)"
    elif not directory.is_dir():
        problem = f"{directory} is not a directory"
    elif not os.access(directory, os.W_OK | os.X_OK):
        problem = f"the directory {directory} is not writable"
    elif path.exists() and not path.is_symlink() and not os.access(path, os.W_OK):
        problem = "the file is not writable"
    if problem is not None:
        raise UsageError(
            f"{option} {path}: {problem}; nothing was sent",
            hint="give a path in an existing, writable directory",
        )
