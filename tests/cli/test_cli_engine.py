"""The engine's command line in real processes against a real emulator process.

Every test reads the emulator's request log, the ground truth of what was sent.
"""

from __future__ import annotations

import argparse
import base64
import io
import json
import os
import signal
import socket
import time
import types
import urllib.parse
import uuid
from pathlib import Path
from typing import Literal

import pytest
from engine_support import calls_file as _calls
from engine_support import seeded_state
from engine_support import writes as _writes
from pydantic import BaseModel, ConfigDict, Field
from rich.console import Console

from bulkops.cli.engine import add_job_options, job_options
from bulkops.cli.job_loading import LoadedJob, parse_params
from bulkops.cli.output import ProgressView, Ui
from bulkops.cli.run_setup import EngineOptions
from bulkops.cli.safety import confirm
from bulkops.emulator import EmulatorState
from bulkops.emulator.state import KeyInfo, Project
from bulkops.engine.journal import read_records
from bulkops.engine.locks import exclusive_lock, lock_path_for_project
from bulkops.engine.plans import Plan, ProjectRef
from bulkops.engine.quota import QuotaWindow
from bulkops.engine.ratelimit import QuotaLimiter
from bulkops.errors import UsageError
from bulkops.testing import Emulator, cli_env, fork_cli, run_cli, serve_forked, wait_cli

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"


@pytest.fixture(scope="module", name="seed")
def _seed() -> EmulatorState:
    """The empty project with six gates, and a second project with its own key."""
    state = seeded_state(gates=6)
    state.add_project(
        Project(id="other", name="Other Project"), {"console-other-key1": KeyInfo("other")}
    )
    return state


def _archives(tmp_path: Path, *indexes: int) -> Path:
    return _calls(
        tmp_path,
        *(
            {
                "method": "PUT",
                "path": f"/gates/seed_gate_{i}/archive",
                "body": {"archiveReason": "t"},
            }
            for i in indexes
        ),
    )


def test_jobs_lists_the_built_in_jobs_and_their_options(
    env: dict[str, str], tmp_path: Path
) -> None:
    """`bulkops jobs` names apply-calls and its --file option."""
    run = run_cli(["jobs"], env, tmp_path, "jobs")
    assert run.code == 0
    assert "apply-calls" in run.stdout() and "--file" in run.stdout()


def test_default_run_is_a_dry_run(env: dict[str, str], emulator: Emulator, tmp_path: Path) -> None:
    """Without --apply, run shows the diff and sends no mutation."""
    run = run_cli(
        ["run", "apply-calls", "--file", str(_archives(tmp_path, 0, 1))], env, tmp_path, "r"
    )
    assert run.code == 0, run.stderr()
    out = run.stdout()
    assert "gate/seed_gate_0" in out and "In Progress → Archived" in out
    assert "Dry run: nothing was sent" in out
    assert _writes(emulator) == []


def test_apply_needs_yes_off_a_terminal(
    env: dict[str, str], emulator: Emulator, tmp_path: Path
) -> None:
    """No terminal and no --yes: refused with exit 2, nothing sent, no checkpoint."""
    argv = ["run", "apply-calls", "--file", str(_archives(tmp_path, 0)), "--apply"]
    run = run_cli([*argv, "--checkpoint", str(tmp_path / "ck")], env, tmp_path, "r")
    assert run.code == 2
    assert "--yes is required" in run.stderr()
    assert _writes(emulator) == [] and not (tmp_path / "ck").exists()


