"""Output for people and for programs (issue 12, points 15–18): ``--json`` documents
validated against their shipped schemas, ``--quiet``, the terminal's width and colour,
an ASCII-only stream, warnings as human lines, options that would be ignored, shell
completion and ``--version``.

Commands run as real processes against a real emulator process: forked (:mod:`bulkops.
testing`), or as subprocesses where the interpreter's start-up or a terminal matters.
"""

from __future__ import annotations

import json
import os
import pty
import re
import subprocess
import sys
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import jsonschema
import pytest
from engine_support import archive_calls, seeded_state

from bulkops import __version__
from bulkops.cli.documents import SCHEMAS, schema_path
from bulkops.emulator import EmulatorState
from bulkops.testing import CliRun, Emulator, run_cli

GATES = 6
LONG = "checkout_" + "very_long_name_" * 6  # a gate id far wider than half a terminal


@pytest.fixture(scope="module", name="seed")
def _seed() -> EmulatorState:
    """The empty project with six gates, one of them with a very long id."""
    return seeded_state(gates=GATES, calls=[("POST", "/gates", {"name": LONG})])


def _document(run: CliRun) -> dict[str, Any]:
    """The one JSON document on stdout, validated against the schema it names."""
    out = run.stdout()
    document = json.loads(out)  # the whole of stdout: one document and nothing else
    assert out.count("\n") == 1, out
    schema = json.loads(schema_path(document["schema"]).read_text())
    jsonschema.Draft202012Validator(schema).validate(document)
    return document


def _python(argv: list[str], env: Mapping[str, str], **kwargs: Any) -> subprocess.Popen[bytes]:
    """``bulkops argv`` in a new interpreter (its own start-up: encoding, terminal)."""
    return subprocess.Popen(
        [sys.executable, "-c", "from bulkops.cli.main import main; raise SystemExit(main())",
         *argv],
        env={**os.environ, **env},
        **kwargs,
    )  # fmt: skip


# -- 15. --json and --quiet --------------------------------------------------------------------


def test_the_schemas_are_valid_json_schemas_shipped_in_the_package() -> None:
    """Each documented schema has its JSON Schema file in bulkops/cli/schemas/, itself
    valid (Draft 2020-12) and pinning its own name."""
    for name in SCHEMAS:
        schema = json.loads(schema_path(name).read_text())
        jsonschema.Draft202012Validator.check_schema(schema)
        assert schema["properties"]["schema"] == {"const": name}


