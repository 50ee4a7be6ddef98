"""import-overrides: validation, add/replace/remove read back, chunking, undo, and scale."""

from __future__ import annotations

import gc
import math
import time
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import pytest
from jobs_support import WRITES, cli_env, job_context, run_mutations, undo, writes
from pydantic import SecretStr

from bulkops.api.client import ConsoleClient, read_object
from bulkops.emulator import EmulatorState
from bulkops.emulator.demo import DEMO_SOURCE_ID, DEMO_SOURCE_KEY
from bulkops.engine.mutations import JobContext, Mutation
from bulkops.engine.plans import Plan, ProjectRef
from bulkops.engine.reconcile import Match, judge
from bulkops.engine.runner import RunResult
from bulkops.jobs import JOBS, check_job_module, import_overrides
from bulkops.jobs.import_overrides import planning
from bulkops.jobs.import_overrides.parser import Catalog, GroupRef, RowProblem, read_overrides_file
from bulkops.settings import Settings
from bulkops.testing import Emulator, run_cli

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"
HEADER = "kind,id,unit_id,value,environment,unit_type\n"
PATHS = {
    "gate": "/gates/{}/overrides",
    "holdout": "/holdouts/{}/overrides",
    "experiment": "/experiments/{}/overrides",
    "layer": "/layers/{}/overrides",
    "segment": "/segments/{}/id_list",
}

# -- helpers ------------------------------------------------------------------------------


def _csv(tmp_path: Path, rows: list[str], name: str = "rows.csv") -> Path:
    path = tmp_path / name
    path.write_text(HEADER + "".join(r + "\n" for r in rows))
    return path


async def _plan(
    client: ConsoleClient, project: str, file: Path, mode: str = "add", *, skip: bool = False
) -> tuple[list[Mutation], JobContext]:
    ctx = job_context(client, project)
    params = import_overrides.Params(file=file, mode=mode, skip_invalid=skip)  # type: ignore[arg-type]
    return [m async for m in import_overrides.plan(ctx, params)], ctx


async def _read(client: ConsoleClient, kind: str, target: str) -> Any:
    return await read_object(client, PATHS[kind].format(target))


def _normal(kind: str, data: Any) -> Any:
    """An order-free view of a target's overrides, for comparing reads."""
    if kind == "segment":
        return frozenset(data["ids"])
    if kind in ("gate", "holdout"):
        lists = {
            k: frozenset(data.get(k) or [])
            for k in ("passingUserIDs", "failingUserIDs", "passingCustomIDs", "failingCustomIDs")
        }
        envs = frozenset(
            (e["environment"], e["unitID"], frozenset(e["passingIDs"]), frozenset(e["failingIDs"]))
            for e in data.get("environmentOverrides") or []
            if e["passingIDs"] or e["failingIDs"]
        )
        return lists, envs
    key, conditions, fields = (
        ("userIDOverrides", "overrides", ("groupID", "environment", "unitType"))
        if kind == "experiment"
        else ("idOverrides", "conditionalOverrides", ("groupName", "experimentName", "idType"))
    )
    entries = frozenset(
        (*(e.get(f) for f in fields), e.get("environment"), frozenset(e["ids"]))
        for e in data.get(key) or []
        if e["ids"]
    )
    return entries, len(data.get(conditions) or [])


async def _replan_nothing_then_undo(
    client: ConsoleClient,
    file: Path,
    mode: str,
    plan: Plan,
    result: RunResult,
    before: dict[tuple[str, str], Any],
    tmp_path: Path,
) -> None:
    """Planning the file again sends nothing; the undo brings each target back to ``before``."""
    again, _ = await _plan(client, DEMO_SOURCE_ID, file, mode)
    assert again == []
    await undo(client, plan, result, tmp_path / "ck.undo")
    for target, was in before.items():
        after = await _read(client, *target)
        assert _normal(target[0], after) == _normal(target[0], was), target


def _group_ids(data: dict[str, Any], key: str, **match: Any) -> set[str]:
    ids: set[str] = set()
    for entry in data.get(key) or []:
        if all(entry.get(k) == v for k, v in match.items()):
            ids |= set(entry["ids"])
    return ids


def _writes(state: EmulatorState, since: int = 0) -> list[dict[str, Any]]:
    return [e for e in (state.capture or [])[since:] if e["method"] in WRITES]


