"""The real-world boundary (issue 12, points 1–6): where the key may go, what a
misconfiguration says, files that are not what they seem, and whose lock is whose.

Every test runs the real CLI (a forked process) against a real emulator process; a
"foreign host" is a listener on this machine's own non-loopback address, and a
``Listener`` is a socket that only listens, so a test can tell that nothing (not even
a connection) reached it.
"""

from __future__ import annotations

import os
import re
import socket
import stat
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from aiohttp import web
from engine_support import archive_calls, seeded_state
from engine_support import calls_file as _calls
from engine_support import writes as _writes

from bulkops.cli.main import main
from bulkops.emulator import EmulatorState
from bulkops.emulator.seed import EMPTY_KEY, EMPTY_READ_ONLY_KEY
from bulkops.engine.failpoints import FAILPOINT_ENV
from bulkops.engine.locks import exclusive_lock, lock_path_for_project
from bulkops.testing import CliRun, Emulator, cli_env, run_cli, serve_forked

# No user-facing message names the network library or its classes (``-v`` may).
LIBRARY_WORDS = re.compile(r"aiohttp|Client\w*Error|\w+Error:")
# A generated-looking Console key: never written anywhere by bulkops.
KEY_SHAPED = "console-Zx81KqLm0Pw7Rt2Yv5Nb"
# A second key of the project that does not look like a key: only its value tells.
SOURCE_KEY = "plainsourcekey" + os.urandom(8).hex()


@pytest.fixture(scope="module", name="seed")
def _seed() -> EmulatorState:
    """The empty project with three gates; it answers to SOURCE_KEY too."""
    return seeded_state(gates=3, extra_keys={SOURCE_KEY: "empty"})


class Listener:
    """A TCP socket that listens and never answers: who connected, and what they sent."""

    def __init__(self, host: str) -> None:
        self.host = host
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self.sock.bind((host, 0))
        self.sock.listen(16)
        self.port = self.sock.getsockname()[1]

    def url(self, path: str = "/console/v1") -> str:
        return f"http://{self.host}:{self.port}{path}"

    def received(self) -> list[bytes]:
        """What each connection made so far sent (a completed connection waits in the
        backlog until accepted, so this sees every one, even from a finished process)."""
        self.sock.setblocking(False)
        got: list[bytes] = []
        while True:
            try:
                conn, _ = self.sock.accept()
            except BlockingIOError:
                return got
            with conn:
                conn.settimeout(5)
                try:
                    got.append(conn.recv(65536))
                except OSError:
                    got.append(b"")

    def close(self) -> None:
        self.sock.close()


@pytest.fixture(name="listen")
def _listen() -> Iterator[Any]:
    """Open listeners on an address; all closed at the end."""
    opened: list[Listener] = []

    def listen(host: str = "127.0.0.1") -> Listener:
        opened.append(Listener(host))
        return opened[-1]

    yield listen
    for listener in opened:
        listener.close()


def _this_machines_address() -> str:
    """An address of this machine that is not loopback: it stands in for a foreign host
    (what matters is that bulkops cannot tell it is local). Skips where there is none."""
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as probe:
        try:
            probe.connect(("192.0.2.1", 9))  # UDP: picks the route, sends nothing
            address = str(probe.getsockname()[0])
        except OSError:
            pytest.skip("this machine has no non-loopback address")
    if address.startswith("127."):
        pytest.skip("this machine has no non-loopback address")
    return address


def _archive(tmp_path: Path, *gates: int) -> Path:
    return archive_calls(tmp_path, *gates, name=f"archive{'-'.join(map(str, gates))}.jsonl")


def _failed(run: CliRun, code: int) -> str:
    """stderr of a run that must have exited ``code`` with words for people only."""
    err = run.stderr()
    assert run.code == code, err
    assert "Traceback" not in err and not LIBRARY_WORDS.search(err), err
    return err


# -- 1. plain http to another host ------------------------------------------------------


