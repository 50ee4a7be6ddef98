"""The demo end to end (``scripts/demo``'s entry point), checked step by step against the
emulator's request log, the ground truth of what reached the server."""

from __future__ import annotations

import io
import json
import re
from collections import Counter
from pathlib import Path
from typing import Any

from rich.console import Console

from bulkops.api.paths import WRITE_METHODS
from bulkops.cli.demo import STEPS, Tally, excerpt, run_demo, summary_table
from bulkops.emulator.demo import REVIEW_GATES
from bulkops.engine.plans import read_plan

TIME_SCALE = 240.0  # the copy is then bound by the runner's speed, not the quota


def _log(workdir: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in (workdir / "requests.log").read_text().splitlines()]


def _tally(tallies: list[Tally], label: str) -> Tally:
    (found,) = [t for t in tallies if t.label == label]
    return found


def _settled(tally: Tally) -> dict[str, Any]:
    """A checkpoint's status, checked to have applied every mutation once, each a write."""
    assert tally.status is not None, tally.label
    counts = tally.status["counts"]
    assert tally.status["complete"], tally.label
    assert counts["applied"] == tally.status["mutations"] > 0, tally.label
    assert counts["failed"] == counts["conflict"] == counts["skipped"] == 0, tally.label
    assert tally.log["writes"] == tally.log["changed"] == counts["applied"], tally.label
    assert tally.log["throttled"] == 0, tally.label
    return tally.status


async def test_the_demo_runs_every_step_and_says_what_each_sent(tmp_path: Path) -> None:
    """Plan, a killed and resumed apply (reviews opened), status, the reviews approved and
    committed, rewrite, import (a bad file refused), copy (through reviews in the target),
    undo and the closing table: each step's outcome holds in the emulator's request log."""
    out = io.StringIO()
    result = await run_demo(
        Console(file=out, width=150, color_system=None),
        time_scale=TIME_SCALE,
        workdir=tmp_path / "demo",
    )
    text = out.getvalue()
    assert result.ok, result.problems
    for number, step in enumerate(STEPS, 1):
        assert f"Step {number} of {len(STEPS)}: {step.title}" in text
    log = _log(result.workdir)
    tallies = result.tallies

    # 1. The plan reads only, and leaves the referenced stale gates alone.
    planned = read_plan(result.workdir / "archive.plan")
    plan = _tally(tallies, "plan archive-gates")
    assert plan.planned == len(planned.mutations) > 0 and plan.skipped > 0
    assert plan.log["writes"] == 0 and plan.log["reads"] > 0
    assert "$ bulkops plan archive-gates --stale --time-scale 240 -o archive.plan" in text
    assert "ETA ≈" in text and "more lines" in text

    # 2. Killed with SIGKILL halfway, resumed: every gate archived exactly once, the five
    # that require review through their review (opened once, approved, committed once).
    intents, outcomes = result.saved["killed"]
    assert 0 < outcomes <= intents < len(planned.mutations)
    assert "kill -9" in text and "killed by signal 9 (SIGKILL)" in text
    assert "unsettled" in text and "resuming archive.ckpt" in text
    archive = _settled(_tally(tallies, "apply, kill -9, resume"))
    assert archive["runs"] == 3 and archive["mutations"] == len(planned.mutations)
    reviewed = {m.object.removeprefix("gate/") for m in planned.mutations if m.review}
    assert len(reviewed) == REVIEW_GATES and "\nexit 5\n" in text
    source = [e for e in log if e["project"] == "demo-source"]
    archived = Counter(
        e["path"].split("/")[4]
        for e in source
        if e["applied"] and re.search(r"/gates/[^/]+/(archive|reviews/[^/]+/commit)$", e["path"])
    )
    assert set(archived) == {m.object.removeprefix("gate/") for m in planned.mutations}
    assert set(archived.values()) == {1}
    opened = Counter(
        e["path"].split("/")[4] for e in source if e.get("review", {}).get("event") == "opened"
    )
    committed = Counter(
        e["path"].split("/")[4] for e in source if e.get("review", {}).get("event") == "committed"
    )
    assert opened == committed == Counter(dict.fromkeys(reviewed, 1))
    commits = _tally(tallies, "approve, resume: commits")
    assert commits.log["writes"] == commits.log["changed"] == REVIEW_GATES

    # 3-5. The rewrite, the import, and the bad file refused with its line numbers.
    rewrite = _settled(_tally(tallies, "run rewrite-rules"))
    _settled(_tally(tallies, "run import-overrides"))
    bad = _tally(tallies, "import-overrides (bad file)")
    assert bad.refused > 0 and bad.log["writes"] == 0 and bad.status is None
    assert "line 2:" in text and "line 11:" in text and "\nexit 2\n" in text
    assert not (result.workdir / "overrides-bad.ckpt").exists()

    # 6. The copy wrote only to the target (the copies of the archived gates that require
    # review through reviews there), and its read-back verification passed.
    copy = _settled(_tally(tallies, "run copy-project"))
    to_target = [e for e in log if e["method"] in WRITE_METHODS and e["project"] == "demo-target"]
    target_commits = [e for e in to_target if e.get("review", {}).get("event") == "committed"]
    assert len(target_commits) == REVIEW_GATES
    assert len(to_target) == copy["mutations"] + len(target_commits)
    assert "verification: the target matches" in text

    # 7. The undo of the rewrite: one inverse per rewritten object, rules back as before.
    undo = _settled(_tally(tallies, "undo rewrite.ckpt"))
    assert undo["mutations"] == rewrite["mutations"] and undo["job"] == "undo"
    assert "as they were before the rewrite" in text

    # 8. The closing table adds up to the whole log.
    assert "What each step sent, skipped and refused" in text
    assert sum(t.log["writes"] for t in tallies) == sum(
        1 for e in log if e["method"] in WRITE_METHODS and e["path"].startswith("/console/v1")
    )
    assert not any(e["status"] == 429 for e in log)
    assert f"Demo finished in {result.seconds:.1f} s" in text