@pytest.fixture(name="demo")
async def _demo(
    make_emulator: Callable[..., Any],
) -> AsyncIterator[tuple[EmulatorState, ConsoleClient]]:
    """The demo seed (quotas off) and a client on its source project."""
    state, url = await make_emulator("demo", quotas_enabled=False)
    async with ConsoleClient(Settings(api_key=SecretStr(DEMO_SOURCE_KEY), base_url=url)) as client:
        yield state, client


# -- the job contract ----------------------------------------------------------------------


def test_import_overrides_is_registered() -> None:
    """The registry knows the job under its command-line name."""
    assert JOBS["import-overrides"] is import_overrides
    check_job_module(import_overrides)


# -- end to end through the command line -----------------------------------------------------


def test_bad_rows_exit_2_with_every_line_and_nothing_sent(
    emulator: Emulator, tmp_path: Path
) -> None:
    """Every bad line of the example is listed (exit 2, no write); --skip-invalid sends the rest."""
    env = cli_env(emulator, tmp_path)
    bad = str(EXAMPLES / "overrides-bad.csv")
    run = run_cli(
        ["run", "import-overrides", "--file", bad, "--apply", "--yes"], env, tmp_path, "r"
    )
    assert run.code == 2, run.stderr()
    err = run.stderr()
    assert "10 bad row(s); nothing was sent" in err
    for line, words in [
        (2, "also line 6"),
        (3, "unknown kind 'flag'"),
        (4, "gate 'checkout_nope' does not exist"),
        (5, "empty unit_id"),
        (6, "both passing and failing"),
        (7, "has no group 'Purple'"),
        (8, "environment 'prod' does not exist"),
        (9, "unit type 'deviceid' does not exist"),
        (10, "type 'rule_based'"),
        (11, "several groups named 'Control'"),
    ]:
        assert f"line {line}: " in err and words in err, (line, err)
    assert "line 12:" not in err and "--skip-invalid" in err
    assert writes(emulator) == []

    argv = ["run", "import-overrides", "--file", bad, "--skip-invalid", "--apply", "--yes"]
    run = run_cli([*argv, "--time-scale", "60"], env, tmp_path, "s")
    assert run.code == 0, run.stderr()
    assert "skipped 10 invalid row(s)" in run.stdout() and "line 11:" in run.stdout()
    sent = [(e["method"], e["path"]) for e in writes(emulator)]
    assert sent == [("PATCH", "/console/v1/segments/beta_testers/id_list")]


# -- add, re-import, undo on the demo project ------------------------------------------------