def test_plain_http_to_another_host_is_refused_by_every_command_before_any_request(
    env: dict[str, str], emulator: Emulator, tmp_path: Path, listen: Any
) -> None:
    """plan, run, apply, resume, undo, snapshot and copy-project's source client, given
    an http:// URL on another host: exit 2 naming STATSIG_API_URL/--api-url, and not even
    a connection reaches that host."""
    foreign = listen(_this_machines_address())
    plan, done, killed = tmp_path / "p.plan", tmp_path / "done.ckpt", tmp_path / "killed.ckpt"
    made = [
        run_cli(["plan", "apply-calls", "--file", str(_archive(tmp_path, 0)), "-o", str(plan)],
                env, tmp_path, "mk-plan"),
        run_cli(["run", "apply-calls", "--file", str(_archive(tmp_path, 1)), "--apply", "--yes",
                 "--checkpoint", str(done)], env, tmp_path, "mk-done"),
        run_cli(["run", "apply-calls", "--file", str(_archive(tmp_path, 2)), "--apply", "--yes",
                 "--checkpoint", str(killed)], {**env, FAILPOINT_ENV: "after-intent:1"},
                tmp_path, "mk-killed"),
    ]  # fmt: skip
    assert [r.code for r in made] == [0, 0, 137], [r.tail() for r in made]
    sent_before = len(emulator.log())

    calls = str(_archive(tmp_path, 0))
    commands = {
        "plan": ["plan", "apply-calls", "--file", calls],
        "run": ["run", "apply-calls", "--file", calls, "--apply", "--yes"],
        "apply": ["apply", str(plan), "--yes"],
        "resume": ["resume", str(killed), "--yes"],
        "undo": ["undo", str(done), "--apply", "--yes"],
        "snapshot": ["snapshot", "-o", str(tmp_path / "snap.json")],
        "copy-project": ["run", "copy-project", "--source-key-env", "SRC",
                         "--target-key-env", "DST", "--apply", "--yes"],
    }  # fmt: skip
    foreign_env = {**env, "STATSIG_API_URL": foreign.url(), "SRC": EMPTY_KEY, "DST": EMPTY_KEY}
    for name, argv in commands.items():
        by_flag = name in ("run", "undo")  # the flag, for some; the variable, for the rest
        argv = [*argv, "--api-url", foreign.url()] if by_flag else argv
        run = run_cli(argv, foreign_env if not by_flag else env, tmp_path, f"foreign-{name}")
        err = _failed(run, 2)
        assert "refusing to send the key in clear text" in err, (name, err)
        assert "STATSIG_API_URL or --api-url" in err and "nothing was sent" in err, (name, err)
        assert "--allow-insecure-http" in err, (name, err)
    assert foreign.received() == []
    assert len(emulator.log()) == sent_before
    assert not (tmp_path / "snap.json").exists()


def test_allow_insecure_http_talks_to_another_host_and_warns(
    seed: EmulatorState, tmp_path: Path
) -> None:
    """With --allow-insecure-http the request goes to the http:// host, with a warning
    on every run; loopback needs no flag and gets no warning."""
    address = _this_machines_address()
    with serve_forked(seed, tmp_path / "foreign.log", host=address) as foreign:
        env = cli_env(EMPTY_KEY, foreign.url, tmp_path / "state")
        argv = ["plan", "apply-calls", "--file", str(_archive(tmp_path, 0))]
        refused = run_cli(argv, env, tmp_path, "refused")
        assert foreign.log() == []
        allowed = [
            run_cli([*argv, "--allow-insecure-http"], env, tmp_path, f"ok{i}") for i in (1, 2)
        ]
        arrived = len(foreign.log())
    assert refused.code == 2
    for run in allowed:
        assert run.code == 0, run.stderr()
        assert f"the key goes to {address}" in run.stderr() and "clear text" in run.stderr()
    assert arrived > 0
    with serve_forked(seed, tmp_path / "local.log") as local:
        run = run_cli(argv, cli_env(EMPTY_KEY, local.url, tmp_path / "state"), tmp_path, "local")
    assert run.code == 0 and "clear text" not in run.stderr()


# -- 2. redirects ------------------------------------------------------------------------


def _redirect_to(target: str) -> Any:
    """Routes for the emulator: everything under /moved/console/v1 answers 302 to ``target``."""

    def add(app: web.Application) -> None:
        async def moved(request: web.Request) -> web.Response:
            return web.Response(status=302, headers={"Location": target + request.path})

        app.router.add_route("*", "/moved/console/v1/{tail:.*}", moved)

    return add