def test_every_command_prints_one_json_document_that_its_schema_validates(
    env: dict[str, str], emulator: Emulator, tmp_path: Path
) -> None:
    """plan, run (dry and applied), apply, resume, status, undo (dry and applied), jobs
    and a failing command, each with --json: stdout is exactly one document, valid
    against the schema it names; the human display went to stderr."""
    plan, ck = tmp_path / "p.plan", tmp_path / "c.ckpt"
    docs: dict[str, dict[str, Any]] = {}

    def json_run(name: str, argv: list[str], code: int = 0) -> dict[str, Any]:
        run = run_cli([*argv, "--json"], env, tmp_path, name)
        assert run.code == code, run.stderr()
        docs[name] = _document(run)
        return docs[name]

    calls = str(archive_calls(tmp_path, 0, 1))
    assert json_run("plan", ["plan", "apply-calls", "--file", calls, "-o", str(plan)])[
        "plan_file"
    ] == str(plan)
    assert "Plan: job apply-calls" in run_cli(["plan", "apply-calls", "--file", calls, "--json"],
                                              env, tmp_path, "stderr").stderr()  # fmt: skip
    json_run("dry", ["run", "apply-calls", "--file", calls])
    json_run("apply", ["apply", str(plan), "--yes", "--checkpoint", str(ck)])
    json_run("status", ["status", str(ck)])
    json_run("resume", ["resume", str(ck)])
    json_run("undo-dry", ["undo", str(ck)])
    json_run("undo", ["undo", str(ck), "--apply", "--yes"])
    other = str(archive_calls(tmp_path, 2, name="other.jsonl"))
    json_run("run", ["run", "apply-calls", "--file", other, "--apply", "--yes", "--report",
                     str(tmp_path / "r.csv")])  # fmt: skip
    json_run("jobs", ["jobs"])
    code_tree = tmp_path / "src"
    code_tree.mkdir()
    (code_tree / "app.py").write_text('if statsig.check_gate(user, "seed_gate_0"):\n    pass\n')
    snapshot = tmp_path / "snap.json"
    snapshot.write_text(json.dumps({"format": "bulkops-snapshot/1", "collections": {
        "gates": {"seed_gate_0": {"id": "seed_gate_0", "status": "Launched"},
                  "seed_gate_1": {"id": "seed_gate_1", "status": "Archived"}}}}))  # fmt: skip
    json_run("refs", ["refs", str(code_tree), "--snapshot", str(snapshot), "--no-git"])
    json_run("error", ["status", str(plan)], code=2)
    assert {d["schema"] for d in docs.values()} == set(SCHEMAS)
    assert docs["plan"]["command"] == "plan" and docs["dry"]["command"] == "run"
    assert [i["key"] for i in docs["plan"]["items"]] == [
        "L1:PUT /gates/seed_gate_0/archive",
        "L2:PUT /gates/seed_gate_1/archive",
    ]
    assert docs["apply"]["counts"]["applied"] == 2 and docs["apply"]["checkpoint"] == str(ck)
    assert docs["status"]["state"] == "complete" and docs["status"]["exit_code"] == 0
    assert docs["undo-dry"]["command"] == "undo" and docs["undo-dry"]["mutations"] == 2
    assert docs["undo"]["counts"]["applied"] == 2
    assert docs["run"]["reports"] == [str(tmp_path / "r.csv")]
    assert "archive-gates" in {j["name"] for j in docs["jobs"]["jobs"]}
    assert [(o["id"], o["in_code"]) for o in docs["refs"]["objects"]] == [("seed_gate_0", True)]
    assert docs["error"]["exit_code"] == 2 and "is a bulkops plan file" in docs["error"]["error"]


def test_quiet_prints_only_the_summary_line(
    env: dict[str, str], emulator: Emulator, tmp_path: Path
) -> None:
    """--quiet: one line on stdout (the summary), no progress, no diff, no table on
    stderr; an error still shows."""
    calls = str(archive_calls(tmp_path, 3))
    for name, argv in {
        "plan": ["plan", "apply-calls", "--file", calls],
        "run": ["run", "apply-calls", "--file", calls, "--apply", "--yes", "--checkpoint",
                str(tmp_path / "q.ckpt")],
        "status": ["status", str(tmp_path / "q.ckpt")],
    }.items():  # fmt: skip
        run = run_cli([*argv, "-q"], env, tmp_path, name)
        assert run.code == 0, run.stderr()
        assert len(run.stdout().splitlines()) == 1, run.stdout()
        assert run.stderr() == "", run.stderr()
    assert run_cli(["plan", "apply-calls", "--file", calls, "-q"], env, tmp_path, "p").stdout(
    ).startswith("1 API mutations on 1 objects")  # fmt: skip
    failed = run_cli(["status", str(tmp_path / "none.ckpt"), "-q"], env, tmp_path, "f")
    assert failed.code == 2 and "FAILED: checkpoint" in failed.stderr()


# -- 16. width, colour, encoding, warnings -------------------------------------------------------


def test_tables_and_lines_fit_columns_and_show_bounds_them(
    env: dict[str, str], emulator: Emulator, tmp_path: Path
) -> None:
    """COLUMNS=60: no line of `jobs` or of an archive-gates plan (whose selected-gates
    table has a very long id) is wider than 60; --show 2 bounds the table and the diff.
    Into a pipe without COLUMNS nothing is folded, and no line ends in padding."""
    for name, argv in {
        "jobs": ["jobs"],
        "plan": ["plan", "archive-gates", "--id", "*", "--show", "2"],
    }.items():
        run = run_cli(argv, {**env, "COLUMNS": "60"}, tmp_path, name)
        assert run.code == 0, run.stderr()
        widths = [len(line) for line in run.stdout().splitlines()]
        assert max(widths) <= 60, run.stdout()
    out = run.stdout()
    assert f"… and {GATES + 1 - 2} more rows" in out
    assert f"… and {GATES + 1 - 2} more objects" in out
    wide = run_cli(["plan", "archive-gates", "--id", "*"], env, tmp_path, "wide").stdout()
    assert LONG in wide  # a pipe without COLUMNS folds nothing
    # … and pads nothing: no row is filled out with blanks to the widest cell.
    assert [line for line in wide.splitlines() if line.endswith(" ")] == []