def test_plan_apply_status_resume_and_undo(
    env: dict[str, str], emulator: Emulator, tmp_path: Path
) -> None:
    """The whole cycle from the command line, with a crash in the middle."""
    plan = tmp_path / "plan.json"
    ck = tmp_path / "ck"
    calls = _archives(tmp_path, 0, 1, 2)
    run = run_cli(
        ["plan", "apply-calls", "--file", str(calls), "-o", str(plan)], env, tmp_path, "p"
    )
    assert run.code == 0 and os.stat(plan).st_mode & 0o777 == 0o600
    assert _writes(emulator) == []
    crash = {**env, "BULKOPS_FAILPOINT": "before-outcome:2"}
    argv = ["apply", str(plan), "--yes", "--checkpoint", str(ck), "--max-in-flight", "1"]
    assert run_cli(argv, crash, tmp_path, "a").code == 137
    run = run_cli(["status", str(ck), "--json"], env, tmp_path, "s")
    status = json.loads(run.stdout())
    assert status["counts"]["applied"] == 1 and status["counts"]["unsettled"] == 1
    assert status["resumable"] and status["ended_without_record"]
    report = tmp_path / "report"
    run = run_cli(["resume", str(ck), "--report", str(report)], env, tmp_path, "re")
    assert run.code == 0, run.stderr()
    rows = json.loads((tmp_path / "report.json").read_text())["items"]
    assert [r["state"] for r in rows] == ["applied"] * 3
    assert (tmp_path / "report.csv").read_text().startswith("key,action,object")
    archived = [e for e in _writes(emulator) if e["applied"]]
    assert sorted(e["path"] for e in archived) == [
        f"/console/v1/gates/seed_gate_{i}/archive" for i in range(3)
    ]
    before_undo = len(_writes(emulator))
    run = run_cli(["undo", str(ck)], env, tmp_path, "u")
    assert run.code == 0 and "unarchive" in run.stdout()
    assert len(_writes(emulator)) == before_undo
    run = run_cli(["undo", str(ck), "--apply", "--yes"], env, tmp_path, "ua")
    assert run.code == 0, run.stderr()
    unarchived = [e["path"] for e in _writes(emulator)[before_undo:] if e["applied"]]
    assert sorted(unarchived) == [f"/console/v1/gates/seed_gate_{i}/unarchive" for i in range(3)]
    assert (tmp_path / "ck.undo").exists()


def test_an_undo_of_an_object_someone_deleted_since_is_nothing_to_do(
    env: dict[str, str], emulator: Emulator, tmp_path: Path
) -> None:
    """The undo plan reads each object: one deleted since the run is "absent: nothing to
    do" in the plan (never ``exists → deleted``), and the undo sends nothing for it."""
    created = _calls(tmp_path, {"method": "POST", "path": "/gates", "body": {"name": "undo gone"}})
    ck = tmp_path / "ck"
    run = run_cli(
        ["run", "apply-calls", "--file", str(created), "--apply", "--yes", "--checkpoint", str(ck)],
        env,
        tmp_path,
        "c",
    )
    assert run.code == 0, run.stderr()
    gone = _calls(tmp_path, {"method": "DELETE", "path": "/gates/undo_gone"}, name="gone.jsonl")
    run = run_cli(
        ["run", "apply-calls", "--file", str(gone), "--apply", "--yes"], env, tmp_path, "d"
    )
    assert run.code == 0, run.stderr()
    before_undo = len(_writes(emulator))
    run = run_cli(["undo", str(ck)], env, tmp_path, "u")
    assert run.code == 0, run.stderr()
    assert "absent: nothing to do" in run.stdout()
    assert "deleted" not in run.stdout()
    run = run_cli(["undo", str(ck), "--apply", "--yes"], env, tmp_path, "ua")
    assert run.code == 0, run.stderr()
    assert len(_writes(emulator)) == before_undo


@pytest.mark.parametrize(
    ("case", "argv_extra", "code"),
    [
        ("edited", [], 3),
        ("other-project", [], 3),
        ("too-big", ["--max-mutations", "1"], 3),
    ],
)
def test_refused_applies_send_nothing(
    env: dict[str, str],
    emulator: Emulator,
    tmp_path: Path,
    case: str,
    argv_extra: list[str],
    code: int,
) -> None:
    """An edited plan, another project's key, or too many mutations: exit 3, 0 mutations."""
    plan = tmp_path / "plan.json"
    calls = _archives(tmp_path, 3, 4)
    assert (
        run_cli(
            ["plan", "apply-calls", "--file", str(calls), "-o", str(plan)], env, tmp_path, "p"
        ).code
        == 0
    )
    run_env = dict(env)
    if case == "edited":
        data = json.loads(plan.read_text())
        data["mutations"][0]["path"] = "/gates/seed_gate_5/archive"
        plan.write_text(json.dumps(data))
    if case == "other-project":
        run_env["STATSIG_CONSOLE_API_KEY"] = "console-other-key1"
    requests_before = len(emulator.log())
    run = run_cli(["apply", str(plan), "--yes", *argv_extra], run_env, tmp_path, "a")
    assert run.code == code, run.stderr()
    assert _writes(emulator) == []
    if case == "edited":
        assert len(emulator.log()) == requests_before  # refused before any request
        assert "edited" in run.stderr()
    if case == "other-project":
        assert "other" in run.stderr() and "empty" in run.stderr()


def test_a_key_on_the_command_line_is_refused(
    env: dict[str, str], emulator: Emulator, tmp_path: Path
) -> None:
    """A key-looking argument: exit 2, nothing sent, and the key is not echoed."""
    key = "console-" + uuid.uuid4().hex
    run = run_cli(["run", "apply-calls", "--file", key], env, tmp_path, "k")
    assert run.code == 2
    assert key not in run.stdout() + run.stderr()
    assert emulator.log() == []


