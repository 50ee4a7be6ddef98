"""Exclusion with flock: refusal naming the holder, instant release on SIGKILL, state dir."""

from __future__ import annotations

import json
import os
import re
import signal
import socket
import stat
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from bulkops.engine import locks
from bulkops.engine.locks import (
    default_state_dir,
    exclusive_lock,
    lock_path_for_journal,
    lock_path_for_project,
    network_filesystem,
)
from bulkops.errors import RefusedError

ROOT = Path(__file__).resolve().parents[2]

# A separate process that takes the lock, says so, and holds it until killed. Contenders
# print the refusal and exit 3.
CHILD = """
import sys, time
from pathlib import Path
from bulkops.errors import RefusedError
from bulkops.engine.locks import exclusive_lock
try:
    with exclusive_lock(Path(sys.argv[1]), what="project p1", info={"run_id": sys.argv[2]}):
        print("locked", flush=True)
        time.sleep(120)
except RefusedError as exc:
    print("refused", exc, flush=True)
    sys.exit(3)
"""


def spawn(path: Path, run_id: str = "run-1") -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, "-c", CHILD, str(path), run_id],
        stdout=subprocess.PIPE,
        text=True,
        cwd=ROOT,
    )


@pytest.fixture(name="children")
def _children() -> Iterator[list[subprocess.Popen[str]]]:
    """Child processes started by a test; any still alive are SIGKILLed at teardown."""
    started: list[subprocess.Popen[str]] = []
    yield started
    for child in started:
        if child.poll() is None:
            child.kill()
        child.wait()
        if child.stdout is not None:
            child.stdout.close()


API = "https://statsigapi.net/console/v1"


@pytest.fixture(name="lock")
def _lock(tmp_path: Path) -> Path:
    """A lock file path in a fresh state directory."""
    return lock_path_for_project(tmp_path / "state", API, "p1")


def test_holder_in_another_process_refuses_at_once_and_sigkill_frees_it(lock: Path, children):
    """A second run is refused at once naming the holder's pid; killing the holder frees the lock."""
    holder = spawn(lock)
    children.append(holder)
    assert holder.stdout is not None
    assert holder.stdout.readline().strip() == "locked"

    started = time.monotonic()
    with pytest.raises(RefusedError) as info:
        with exclusive_lock(lock, what="project p1", info={"run_id": "run-2"}):
            pytest.fail("acquired a lock another process holds")
    assert time.monotonic() - started < 1.0
    message = str(info.value)
    assert f"project p1 is locked by pid {holder.pid} on {socket.gethostname()} since " in message
    assert info.value.hint is not None

    holder.send_signal(signal.SIGKILL)
    holder.wait()
    started = time.monotonic()
    with exclusive_lock(lock, what="project p1", info={"run_id": "run-3"}):
        assert time.monotonic() - started < 1.0
        held = json.loads(lock.read_text())
        assert held["pid"] == os.getpid()
        assert held["run_id"] == "run-3"
    assert lock.exists()
    assert stat.S_IMODE(lock.stat().st_mode) == 0o600


def test_exactly_one_of_several_contenders_wins(lock: Path, children):
    """Of five processes started together exactly one holds the lock; the rest name it."""
    contenders = [spawn(lock, f"run-{i}") for i in range(5)]
    children.extend(contenders)
    winners = []
    refusals = []
    for child in contenders:
        assert child.stdout is not None
        line = child.stdout.readline().strip()
        if line == "locked":
            winners.append(child)
        else:
            assert child.wait(timeout=10) == 3
            refusals.append(line)
    assert len(winners) == 1
    assert len(refusals) == 4
    assert all(f"locked by pid {winners[0].pid} on " in line for line in refusals)


def test_second_open_in_the_same_process_is_refused(lock: Path):
    """flock is per open file: a second lock in the same process is refused too."""
    with exclusive_lock(lock, what="journal j", info={}):
        with pytest.raises(RefusedError, match=f"journal j is locked by pid {os.getpid()}"):
            with exclusive_lock(lock, what="journal j", info={}):
                pytest.fail("acquired twice")
    with exclusive_lock(lock, what="journal j", info={}):
        pass  # released on exit, so it can be taken again


def test_lock_file_is_private_kept_and_cleared(lock: Path):
    """The lock file is 0600 in a 0700 directory, holds the holder's details, and stays."""
    old = os.umask(0)
    try:
        with exclusive_lock(lock, what="project p1", info={"run_id": "r9", "pid": -1}):
            held = json.loads(lock.read_text())
            assert stat.S_IMODE(lock.stat().st_mode) == 0o600
            assert stat.S_IMODE(lock.parent.stat().st_mode) == 0o700
    finally:
        os.umask(old)
    assert held["pid"] == os.getpid()  # info cannot spoof the holder's identity
    assert held["host"] == socket.gethostname()
    assert held["what"] == "project p1"
    assert held["run_id"] == "r9"
    assert "started" in held
    assert lock.exists()
    assert lock.read_text() == ""