def test_a_redirect_is_not_followed_and_the_key_goes_nowhere_else(
    seed: EmulatorState, tmp_path: Path, listen: Any
) -> None:
    """The API URL answers 302 to another listener: exit 4 naming the Location with a
    hint; the other listener gets no connection, so never the key."""
    other = listen()
    with serve_forked(
        seed, tmp_path / "requests.log", routes=_redirect_to(f"http://127.0.0.1:{other.port}")
    ) as emulator:
        url = emulator.url.replace("/console/v1", "/moved/console/v1")
        env = cli_env(EMPTY_KEY, url, tmp_path / "state")
        argv = ["run", "apply-calls", "--file", str(_archive(tmp_path, 0)), "--apply", "--yes"]
        run = run_cli([*argv, "--timeout", "5"], env, tmp_path, "moved")
        log = emulator.log()
    err = _failed(run, 4)
    assert f"redirected to http://127.0.0.1:{other.port}/moved/console/v1/project" in err
    assert "not followed, so the key does not go there" in err and "nothing was sent" in err
    assert "HINT: if http://127.0.0.1:" in err
    assert [(e["path"], e["status"]) for e in log] == [("/moved/console/v1/project", 302)]
    assert other.received() == []


# -- 3. keys in plans, checkpoints, reports and output --------------------------------------

# A job putting a key into its mutations: a key-shaped one, or the value of the key
# variable it names (its "source").
KEY_JOB = '''
"""Put a key into a mutation (a test job)."""

from pydantic import BaseModel, ConfigDict

from bulkops.job import Expect, Mutation


class Params(BaseModel):
    model_config = ConfigDict(extra="forbid")

    source_key_env: str
    where: str = "shaped"


async def plan(ctx, params):
    source = ctx.open_client(params.source_key_env)
    value = {"shaped": "KEY_SHAPED", "source": source.settings.api_key.get_secret_value()}
    yield Mutation(
        key="tag:create:audit", project=ctx.project_id, action="create", object="tag/audit",
        method="POST", path="/tags", body={"name": "audit", "description": "fine"},
    )
    yield Mutation(
        key="gate:describe:seed_gate_0", project=ctx.project_id, action="describe",
        object="gate/seed_gate_0", method="PATCH", path="/gates/seed_gate_0",
        body={"description": f"rotated {value[params.where]} today"},
        read="/gates/seed_gate_0", after=Expect(fields={"description": "x"}),
    )
'''.replace("KEY_SHAPED", KEY_SHAPED)


def _everything_written(tmp_path: Path) -> dict[Path, str]:
    skip = {"requests.log"}
    return {
        p: p.read_bytes().decode("utf-8", "replace")
        for p in tmp_path.rglob("*")
        if p.is_file() and p.name not in skip and p.suffix not in (".py", ".jsonl")
    }


def test_apply_calls_refuses_lines_holding_a_key_and_the_keys_endpoints(
    env: dict[str, str], emulator: Emulator, tmp_path: Path
) -> None:
    """A key in a path (`PATCH /keys/console-…`), the run's own key in a body, any /keys
    call and a key in a call's name: each line listed by number, exit 2, nothing sent,
    and the key is in no output, plan, checkpoint or report."""
    calls = _calls(
        tmp_path,
        {"method": "PATCH", "path": f"/keys/{KEY_SHAPED}/deactivate"},
        {"method": "POST", "path": "/gates", "body": {"name": "g", "description": EMPTY_KEY}},
        {"method": "DELETE", "path": "/console/v1/keys/abc"},
        {"method": "PUT", "path": "/gates/seed_gate_0/archive", "key": f"rotate {KEY_SHAPED}"},
        {"method": "PUT", "path": "/gates/seed_gate_1/archive"},
    )
    argv = ["run", "apply-calls", "--file", str(calls), "--apply", "--yes"]
    argv += ["--checkpoint", str(tmp_path / "ck"), "--report", str(tmp_path / "rep.csv")]
    run = run_cli([*argv, "--log-file", str(tmp_path / "log.json"), "-v"], env, tmp_path, "keys")
    err = _failed(run, 2)
    assert "4 bad line(s); nothing was sent" in err
    assert "line 1: path holds an API key" in err
    assert "line 2: body.description holds an API key" in err
    assert "line 3: the Keys endpoints (/keys…) are not supported" in err
    assert "line 4: key holds an API key" in err and "line 5" not in err
    assert _writes(emulator) == []
    assert not (tmp_path / "ck").exists() and not (tmp_path / "rep.csv").exists()
    for path, text in _everything_written(tmp_path).items():
        assert KEY_SHAPED not in text and EMPTY_KEY not in text, path