def test_a_name_that_starts_like_a_key_is_an_argument_not_a_key(
    env: dict[str, str], emulator: Emulator, tmp_path: Path
) -> None:
    """Gate ids and patterns such as ``console-v2-rollout*`` are taken; the key this environment
    holds is refused even when it is not key-shaped (``console-emulator-empty``)."""
    named = run_cli(["plan", "archive-gates", "--id", "console-v2-rollout*"], env, tmp_path, "n")
    assert named.code == 0, named.stderr()
    assert "looks like an API key" not in named.stderr()
    key = env["STATSIG_CONSOLE_API_KEY"]
    pasted = run_cli(["plan", "archive-gates", "--id", key], env, tmp_path, "p")
    assert pasted.code == 2
    assert "looks like an API key" in pasted.stderr()
    assert key not in pasted.stdout() + pasted.stderr()


def test_bad_calls_are_all_listed_and_nothing_is_sent(
    env: dict[str, str], emulator: Emulator, tmp_path: Path
) -> None:
    """Every bad line is named with its number (exit 2) before anything is sent."""
    path = tmp_path / "calls.jsonl"
    path.write_text(
        '{"method": "PUT", "path": "/gates/seed_gate_0/archive", "body": {}}\n'
        "{not json\n"
        "\n"
        '{"method": "GET", "path": "/gates"}\n'
        '{"method": "PUT", "path": "gates/x"}\n'
        '{"method": "PUT", "path": "/gates/a", "extra": 1}\n'
    )
    run = run_cli(
        ["run", "apply-calls", "--file", str(path), "--apply", "--yes"], env, tmp_path, "b"
    )
    assert run.code == 2
    err = run.stderr()
    for line in (2, 4, 5, 6):
        assert f"line {line}:" in err
    assert "line 1:" not in err
    assert _writes(emulator) == []


def test_a_second_runner_is_refused_naming_the_holder(
    env: dict[str, str], emulator: Emulator, tmp_path: Path
) -> None:
    """While a run holds the project, another exits 3 at once, naming its pid, host and URL."""
    state_dir = Path(env["BULKOPS_STATE_DIR"])
    lock = lock_path_for_project(state_dir, emulator.url, "empty")
    with exclusive_lock(lock, what="project empty", info={"url": emulator.url}):
        argv = ["run", "apply-calls", "--file", str(_archives(tmp_path, 0)), "--apply", "--yes"]
        run = run_cli(argv, env, tmp_path, "second")
    assert run.code == 3
    assert f"pid {os.getpid()} on {socket.gethostname()}" in run.stderr()
    assert f"running against {emulator.url}" in run.stderr()
    assert _writes(emulator) == []


def test_the_example_job_file_tags_gates_and_undoes(
    env: dict[str, str], emulator: Emulator, tmp_path: Path
) -> None:
    """`bulkops run ./examples/my_job.py` creates the tag, tags matching gates, undoes."""
    ck = tmp_path / "ck"
    argv = ["run", str(EXAMPLES / "my_job.py"), "--pattern", "seed_gate_[12]", "--tag", "reviewed"]
    run = run_cli(argv, env, tmp_path, "dry")
    assert run.code == 0 and "Dry run" in run.stdout()
    run = run_cli([*argv, "--apply", "--yes", "--checkpoint", str(ck)], env, tmp_path, "apply")
    assert run.code == 0, run.stderr()
    applied = [(e["method"], e["path"]) for e in _writes(emulator) if e["applied"]]
    assert applied[0] == ("POST", "/console/v1/tags")
    assert sorted(applied[1:]) == [
        ("PATCH", "/console/v1/gates/seed_gate_1"),
        ("PATCH", "/console/v1/gates/seed_gate_2"),
    ]
    run = run_cli(["undo", str(ck), "--apply", "--yes"], env, tmp_path, "undo")
    assert run.code == 0, run.stderr()
    undone = [(e["method"], e["path"]) for e in _writes(emulator) if e["applied"]][3:]
    assert undone[-1][0] == "DELETE" and undone[-1][1].startswith("/console/v1/tags/")
    assert len(undone) == 3


def test_the_example_calls_file_runs(
    env: dict[str, str], emulator: Emulator, tmp_path: Path
) -> None:
    """examples/calls.jsonl applies cleanly on the empty project."""
    argv = ["run", "apply-calls", "--file", str(EXAMPLES / "calls.jsonl"), "--apply", "--yes"]
    run = run_cli(argv, env, tmp_path, "calls")
    assert run.code == 0, run.stdout() + run.stderr()
    assert sum(1 for e in _writes(emulator) if e["applied"]) == 6


