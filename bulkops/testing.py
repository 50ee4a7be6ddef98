"""Real processes for the process tests, the benchmark and the soak: ``bulkops`` and the emulator.

Python start-up plus imports cost about a second of CPU per process, and the crash
tests and benchmarks need dozens of processes, so both are **forked** from a process
that has everything imported: each is a real process (its own pid and locks, killable
with a real ``SIGKILL``, exiting through ``os._exit`` at a failpoint) that starts in
milliseconds. Shipped in the package, as ``structlog.testing`` is.

* ``bulkops``: :func:`fork_cli` starts a command (a :class:`CliRun`), :func:`wait_cli`
  reaps it, :func:`run_cli` does both; :func:`cli_env` is its environment against an
  emulator.
* The emulator: :func:`seed_over_api` makes calls against a state through the API (in
  this process, before forking), :func:`serve_forked` serves a copy of the state from a
  forked child configured there (time scale, quotas, faults), and the child appends
  every request to a request log, the ground truth the tests check
  (:func:`read_request_log`, :func:`applied_counts`); :meth:`Emulator.reviews` and
  :meth:`Emulator.decide` play the people who approve or reject reviews.
"""

from __future__ import annotations

import asyncio
import contextlib
import gc
import json
import os
import signal
import sys
import time
import urllib.request
from collections import Counter
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import structlog
from aiohttp import web
from pydantic import SecretStr

from .api.client import ConsoleClient
from .api.paths import WRITE_METHODS
from .emulator.handlers.reviews import require_reviews as project_requires_reviews
from .emulator.server import ForkedEmulator, fork_emulator, running_emulator
from .emulator.state import EmulatorState, Faults
from .engine.failpoints import FAILPOINT_ENV
from .engine.locks import STATE_DIR_ENV
from .engine.quota import QuotaWindow
from .settings import API_KEY_ENV, API_URL_ENV, Settings

__all__ = [
    "Call",
    "CliRun",
    "Emulator",
    "RequestLogTail",
    "applied_counts",
    "cli_env",
    "fork_cli",
    "read_request_log",
    "resume_through_reviews",
    "run_cli",
    "seed_over_api",
    "serve_forked",
    "wait_cli",
]

Call = tuple[str, str, Any]
"""One API call: ``(method, path relative to /console/v1, body or None)``."""

_POLL = 0.005  # seconds between looks at a child that has not exited yet


# -- bulkops in a forked child -----------------------------------------------------------


@dataclass
class CliRun:
    """A ``bulkops`` child process: its pid, where its output goes, its exit code once
    reaped (``128 + signal`` when a signal ended it: 137 for SIGKILL or a failpoint)."""

    pid: int
    out: Path
    err: Path
    code: int | None = None
    started: float = field(default_factory=time.monotonic)

    def stdout(self) -> str:
        return self.out.read_text()

    def stderr(self) -> str:
        return self.err.read_text()

    def tail(self, chars: int = 600) -> str:
        """The end of its stderr (empty before it wrote any)."""
        return (self.stderr() if self.err.exists() else "").strip()[-chars:]

    def poll(self) -> bool:
        """Whether it has exited (reaped; its exit code is then in ``code``)."""
        if self.code is not None:
            return True
        pid, status = os.waitpid(self.pid, os.WNOHANG)
        if pid:
            self.code = _exit_code(status)
        return bool(pid)

    def kill(self) -> None:
        """SIGKILL it and reap it (nothing happens if it has been reaped already)."""
        if self.code is not None:
            return
        with contextlib.suppress(ProcessLookupError):
            os.kill(self.pid, signal.SIGKILL)
        with contextlib.suppress(ChildProcessError):
            _, status = os.waitpid(self.pid, 0)
            self.code = _exit_code(status)


def _exit_code(status: int) -> int:
    return 128 + os.WTERMSIG(status) if os.WIFSIGNALED(status) else os.WEXITSTATUS(status)


def _warm() -> None:
    # Everything a command imports, imported in the parent once: children start warm.
    import anyio._backends._asyncio  # noqa: F401  (anyio loads its backend on first use)

    from . import jobs  # noqa: F401
    from .cli import main  # noqa: F401


