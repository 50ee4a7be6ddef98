"""Mutation economy: what each job sends against what it changes, and what a re-run sends.

``economy.<job>`` in ``bench/results.json``: each job on the demo project (side by side,
each on its own emulator: these are counts, not times): objects changed (a before/after
diff of the emulator's state, ignoring version stamps) against mutations sent, the
requests the API forces beyond one per object (chunks, oneOf bodies, follow-ups of a
create, the commit of a change that went through review), and what a second identical
run sends (nothing). A run that ends waiting for review (exit 5: the demo's gates that
require review) has its reviews approved and is resumed until done, as people would.
"""

from __future__ import annotations

import contextlib
import json
import math
import re
import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any
from urllib.parse import unquote

from bulkops.emulator.http import PREFIX
from bulkops.emulator.state import EmulatorState
from bulkops.testing import Call, CliRun, cli_env, fork_cli, resume_through_reviews

from .common import (
    EXAMPLES,
    NO_QUOTA,
    demo_state,
    live_gates,
    override_rows,
    serve,
    write_calls,
    writes,
)
from .section import BenchConfig, Say, Section, Target

__all__ = ["SECTION", "run", "targets"]

# Fields the emulator stamps on every change: a no-op write must not look like a change.
_STAMPS = frozenset(
    {"version", "lastModifiedTime", "lastModifierName", "lastModifierID", "lastModifierEmail"}
)
# The API's per-request limits (console-api.md): ids per id-list request, per override list.
_ID_LIST_CHUNK = 1000
_OVERRIDE_CHUNK = 1000
_USER_LISTS = ("passingUserIDs", "failingUserIDs", "passingCustomIDs", "failingCustomIDs")
# A layer's create (LayerCreateContractDto) cannot carry its parameters: an update follows.
_UPDATED_AFTER_CREATE = frozenset({"layers"})
_FOLLOW_UPS = ("launch", "archive", "unarchive", "enable", "disable", "parameters")
# copy-project copies everything, overrides too.
_COPY_KINDS = (
    "tags", "unit_id_types", "segments", "gates", "dynamic_configs", "layers", "experiments"
)  # fmt: skip


def _normalize(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: _normalize(v) for k, v in value.items() if k not in _STAMPS}
    if isinstance(value, list):
        return [_normalize(v) for v in value]
    return value


def _objects(snapshot: Mapping[str, Any]) -> dict[tuple[str, ...], Any]:
    out: dict[tuple[str, ...], Any] = {}
    for pid, project in snapshot.items():
        for kind, objs in project["collections"].items():
            for oid, obj in objs.items():
                out[(pid, kind, oid)] = _normalize(obj)
        for kind, objs in project["overrides"].items():
            for oid, obj in objs.items():
                out[(pid, kind, oid, "overrides")] = obj
        for oid, ids in project["id_lists"].items():
            out[(pid, "segments", oid, "id_list")] = sorted(ids)
    return out


def _id_count(value: Any) -> int:
    if isinstance(value, str):
        return 1
    if isinstance(value, dict):
        return sum(_id_count(v) for v in value.values())
    if isinstance(value, list):
        return sum(_id_count(v) for v in value)
    return 0


def _required(key: tuple[str, ...], old: Any, new: Any) -> int:
    """The fewest requests the API lets a change of this object take.

    One per object, except: a list of more ids than one request takes needs one
    request per chunk (1,000 ids per id-list or override request), and a gate's or
    holdout's overrides body is *either* the id lists *or* ``environmentOverrides``
    (``UpdateOverridesContractDto`` is a oneOf), so changing both takes two.
    """
    if len(key) == 3:
        return 1
    if key[3] == "id_list":
        return max(1, math.ceil(max(_id_count(old), _id_count(new)) / _ID_LIST_CHUNK))
    parts = (_USER_LISTS, ("environmentOverrides",)) if key[1] in ("gates", "holdouts") else (None,)
    needed = 0
    for names in parts:
        a = _pick(old, names)
        b = _pick(new, names)
        if a != b:
            needed += max(1, math.ceil(max(_id_count(a), _id_count(b)) / _OVERRIDE_CHUNK))
    return max(1, needed)


def _pick(value: Any, names: Sequence[str] | None) -> Any:
    # Absent, null and empty lists all mean "no ids".
    if not isinstance(value, dict):
        return {}
    return {k: v for k, v in value.items() if (names is None or k in names) and v}