def test_the_key_never_reaches_output_or_files(seed: EmulatorState, tmp_path: Path) -> None:
    """A canary key is in no output, log, plan, checkpoint, report or lock; all files 0600."""
    canary = "console-canary" + uuid.uuid4().hex
    state = seed
    state.keys[canary] = KeyInfo("empty")
    try:
        with serve_forked(state, tmp_path / "requests.log") as emulator:
            env = cli_env(canary, emulator.url, tmp_path / "state")
            calls = _calls(
                tmp_path,
                {"method": "PUT", "path": "/gates/seed_gate_0/archive", "body": {}},
                {"method": "PATCH", "path": "/gates/seed_gate_1", "body": {"isEnabled": "no"}},
            )
            plan, ck = tmp_path / "plan.json", tmp_path / "ck"
            common = ["--log-file", str(tmp_path / "log.jsonl"), "-v"]
            runs = [
                run_cli(
                    ["plan", "apply-calls", "--file", str(calls), "-o", str(plan), *common],
                    env,
                    tmp_path,
                    "p",
                ),
                run_cli(
                    [
                        "apply",
                        str(plan),
                        "--yes",
                        "--checkpoint",
                        str(ck),
                        "--report",
                        str(tmp_path / "rep"),
                        *common,
                    ],
                    env,
                    tmp_path,
                    "a",
                ),
                run_cli(["status", str(ck)], env, tmp_path, "s"),
                run_cli(
                    ["run", "apply-calls", "--file", str(calls), *common],
                    {**env, "STATSIG_CONSOLE_API_KEY": canary + "x"},
                    tmp_path,
                    "bad",
                ),
            ]
    finally:
        del state.keys[canary]
    # status 1: complete with a failure; 4: the API refused the last key
    assert [r.code for r in runs] == [0, 1, 1, 4]
    forms = {canary, urllib.parse.quote(canary), base64.b64encode(canary.encode()).decode()[:-4]}
    files = [p for p in tmp_path.rglob("*") if p.is_file() and p.name != "requests.log"]
    written = [p for p in files if p.name not in ("calls.jsonl",)]
    assert any(p.name == "log.jsonl" for p in written) and any(
        p.name.endswith(".lock") for p in written
    )
    for path in written:
        text = path.read_bytes().decode("utf-8", "replace")
        for form in forms:
            assert form not in text, f"{path} leaks the key"
        if not path.name.endswith((".out", ".err")):
            assert os.stat(path).st_mode & 0o777 == 0o600, path
    events = [json.loads(line) for line in (tmp_path / "log.jsonl").read_text().splitlines()]
    applied = [e for e in events if e["event"] == "mutation.applied"]
    assert len(applied) == 1 and applied[0]["run_id"] and applied[0]["key"]
    assert any(e["event"] == "mutation.failed" and "isEnabled" in e["error"] for e in events)
    sendlogs = list((tmp_path / "state" / "sends").glob("*.json"))
    assert sendlogs and all(os.stat(p).st_mode & 0o777 == 0o600 for p in sendlogs)


def test_job_help_and_unknown_jobs(env: dict[str, str], tmp_path: Path) -> None:
    """A job's --help shows its options; an unknown job is a usage error."""
    run = run_cli(["run", "apply-calls", "--help"], env, tmp_path, "h")
    assert run.code == 0 and "--file" in run.stdout()
    run = run_cli(["plan", "no-such-job"], env, tmp_path, "u")
    assert run.code == 2 and "unknown job" in run.stderr()


def test_a_failing_item_makes_exit_1_and_the_rest_applies(
    env: dict[str, str], emulator: Emulator, tmp_path: Path
) -> None:
    """One bad call (a name too short: 400) is reported (exit 1); the others are applied."""
    calls = _calls(
        tmp_path,
        {"method": "PUT", "path": "/gates/seed_gate_0/archive", "body": {}},
        {"method": "POST", "path": "/gates", "body": {"name": "no"}, "key": "nope_gate"},
    )
    run = fork_cli(
        ["run", "apply-calls", "--file", str(calls), "--apply", "--yes"], env, tmp_path, "f"
    )
    assert wait_cli(run) == 1
    assert "nope_gate" in run.stdout()
    assert [e["path"] for e in _writes(emulator) if e["applied"]] == [
        "/console/v1/gates/seed_gate_0/archive"
    ]


