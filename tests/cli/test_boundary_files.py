"""The real-world boundary (issue 12, points 7–14): bad files, output paths, files of
another kind, live and damaged checkpoints, absent objects, a full disk, signals and
exit codes.

Every test runs the real CLI (a forked process, or a subprocess where the interpreter's
own start-up matters) against a real emulator process; the emulator's request log is
the ground truth of what was sent.
"""

from __future__ import annotations

import json
import os
import re
import resource
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest
from engine_support import archive_calls, seeded_state
from engine_support import calls_file as _calls
from engine_support import writes as _writes

from bulkops.cli.main import main
from bulkops.emulator import EmulatorState
from bulkops.engine.failpoints import FAILPOINT_ENV
from bulkops.engine.journal import read_records
from bulkops.testing import CliRun, Emulator, applied_counts, fork_cli, run_cli, wait_cli

GATES = 8
# No user-facing message is a traceback or names a Python exception.
PYTHON_WORDS = re.compile(r"Traceback|\w+Error\b|Errno")


@pytest.fixture(scope="module", name="seed")
def _seed() -> EmulatorState:
    """The empty project with eight gates."""
    return seeded_state(gates=GATES)


def _failed(run: CliRun, code: int) -> str:
    """stderr of a run that must have exited ``code`` with words for people only."""
    err = run.stderr()
    assert run.code == code, err + run.stdout()
    assert not PYTHON_WORDS.search(err), err
    return err