def _changes(before: Mapping[str, Any], after: Mapping[str, Any]) -> tuple[int, int, set[str]]:
    """(objects changed, requests the API forces beyond one per object, new objects).

    Overrides and id lists count as objects of their own. An empty id list or
    override set appearing with a new segment or gate is part of that create, not a
    change of its own.
    """
    old, new = _objects(before), _objects(after)
    changed = 0
    forced = 0
    created: set[str] = set()
    for key in old.keys() | new.keys():
        a, b = old.get(key), new.get(key)
        if len(key) == 4 and _pick(a, None) == _pick(b, None):
            continue
        if a == b:
            continue
        changed += 1
        forced += _required(key, a, b) - 1
        if key not in old and len(key) == 3:
            created.add(f"{key[1]}/{key[2]}")
    return changed, forced, created


def _follow_ups(muts: Sequence[Mapping[str, Any]], created: set[str]) -> int:
    """Requests on objects created in the same run that their create cannot replace:
    state changes (launch, archive…) and a layer's parameters. One each, forced by
    the API."""
    count = 0
    for e in muts:
        parts = [unquote(x) for x in str(e["path"])[len(PREFIX) :].strip("/").split("/")]
        if f"{parts[0]}/{parts[1] if len(parts) > 1 else ''}" not in created:
            continue
        if (len(parts) == 3 and parts[2] in _FOLLOW_UPS) or (
            len(parts) == 2 and parts[0] in _UPDATED_AFTER_CREATE
        ):
            count += 1
    return count


def _commits(muts: Sequence[Mapping[str, Any]]) -> int:
    """Commits of reviews: a change that went through review takes the write that opened
    the review and its commit."""
    return sum(1 for e in muts if re.search(r"/reviews/[^/]+/commit$", str(e["path"])))


def _economy_calls(state: EmulatorState, project_id: str) -> list[Call]:
    """A mixed calls file on distinct objects of the demo project."""
    gates = [
        g
        for g in state.projects[project_id].collections["gates"].values()
        if g.get("status") in ("In Progress", "Launched") and g.get("isEnabled")
    ]
    gates.sort(key=lambda g: str(g["id"]))
    pick = iter(gates)
    calls: list[Call] = []
    calls += [("PUT", f"/gates/{next(pick)['id']}/disable", None) for _ in range(20)]
    calls += [
        ("PATCH", f"/gates/{next(pick)['id']}", {"description": "edited by the benchmark"})
        for _ in range(15)
    ]
    calls += [
        ("POST", "/gates", {"name": f"bench economy {i}", "description": "made by the benchmark"})
        for i in range(10)
    ]
    calls += [
        (
            "PATCH",
            f"/gates/{next(pick)['id']}/overrides",
            {"passingUserIDs": [f"bench_user_{i}"], "failingUserIDs": []},
        )
        for i in range(10)
    ]
    return calls