def test_long_runs_of_one_kind_are_trimmed_and_counted() -> None:
    """A long indented run keeps its first lines and says how many more; short runs and
    labelled lines stay whole."""
    text = "\n".join(
        ["Plan: job x"]
        + [f"  gate/g{i}" for i in range(30)]
        + ["dropped: a", "dropped: b"]
        + [f"dropped (--accept-loss): {i}" for i in range(20)]
        + ["3 API mutations"]
    )
    lines = [line.plain for line in excerpt(text, keep=4)]
    assert lines[:6] == [
        "Plan: job x",
        "  gate/g0",
        "  gate/g1",
        "  gate/g2",
        "  gate/g3",
        "  … 26 more lines",
    ]
    assert lines[6:8] == ["dropped: a", "dropped: b"]
    assert lines[8:13] == [f"dropped (--accept-loss): {i}" for i in range(4)] + ["… 16 more lines"]
    assert lines[13:] == ["3 API mutations"]
    assert [line.plain for line in excerpt("a\n  b\n  c\n", keep=1)] == ["a", "  b", "  c"]


def test_the_summary_table_puts_checkpoint_and_log_counts_side_by_side() -> None:
    """A row shows the checkpoint's mutations and outcomes beside the log's requests; a
    refused file has no checkpoint and shows its refused rows."""
    done = Tally("run x", checkpoint=Path("x.ckpt"), skipped=3)
    done.status = {
        "mutations": 5,
        "counts": {"applied": 4, "skipped": 1, "failed": 0, "conflict": 0},
    }
    done.log.update(writes=4, changed=4, reads=9)
    refused = Tally("bad file", refused=10)
    out = io.StringIO()
    Console(file=out, width=150, color_system=None).print(summary_table([done, refused]))
    rows = [line.split() for line in out.getvalue().splitlines()]
    assert ["run", "x", "5", "4", "4", "4", "4", "0", "0", "9"] in rows
    assert ["bad", "file", "·", "0", "0", "·", "0", "10", "0", "0"] in rows