@pytest.mark.parametrize("where", ["shaped", "source"])
def test_a_plan_holding_a_key_is_refused_naming_the_mutation_and_field(
    env: dict[str, str], emulator: Emulator, tmp_path: Path, where: str
) -> None:
    """The engine's last line of defence: a job yielding a mutation with a key-shaped
    string, or the value of a key variable it names, gets exit 2 naming the mutation
    and the field, never the value; no plan file, no checkpoint, nothing sent."""
    job = tmp_path / "key_job.py"
    job.write_text(KEY_JOB)
    env = {**env, "SRC": SOURCE_KEY}
    common = [str(job), "--source-key-env", "SRC", "--where", where]
    planned = run_cli(["plan", *common, "-o", str(tmp_path / "p.plan")], env, tmp_path, "plan")
    ran = run_cli(
        ["run", *common, "--apply", "--yes", "--checkpoint", str(tmp_path / "ck")],
        {**env, "STATSIG_CONSOLE_API_KEY": EMPTY_KEY},
        tmp_path,
        "run",
    )
    for run in (planned, ran):
        err = _failed(run, 2)
        assert (
            "mutation 2 (gate:describe:seed_gate_0): the field body.description holds an API key"
            in err
        )
        assert "nothing was written or sent" in err
    assert not (tmp_path / "p.plan").exists() and not (tmp_path / "ck").exists()
    assert _writes(emulator) == []
    for path, text in _everything_written(tmp_path).items():
        assert KEY_SHAPED not in text and SOURCE_KEY not in text, path


# -- 4. files that are not what they seem ------------------------------------------------


def test_a_log_file_that_is_a_symlink_is_refused_and_an_existing_logs_mode_is_kept(
    env: dict[str, str], emulator: Emulator, tmp_path: Path
) -> None:
    """--log-file through a symbolic link: exit 3 naming it, the link's target untouched,
    nothing sent. An existing log keeps its mode (appended to); a new one is 0600."""
    victim = tmp_path / "victim.txt"
    victim.write_text("keep me\n")
    victim.chmod(0o644)
    link = tmp_path / "run.log"
    link.symlink_to(victim)
    argv = ["plan", "apply-calls", "--file", str(_archive(tmp_path, 0))]
    run = run_cli([*argv, "--log-file", str(link)], env, tmp_path, "link")
    err = _failed(run, 3)
    assert f"log file {link} is a symbolic link" in err
    assert victim.read_text() == "keep me\n" and stat.S_IMODE(victim.stat().st_mode) == 0o644
    assert emulator.log() == []

    existing, new = tmp_path / "existing.log", tmp_path / "new.log"
    existing.write_text("mine\n")
    existing.chmod(0o640)
    for path in (existing, new):
        assert run_cli([*argv, "--log-file", str(path)], env, tmp_path, path.stem).code == 0
    assert stat.S_IMODE(existing.stat().st_mode) == 0o640
    assert existing.read_text().startswith("mine\n") and '"event"' in existing.read_text()
    assert stat.S_IMODE(new.stat().st_mode) == 0o600


def test_the_emulators_request_log_is_never_written_through_a_symlink(tmp_path: Path) -> None:
    """`bulkops emulator --request-log LINK` exits 3 before serving; the target is untouched."""
    victim = tmp_path / "victim.txt"
    victim.write_text("keep me\n")
    link = tmp_path / "requests.log"
    link.symlink_to(victim)
    argv = ["emulator", "--seed", "empty", "--port", "0", "--request-log", str(link)]
    assert main(argv) == 3
    assert victim.read_text() == "keep me\n"