def _fork(argv: Sequence[str], env: Mapping[str, str], out: Path, err: Path) -> int:
    sys.stdout.flush()
    sys.stderr.flush()
    pid = os.fork()
    if pid:
        return pid
    # What the parent (a test session, hundreds of MB) built is never collected here: a
    # collection would walk, and copy page by page, the whole inherited heap, stalling
    # the child for a large share of a second (614 ms for a 2-million-object parent).
    gc.freeze()
    code = 1  # the bulkops process from here on
    try:
        os.dup2(os.open(os.devnull, os.O_RDONLY), 0)
        os.dup2(os.open(out, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600), 1)
        os.dup2(os.open(err, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600), 2)
        sys.stdin = open(0, closefd=False)
        sys.stdout = open(1, "w", closefd=False, buffering=1)
        sys.stderr = open(2, "w", closefd=False, buffering=1)
        for name in (API_KEY_ENV, API_URL_ENV, FAILPOINT_ENV):
            os.environ.pop(name, None)
        os.environ.update(env)
        signal.signal(signal.SIGINT, signal.default_int_handler)
        structlog.reset_defaults()
        from .cli import main

        code = main(list(argv))
    except SystemExit as exc:
        code = exc.code if isinstance(exc.code, int) else 1
    except BaseException:
        import traceback

        traceback.print_exc()
        code = 99
    finally:
        with contextlib.suppress(Exception):
            sys.stdout.flush()
            sys.stderr.flush()
        os._exit(code)


def fork_cli(argv: Sequence[str], env: Mapping[str, str], out_dir: Path, tag: str) -> CliRun:
    """Start ``bulkops argv`` in a forked child; reap it with :func:`wait_cli`.

    The child reads /dev/null, writes stdout to ``out_dir/<tag>.out`` and stderr to
    ``out_dir/<tag>.err`` (created 0600), runs with ``env`` on top of this process's
    environment minus the key, URL and failpoint variables, and exits with the
    command's exit code (99 for a crash).
    """
    _warm()
    out, err = out_dir / f"{tag}.out", out_dir / f"{tag}.err"
    return CliRun(pid=_fork(argv, env, out, err), out=out, err=err)


def wait_cli(run: CliRun, timeout: float = 120.0) -> int:
    """Wait for a CLI child to exit; its exit code.

    Raises:
        TimeoutError: it ran longer than ``timeout`` seconds (it is killed).
    """
    deadline = time.monotonic() + timeout
    while not run.poll():
        if time.monotonic() > deadline:
            run.kill()
            raise TimeoutError(f"CLI run did not finish: {run.tail(2000)}")
        time.sleep(_POLL)
    assert run.code is not None
    return run.code


def run_cli(
    argv: Sequence[str], env: Mapping[str, str], out_dir: Path, tag: str, *, timeout: float = 120.0
) -> CliRun:
    """Run ``bulkops argv`` in a forked child (:func:`fork_cli`) and wait for it."""
    run = fork_cli(argv, env, out_dir, tag)
    wait_cli(run, timeout)
    return run


def cli_env(key: str, url: str, state_dir: Path, **extra: str) -> dict[str, str]:
    """The environment of a command against an emulator: its key, its URL and a private
    state directory (created 0700), plus ``extra`` variables."""
    state_dir.mkdir(mode=0o700, parents=True, exist_ok=True)
    return {API_KEY_ENV: key, API_URL_ENV: url, STATE_DIR_ENV: str(state_dir), **extra}


def resume_through_reviews(
    emulator: Emulator,
    checkpoint: Path,
    env: Mapping[str, str],
    out_dir: Path,
    tag: str,
    *,
    rounds: int = 10,
) -> CliRun:
    """Approve every pending review and ``bulkops resume`` the checkpoint, again while
    it ends waiting for review (exit 5: a later change of an object waits for the
    earlier one's review); the last run."""
    for n in range(rounds):
        emulator.decide([r["review_id"] for r in emulator.reviews("pending")], approve=True)
        run = run_cli(["resume", str(checkpoint)], env, out_dir, f"{tag}{n}")
        if run.code != 5:
            return run
    raise AssertionError(f"{checkpoint} still waits for review after {rounds} rounds")


# -- the emulator ------------------------------------------------------------------------


def seed_over_api(state: EmulatorState, calls: Mapping[str, Sequence[Call]]) -> None:
    """Make ``calls[key]`` with each key's client against ``state``, served in this
    process meanwhile, with quotas off: objects exactly as the API creates them."""
    quotas = state.quotas_enabled
    state.quotas_enabled = False

    async def seed() -> None:
        async with running_emulator(state) as url:
            for key, todo in calls.items():
                settings = Settings(api_key=SecretStr(key), base_url=url)
                async with ConsoleClient(settings) as client:
                    for method, path, body in todo:
                        await client.call(method, path, body)

    try:
        if any(calls.values()):
            asyncio.run(seed())
    finally:
        state.quotas_enabled = quotas