async def test_add_reimport_and_undo_on_the_demo(
    demo: tuple[EmulatorState, ConsoleClient], tmp_path: Path
) -> None:
    """The example file adds only new ids (moving the ones it reassigns), a second import
    sends nothing, and undo brings every target back to what it was."""
    state, client = demo
    file = EXAMPLES / "overrides.csv"
    targets = sorted({tuple(line.split(",")[:2]) for line in file.read_text().splitlines()[1:]})
    before = {t: await _read(client, *t) for t in targets}
    mutations, ctx = await _plan(client, DEMO_SOURCE_ID, file)
    assert not ctx.notes
    by_key = {m.key: m for m in mutations}
    # u_123 already passes checkout_apple_pay and is on beta_testers: not sent again.
    assert by_key["overrides:gate:checkout_apple_pay:add:A1"].body == {
        "passingUserIDs": ["u_1001"],
        "failingUserIDs": [],
    }
    assert by_key["overrides:segment:beta_testers:add:1"].body == {"ids": ["u_1001", "u_1002"]}
    assert by_key["overrides:segment:beta_testers:add:1"].quota_class == "id_list"
    # u_84829 fails checkout_one_click today: it leaves the failing list first.
    move = by_key["overrides:gate:checkout_one_click:move:A1"]
    assert (move.method, move.body) == (
        "DELETE",
        {"passingUserIDs": [], "failingUserIDs": ["u_84829"]},
    )
    assert not any(m.idempotent for m in mutations)
    mark = len(state.capture or [])
    plan, result = await run_mutations(client, mutations, tmp_path / "ck")
    assert len(_writes(state, mark)) == len(mutations) == 10

    gate = await _read(client, "gate", "checkout_one_click")
    assert {"u_1001", "u_1002", "u_84829"} <= set(gate["passingUserIDs"])
    assert "u_84829" not in gate["failingUserIDs"] and "u_1003" in gate["failingUserIDs"]
    staging = [e for e in gate["environmentOverrides"] if e["environment"] == "staging"]
    assert staging[0]["passingIDs"] == ["qa_user_7"]
    klarna = await _read(client, "gate", "checkout_klarna")
    assert {(e["environment"], e["unitID"]) for e in klarna["environmentOverrides"]} == {
        (None, "companyID"),
        ("production", "companyID"),
    }
    exp = await _read(client, "experiment", "checkout_button_color")
    assert _group_ids(exp, "userIDOverrides", groupID="Control", environment=None) == {
        "u_1004",
        "u_456",
    }
    assert _group_ids(exp, "userIDOverrides", groupID="Test", environment=None) == {
        "u_123",
        "u_1001",
    }
    layer = await _read(client, "layer", "checkout_layer")
    assert _group_ids(layer, "idOverrides", groupName="Test A") == {"u_1005"}
    assert len(layer["conditionalOverrides"]) == 2  # conditions untouched
    holdout = await _read(client, "holdout", "global_holdout_2025")
    assert {"u_2001", "u_2002"} <= set(holdout["failingUserIDs"])
    segment = await _read(client, "segment", "beta_testers")
    assert {"u_1001", "u_1002"} <= set(segment["ids"]) and segment["count"] == 182

    await _replan_nothing_then_undo(client, file, "add", plan, result, before, tmp_path)


# -- replace and remove ----------------------------------------------------------------------


async def test_replace_leaves_exactly_the_files_overrides(
    demo: tuple[EmulatorState, ConsoleClient], tmp_path: Path
) -> None:
    """Each named target ends up with the file's ids only (conditions kept); undo restores."""
    state, client = demo
    load_test = (await _read(client, "segment", "load_test_users"))["ids"]
    file = _csv(
        tmp_path,
        [
            "gate,checkout_one_click,r1,pass,,",
            "gate,checkout_one_click,r2,fail,,",
            "gate,checkout_apple_pay,r3,pass,staging,",
            "holdout,global_holdout_2025,r4,pass,,",
            "holdout,global_holdout_2025,r5,fail,development,",
            "experiment,checkout_button_color,r6,Test,,",
            "layer,checkout_layer,r7,Test B,,",
            *(f"segment,fraud_blocklist,f{i},,," for i in range(200)),
            "segment,beta_testers,u_123,,,",
            "segment,beta_testers,r8,,,",
            *(f"segment,load_test_users,{i},,," for i in [*load_test[1:], "r9"]),
        ],
    )
    targets = [
        ("gate", "checkout_one_click"),
        ("gate", "checkout_apple_pay"),
        ("holdout", "global_holdout_2025"),
        ("experiment", "checkout_button_color"),
        ("layer", "checkout_layer"),
        ("segment", "fraud_blocklist"),
        ("segment", "beta_testers"),
        ("segment", "load_test_users"),
    ]
    before = {t: await _read(client, *t) for t in targets}
    mutations, _ = await _plan(client, DEMO_SOURCE_ID, file, "replace")
    steps = [(m.key.split(":", 2)[2], m.method, m.idempotent) for m in mutations]
    assert steps == [
        ("checkout_one_click:replace:A", "POST", True),
        ("checkout_apple_pay:replace:A", "POST", True),  # its userID lists are cleared
        ("checkout_apple_pay:replace:B", "POST", True),
        ("global_holdout_2025:replace", "POST", True),
        ("global_holdout_2025:replace:B1", "PATCH", False),
        ("checkout_button_color:replace", "POST", True),
        ("checkout_layer:replace", "POST", True),
        ("fraud_blocklist:reset", "POST", True),  # 1 reset beats removing 3,500 ids
        ("beta_testers:reset", "POST", True),  # 1 reset beats 1 removal + 1 add
        ("load_test_users:remove:1", "DELETE", False),  # 2 requests beat 4 of a reset
        ("load_test_users:add:1", "PATCH", False),
    ]
    assert mutations[-2].body == {"ids": [load_test[0]]} and mutations[-1].body == {"ids": ["r9"]}
    assert mutations[7].path == "/segments/fraud_blocklist/id_list/reset"
    plan, result = await run_mutations(client, mutations, tmp_path / "ck")

    gate = await _read(client, "gate", "checkout_one_click")
    assert (gate["passingUserIDs"], gate["failingUserIDs"]) == (["r1"], ["r2"])
    pay = await _read(client, "gate", "checkout_apple_pay")
    assert pay["passingUserIDs"] == [] and pay["environmentOverrides"] == [
        {"environment": "staging", "unitID": "userID", "passingIDs": ["r3"], "failingIDs": []}
    ]
    holdout = await _read(client, "holdout", "global_holdout_2025")
    assert (holdout["passingUserIDs"], holdout["failingUserIDs"]) == (["r4"], [])
    assert holdout["environmentOverrides"] == [
        {"environment": "development", "unitID": "userID", "passingIDs": [], "failingIDs": ["r5"]}
    ]
    exp = await _read(client, "experiment", "checkout_button_color")
    assert [(e["groupID"], e["ids"]) for e in exp["userIDOverrides"]] == [("Test", ["r6"])]
    assert exp["overrides"] == before[("experiment", "checkout_button_color")]["overrides"]
    layer = await _read(client, "layer", "checkout_layer")
    assert [(e["groupName"], e["ids"]) for e in layer["idOverrides"]] == [("Test B", ["r7"])]
    assert len(layer["conditionalOverrides"]) == 2
    fraud = await _read(client, "segment", "fraud_blocklist")
    assert set(fraud["ids"]) == {f"f{i}" for i in range(200)}
    assert set((await _read(client, "segment", "beta_testers"))["ids"]) == {"u_123", "r8"}
    load = await _read(client, "segment", "load_test_users")
    assert set(load["ids"]) == {*load_test[1:], "r9"}

    await _replan_nothing_then_undo(client, file, "replace", plan, result, before, tmp_path)


