"""``bulkops emulator``: the real command in a subprocess."""

from __future__ import annotations

import json
import os
import re
import select
import signal
import stat
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from bulkops.cli.main import main
from bulkops.emulator.seed import EMPTY_KEY

STARTUP_SECONDS = 30.0


class Emulator:
    """A running ``bulkops emulator`` process and the URL it printed."""

    def __init__(self, proc: subprocess.Popen[bytes], url: str) -> None:
        self.proc = proc
        self.url = url

    def get(self, path: str, key: str = EMPTY_KEY) -> tuple[int, Any]:
        """GET ``path`` (relative to the API base URL); status and decoded body."""
        request = urllib.request.Request(
            self.url + path, headers={"STATSIG-API-KEY": key, "STATSIG-API-VERSION": "20240601"}
        )
        try:
            with urllib.request.urlopen(request, timeout=10) as response:
                return response.status, json.loads(response.read())
        except urllib.error.HTTPError as err:
            with err:
                return err.code, json.loads(err.read())

    def interrupt(self) -> tuple[int, str, str]:
        """Send SIGINT; the exit code and the rest of stdout and stderr."""
        self.proc.send_signal(signal.SIGINT)
        out, err = self.proc.communicate(timeout=20)
        return self.proc.returncode, out.decode(), err.decode()


def run(*args: str) -> subprocess.CompletedProcess[str]:
    """Run ``bulkops emulator ARGS`` to completion (for arguments it must refuse)."""
    return subprocess.run(
        [sys.executable, "-m", "bulkops", "emulator", *args],
        capture_output=True,
        text=True,
        timeout=60,
        env=_env(),
    )


def _env() -> dict[str, str]:
    return {k: v for k, v in os.environ.items() if not k.startswith("STATSIG_")}


def _first_line(proc: subprocess.Popen[bytes]) -> str:
    assert proc.stdout is not None
    fd = proc.stdout.fileno()
    line = b""
    deadline = time.monotonic() + STARTUP_SECONDS
    while not line.endswith(b"\n") and time.monotonic() < deadline:
        ready, _, _ = select.select([fd], [], [], deadline - time.monotonic())
        chunk = os.read(fd, 1) if ready else b""
        if not chunk:
            break
        line += chunk
    return line.decode()


def _default_sigint() -> None:
    signal.signal(signal.SIGINT, signal.SIG_DFL)


@pytest.fixture(name="start")
def _start() -> Iterator[Any]:
    """Start ``bulkops emulator --port 0 ARGS`` and wait for its URL; killed at teardown."""
    procs: list[subprocess.Popen[bytes]] = []

    def start(*args: str) -> Emulator:
        proc = subprocess.Popen(
            [sys.executable, "-m", "bulkops", "emulator", "--port", "0", *args],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            env=_env(),
            bufsize=0,  # unbuffered: the first line is read here, the rest by communicate()
            # A suite started in the background by a script inherits SIGINT ignored (POSIX),
            # and so would the emulator: give it the default a terminal's Ctrl-C meets.
            preexec_fn=_default_sigint,
        )
        procs.append(proc)
        assert proc.stdout is not None
        # The URL line is printed once the socket listens; the rest is read at the end.
        first = _first_line(proc)
        match = re.search(r"listening on (http://\S+)", first)
        if match is None:
            proc.kill()
            out, err = proc.communicate(timeout=10)
            raise AssertionError(f"emulator did not start: {first}{out!r}\n{err!r}")
        return Emulator(proc, match.group(1))

    yield start
    for proc in procs:
        if proc.poll() is None:
            proc.kill()
            proc.communicate(timeout=10)