class Emulator(ForkedEmulator):
    """A forked emulator process: its URL, pid and request log."""

    def log(self) -> list[dict[str, Any]]:
        """Every request so far."""
        return read_request_log(self.log_path)

    def reviews(self, *statuses: str) -> list[dict[str, Any]]:
        """Every review of every project (in one of ``statuses``, if given), oldest first:
        the API's review objects with ``project``, ``kind`` and ``object_id``."""
        query = "?" + "&".join(f"status={s}" for s in statuses) if statuses else ""
        found: list[dict[str, Any]] = self._admin("GET", f"/_emulator/reviews{query}")
        return found

    def decide(
        self, review_ids: Sequence[str], *, approve: bool, reason: str | None = None
    ) -> None:
        """Approve or reject these reviews, as people do in the console."""
        verb = "approve" if approve else "reject"
        for review_id in review_ids:
            self._admin("POST", f"/_emulator/reviews/{review_id}/{verb}", {"reason": reason})

    def _admin(self, method: str, path: str, body: Any = None) -> Any:
        data = json.dumps(body).encode() if body is not None else None
        request = urllib.request.Request(
            self.root + path, data=data, method=method, headers={"Content-Type": "application/json"}
        )
        with urllib.request.urlopen(request, timeout=30) as response:
            return json.load(response)["data"]


@contextlib.contextmanager
def serve_forked(
    state: EmulatorState,
    log_path: Path,
    *,
    time_scale: float = 60.0,
    quota: Sequence[str] | None = None,
    quotas_enabled: bool = True,
    faults: str | None = None,
    hang_seconds: float | None = None,
    fault_seed: int = 7,
    build: Callable[[EmulatorState], None] | None = None,
    routes: Callable[[web.Application], None] | None = None,
    timeout: float = 30.0,
    host: str = "127.0.0.1",
    require_reviews: bool = False,
) -> Iterator[Emulator]:
    """Serve a copy of ``state`` from a forked child until the block ends.

    The child's copy starts with no quota history and the settings given here; what it
    changes stays in the child. ``build(state)`` runs in the child first (building a big
    state there keeps this process small); ``routes(app)`` may add routes of its own.

    Args:
        state: What to serve (unchanged here).
        log_path: The request log (appended to, 0600).
        time_scale: The emulator's clock runs this many times faster (60: a
            15-minute quota window lasts 15 s).
        quota: Mutation quota windows (``N/SPAN``) instead of the default ones.
        quotas_enabled: Enforce the quotas.
        faults: Fault rates (``429=R,500=R,reset=R,hang=R``) on mutations.
        hang_seconds: How long a hang fault holds.
        fault_seed: Seed of the fault draws.
        build: Prepares the state in the child.
        routes: Adds routes to the app.
        timeout: Seconds the child may take to listen.
        host: The address it listens on (another than loopback stands in for a
            foreign host).
        require_reviews: Every project requires reviews (``--require-reviews``).

    Raises:
        ValueError: a bad ``quota`` or ``faults``.
        RuntimeError: the child did not listen in time.
    """
    windows = tuple(QuotaWindow.parse(q) for q in quota) if quota else None
    injected = Faults.parse(faults) if faults else Faults()
    if hang_seconds is not None:
        injected.hang_seconds = hang_seconds

    def prepare(child: EmulatorState) -> None:
        if build is not None:
            build(child)
        if require_reviews:
            for project in child.projects.values():
                project_requires_reviews(project)
        child.time_scale = time_scale
        for project in child.projects.values():
            project.quotas.clear()
        if windows is not None:
            child.quota = windows
        child.quotas_enabled = quotas_enabled
        child.faults = injected
        child.fault_seed = fault_seed
        child.capture = None

    with fork_emulator(
        state, log_path, prepare=prepare, routes=routes, timeout=timeout, host=host
    ) as forked:
        yield Emulator(url=forked.url, pid=forked.pid, log_path=forked.log_path)


def read_request_log(path: Path) -> list[dict[str, Any]]:
    """The request log's entries (a torn last line, from a killed writer, is skipped)."""
    if not path.exists():
        return []
    entries = []
    for line in path.read_text(encoding="utf-8").splitlines():
        with contextlib.suppress(ValueError):
            entries.append(json.loads(line))
    return entries


class RequestLogTail:
    """The emulator's request log read as it grows: each :meth:`poll` reads only what was
    appended since the last (a partial last line waits for the rest), so polling it every
    few milliseconds costs what the new lines cost, not the whole log."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.offset = 0
        self.rest = b""
        self.entries: list[dict[str, Any]] = []
        self.writes = 0  # entries of a write method (POST, PUT, PATCH, DELETE)

    def poll(self) -> list[dict[str, Any]]:
        """Every entry so far (the same list, grown)."""
        if not self.path.exists():
            return self.entries
        with self.path.open("rb") as f:
            f.seek(self.offset)
            data = f.read()
        self.offset += len(data)
        lines = (self.rest + data).split(b"\n")
        self.rest = lines.pop()
        for line in lines:
            if line.strip():
                entry = json.loads(line)
                self.entries.append(entry)
                if entry["method"] in WRITE_METHODS:
                    self.writes += 1
        return self.entries


def applied_counts(entries: Sequence[Mapping[str, Any]]) -> Counter[tuple[str, str]]:
    """How many times each ``(method, path)`` changed state, per the emulator."""
    return Counter((str(e["method"]), str(e["path"])) for e in entries if e.get("applied"))