async def test_remove_takes_out_only_listed_ids_that_are_present(
    demo: tuple[EmulatorState, ConsoleClient], tmp_path: Path
) -> None:
    """Ids the target holds are removed, absent ones cost nothing; undo puts them back."""
    state, client = demo
    file = _csv(
        tmp_path,
        [
            "gate,checkout_one_click,u_123,pass,,",
            "gate,checkout_one_click,u_84829,pass,,",  # it is failing, not passing: kept
            "gate,checkout_one_click,nobody,fail,,",
            "experiment,checkout_button_color,u_456,Test,,",
            "segment,beta_testers,u_7854,,,",
            "segment,beta_testers,nobody,,,",
            "gate,checkout_klarna,nobody,pass,,",  # nothing to do for this target
        ],
    )
    gate_before = await _read(client, "gate", "checkout_one_click")
    mutations, _ = await _plan(client, DEMO_SOURCE_ID, file, "remove")
    assert [(m.key.split(":", 2)[2], m.method, m.body) for m in mutations] == [
        (
            "checkout_one_click:remove:A1",
            "DELETE",
            {"passingUserIDs": ["u_123"], "failingUserIDs": []},
        ),
        (
            "checkout_button_color:remove:1",
            "DELETE",
            {
                "overrides": [],
                "userIDOverrides": [
                    {"groupID": "Test", "ids": ["u_456"], "environment": None, "unitType": "userID"}
                ],
            },
        ),
        ("beta_testers:remove:1", "DELETE", {"ids": ["u_7854"]}),
    ]
    plan, result = await run_mutations(client, mutations, tmp_path / "ck")
    gate = await _read(client, "gate", "checkout_one_click")
    assert set(gate["passingUserIDs"]) == set(gate_before["passingUserIDs"]) - {"u_123"}
    assert gate["failingUserIDs"] == gate_before["failingUserIDs"]
    exp = await _read(client, "experiment", "checkout_button_color")
    assert _group_ids(exp, "userIDOverrides", groupID="Test") == {"u_123"}
    assert "u_7854" not in (await _read(client, "segment", "beta_testers"))["ids"]
    assert (await _plan(client, DEMO_SOURCE_ID, file, "remove"))[0] == []
    await undo(client, plan, result, tmp_path / "ck.undo")
    gate = await _read(client, "gate", "checkout_one_click")
    assert _normal("gate", gate) == _normal("gate", gate_before)
    assert "u_7854" in (await _read(client, "segment", "beta_testers"))["ids"]