def _wait_for_applied(emulator: Emulator, count: int = 1, timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while len([e for e in _writes(emulator) if e["applied"]]) < count:
        assert time.monotonic() < deadline, "the run applied nothing in time"
        time.sleep(0.01)


# -- 7. bytes that are not UTF-8 ----------------------------------------------------------

LATIN1 = "café".encode("latin-1")  # b"caf\xe9": a byte that is not UTF-8


def _bad_inputs(tmp_path: Path) -> tuple[dict[str, list[str]], dict[str, Path]]:
    """For each input reader: its command line, and the file holding the bad byte."""
    csv = tmp_path / "o.csv"
    csv.write_bytes(
        b"kind,id,unit_id,value,environment,unit_type\ngate,seed_gate_0,u_" + LATIN1 + b",pass,,\n"
    )
    jsonl = tmp_path / "o.jsonl"
    jsonl.write_bytes(
        b'{"kind": "gate", "id": "seed_gate_0", "unit_id": "u_1", "value": "pass"}\n'
        b'{"kind": "gate", "id": "seed_gate_0", "unit_id": "' + LATIN1 + b'", "value": "pass"}\n'
    )
    calls = tmp_path / "c.jsonl"
    calls.write_bytes(
        b'{"method": "PUT", "path": "/gates/seed_gate_0/archive", "body": {"archiveReason": "'
        + LATIN1
        + b'"}}\n'
    )
    toml = tmp_path / "r.toml"
    toml.write_bytes(
        b'[select]\nkinds = ["gates"]\n\n[[rewrite]]\nop = "rename-rule"\nrule = "x"\nto = "'
        + LATIN1
        + b'"\n'
    )
    json_rewrite = tmp_path / "r.json"
    json_rewrite.write_bytes(
        b'{"select": {"kinds": ["gates"]},\n "rewrite": [{"op": "drop-rule", "rule": "'
        + LATIN1
        + b'"}]}\n'
    )
    function = tmp_path / "fn.py"
    function.write_bytes(b'def f(rule, obj):\n    return "' + LATIN1 + b'"\n')
    job = tmp_path / "job.py"
    job.write_bytes(b'"""A job."""\nNAME = "' + LATIN1 + b'"\n')
    plan = tmp_path / "p.plan"
    plan.write_bytes(
        b'{\n "header": {\n  "format": "bulkops-plan/1",\n  "job": "' + LATIN1 + b'"\n}}\n'
    )
    plan.chmod(0o600)
    return {
        "overrides csv": ["plan", "import-overrides", "--file", str(csv)],
        "overrides jsonl": ["plan", "import-overrides", "--file", str(jsonl)],
        "calls": ["plan", "apply-calls", "--file", str(calls)],
        "rewrite toml": ["plan", "rewrite-rules", "--file", str(toml)],
        "rewrite json": ["plan", "rewrite-rules", "--file", str(json_rewrite)],
        "--python": ["plan", "rewrite-rules", "--python", f"{function}:f"],
        "job file": ["plan", str(job)],
        "plan": ["apply", str(plan), "--yes"],
    }, {
        "overrides csv": csv,
        "overrides jsonl": jsonl,
        "calls": calls,
        "rewrite toml": toml,
        "rewrite json": json_rewrite,
        "--python": function,
        "job file": job,
        "plan": plan,
    }


@pytest.mark.parametrize(
    "reader",
    ["overrides csv", "overrides jsonl", "calls", "rewrite toml", "rewrite json", "--python",
     "job file", "plan"],
)  # fmt: skip
def test_bytes_that_are_not_utf8_name_the_file_line_and_byte_offset(
    env: dict[str, str], emulator: Emulator, tmp_path: Path, reader: str
) -> None:
    """Every input reader, given a byte that is not UTF-8: exit 2 naming the file, the
    line, the column and the byte offset, a hint to save it as UTF-8, never a traceback
    (nor a message about an option that does not exist); nothing is sent."""
    argvs, files = _bad_inputs(tmp_path)
    path = files[reader]
    err = _failed(run_cli(argvs[reader], env, tmp_path, "bad"), 2)
    assert f"{path}: {_where(path.read_bytes())}: byte 0xe9 is not UTF-8" in err
    assert "HINT: save the file as UTF-8" in err and "--options" not in err
    assert _writes(emulator) == []


def _where(data: bytes) -> str:
    """Where the first 0xe9 sits, as the message says it: line, column, byte offset."""
    offset = data.index(0xE9)
    line_start = data.rfind(b"\n", 0, offset) + 1
    column = len(data[line_start:offset].decode()) + 1
    line = data.count(b"\n", 0, offset) + 1
    return f"line {line}, column {column} (byte offset {offset})"


def test_a_snapshot_that_is_not_utf8_is_named_by_the_emulator(tmp_path: Path, capsys) -> None:
    """`bulkops emulator --seed FILE` with a byte that is not UTF-8: exit 2 naming where,
    before it serves."""
    snapshot = tmp_path / "snap.json"
    snapshot.write_bytes(
        b'{"format": "bulkops-snapshot/1",\n "project": {"id": "' + LATIN1 + b'"}}\n'
    )
    assert main(["emulator", "--seed", str(snapshot), "--port", "0"]) == 2
    err = capsys.readouterr().err
    assert f"snapshot {snapshot}: {_where(snapshot.read_bytes())}: byte 0xe9" in err


# -- 8. output paths are checked before the first request ------------------------------------


@pytest.mark.parametrize(
    ("option", "where"),
    [("--report", "missing"), ("--report", "file"), ("--log-file", "missing"),
     ("--checkpoint", "missing"), ("--checkpoint", "nested"), ("-o", "missing"),
     ("--report", "directory")],
)  # fmt: skip
def test_an_output_path_that_cannot_be_written_is_refused_before_anything_is_sent(
    env: dict[str, str], emulator: Emulator, tmp_path: Path, option: str, where: str
) -> None:
    """--report, --log-file, --checkpoint and -o into a missing directory, under a
    regular file, or onto a directory: exit 2 naming the option and the path, not even
    the project read is made, and no directory is created (the state directory aside)."""
    notadir = tmp_path / "notadir"
    notadir.write_text("x")
    (tmp_path / "adir").mkdir()
    path = {
        "missing": tmp_path / "missing" / "out.json",
        "nested": tmp_path / "nonexistent" / "dir" / "x.ckpt",
        "file": notadir / "out.json",
        "directory": tmp_path / "adir",
    }[where]
    calls = str(archive_calls(tmp_path, 0))
    if option == "-o":
        argv = ["plan", "apply-calls", "--file", calls, "-o", str(path)]
    else:
        argv = ["run", "apply-calls", "--file", calls, "--apply", "--yes", option, str(path)]
    err = _failed(run_cli(argv, env, tmp_path, "out"), 2)
    assert f"FAILED: {option} {path}: " in err and "nothing was sent" in err, err
    assert emulator.log() == []
    assert not (tmp_path / "missing").exists() and not (tmp_path / "nonexistent").exists()


def test_snapshot_into_a_missing_directory_reads_nothing(
    env: dict[str, str], emulator: Emulator, tmp_path: Path
) -> None:
    """`bulkops snapshot -o MISSING/x.json`: exit 2 before the first read."""
    path = tmp_path / "missing" / "snap.json"
    err = _failed(run_cli(["snapshot", "-o", str(path)], env, tmp_path, "snap"), 2)
    assert f"-o {path}: the directory" in err and emulator.log() == []


# -- 9. a file of another kind says what it is -----------------------------------------------


def test_a_file_given_where_another_kind_is_expected_says_what_it_is(
    env: dict[str, str], emulator: Emulator, tmp_path: Path
) -> None:
    """A plan to resume/status/undo, a checkpoint or a report to apply, a snapshot to
    apply or status, a random JSON file, an apply-calls file: exit 2 naming what the file
    is and what to do with it; nothing is sent."""
    plan, ck, report = tmp_path / "p.plan", tmp_path / "c.ckpt", tmp_path / "rep.json"
    calls = archive_calls(tmp_path, 0)
    assert run_cli(["plan", "apply-calls", "--file", str(calls), "-o", str(plan)], env,
                   tmp_path, "mk-plan").code == 0  # fmt: skip
    argv = ["run", "apply-calls", "--file", str(calls), "--apply", "--yes"]
    made = run_cli([*argv, "--checkpoint", str(ck), "--report", str(report)], env, tmp_path, "mk")
    assert made.code == 0, made.stderr()
    snapshot = tmp_path / "snap.json"
    snapshot.write_text('{"format": "bulkops-snapshot/1", "project": {"id": "x"}}')
    other = tmp_path / "other.json"
    other.write_text('{"hello": "world"}')
    sent = len(emulator.log())
    cases = [
        (["resume", str(plan)], "is a bulkops plan file, not a bulkops checkpoint",
         f"apply it with `bulkops apply {plan}`"),
        (["status", str(plan)], "is a bulkops plan file, not a bulkops checkpoint", None),
        (["undo", str(plan)], "is a bulkops plan file, not a bulkops checkpoint", None),
        (["apply", str(ck), "--yes"], "is a bulkops checkpoint, not a bulkops plan file",
         f"continue it with `bulkops resume {ck}`"),
        (["apply", str(report), "--yes"], "is a per-item report (written by --report), not "
         "a bulkops plan file", "take the checkpoint it came from"),
        (["status", str(report)], "is a per-item report", None),
        (["apply", str(snapshot), "--yes"], "is a project snapshot (an emulator seed), not a "
         "bulkops plan file", f"`bulkops emulator --seed {snapshot}`"),
        (["status", str(other)], "is a JSON file that bulkops did not write, not a bulkops "
         "checkpoint", None),
        (["apply", str(calls), "--yes"], "is an apply-calls file, not a bulkops plan file",
         f"`bulkops plan apply-calls --file {calls}`"),
    ]  # fmt: skip
    for i, (argv, says, hint) in enumerate(cases):
        err = _failed(run_cli(argv, env, tmp_path, f"kind{i}"), 2)
        assert says in err and "nothing was sent" in err, (argv, err)
        if hint:
            assert hint in err, (argv, err)
    assert len(emulator.log()) == sent


def test_a_damaged_first_line_never_claims_nothing_was_sent(
    env: dict[str, str], tmp_path: Path
) -> None:
    """A checkpoint whose first line is damaged and whose later records still stand:
    refused, and it does not say that nothing was sent (it cannot know); one whose only
    content is a cut-short first record may say it, as the journal proves it."""
    ck = tmp_path / "c.ckpt"
    made = run_cli(["run", "apply-calls", "--file", str(archive_calls(tmp_path, 0, 1)), "--apply",
                    "--yes", "--checkpoint", str(ck)], env, tmp_path, "mk")  # fmt: skip
    assert made.code == 0, made.stderr()
    data = bytearray(ck.read_bytes())
    data[20] ^= 0x01  # inside the first record's JSON
    ck.write_bytes(bytes(data))
    for command in ("status", "resume"):
        err = _failed(run_cli([command, str(ck)], env, tmp_path, command), 3)
        assert "line 1 (byte offset 0)" in err and "nothing was sent" not in err, err
    first = ck.read_bytes().split(b"\n", 1)[0]
    ck.write_bytes(first[: len(first) // 2])  # only the start of the first record
    err = _failed(run_cli(["status", str(ck)], env, tmp_path, "cut"), 3)
    assert "no intent was ever recorded after it, so nothing was sent under it" in err


# -- 10. a live run is running, not killed ----------------------------------------------------


def test_status_of_a_live_run_says_running_and_of_a_killed_one_resumable(
    env: dict[str, str], emulator: Emulator, tmp_path: Path
) -> None:
    """While a run holds its checkpoint: status says running (pid, host, since), never
    "ended without a record" nor "resumable", exits 6, and --json says state running;
    after a SIGKILL: "ended without a record (killed?)" and resumable, still exit 6."""
    ck = tmp_path / "c.ckpt"
    argv = ["run", "apply-calls", "--file", str(archive_calls(tmp_path, *range(GATES))), "--apply",
            "--yes", "--checkpoint", str(ck), "--quota", "1/2s"]  # fmt: skip
    run = fork_cli(argv, env, tmp_path, "live")
    try:
        _wait_for_applied(emulator)
        status = run_cli(["status", str(ck)], env, tmp_path, "st")
        as_json = run_cli(["status", str(ck), "--json"], env, tmp_path, "stj")
    finally:
        run.kill()
    out = status.stdout()
    assert status.code == 6, status.stderr()
    assert f"running: pid {run.pid} on {socket.gethostname()} since " in out
    assert "ended without a record" not in out and "resumable" not in out
    document = json.loads(as_json.stdout())
    assert document["state"] == "running" and document["running"]["pid"] == run.pid
    assert document["resumable"] is False and as_json.code == 6
    killed = run_cli(["status", str(ck)], env, tmp_path, "killed")
    assert killed.code == 6
    assert "the last run ended without a record (killed?)" in killed.stdout()
    assert f"resumable: `bulkops resume {ck}`" in killed.stdout()
    assert "running:" not in killed.stdout()


# -- 11. damage in the middle of a checkpoint ---------------------------------------------------


def test_mid_file_damage_shows_the_verified_prefix_and_undo_from_damaged_undoes_it(
    env: dict[str, str], emulator: Emulator, tmp_path: Path
) -> None:
    """A byte flipped in a record in the middle of a finished checkpoint: status shows
    the counts of the records before it, what they applied and the damaged line (exit
    3); resume stays refused and sends nothing; `undo --from-damaged` undoes every gate
    the run archived (the ones past the damage too: each is read first)."""
    ck = tmp_path / "c.ckpt"
    argv = ["run", "apply-calls", "--file", str(archive_calls(tmp_path, 0, 1, 2, 3)), "--apply",
            "--yes", "--checkpoint", str(ck), "--max-in-flight", "1"]  # fmt: skip
    assert run_cli(argv, env, tmp_path, "mk").code == 0
    records = read_records(ck)
    lines = ck.read_bytes().split(b"\n")
    # The second mutation's outcome: two outcomes (one mutation applied) stand before it.
    index = [i for i, r in enumerate(records) if r["t"] == "outcome"][1]
    offset = sum(len(line) + 1 for line in lines[:index])
    damaged = bytearray(lines[index])
    damaged[30] = 0xE9  # a byte that is not even UTF-8
    lines[index] = bytes(damaged)
    ck.write_bytes(b"\n".join(lines))
    status = run_cli(["status", str(ck)], env, tmp_path, "st")
    assert status.code == 3, status.stderr()
    out = status.stdout()
    assert f"DAMAGED at line {index + 1} (byte offset {offset}): CRC mismatch" in out
    assert "applied 1, skipped 0, failed 0, conflict 0, unsettled 1, not yet sent 2" in out
    assert "applied before the damage (1): L1:PUT /gates/seed_gate_0/archive" in out
    assert f"`bulkops undo {ck} --from-damaged`" in out
    writes = len(_writes(emulator))
    resumed = run_cli(["resume", str(ck), "--yes"], env, tmp_path, "resume")
    assert _failed(resumed, 3) and f"line {index + 1} (byte offset {offset})" in resumed.stderr()
    assert len(_writes(emulator)) == writes
    plain = run_cli(["undo", str(ck)], env, tmp_path, "undo-plain")
    assert _failed(plain, 3) and "--from-damaged" in plain.stderr()
    undo = run_cli(["undo", str(ck), "--from-damaged", "--apply", "--yes"], env, tmp_path, "undo")
    assert undo.code == 0, undo.stderr()
    assert f"damaged at line {index + 1}" in undo.stderr()
    unarchived = applied_counts(_writes(emulator))
    assert sorted(p for (m, p), n in unarchived.items() if p.endswith("/unarchive")) == [
        f"/console/v1/gates/seed_gate_{i}/unarchive" for i in range(4)
    ]
    assert all(n == 1 for n in unarchived.values())


# -- 12. absent objects -----------------------------------------------------------------------


def test_a_delete_of_an_absent_object_is_nothing_to_do_and_never_deletes_a_newcomer(
    env: dict[str, str], emulator: Emulator, tmp_path: Path
) -> None:
    """A DELETE (and a PATCH) of a gate that does not exist: the plan says "absent:
    nothing to do", counts it apart and never "exists → deleted"; applying sends none of
    them. A gate of that name created after planning is a conflict, not deleted."""
    calls = _calls(
        tmp_path,
        {"method": "DELETE", "path": "/gates/ghost"},
        {"method": "PATCH", "path": "/gates/ghost_2", "body": {"description": "x"}},
        {"method": "DELETE", "path": "/gates/seed_gate_7"},
    )
    plan = tmp_path / "p.plan"
    run = run_cli(
        ["plan", "apply-calls", "--file", str(calls), "-o", str(plan)], env, tmp_path, "p"
    )
    out = run.stdout()
    assert run.code == 0, run.stderr()
    assert "absent: nothing to do (DELETE /gates/ghost is not sent)" in out
    assert "absent: nothing to do (PATCH /gates/ghost_2 is not sent)" in out
    assert "gate/seed_gate_7\n    delete: (object): exists → deleted" in out
    assert out.count("exists → deleted") == 1
    assert re.search(r"absent: nothing to do\s*│\s*2", out)
    assert "1 API mutations on 3 objects" in out and "(2 absent: nothing to do)" in out
    document = json.loads(
        run_cli(
            ["plan", "apply-calls", "--file", str(calls), "--json"], env, tmp_path, "j"
        ).stdout()
    )
    assert document["absent"] == 2 and document["mutations"] == 1
    assert [i["absent"] for i in document["items"]] == [True, True, False]
    made = run_cli(["run", "apply-calls", "--file", str(_calls(tmp_path, {"method": "POST",
                   "path": "/gates", "body": {"name": "ghost"}}, name="mk.jsonl")), "--apply",
                   "--yes"], env, tmp_path, "mk")  # fmt: skip
    assert made.code == 0, made.stderr()
    applied = run_cli(["apply", str(plan), "--yes", "--report", str(tmp_path / "r.json")], env,
                      tmp_path, "apply")  # fmt: skip
    assert applied.code == 1  # the newcomer: a conflict
    deletes = [(e["path"], e["applied"]) for e in _writes(emulator) if e["method"] == "DELETE"]
    assert deletes == [("/console/v1/gates/seed_gate_7", True)]
    rows = {r["object"]: r for r in json.loads((tmp_path / "r.json").read_text())["items"]}
    assert rows["gate/ghost"]["state"] == "conflict"
    assert rows["gate/ghost_2"]["state"] == "skipped"
    assert rows["gate/ghost_2"]["reason"] == "absent: nothing to do"


# -- 13. a full disk, or a file-size limit -------------------------------------------------------


def test_a_file_size_limit_stops_the_run_with_exit_7_and_it_resumes(
    env: dict[str, str], emulator: Emulator, tmp_path: Path
) -> None:
    """RLIMIT_FSIZE hit while the checkpoint grows: one clear message naming the
    checkpoint, exit 7, the per-item report still written; a resume once there is room
    finishes the job, every gate archived exactly once."""
    calls = archive_calls(tmp_path, *range(GATES))
    argv = ["run", "apply-calls", "--file", str(calls), "--apply", "--yes", "--max-in-flight", "1"]
    dry = run_cli(["plan", "apply-calls", "--file", str(calls), "-o", str(tmp_path / "p.plan")],
                  env, tmp_path, "plan")  # fmt: skip
    assert dry.code == 0
    # The plan record is the first line; allow it and a few records more, not all of them.
    plan_bytes = len(json.dumps(json.loads((tmp_path / "p.plan").read_text()))) + 400
    limit = plan_bytes + 700
    ck, report = tmp_path / "c.ckpt", tmp_path / "rep.csv"
    soft, hard = resource.getrlimit(resource.RLIMIT_FSIZE)
    resource.setrlimit(resource.RLIMIT_FSIZE, (limit, hard))
    try:  # the child inherits the limit; this process gets its own back at once
        run = fork_cli(
            [*argv, "--checkpoint", str(ck), "--report", str(report)], env, tmp_path, "full"
        )
    finally:
        resource.setrlimit(resource.RLIMIT_FSIZE, (soft, hard))
    wait_cli(run)
    err = _failed(run, 7)
    assert f"no space left while writing {ck}" in run.stdout() + err
    assert "resume when there is room" in run.stdout() + err
    assert ck.stat().st_size <= limit
    rows = report.read_text().splitlines()
    assert len(rows) == 1 + GATES  # written, one row per mutation
    resumed = run_cli(["resume", str(ck), "--yes"], env, tmp_path, "resume")
    assert resumed.code == 0, resumed.stderr()
    counts = applied_counts(_writes(emulator))
    assert sorted(counts.values()) == [1] * GATES


# -- 14. exit codes follow conventions ------------------------------------------------------------


def test_sigterm_stops_cleanly_with_exit_143_and_resumes(
    env: dict[str, str], emulator: Emulator, tmp_path: Path
) -> None:
    """SIGTERM: no new sends, the journal is finished, exit 143 (SIGINT stays 130)."""
    ck = tmp_path / "c.ckpt"
    argv = ["run", "apply-calls", "--file", str(archive_calls(tmp_path, *range(6))), "--apply",
            "--yes", "--checkpoint", str(ck), "--quota", "2/1s"]  # fmt: skip
    run = fork_cli(argv, env, tmp_path, "term")
    _wait_for_applied(emulator)
    os.kill(run.pid, signal.SIGTERM)
    assert wait_cli(run) == 143, run.stderr()
    assert "Terminated: the checkpoint is consistent" in run.stdout()
    assert read_records(ck)[-1]["event"] == "interrupted"
    assert run_cli(["resume", str(ck)], env, tmp_path, "resume").code == 0
    assert sorted(applied_counts(_writes(emulator)).values()) == [1] * 6


def test_a_closed_stdout_is_a_quiet_exit(env: dict[str, str], tmp_path: Path) -> None:
    """`bulkops plan … | head -1` (a plan far larger than the pipe's buffer): exit 141,
    nothing on stderr (no traceback, no BrokenPipeError)."""
    # Calls of a shape the planner does not read: thousands of diff lines, no reads.
    calls = _calls(
        tmp_path,
        *({"method": "POST", "path": f"/unknown/{i:04d}/{'x' * 200}"} for i in range(2000)),
    )
    for argv in (["plan", "apply-calls", "--file", str(calls), "--show", "5000"],):
        process = subprocess.Popen(
            [sys.executable, "-c", "from bulkops.cli.main import main; raise SystemExit(main())",
             *argv],
            stdout=subprocess.PIPE, stderr=subprocess.PIPE, env={**os.environ, **env},
        )  # fmt: skip
        assert process.stdout is not None and process.stderr is not None
        process.stdout.readline()
        process.stdout.close()
        with process.stderr:
            err = process.stderr.read().decode()
        assert process.wait(timeout=60) == 141, err
        assert err == "", err


def test_status_exit_codes_tell_where_a_checkpoint_stands(
    env: dict[str, str], tmp_path: Path
) -> None:
    """status: 0 complete with everything applied, 1 complete with a failure, 6 work
    left (a killed run), 3 damaged."""

    def make(name: str, *calls: dict[str, object], extra: dict[str, str] | None = None) -> Path:
        ck = tmp_path / f"{name}.ckpt"
        run_cli(["run", "apply-calls", "--file", str(_calls(tmp_path, *calls, name=f"{name}.jsonl")),
                 "--apply", "--yes", "--checkpoint", str(ck)], {**env, **(extra or {})},
                tmp_path, name)  # fmt: skip
        return ck

    archive = {"method": "PUT", "path": "/gates/seed_gate_0/archive"}
    ok = make("ok", archive)
    failed = make("failed", {"method": "POST", "path": "/gates", "body": {"name": ""}})
    left = make("left", {"method": "PUT", "path": "/gates/seed_gate_1/archive"},
                {"method": "PUT", "path": "/gates/seed_gate_2/archive"},
                extra={FAILPOINT_ENV: "after-intent:1"})  # fmt: skip
    damaged = tmp_path / "damaged.ckpt"
    lines = ok.read_bytes().split(b"\n")
    lines[2] = lines[2].replace(b'"intent"', b'"intEnt"')  # the intent: its CRC fails
    damaged.write_bytes(b"\n".join(lines))
    damaged.chmod(0o600)
    codes = {ck.stem: run_cli(["status", str(ck)], env, tmp_path, f"s-{ck.stem}").code
             for ck in (ok, failed, left, damaged)}  # fmt: skip
    assert codes == {"ok": 0, "failed": 1, "left": 6, "damaged": 3}