def test_ctrl_c_stops_cleanly_with_exit_130_and_resumes(
    env: dict[str, str], emulator: Emulator, tmp_path: Path
) -> None:
    """SIGINT: no new sends, the journal is finished, exit 130; resume completes it."""
    ck = tmp_path / "ck"
    calls = _archives(tmp_path, 0, 1, 2, 3, 4, 5)
    argv = ["run", "apply-calls", "--file", str(calls), "--apply", "--yes", "--checkpoint", str(ck)]
    run = fork_cli([*argv, "--quota", "2/1s", "--no-review-header"], env, tmp_path, "int")
    deadline = time.monotonic() + 20
    while not [e for e in _writes(emulator) if e["applied"]] and time.monotonic() < deadline:
        time.sleep(0.01)
    os.kill(run.pid, signal.SIGINT)
    assert wait_cli(run) == 130, run.stderr()
    records = read_records(ck)
    assert records[-1]["t"] == "run" and records[-1]["event"] == "interrupted"
    assert records[0]["options"]["respect_reviews"] is False
    sent = len(_writes(emulator))
    assert 1 <= sent < 6
    run = run_cli(["resume", str(ck)], env, tmp_path, "resume")
    assert run.code == 0, run.stderr()
    applied = sorted(e["path"] for e in _writes(emulator) if e["applied"])
    assert applied == [f"/console/v1/gates/seed_gate_{i}/archive" for i in range(6)]


def test_confirmation_needs_the_project_name_or_id() -> None:
    """On a terminal the user types the project's name or id; anything else sends nothing."""
    plan = Plan.build(job="t", params={}, projects=[ProjectRef(id="p1", name="Prod")], mutations=[])
    project = ProjectRef(id="p1", name="Prod")
    for answer, ok in (("Prod", True), ("p1", True), ("yes", False)):
        ui = Ui(
            out=Console(file=io.StringIO()),
            err=Console(file=io.StringIO()),
            interactive=True,
            live=False,
            ask=lambda prompt, a=answer: a,
        )
        if ok:
            confirm(ui, EngineOptions(), project, plan, 1.0)
        else:
            with pytest.raises(UsageError, match="not confirmed"):
                confirm(ui, EngineOptions(), project, plan, 1.0)


class _Params(BaseModel):
    model_config = ConfigDict(extra="forbid")

    pattern: str = Field(description="which")
    tags: list[str] = []
    force: bool = False
    limit: int | None = None
    mode: Literal["add", "replace"] = "add"


def test_job_options_come_from_the_params_model() -> None:
    """Lists repeat, bools pair with --no-, Literals are choices, required stays required."""
    parser = argparse.ArgumentParser(exit_on_error=False)
    add_job_options(parser, _Params)
    parsed = parser.parse_args(
        ["--pattern", "a*", "--tags", "x", "--tags", "y", "--force", "--limit", "3"]
    )
    assert vars(parsed) == {"pattern": "a*", "tags": ["x", "y"], "force": True, "limit": 3}
    assert vars(parser.parse_args(["--pattern", "b", "--no-force", "--mode", "replace"])) == {
        "pattern": "b",
        "force": False,
        "mode": "replace",
    }
    with pytest.raises((argparse.ArgumentError, SystemExit)):
        parser.parse_args(["--pattern", "b", "--mode", "other"])
    job = LoadedJob("t", types.SimpleNamespace(Params=_Params))  # type: ignore[arg-type]
    options = job_options(job)
    assert (options[0]["usage"], options[0]["description"]) == (
        "--pattern TEXT (required)",
        "which",
    )
    assert "(repeatable)" in options[1]["usage"]
    assert any(o["usage"].startswith("--mode {add,replace}") for o in options), options
    with pytest.raises(UsageError, match="--limit"):
        parse_params(job, {"pattern": "p", "limit": "x"})


def test_plain_progress_lines_off_a_terminal() -> None:
    """Without a terminal, progress is a plain line every few seconds and at the end."""
    now = [0.0]
    stream = io.StringIO()
    limiter = QuotaLimiter({"mutation": (QuotaWindow(10, 1),)})
    view = ProgressView(
        Console(file=stream, width=200), limiter, live=False, interval=5, clock=lambda: now[0]
    )
    view.start(3, 0, {"mutation": 3})
    for key, result in (("a", "applied"), ("b", "conflict")):
        now[0] += 1
        view.result(key, result, "mutation")
    view.throttled()
    now[0] += 5
    view.result("c", "applied", "mutation")
    lines = stream.getvalue().splitlines()
    assert len(lines) == 2
    assert lines[-1].startswith("progress 3/3 applied 2 skipped 0 failed 0 conflicts 1 429s 1")