# -- chunking to the API's limits ------------------------------------------------------------


async def _setup_empty(client: ConsoleClient) -> None:
    await client.call("POST", "/gates", {"name": "big_gate", "description": "t"})
    await client.call("POST", "/layers", {"name": "big_layer", "idType": "userID"})
    await client.call(
        "POST",
        "/experiments",
        {"name": "big_exp", "description": "t", "layerID": "big_layer"},
    )
    await client.call(
        "POST", "/segments", {"name": "big_list", "type": "id_list", "description": "t"}
    )


async def test_ids_are_chunked_to_the_api_limits(
    client: ConsoleClient, state: EmulatorState, tmp_path: Path
) -> None:
    """4,500 gate ids over three lists take 2 requests, 2,500 layer ids 3, 2,500 segment
    ids 3 id-list requests; a read tells each chunk's before from its after."""
    state.quotas_enabled = False
    await _setup_empty(client)
    rows = [f"gate,big_gate,p{i},pass,," for i in range(2000)]
    rows += [f"gate,big_gate,f{i},fail,," for i in range(2000)]
    rows += [f"gate,big_gate,s{i},pass,staging," for i in range(500)]
    rows += [f"layer,big_layer,l{i},Test,," for i in range(2500)]
    rows += [f"segment,big_list,x{i},,," for i in range(2500)]
    mutations, _ = await _plan(client, "empty", _csv(tmp_path, rows))
    shape = [(m.key.split(":", 2)[2], m.quota_class, _sizes(m.body)) for m in mutations]
    assert shape == [
        ("big_gate:add:A1", "mutation", [2000, 2000]),
        ("big_gate:add:B1", "mutation", [500, 0]),
        ("big_layer:add:1", "mutation", [1000]),
        ("big_layer:add:2", "mutation", [1000]),
        ("big_layer:add:3", "mutation", [500]),
        ("big_list:add:1", "id_list", [1000]),
        ("big_list:add:2", "id_list", [1000]),
        ("big_list:add:3", "id_list", [500]),
    ]
    for m in mutations:  # what reconcile sees: each chunk tells "not yet" from "done"
        assert judge(m, await read_object(client, m.read or "")) is Match.BEFORE, m.key
    mark = len(state.capture or [])
    await run_mutations(client, mutations, tmp_path / "ck")
    for m in mutations:
        assert judge(m, await read_object(client, m.read or "")) is Match.AFTER, m.key
    sent = [(e["method"], e["path"].rsplit("/", 2)[-2]) for e in _writes(state, mark)]
    assert sorted(sent) == sorted(
        [("PATCH", "big_gate")] * 2 + [("PATCH", "big_layer")] * 3 + [("PATCH", "big_list")] * 3
    )
    gate = await _read(client, "gate", "big_gate")
    assert (len(gate["passingUserIDs"]), len(gate["failingUserIDs"])) == (2000, 2000)
    layer = await _read(client, "layer", "big_layer")
    assert len(_group_ids(layer, "idOverrides")) == 2500
    assert (await _read(client, "segment", "big_list"))["count"] == 2500


async def test_a_full_list_refuses_the_rows_beyond_the_limit(
    client: ConsoleClient, tmp_path: Path
) -> None:
    """The ids past 2,000 in a gate list (and the 1,001st of an experiment group) are row
    problems, one line per problem naming its rows; with --skip-invalid the rest is still
    planned."""
    await _setup_empty(client)
    rows = [f"gate,big_gate,p{i},pass,," for i in range(2010)]
    rows += [f"experiment,big_exp,e{i},Control,," for i in range(1001)]
    file = _csv(tmp_path, rows)
    with pytest.raises(Exception, match="11 bad row") as info:
        await _plan(client, "empty", file)
    listed = str(info.value).splitlines()[1:]
    assert listed[0] == (
        "  lines 2002-2011 (10 rows): gate big_gate: passing userID overrides (all "
        "environments) would hold more than 2,000 ids, the API's limit per list"
    )
    assert listed[1].startswith("  line 3012: experiment big_exp: group") and "1,000" in listed[1]
    assert len(listed) == 2
    mutations, ctx = await _plan(client, "empty", file, skip=True)
    assert [_sizes(m.body) for m in mutations] == [[2000, 0], [1000]]
    assert "skipped 11 invalid row(s)" in ctx.notes[0] and "lines 2002-2011" in ctx.notes[0]