def _on_a_terminal(argv: list[str], env: Mapping[str, str]) -> str:
    """What ``bulkops argv`` writes to a terminal (a pseudo-terminal) 100 columns wide."""
    leader, follower = pty.openpty()
    process = _python(argv, {**env, "COLUMNS": "100"}, stdout=follower, stderr=follower,
                      stdin=subprocess.DEVNULL)  # fmt: skip
    os.close(follower)
    chunks = []
    while True:
        try:
            chunk = os.read(leader, 65536)
        except OSError:  # EIO: the other side is closed
            break
        if not chunk:
            break
        chunks.append(chunk)
    os.close(leader)
    assert process.wait(timeout=60) == 0
    return b"".join(chunks).decode()


def test_no_color_removes_every_style_on_a_terminal(
    env: dict[str, str], emulator: Emulator, tmp_path: Path
) -> None:
    """On a terminal the plan is styled (escape sequences); with NO_COLOR none at all."""
    argv = ["plan", "apply-calls", "--file", str(archive_calls(tmp_path, 0))]
    assert "\x1b[" in _on_a_terminal(argv, env)
    plain = _on_a_terminal(argv, {**env, "NO_COLOR": "1"})
    assert "\x1b[" not in plain and "Plan: job apply-calls" in plain


def test_an_ascii_only_stream_gets_plain_stand_ins_not_a_crash(
    env: dict[str, str], emulator: Emulator, tmp_path: Path
) -> None:
    """PYTHONIOENCODING=ascii: the plan prints with `->` and `~` for `→` and `≈`, exit 0."""
    argv = ["plan", "apply-calls", "--file", str(archive_calls(tmp_path, 0))]
    process = _python(argv, {**env, "PYTHONIOENCODING": "ascii"}, stdout=subprocess.PIPE,
                      stderr=subprocess.PIPE)  # fmt: skip
    out, err = process.communicate(timeout=60)
    assert process.returncode == 0, err.decode()
    text = out.decode("ascii")
    assert "In Progress -> Archived" in text and "ETA ~ " in text


def test_warnings_are_human_lines_unless_asked_for_json(
    env: dict[str, str], emulator: Emulator, tmp_path: Path
) -> None:
    """A warning (a torn checkpoint tail repaired on resume) is a human line on stderr;
    with --log-format json it is a JSON line; the --log-file is JSON either way."""
    for fmt in ("human", "json"):
        ck = tmp_path / f"{fmt}.ckpt"
        calls = str(archive_calls(tmp_path, 4, name=f"{fmt}.jsonl"))
        made = run_cli(["run", "apply-calls", "--file", calls, "--apply", "--yes",
                        "--checkpoint", str(ck)], env, tmp_path, f"mk-{fmt}")  # fmt: skip
        assert made.code == 0
        with ck.open("ab") as f:
            f.write(b"0000dead {torn")
        log = tmp_path / f"{fmt}.log"
        run = run_cli(["resume", str(ck), "--log-format", fmt, "--log-file", str(log)], env,
                      tmp_path, f"resume-{fmt}")  # fmt: skip
        assert run.code == 0, run.stderr()
        lines = [line for line in run.stderr().splitlines() if "journal.repaired" in line]
        assert len(lines) == 1, run.stderr()
        if fmt == "human":
            assert not lines[0].lstrip().startswith("{") and "[warning" in lines[0]
        else:
            assert json.loads(lines[0])["event"] == "journal.repaired"
        events = [json.loads(line)["event"] for line in log.read_text().splitlines()]
        assert "journal.repaired" in events