def test_a_plan_or_report_path_holding_a_symlink_replaces_the_link_not_its_target(
    env: dict[str, str], tmp_path: Path
) -> None:
    """-o and --report write a new 0600 file in the link's place; the file it pointed
    to is neither written nor changed in mode."""
    victim = tmp_path / "victim.txt"
    victim.write_text("keep me\n")
    victim.chmod(0o644)
    plan, report = tmp_path / "p.plan", tmp_path / "rep.json"
    plan.symlink_to(victim)
    report.symlink_to(victim)
    calls = str(_archive(tmp_path, 0))
    assert run_cli(["plan", "apply-calls", "--file", calls, "-o", str(plan)], env, tmp_path,
                   "plan").code == 0  # fmt: skip
    argv = ["run", "apply-calls", "--file", calls, "--apply", "--yes", "--report", str(report)]
    assert run_cli(argv, env, tmp_path, "report").code == 0
    assert victim.read_text() == "keep me\n" and stat.S_IMODE(victim.stat().st_mode) == 0o644
    for path in (plan, report):
        assert not path.is_symlink() and stat.S_IMODE(path.stat().st_mode) == 0o600


# -- 5. misconfiguration names what to fix -------------------------------------------------


def _closed_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


@pytest.mark.parametrize(
    ("case", "expected"),
    [
        ("unknown host", "cannot reach the Console API at https://nonexistent.invalid/console/v1: "
         "unknown host: nonexistent.invalid does not resolve"),
        ("refused", "connection refused by 127.0.0.1:"),
        ("tls", "the TLS handshake with 127.0.0.1:"),
        ("wrong base path", "/v1/project answered 404: http://127.0.0.1:"),
        ("bad key", "refused the key in STATSIG_CONSOLE_API_KEY (401: This endpoint only "
         "accepts an active CONSOLE key"),
        ("server secret", "STATSIG_CONSOLE_API_KEY holds a server secret key (secret-…), and "
         "the Console API accepts only Console API keys"),
        ("client key", "STATSIG_CONSOLE_API_KEY holds a client SDK key (client-…)"),
    ],
)  # fmt: skip
def test_every_connection_or_key_problem_says_what_to_change_with_exit_4(
    env: dict[str, str], emulator: Emulator, tmp_path: Path, case: str, expected: str
) -> None:
    """Each misconfiguration: exit 4, the URL tried and what failed in words, the setting
    or key variable to change, "nothing was sent"; -v adds the library's detail."""
    port = emulator.url.split(":")[2].split("/")[0]
    url, key = {
        "unknown host": ("https://nonexistent.invalid", EMPTY_KEY),
        "refused": (f"http://127.0.0.1:{_closed_port()}/console/v1", EMPTY_KEY),
        "tls": (f"https://127.0.0.1:{port}/console/v1", EMPTY_KEY),
        "wrong base path": (f"http://127.0.0.1:{port}/v1", EMPTY_KEY),
        "bad key": (emulator.url, "console-NoSuchKey0000000000"),
        "server secret": (emulator.url, "secret-AbCdEf0123456789"),
        "client key": (emulator.url, "client-AbCdEf0123456789"),
    }[case]
    run_env = {**env, "STATSIG_API_URL": url, "STATSIG_CONSOLE_API_KEY": key}
    argv = ["run", "apply-calls", "--file", str(_archive(tmp_path, 0)), "--apply", "--yes"]
    err = _failed(run_cli(argv, run_env, tmp_path, "misconfigured"), 4)
    assert expected in err, err
    assert "nothing was sent" in err or "it was not sent" in err
    hint = err.split("HINT: ", 1)[1]
    assert "STATSIG_API_URL" in hint or "STATSIG_CONSOLE_API_KEY" in hint
    if case in ("unknown host", "refused", "tls"):  # -v: the network library's own words
        verbose = run_cli([*argv, "-v"], run_env, tmp_path, "verbose").stderr()
        assert re.search(r"^DETAIL: Client\w+Error: ", verbose, re.M), verbose
    assert _writes(emulator) == []
    assert key not in err


def test_a_bare_host_gets_the_api_base_path(
    env: dict[str, str], emulator: Emulator, tmp_path: Path
) -> None:
    """STATSIG_API_URL=http://HOST:PORT (no /console/v1) works: the base path is added."""
    bare = emulator.url.removesuffix("/console/v1") + "/"
    argv = ["plan", "apply-calls", "--file", str(_archive(tmp_path, 0))]
    run = run_cli(argv, {**env, "STATSIG_API_URL": bare}, tmp_path, "bare")
    assert run.code == 0, run.stderr()
    assert {e["path"] for e in emulator.log()} >= {"/console/v1/project"}