def _sizes(body: dict[str, Any]) -> list[int]:
    if "ids" in body:
        return [len(body["ids"])]
    if "environmentOverrides" in body:
        return [
            n
            for e in body["environmentOverrides"]
            for n in (len(e["passingIDs"]), len(e["failingIDs"]))
        ]
    if "passingUserIDs" in body:
        return [len(body["passingUserIDs"]), len(body["failingUserIDs"])]
    entries = body.get("userIDOverrides") or body.get("idOverrides") or []
    return [len(e["ids"]) for e in entries]


# -- scale: 100,000 rows over 50 targets -----------------------------------------------------


def _bench_catalog() -> Catalog:
    catalog = Catalog(environments={"development", "staging", "production"})
    catalog.gates = {f"gate_{i}" for i in range(10)}
    for i in range(10):
        for kind, target in (("experiment", f"exp_{i}"), ("layer", f"layer_{i}")):
            for group in ("Control", "Test"):
                exp = f"exp_{i}" if kind == "experiment" else f"layer_exp_{i}"
                catalog.add_group(kind, target, GroupRef(exp, f"{exp}_{group}", group))
    catalog.segments = {f"seg_{i}": "id_list" for i in range(20)}
    return catalog


def _bench_file(path: Path) -> int:
    """100,000 rows over 50 targets; returns the fewest requests that import them."""
    with path.open("w") as out:
        out.write(HEADER)
        for g in range(10):  # 1,000 passing + 600 failing userIDs, 400 in staging
            out.writelines(f"gate,gate_{g},g{g}_{i},pass,,\n" for i in range(1000))
            out.writelines(f"gate,gate_{g},g{g}_f{i},fail,,\n" for i in range(600))
            out.writelines(f"gate,gate_{g},g{g}_s{i},pass,staging,\n" for i in range(400))
        for e in range(10):  # 1,000 ids in each of two groups
            for group in ("Control", "Test"):
                out.writelines(
                    f"experiment,exp_{e},e{e}{group}{i},{group},,\n" for i in range(1000)
                )
        for e in range(10):  # 2,000 ids in one group of the layer
            out.writelines(f"layer,layer_{e},l{e}_{i},Test,,\n" for i in range(2000))
        for s in range(20):
            out.writelines(f"segment,seg_{s},s{s}_{i},,,\n" for i in range(2000))
    # gates: user lists 1 request + environments 1; experiments 1 (each group <= 1,000);
    # layers 2 (2,000 ids / 1,000 per entry); segments 2 (2,000 / 1,000 per request).
    return 10 * (1 + 1) + 10 * 1 + 10 * math.ceil(2000 / 1000) + 20 * math.ceil(2000 / 1000)


def _empty_current(targets: Any) -> dict[tuple[str, str], Any]:
    empty = {
        "gate": {"passingUserIDs": [], "failingUserIDs": [], "environmentOverrides": []},
        "experiment": {"overrides": [], "userIDOverrides": []},
        "layer": {"conditionalOverrides": [], "idOverrides": []},
        "segment": {"name": "s", "count": 0, "ids": []},
    }
    return {key: empty[key[0]] for key in targets}


def _rss_kb(field: str) -> int | None:
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith(field + ":"):
                return int(line.split()[1])
    except OSError:
        pass
    return None


def _reset_peak_rss() -> bool:
    try:  # Linux: "5" resets the peak resident set size (VmHWM) to the current one
        Path("/proc/self/clear_refs").write_text("5")
    except OSError:
        return False
    return True