# -- 17. options mean what they say -------------------------------------------------------------


def test_options_that_would_be_ignored_or_given_twice_are_errors(
    env: dict[str, str], emulator: Emulator, tmp_path: Path
) -> None:
    """resume --checkpoint, --report twice (both before, or before and after the job's
    name), --report or --checkpoint on a dry run, --from-damaged on a sound checkpoint:
    exit 2 naming the option, nothing sent; -o still writes the plan file."""
    ck = tmp_path / "c.ckpt"
    calls = str(archive_calls(tmp_path, 5))
    made = run_cli(["run", "apply-calls", "--file", calls, "--apply", "--yes", "--checkpoint",
                    str(ck)], env, tmp_path, "mk")  # fmt: skip
    assert made.code == 0
    sent = len(emulator.log())
    cases = {
        "resume --checkpoint": (["resume", str(ck), "--checkpoint", str(tmp_path / "x")],
                                "not --checkpoint"),
        "two reports": (["run", "--report", "a.json", "--report", "b.json", "apply-calls",
                         "--file", calls, "--apply"], "--report given twice"),
        "report around the job": (["run", "--report", "a.json", "apply-calls", "--file", calls,
                                   "--report", "b.json", "--apply"],
                                  "--report given twice, before and after the job's name"),
        "dry run": (["run", "apply-calls", "--file", calls, "--report", "r.json", "--checkpoint",
                     "x.ckpt"], "--checkpoint, --report: used only with --apply"),
        "undo dry run": (["undo", str(ck), "--yes"], "--yes: used only with --apply"),
        "from-damaged": (["undo", str(ck), "--from-damaged"], "is not damaged"),
    }  # fmt: skip
    for name, (argv, says) in cases.items():
        run = run_cli(argv, env, tmp_path, name.replace(" ", "-"))
        assert run.code == 2 and says in run.stderr(), (name, run.stderr())
    assert len(emulator.log()) == sent
    plan = tmp_path / "p.plan"
    assert run_cli(["plan", "apply-calls", "--file", calls, "-o", str(plan)], env, tmp_path,
                   "o").code == 0 and plan.exists()  # fmt: skip


# -- 18. completion and --version --------------------------------------------------------------


def test_completion_scripts_for_bash_zsh_and_fish(tmp_path: Path) -> None:
    """`bulkops completion SHELL` prints a script naming every command and job; the bash
    one completes commands, a job's options and their choices in a real bash."""
    scripts = {}
    for shell in ("bash", "zsh", "fish"):
        run = run_cli(["completion", shell], {}, tmp_path, shell)
        assert run.code == 0, run.stderr()
        scripts[shell] = run.stdout()
        for word in ("plan", "resume", "status", "archive-gates", "stale-reason", "json"):
            assert re.search(rf"\b{word}\b", scripts[shell]), (shell, word)
    (tmp_path / "bulkops.bash").write_text(scripts["bash"])
    probe = f"""
source {tmp_path / "bulkops.bash"}
comp() {{ COMP_WORDS=("$@"); COMP_CWORD=$(( ${{#COMP_WORDS[@]}} - 1 )); COMPREPLY=()
         _shtab_bulkops bulkops "${{COMP_WORDS[-1]}}" "${{COMP_WORDS[-2]}}"; echo "${{COMPREPLY[*]}}"; }}
comp bulkops sta
comp bulkops plan archive-gates --st
comp bulkops run import-overrides --mode ""
"""
    done = subprocess.run(["bash", "-c", probe], capture_output=True, text=True, timeout=30)
    assert done.stdout.splitlines() == ["status", "--stale --stale-reason --status",
                                        "add replace remove"], done.stderr  # fmt: skip
    bad = run_cli(["completion", "powershell-ish"], {}, tmp_path, "bad")
    assert bad.code == 2 and "invalid choice" in bad.stderr()


def test_version(tmp_path: Path) -> None:
    """`bulkops --version` prints the tool's version."""
    run = run_cli(["--version"], {}, tmp_path, "v")
    assert run.code == 0 and re.fullmatch(rf"bulkops {re.escape(__version__)}\n", run.stdout())