def test_an_existing_lock_file_keeps_its_mode_and_a_symlink_is_refused(lock: Path, tmp_path: Path):
    """A lock file the tool did not create is locked as it is (its mode unchanged); a
    symbolic link in a lock file's place is refused, and its target left alone."""
    lock.parent.mkdir(parents=True)
    lock.write_text("")
    lock.chmod(0o640)
    with exclusive_lock(lock, what="project p1", info={}):
        assert stat.S_IMODE(lock.stat().st_mode) == 0o640
    victim = tmp_path / "victim"
    victim.write_text("keep me")
    victim.chmod(0o644)
    link = lock.with_name("linked.lock")
    link.symlink_to(victim)
    with pytest.raises(
        RefusedError, match=f"the lock file of project p1 {link} is a symbolic link"
    ):
        with exclusive_lock(link, what="project p1", info={}):
            pytest.fail("locked through a link")
    assert victim.read_text() == "keep me" and stat.S_IMODE(victim.stat().st_mode) == 0o644


def test_lock_is_released_when_the_block_raises(lock: Path):
    """An exception inside the block releases the lock."""
    with pytest.raises(KeyError):
        with exclusive_lock(lock, what="x", info={}):
            raise KeyError("boom")
    with exclusive_lock(lock, what="x", info={}):
        pass


def test_refused_on_a_network_filesystem(tmp_path: Path, monkeypatch):
    """A lock file on NFS is refused: flock may silently do nothing there."""
    mounts = tmp_path / "mounts"
    mounts.write_text(f"server:/export {tmp_path} nfs4 rw,relatime 0 0\n")
    monkeypatch.setattr(locks, "_MOUNTS_FILE", mounts)
    with pytest.raises(RefusedError, match="on a nfs4 filesystem") as info:
        with exclusive_lock(tmp_path / "locks" / "p.lock", what="project p", info={}):
            pytest.fail("locked on NFS")
    assert info.value.hint is not None and "BULKOPS_STATE_DIR" in info.value.hint


def test_network_filesystem_detection():
    """The longest matching mount point decides; escaped spaces are understood."""
    mounts = "\n".join(
        [
            "/dev/sda1 / ext4 rw 0 0",
            "server:/home /mnt/home nfs rw 0 0",
            "/dev/sdb1 /mnt/home/local ext4 rw 0 0",
            "//nas/share /mnt/my\\040share cifs rw 0 0",
            "garbage",
        ]
    )
    assert network_filesystem(Path("/mnt/home/me/state"), mounts) == "nfs"
    assert network_filesystem(Path("/mnt/home"), mounts) == "nfs"
    assert network_filesystem(Path("/mnt/home/local/state"), mounts) is None
    assert network_filesystem(Path("/mnt/homework"), mounts) is None
    assert network_filesystem(Path("/mnt/my share/x"), mounts) == "cifs"
    assert network_filesystem(Path("/var/tmp"), mounts) is None


def test_lock_paths():
    """Project lock names are safe file names, distinct for distinct ids and API URLs."""
    state = Path("/state")
    path = lock_path_for_project(state, API, "4Abc_9.x-y")
    assert path.parent == Path("/state/locks")
    assert re.fullmatch(r"project-4Abc_9\.x-y@statsigapi\.net-[0-9a-f]{10}\.lock", path.name)
    odd = lock_path_for_project(state, API, "../../etc/passwd")
    assert odd.parent == Path("/state/locks")
    assert "/" not in odd.name  # one path component: no traversal out of locks/
    assert lock_path_for_project(state, API, "a/b") != lock_path_for_project(state, API, "a_b")
    assert lock_path_for_project(state, API, "..").parent == Path("/state/locks")
    assert lock_path_for_journal(Path("/runs/j.jsonl")) == Path("/runs/j.jsonl.lock")


def test_one_project_at_two_api_urls_has_two_locks():
    """A rehearsal on the emulator (same project id, from a snapshot) and the production
    API are two locks; one URL spelled with a trailing slash or another case is one."""
    state = Path("/state")
    emulator = "http://127.0.0.1:8700/console/v1"
    assert lock_path_for_project(state, API, "p") != lock_path_for_project(state, emulator, "p")
    assert "@127.0.0.1_8700-" in lock_path_for_project(state, emulator, "p").name
    assert lock_path_for_project(state, API, "p") == lock_path_for_project(
        state, "HTTPS://StatsigAPI.net/console/v1/", "p"
    )
    assert lock_path_for_project(state, emulator, "p") != lock_path_for_project(
        state, "http://127.0.0.1:8701/console/v1", "p"
    )


def test_default_state_dir_honours_the_environment(tmp_path: Path, monkeypatch):
    """$BULKOPS_STATE_DIR wins, then $XDG_STATE_HOME/bulkops, then ~/.local/state/bulkops."""
    explicit = tmp_path / "explicit"
    xdg = tmp_path / "xdg"
    home = tmp_path / "home"
    env = {"BULKOPS_STATE_DIR": str(explicit), "XDG_STATE_HOME": str(xdg)}
    assert default_state_dir(env) == explicit
    assert stat.S_IMODE(explicit.stat().st_mode) == 0o700
    assert default_state_dir({"XDG_STATE_HOME": str(xdg)}) == xdg / "bulkops"
    monkeypatch.setenv("HOME", str(home))
    assert default_state_dir({"XDG_STATE_HOME": "relative/ignored"}) == (
        home / ".local" / "state" / "bulkops"
    )
    monkeypatch.setenv("BULKOPS_STATE_DIR", str(explicit / "from-os-environ"))
    assert default_state_dir() == explicit / "from-os-environ"