def measure_plan(path: Path, *, mode: str = "add") -> dict[str, Any]:
    """Read, validate and plan ``path`` against the benchmark catalog (empty overrides),
    building the hashed plan: wall time of each step, and how far the process's peak
    resident memory rose above where it started (None where /proc cannot tell)."""
    catalog = _bench_catalog()
    gc.collect()
    baseline = _rss_kb("VmRSS") if _reset_peak_rss() else None
    started = time.perf_counter()
    targets, problems = read_overrides_file(path, catalog)
    read_s = time.perf_counter() - started
    mutations, more = planning.plan_chunks(
        targets,
        _empty_current(targets),
        catalog,
        mode=mode,  # type: ignore[arg-type]
        project="bench",
    )
    plan_s = time.perf_counter() - started - read_s
    Plan.build(
        job="import-overrides",
        params={},
        projects=[ProjectRef(id="bench", name="b")],
        mutations=mutations,
    )
    total_s = time.perf_counter() - started
    peak = _rss_kb("VmHWM")
    return {
        "rows": sum(t.rows for t in targets.values()),
        "targets": len(targets),
        "problems": len(problems) + len(more),
        "mutations": len(mutations),
        "minimum": planning.minimum_requests(targets),
        "read_s": read_s,
        "plan_s": plan_s,
        "total_s": total_s,
        "peak_mb": (peak - baseline) / 1024 if peak is not None and baseline is not None else None,
    }


def test_100k_rows_over_50_targets_plan_the_minimum_mutations(tmp_path: Path) -> None:
    """100,000 rows over 50 targets: no problems and exactly the fewest requests."""
    path = tmp_path / "bench.csv"
    expected = _bench_file(path)
    result = measure_plan(path)
    print(
        f"\nimport-overrides plan: {result['rows']:,} rows, {result['targets']} targets, "
        f"{result['mutations']} mutations; read {result['read_s']:.2f} s, "
        f"plan {result['plan_s']:.2f} s, total {result['total_s']:.2f} s, "
        f"peak memory +{result['peak_mb'] or 0:.0f} MB"
    )
    assert (result["rows"], result["targets"], result["problems"]) == (100_000, 50, 0)
    assert result["mutations"] == result["minimum"] == expected == 90


# -- pure planning details ----------------------------------------------------------------------


def test_experiment_group_names_and_ids_fold_together(tmp_path: Path) -> None:
    """Rows naming one group by id and by name land in one entry; moving an id from
    another group expects it gone there, and undo puts it back."""
    catalog = Catalog(environments={"staging"})
    catalog.add_group("experiment", "e", GroupRef("e", "gid_c", "Control"))
    catalog.add_group("experiment", "e", GroupRef("e", "gid_t", "Test"))
    path = _csv(tmp_path, ["experiment,e,a,gid_t,,", "experiment,e,b,Test,,"])
    targets, problems = read_overrides_file(path, catalog)
    assert problems == [] and list(targets[("experiment", "e")].buckets) == [
        (None, "userID", "gid_t")
    ]
    current = {
        ("experiment", "e"): {
            "overrides": [],
            "userIDOverrides": [
                {"groupID": "Control", "ids": ["a", "z"], "environment": None, "unitType": "userID"}
            ],
        }
    }
    (add,), more = planning.plan_chunks(targets, current, catalog, mode="add", project="p")
    assert more == []
    test_sel = "userIDOverrides[groupID=Test,environment=null,unitType=userID].ids"
    control_sel = "userIDOverrides[groupID=Control,environment=null,unitType=userID].ids"
    assert add.body["userIDOverrides"][0]["groupID"] == "Test"
    assert add.after.contains == {test_sel: ["a", "b"]}
    assert add.after.excludes == {control_sel: ["a"]}
    assert add.before.contains == {control_sel: ["a"]}
    undo = add.reverse()
    assert [(u.method, u.body["userIDOverrides"][0]["groupID"]) for u in undo] == [
        ("DELETE", "Test"),
        ("PATCH", "Control"),
    ]
    assert undo[1].before.excludes == {control_sel: ["a"]}


def test_a_missing_target_and_row_problems_carry_lines(tmp_path: Path) -> None:
    """A target that vanished between the catalog and the read is reported by line."""
    catalog = Catalog(gates={"g"})
    targets, _ = read_overrides_file(_csv(tmp_path, ["gate,g,u1,pass,,"]), catalog)
    mutations, problems = planning.plan_chunks(
        targets, {("gate", "g"): None}, catalog, mode="add", project="p"
    )
    assert mutations == []
    assert problems == [RowProblem(2, "gate g: not found when its overrides were read")]