def test_a_read_only_key_stops_at_the_first_write_with_exit_4(
    env: dict[str, str], emulator: Emulator, tmp_path: Path
) -> None:
    """A read-only key plans fine, then its first write gets 403: the run stops, exit 4,
    naming the variable and what to do; nothing was applied; the checkpoint resumes."""
    ck = tmp_path / "ck"
    argv = ["run", "apply-calls", "--file", str(_archive(tmp_path, 0, 1)), "--apply", "--yes"]
    run = run_cli([*argv, "--checkpoint", str(ck)], {**env, "STATSIG_CONSOLE_API_KEY":
                  EMPTY_READ_ONLY_KEY}, tmp_path, "ro")  # fmt: skip
    err = _failed(run, 4)
    assert "The API refused the key in STATSIG_CONSOLE_API_KEY" in err
    assert "read-only key (403)" in err and f"`bulkops resume {ck}`" in err
    assert [e for e in _writes(emulator) if e["applied"]] == []
    resumed = run_cli(["resume", str(ck), "--yes"], env, tmp_path, "resume")
    assert resumed.code == 0, resumed.stderr()
    assert len([e for e in _writes(emulator) if e["applied"]]) == 2


def test_a_bad_second_key_is_found_before_anything_is_sent(
    env: dict[str, str], emulator: Emulator, tmp_path: Path
) -> None:
    """copy-project with a bad --source-key-env key: exit 4 naming that variable, before
    the plan is made; snapshot with a bad key: exit 4, no file."""
    argv = ["run", "copy-project", "--source-key-env", "SRC", "--target-key-env", "DST"]
    bad = {**env, "SRC": "console-NoSuchKey0000000000", "DST": EMPTY_KEY}
    err = _failed(run_cli([*argv, "--apply", "--yes"], bad, tmp_path, "copy"), 4)
    assert "refused the key in SRC (401" in err and "HINT: SRC must hold" in err
    snap = tmp_path / "snap.json"
    err = _failed(
        run_cli(["snapshot", "-o", str(snap)], {**env, "STATSIG_CONSOLE_API_KEY":
                "console-NoSuchKey0000000000"}, tmp_path, "snap"), 4
    )  # fmt: skip
    assert "refused the key in STATSIG_CONSOLE_API_KEY" in err and not snap.exists()
    assert _writes(emulator) == []


# -- 6. locks keyed by API URL and project ----------------------------------------------------


def test_a_rehearsal_and_the_real_run_do_not_block_each_other(
    seed: EmulatorState, tmp_path: Path
) -> None:
    """One project id at two API URLs (an emulator rehearsal of a snapshot, production):
    a run holding one does not block the other; a second run on the same URL is refused
    naming the holder's pid, host and URL; each URL has its own send log."""
    state_dir = tmp_path / "state"
    with (
        serve_forked(seed, tmp_path / "a.log") as rehearsal,
        serve_forked(seed, tmp_path / "b.log") as production,
    ):
        held = lock_path_for_project(state_dir, rehearsal.url, "empty")
        argv = ["run", "apply-calls", "--file", str(_archive(tmp_path, 0)), "--apply", "--yes"]
        with exclusive_lock(held, what="project empty", info={"url": rehearsal.url}):
            other = run_cli(argv, cli_env(EMPTY_KEY, production.url, state_dir), tmp_path, "b")
            same = run_cli(argv, cli_env(EMPTY_KEY, rehearsal.url, state_dir), tmp_path, "a")
        applied = [len([e for e in em.log() if e["applied"]]) for em in (rehearsal, production)]
    assert other.code == 0, other.stderr()
    err = _failed(same, 3)
    holder = f"pid {os.getpid()} on {socket.gethostname()}"
    assert f"project empty at {rehearsal.url} is locked by {holder}" in err
    assert f"running against {rehearsal.url}" in err
    assert applied == [0, 1]
    sends = sorted(p.name for p in (state_dir / "sends").iterdir())
    assert len(sends) == 1 and sends[0].startswith("empty@127.0.0.1_")
    locks = sorted(p.name for p in (state_dir / "locks").iterdir())
    assert len(locks) == 2  # one per URL