def run(cfg: BenchConfig, tmp: Path, say: Say) -> dict[str, Any]:
    """Each job on the demo project: objects changed vs mutations sent, then a re-run."""
    from bulkops.jobs import JOBS

    state, demo = demo_state()
    calls = write_calls(tmp / "economy-calls.jsonl", _economy_calls(state, demo["source_id"]))
    rows = override_rows(
        tmp / "economy-overrides.csv", live_gates(state, demo["source_id"], 20), 400
    )
    rewrite = EXAMPLES / "rewrite.toml"
    cases: dict[str, tuple[list[str], str, str | None]] = {
        "apply-calls": (["--file", str(calls)], demo["source_key"], None),
        "archive-gates": (["--stale"], demo["source_key"], None),
        "rewrite-rules": (
            ["--file", str(rewrite)],
            demo["source_key"],
            None if rewrite.exists() else f"{rewrite} is missing",
        ),
        "import-overrides": (["--file", str(rows)], demo["source_key"], None),
        "copy-project": (
            [
                "--source-key-env",
                "BENCH_SOURCE_KEY",
                "--target-key-env",
                "BENCH_TARGET_KEY",
                *(f"--include={kind}" for kind in _COPY_KINDS),
                "--with-overrides",
                "--accept-loss",
                *(["--tag", "payments"] if cfg.quick else []),
            ],
            demo["target_key"],
            None,
        ),  # fmt: skip
    }
    out: dict[str, Any] = {}
    runnable: dict[str, tuple[list[str], str]] = {}
    for job, (args, key, missing) in cases.items():
        if job not in JOBS or missing:
            out[job] = {"changed": None, "sent": None, "rerun_sent": None,
                        "note": missing or "job not available in this tree yet"}  # fmt: skip
            say(f"economy: {job} skipped ({out[job]['note']})")
        else:
            runnable[job] = (args, key)
    say(f"economy: {', '.join(runnable)} on the demo project (side by side), each run twice")
    # The jobs run side by side, each on its own emulator: these are counts, not times.
    with contextlib.ExitStack() as stack:
        emus = {
            job: stack.enter_context(serve(state, tmp / f"economy-{job}.log", quotas=False))
            for job in runnable
        }
        envs = {
            job: cli_env(
                key,
                emus[job].url,
                tmp / f"state-economy-{job}",
                BENCH_SOURCE_KEY=demo["source_key"],
                BENCH_TARGET_KEY=demo["target_key"],
            )
            for job, (_args, key) in runnable.items()
        }
        before = {job: emus[job].snapshot() for job in runnable}

        def run_all(n: int) -> dict[str, tuple[CliRun, float]]:
            checkpoints = {job: tmp / f"economy-{job}-{n}.ckpt" for job in runnable}
            clis = {
                job: fork_cli(
                    [
                        "run",
                        *NO_QUOTA,
                        "--apply",
                        "--yes",
                        "--checkpoint",
                        str(checkpoints[job]),
                        job,
                        *args,
                    ],
                    envs[job],
                    tmp,
                    f"economy-{job}-{n}",
                )  # fmt: skip
                for job, (args, _key) in runnable.items()
            }
            started = time.perf_counter()
            took: dict[str, float] = {}
            while len(took) < len(clis):
                for job, cli in clis.items():
                    if job not in took and cli.poll():
                        took[job] = round(time.perf_counter() - started, 2)
                time.sleep(0.005)
            for job, cli in clis.items():
                if cli.code == 5:  # waiting for review: approve, resume (commits)
                    clis[job] = resume_through_reviews(
                        emus[job], checkpoints[job], envs[job], tmp, f"economy-{job}-{n}-r"
                    )
            return {job: (cli, took[job]) for job, cli in clis.items()}

        firsts = run_all(1)
        marks = {job: len(emus[job].entries()) for job in runnable}
        after = {job: emus[job].snapshot() for job in runnable}
        agains = run_all(2)
        entries = {job: emus[job].entries() for job in runnable}
    for job in runnable:
        run1 = writes(entries[job][: marks[job]])
        run2 = writes(entries[job][marks[job] :])
        for name, snap in (("before", before[job]), ("after", after[job])):
            (tmp / f"economy-{job}-{name}.json").write_text(json.dumps(snap))
        changed, forced, created = _changes(before[job], after[job])
        forced += _follow_ups(run1, created) + _commits(run1)
        (first, first_s), (second, second_s) = firsts[job], agains[job]
        row: dict[str, Any] = {
            "changed": changed,
            "sent": len(run1),
            "applied": sum(1 for e in run1 if e.get("applied")),
            "forced_extra": forced,
            "rerun_sent": len(run2),
            "exit_codes": [first.code, second.code],
            "run_seconds": [first_s, second_s],
        }
        if first.code not in (0, 1) or second.code not in (0, 1):
            row["error"] = (first.tail() if first.code not in (0, 1) else second.tail())[-300:]
        out[job] = row
    return out


def targets(economy: Mapping[str, Any]) -> list[Target]:
    """Per job: mutations sent = objects changed (plus what the API forces); a re-run
    sends nothing."""
    out: list[Target] = []
    for job, row in economy.items():
        if row.get("sent") is None:
            out.append(Target(f"economy: {job}", row.get("note"), "changed = sent", None))
            continue
        ok = row["changed"] <= row["sent"] <= row["changed"] + row["forced_extra"]
        forced = f" + {row['forced_extra']} forced" if row["forced_extra"] else ""
        out.append(Target(f"economy: {job} sent vs changed",
                          f"{row['sent']} / {row['changed']}", f"equal{forced}",
                          ok and "error" not in row))  # fmt: skip
        out.append(Target(f"economy: {job} re-run sent", row["rerun_sent"], "0",
                          row["rerun_sent"] == 0))  # fmt: skip
    return out


SECTION = Section("economy", run, targets)