def test_port_0_prints_the_url_serves_and_stops_cleanly_on_sigint(start):
    """--port 0 prints a real URL serving the --seed empty project; Ctrl-C exits 0 cleanly."""
    emulator = start("--seed", "empty")
    assert re.fullmatch(r"http://127\.0\.0\.1:\d+/console/v1", emulator.url)
    assert not emulator.url.endswith(":0/console/v1")
    root = emulator.url.removesuffix("/console/v1") + "/"
    with urllib.request.urlopen(root, timeout=10) as response:
        index = json.loads(response.read())
    assert index["projects"] == [{"id": "empty", "name": "Empty Project"}]  # --seed empty only
    status, body = emulator.get("/project")
    assert status == 200, body
    assert body["data"]["id"] == "empty"
    status, body = emulator.get("/project", key="console-wrong-key")
    assert status == 401 and "invalid key" in body["message"]
    code, out, err = emulator.interrupt()
    assert code == 0, err
    assert f"key {EMPTY_KEY} [read-write]" in out
    assert out.count("key console-") == 2  # the empty seed's read-write and read-only keys
    assert "emulator stopped" in err
    assert "Traceback" not in err + out


def test_require_reviews_turns_the_project_and_production_requirement_on(start):
    """--require-reviews: every project requires reviews, production too, and the output
    says where to approve them."""
    emulator = start("--seed", "empty", "--require-reviews")
    status, body = emulator.get("/settings/reviews")
    assert status == 200 and body["data"]["is_config_review_required"] is True
    _, body = emulator.get("/environments")
    production = [e for e in body["data"]["environments"] if e["isProduction"]]
    assert production and all(e["requiresReview"] for e in production)
    code, out, _err = emulator.interrupt()
    assert code == 0 and "/_emulator/reviews/ID/approve" in out


def test_request_log_file_is_private_with_one_json_line_per_request(start, tmp_path):
    """--request-log FILE is created 0600 and gets one JSON line per request."""
    log = tmp_path / "requests.jsonl"
    emulator = start("--seed", "empty", "--request-log", str(log))
    assert stat.S_IMODE(log.stat().st_mode) == 0o600
    emulator.get("/project")
    emulator.get("/gates", key="console-wrong-key")
    assert emulator.interrupt()[0] == 0
    lines = [json.loads(line) for line in log.read_text().splitlines()]
    assert [(x["method"], x["path"], x["status"]) for x in lines] == [
        ("GET", "/console/v1/project", 200),
        ("GET", "/console/v1/gates", 401),
    ]
    assert all({"time", "applied", "fault"} <= set(x) for x in lines)
    assert "console-wrong-key" not in log.read_text()
    assert stat.S_IMODE(Path(log).stat().st_mode) == 0o600


BAD_VALUES = [
    (["--quota", "100"], "bad quota '100': expected COUNT/SPAN like 100/10s or 900/15m"),
    (["--quota", "0/10s"], "bad quota '0/10s': count and span must be positive"),
    (["--id-list-quota", "12/x"], "bad quota '12/x'"),
    (["--faults", "429=abc"], "fault rate for 429 must be a number between 0 and 1, got 'abc'"),
    (["--faults", "500=1.5"], "fault rate for 500 must be a number between 0 and 1, got '1.5'"),
    (["--faults", "reset"], "fault rate for reset must be a number between 0 and 1, got ''"),
    (["--faults", "boom=0.1"], "unknown fault 'boom'"),
    (["--faults", "429=0.6,500=0.6"], "fault rates add up to more than 1"),
    (["--time-scale", "0"], "--time-scale must be positive"),
    (["--seed", "no-such-seed"], "unknown seed 'no-such-seed'"),
]


@pytest.mark.parametrize(("args", "message"), [BAD_VALUES[0], BAD_VALUES[3]])
def test_bad_quota_or_faults_exit_2_with_a_clear_message(args, message):
    """The real command refuses a bad --quota / --faults with exit 2 and a FAILED line."""
    result = run("--port", "0", "--seed", "empty", *args)
    assert result.returncode == 2, result.stderr
    assert f"FAILED: {message}" in result.stderr
    assert "listening" not in result.stdout
    assert "Traceback" not in result.stderr


@pytest.mark.parametrize(("args", "message"), BAD_VALUES)
def test_every_bad_value_is_refused_before_serving(args, message, capsys):
    """Each bad value ends ``bulkops emulator`` with exit 2 and names the problem."""
    code = main(["emulator", "--port", "0", "--seed", "empty", *args])
    out, err = capsys.readouterr()
    assert code == 2
    assert f"FAILED: {message}" in err
    assert "listening" not in out
