"""archive-gates: selectors on the demo project, reference safety, plan / apply / undo / resume.

The selector tests count what each selector should pick straight from the seed's
state and compare with what the job selected over HTTP. The command-line tests run
real processes against a forked emulator and read its request log.
"""

from __future__ import annotations

import datetime as dt
import fnmatch
import json
import os
import signal
import time
import urllib.request
from collections import Counter
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import pytest
from jobs_support import cli_env, job_context, writes
from pydantic import SecretStr, ValidationError

from bulkops.api.client import ConsoleClient
from bulkops.emulator import EmulatorState, create_app
from bulkops.emulator.demo import BASE_MS, DEMO_SOURCE_ID, DEMO_SOURCE_KEY
from bulkops.emulator.handlers.gates import gate_references
from bulkops.engine.mutations import JobContext, Mutation
from bulkops.jobs import JOBS, archive_gates, check_job_module
from bulkops.jobs.archive_gates import Params
from bulkops.settings import Settings
from bulkops.testing import (
    Emulator,
    applied_counts,
    fork_cli,
    resume_through_reviews,
    run_cli,
    wait_cli,
)

V1 = "/console/v1"
DAY_MS = 86_400_000
WRITES = ("POST", "PUT", "PATCH", "DELETE")
# Fields every change stamps: left out when an undone gate is compared with the original.
STAMPS = ("version", "lastModifiedTime", "lastModifierName", "lastModifierID", "lastModifierEmail")


@pytest.fixture(name="gates")
def _gates(demo_state: EmulatorState) -> dict[str, dict[str, Any]]:
    """The demo source's gates as the seed stores them."""
    return demo_state.projects[DEMO_SOURCE_ID].collections["gates"]


@pytest.fixture(name="demo_ctx")
async def _demo_ctx(aiohttp_server: Any, demo_state: EmulatorState) -> AsyncIterator[JobContext]:
    """A job context on the demo source, served over loopback HTTP."""
    server = await aiohttp_server(create_app(demo_state))
    settings = Settings(
        api_key=SecretStr(DEMO_SOURCE_KEY), base_url=str(server.make_url("/console/v1"))
    )
    async with ConsoleClient(settings) as client:
        yield job_context(client, DEMO_SOURCE_ID, plan_id="plan0123")


async def _plan(ctx: JobContext, params: Params) -> list[Mutation]:
    return [m async for m in archive_gates.plan(ctx, params)]


# -- options ------------------------------------------------------------------------------


def test_the_job_is_registered() -> None:
    """`bulkops run archive-gates` finds the module and it has the job contract."""
    assert JOBS["archive-gates"] is archive_gates
    check_job_module(archive_gates)


def test_options_are_checked() -> None:
    """No selector, an unknown stale reason or a bad status is refused; reasons normalise."""
    with pytest.raises(ValidationError, match="at least one selector"):
        Params()
    with pytest.raises(ValidationError, match="unknown stale reason 'STALE_SOMETIMES'"):
        Params(stale_reason=["STALE_SOMETIMES"])
    with pytest.raises(ValidationError):
        Params.model_validate({"status": ["Archived"]})
    with pytest.raises(ValidationError):
        Params(stale=True, idle_days=0)
    params = Params(stale_reason=["no_rules", "probably-launched", "STALE_NO_RULES"])
    assert params.stale_reason == ["STALE_NO_RULES", "STALE_PROBABLY_LAUNCHED"]


def test_server_side_filters_are_used_where_the_api_has_them() -> None:
    """type, a single typeReason, tags and a single creatorName go to the server."""
    assert archive_gates._server_filters(
        Params(stale=True, stale_reason=["STALE_NO_RULES"], tag=["a", "b"], creator=["Ann"])
    ) == {
        "includeArchived": True,
        "type": "STALE",
        "typeReason": "STALE_NO_RULES",
        "tags": ["a", "b"],
        "creatorName": "Ann",
    }
    # Several reasons or creators cannot be one query value: filtered while paging.
    assert archive_gates._server_filters(
        Params(stale_reason=["no_rules", "probably_launched"], creator=["Ann", "Bo"], id=["x*"])
    ) == {"includeArchived": True}


# -- selectors on known data ----------------------------------------------------------------

Pick = Callable[[dict[str, Any]], bool]
SELECTORS: list[tuple[str, dict[str, Any], Pick]] = [
    ("stale", {"stale": True}, lambda g: g["type"] == "STALE"),
    (
        "one-reason",
        {"stale_reason": ["STALE_NO_RULES"]},
        lambda g: g["typeReason"] == "STALE_NO_RULES",
    ),
    (
        "two-reasons",
        {"stale_reason": ["STALE_PROBABLY_FORGOTTEN", "STALE_PROBABLY_DEAD_CHECK"]},
        lambda g: g["typeReason"] in ("STALE_PROBABLY_FORGOTTEN", "STALE_PROBABLY_DEAD_CHECK"),
    ),
    ("tag", {"tag": ["payments"]}, lambda g: "payments" in g["tags"]),
    ("two-tags", {"tag": ["search", "web"]}, lambda g: bool({"search", "web"} & set(g["tags"]))),
    (
        "id",
        {"id": ["checkout_*", "*_dark_mode"]},
        lambda g: fnmatch.fnmatchcase(g["id"], "checkout_*") or g["id"].endswith("_dark_mode"),
    ),  # fmt: skip
    ("status", {"status": ["Disabled"]}, lambda g: g["status"] == "Disabled"),
    (
        "idle-days",
        {"idle_days": 700},
        lambda g: g["lastModifiedTime"] < BASE_MS - 700 * DAY_MS,
    ),
    ("creator", {"creator": ["Priya Raman"]}, lambda g: g["creatorName"] == "Priya Raman"),
    (
        "and",
        {"stale": True, "tag": ["mobile"], "status": ["Launched", "In Progress"]},
        lambda g: (
            g["type"] == "STALE"
            and "mobile" in g["tags"]
            and g["status"] in ("Launched", "In Progress")
        ),
    ),
]


@pytest.mark.parametrize(("case", "options", "pick"), SELECTORS, ids=[s[0] for s in SELECTORS])
async def test_each_selector_picks_exactly_the_matching_gates(
    demo_ctx: JobContext,
    gates: dict[str, dict[str, Any]],
    monkeypatch: pytest.MonkeyPatch,
    case: str,
    options: dict[str, Any],
    pick: Pick,
) -> None:
    """The selected gates equal those the seed holds that match; archived ones are skipped."""
    monkeypatch.setattr(archive_gates, "clock", lambda: BASE_MS / 1000)
    expected = {g["id"] for g in gates.values() if pick(g)}
    assert expected, f"{case}: the seed has no matching gate"
    selection = await archive_gates.select(demo_ctx, Params(**options))
    rows = {r.id: r for r in selection.rows}
    assert set(rows) == expected
    archived = {i for i in expected if gates[i]["status"] == "Archived"}
    assert {i for i, r in rows.items() if r.action == "archived"} == archived
    assert set(selection.order) == {i for i, r in rows.items() if r.action == "archive"}
    assert not set(selection.order) & archived


# -- references -----------------------------------------------------------------------------


def _live_referrers(state: EmulatorState, gate_id: str) -> set[str]:
    """The server's own view: live gates, configs and experiments using the gate."""
    g, c, e = gate_references(state.projects[DEMO_SOURCE_ID], gate_id, live_only=True)
    return (
        {f"gate {x['id']}" for x in g}
        | {f"dynamic config {x['id']}" for x in c}
        | {f"experiment {x['id']}" for x in e}
    )


async def test_referenced_gates_are_blocked_and_named(
    demo_ctx: JobContext, demo_state: EmulatorState
) -> None:
    """No planned archive leaves a live referrer behind; every blocked gate names its referrers."""
    mutations = await _plan(demo_ctx, Params(stale=True))
    selection = await archive_gates.select(demo_ctx, Params(stale=True))
    planned = {m.key.removeprefix("gate:archive:"): m for m in mutations}
    position = {gate_id: i for i, gate_id in enumerate(planned)}
    assert list(planned) == selection.order
    for gate_id, m in planned.items():
        for ref in _live_referrers(demo_state, gate_id):
            kind, _, ref_id = ref.rpartition(" ")
            # Only a gate archived earlier in this run may still reference it.
            assert kind == "gate" and ref_id in planned, f"{gate_id} is used by {ref}"
            assert position[ref_id] < position[gate_id]
            assert f"gate:archive:{ref_id}" in m.depends_on
        assert "forceArchive" not in m.body
    blocked = [r for r in selection.rows if r.action == "blocked"]
    assert len(blocked) >= 40  # the seed keeps 40 stale gates referenced on purpose
    for row in blocked:
        named = {str(ref) for ref in row.referrers}
        assert named == _live_referrers(demo_state, row.id)
        assert row.explain().startswith("blocked: referenced by ")
    assert not planned.keys() & {r.id for r in blocked}


async def test_both_ways_of_finding_references_agree(demo_ctx: JobContext) -> None:
    """A small selection asks the per-gate endpoints and finds what the full read finds."""
    full = await archive_gates.select(demo_ctx, Params(stale=True))
    assert full.strategy == "full-read"
    blocked = [r.id for r in full.rows if r.action == "blocked"][:5]
    free = [r.id for r in full.rows if r.action == "archive" and not r.after][:4]
    small = await archive_gates.select(demo_ctx, Params(id=blocked + free))
    assert small.strategy == "per-gate"
    by_id = {r.id: r for r in full.rows}
    for row in small.rows:
        assert row.referrers == by_id[row.id].referrers
        assert row.action == by_id[row.id].action


async def test_an_unfiltered_listing_is_its_own_gate_read(
    demo_ctx: JobContext, demo_state: EmulatorState, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Client-side selectors read the gates once and still name every live referrer."""
    pages: list[str] = []
    paginate = demo_ctx.client.paginate

    def counting(path: str, **kwargs: Any) -> AsyncIterator[dict[str, Any]]:
        pages.append(path)
        return paginate(path, **kwargs)

    monkeypatch.setattr(demo_ctx.client, "paginate", counting)
    selection = await archive_gates.select(demo_ctx, Params(status=["Launched", "In Progress"]))
    assert selection.strategy == "full-read"
    assert pages == ["/gates", "/dynamic_configs", "/experiments"]
    assert sum(1 for r in selection.rows if r.action == "blocked") >= 40
    for row in selection.rows:
        named = {str(ref) for ref in row.referrers}
        assert named == _live_referrers(demo_state, row.id) - {f"gate {row.id}"}


async def test_archives_share_what_they_have_in_common(demo_ctx: JobContext) -> None:
    """One run's archives share bodies and expectations; each keeps only its gate's fields."""
    mutations = await _plan(demo_ctx, Params(stale=True))
    assert len({id(m.body) for m in mutations}) == 1
    assert len({id(m.after) for m in mutations}) == 1
    assert len({id(m.before) for m in mutations}) == 3  # one per status
    assert len({id(m.inverse[0].body) for m in mutations}) == 1
    for m in mutations:
        assert set(m.before_image) == {"status", "typeReason", "lastModifiedTime"}


async def test_chains_cycles_configs_and_experiments(client: ConsoleClient) -> None:
    """A gate used only by gates this run archives goes after them; cycles and other users block."""

    def uses(*gate_ids: str) -> list[dict[str, Any]]:
        return [
            {
                "name": f"uses {g}",
                "passPercentage": 100,
                "conditions": [{"type": "passes_gate", "targetValue": g}],
            }
            for g in gate_ids
        ]

    for name in ("t_base", "t_mid", "t_top", "t_cfg", "t_exp", "t_cy1", "t_cy2", "t_free"):
        await client.call("POST", "/gates", {"name": name, "description": "t"})
    await client.call("PATCH", "/gates/t_mid", {"rules": uses("t_base")})
    await client.call("PATCH", "/gates/t_top", {"rules": uses("t_mid")})
    await client.call("PATCH", "/gates/t_cy1", {"rules": uses("t_cy2")})
    await client.call("PATCH", "/gates/t_cy2", {"rules": uses("t_cy1")})
    await client.call("POST", "/dynamic_configs", {"name": "cfg_user", "description": "t"})
    await client.call("PATCH", "/dynamic_configs/cfg_user", {"rules": uses("t_cfg")})
    await client.call(
        "POST", "/experiments", {"name": "exp_user", "description": "t", "targetingGateID": "t_exp"}
    )
    await client.call("PUT", "/gates/t_free/archive", {"archiveReason": "earlier"})
    ctx = job_context(client, "empty", plan_id="plan0123")
    selection = await archive_gates.select(ctx, Params(id=["t_*"]))
    assert selection.strategy == "per-gate"  # 7 live gates: the reference endpoints
    rows = {r.id: r for r in selection.rows}
    assert selection.order == ["t_top", "t_mid", "t_base"]
    assert rows["t_base"].explain() == "archive after gate t_mid"
    assert rows["t_cfg"].explain() == "blocked: referenced by dynamic config cfg_user"
    assert rows["t_exp"].explain() == "blocked: referenced by experiment exp_user"
    assert rows["t_cy1"].explain() == "blocked: referenced by gate t_cy2 (a reference cycle)"
    assert rows["t_free"].action == "archived"
    limited = await archive_gates.select(ctx, Params(id=["t_*"], limit=2))
    assert limited.order == ["t_top", "t_mid"] and limited.count("limit") == 1
    forced = await archive_gates.select(ctx, Params(id=["t_*"], include_referenced=True))
    assert sorted(forced.order) == ["t_base", "t_cfg", "t_cy1", "t_cy2", "t_exp", "t_mid", "t_top"]


# -- the plan --------------------------------------------------------------------------------


async def test_mutations_and_the_plan_report(
    demo_ctx: JobContext, demo_state: EmulatorState
) -> None:
    """Each archive names the run, expects the gate's status, and undoes to that status."""
    mutations = await _plan(demo_ctx, Params(stale=True, reason="Q3 clean-up"))
    gates = demo_state.projects[DEMO_SOURCE_ID].collections["gates"]
    statuses = Counter(gates[m.object.removeprefix("gate/")]["status"] for m in mutations)
    assert set(statuses) == {"Launched", "In Progress", "Disabled"}
    for m in mutations:
        gate = gates[m.object.removeprefix("gate/")]
        assert m.method == "PUT" and m.path == f"/gates/{gate['id']}/archive" and m.idempotent
        assert m.body == {"archiveReason": "bulkops archive-gates run plan0123: Q3 clean-up"}
        assert m.before.matches(gate) and not m.after.matches(gate)
        assert m.describe() == f"archive gate/{gate['id']}: status {gate['status']} → Archived"
        undo = m.reverse()
        assert [u.path.rsplit("/", 1)[1] for u in undo] == (
            ["unarchive", "launch"] if gate["status"] == "Launched" else ["unarchive"]
        )
        assert undo[-1].after.matches(gate)
    (table,) = demo_ctx.tables
    selected = 260  # the seed's stale gates
    assert len(table["rows"]) == selected  # one row per gate, then the totals line
    assert table["columns"] == ["gate", "status", "stale reason", "last modified", "action"]
    assert demo_ctx.notes[-1].startswith(
        f"archive-gates: {selected} gates selected: {len(mutations)} to archive"
    )
    first = gates[mutations[0].object.removeprefix("gate/")]
    row = next(r for r in table["rows"] if r[0] == first["id"])
    day = dt.datetime.fromtimestamp(first["lastModifiedTime"] / 1000, dt.UTC).date().isoformat()
    assert row[1:] == [first["status"], first["typeReason"], day, "archive"]


async def test_a_tag_the_project_does_not_have_is_named_in_the_plan(
    demo_ctx: JobContext,
) -> None:
    """A mistyped --tag selects nothing: the plan says the project has no such tag (and
    which tags it has) instead of looking like a project with nothing to archive."""
    before = len(demo_ctx.notes)
    mutations = await _plan(demo_ctx, Params(tag=["payments", "paymnets"]))
    assert mutations  # the real tag still selects its gates
    (note,) = [n for n in demo_ctx.notes[before:] if n.startswith("tag ")]
    assert note.startswith(f"tag 'paymnets': project {demo_ctx.project_name} has no such tag")
    assert "payments" in note.partition("its tags: ")[2]


# -- the command line against a forked emulator -----------------------------------------------


@pytest.fixture(name="env")
def _env(emulator: Emulator, tmp_path: Path) -> dict[str, str]:
    """The environment of a command run on the demo source."""
    return cli_env(emulator, tmp_path)


def _all_gates(emulator: Emulator) -> dict[str, dict[str, Any]]:
    request = urllib.request.Request(
        f"{emulator.url}/gates?includeArchived=true&limit=5000",
        headers={"STATSIG-API-KEY": DEMO_SOURCE_KEY},
    )
    with urllib.request.urlopen(request, timeout=30) as response:
        return {g["id"]: g for g in json.load(response)["data"]}


def _unstamped(gate: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in gate.items() if k not in STAMPS}


def test_dry_run_apply_rerun_and_undo(
    env: dict[str, str], emulator: Emulator, tmp_path: Path
) -> None:
    """Dry run sends nothing; apply archives the plan (the demo's gates that require review
    open reviews: exit 5, then approved and committed by a resume); a re-run plans 0; undo
    restores exactly (through review again for those gates)."""
    original = _all_gates(emulator)
    reviewed = {
        g for g, v in original.items() if (v.get("reviewSettings") or {}).get("requiredReview")
    }
    plan_file, ck = tmp_path / "plan.json", tmp_path / "ck"
    started = time.monotonic()
    run = run_cli(["plan", "archive-gates", "--stale", "-o", str(plan_file)], env, tmp_path, "p")
    assert run.code == 0, run.stderr()
    assert time.monotonic() - started < 5  # 1,200 gates, 260 selected
    out = run.stdout()
    assert "blocked: referenced by" in out and "archive-gates: 260 gates selected" in out
    run = run_cli(["run", "archive-gates", "--stale"], env, tmp_path, "dry")
    assert run.code == 0 and "Dry run: nothing was sent" in run.stdout()
    assert writes(emulator) == []
    plan = json.loads(plan_file.read_text())
    planned = {m["object"].removeprefix("gate/") for m in plan["mutations"]}
    run_id = plan["header"]["plan_id"]
    assert all(
        m["body"]["archiveReason"] == f"bulkops archive-gates run {run_id}"
        for m in plan["mutations"]
    )

    assert reviewed <= planned and sum(m["review"] for m in plan["mutations"]) == len(reviewed)
    assert f"{len(planned)} archives, {len(reviewed)} of them will need review" in out

    argv = ["apply", str(plan_file), "--yes", "--checkpoint", str(ck), "--time-scale", "60"]
    run = run_cli(argv, env, tmp_path, "a")
    assert run.code == 5, run.stdout() + run.stderr()
    opened = emulator.reviews("pending")
    assert sorted(r["object_id"] for r in opened) == sorted(reviewed)
    run = resume_through_reviews(emulator, ck, env, tmp_path, "r")
    assert run.code == 0, run.stdout() + run.stderr()
    counts = applied_counts(writes(emulator))
    assert counts == Counter(
        {("PUT", f"{V1}/gates/{g}/archive"): 1 for g in planned - reviewed}
        | {
            ("PUT", f"{V1}/gates/{r['object_id']}/reviews/{r['review_id']}/commit"): 1
            for r in opened
        }
    )
    after = _all_gates(emulator)
    assert {g for g, v in after.items() if v["status"] == "Archived"} == planned | {
        g for g, v in original.items() if v["status"] == "Archived"
    }

    sent = len(writes(emulator))
    run = run_cli(["run", "archive-gates", "--stale"], env, tmp_path, "again")
    assert run.code == 0, run.stderr()
    assert "0 API mutations" in run.stdout()
    assert f"0 to archive, {260 - len(planned)} blocked by references" in run.stdout()
    assert len(writes(emulator)) == sent

    run = run_cli(["undo", str(ck), "--apply", "--yes", "--time-scale", "60"], env, tmp_path, "u")
    assert run.code == 5, run.stdout() + run.stderr()
    assert sorted(r["object_id"] for r in emulator.reviews("pending")) == sorted(reviewed)
    run = resume_through_reviews(emulator, tmp_path / "ck.undo", env, tmp_path, "ur")
    assert run.code == 0, run.stdout() + run.stderr()
    restored = _all_gates(emulator)
    assert {g: _unstamped(v) for g, v in restored.items()} == {
        g: _unstamped(v) for g, v in original.items()
    }


def test_include_referenced_archives_blocked_gates(
    env: dict[str, str], emulator: Emulator, tmp_path: Path
) -> None:
    """Blocked gates get no request; with --include-referenced they are force-archived."""
    run = run_cli(["plan", "archive-gates", "--stale-reason", "STALE_NO_RULES"], env, tmp_path, "p")
    blocked = [line.split()[0] for line in run.stdout().splitlines() if "blocked:" in line][:3]
    assert len(blocked) == 3
    ids = [arg for g in blocked for arg in ("--id", g)]
    run = run_cli(["run", "archive-gates", *ids, "--apply", "--yes"], env, tmp_path, "no")
    assert run.code == 0 and "Nothing to do" in run.stdout()
    assert writes(emulator) == []
    argv = ["run", "archive-gates", *ids, "--include-referenced", "--apply", "--yes"]
    run = run_cli(argv, env, tmp_path, "force")
    assert run.code == 0, run.stdout() + run.stderr()
    assert "forced; referenced by" in run.stdout()
    assert sorted(e["path"] for e in writes(emulator) if e["applied"]) == sorted(
        f"{V1}/gates/{g}/archive" for g in blocked
    )
    assert all(_all_gates(emulator)[g]["status"] == "Archived" for g in blocked)


def test_kill_9_during_apply_then_resume_archives_each_gate_once(
    env: dict[str, str], emulator: Emulator, tmp_path: Path
) -> None:
    """SIGKILL in the middle of an apply; resume finishes; every gate archived exactly once."""
    plan_file, ck = tmp_path / "plan.json", tmp_path / "ck"
    run = run_cli(
        ["plan", "archive-gates", "--stale-reason", "probably_launched", "-o", str(plan_file)],
        env,
        tmp_path,
        "p",
    )
    assert run.code == 0, run.stderr()
    planned = [m["path"] for m in json.loads(plan_file.read_text())["mutations"]]
    assert len(planned) >= 30
    argv = ["apply", str(plan_file), "--yes", "--checkpoint", str(ck), "--quota", "40/1s"]
    run = fork_cli(argv, env, tmp_path, "a")
    deadline = time.monotonic() + 20
    while sum(1 for e in writes(emulator) if e["applied"]) < 10 and time.monotonic() < deadline:
        time.sleep(0.005)
    os.kill(run.pid, signal.SIGKILL)
    assert wait_cli(run) == 137
    done = sum(1 for e in writes(emulator) if e["applied"])
    assert 10 <= done < len(planned)
    run = run_cli(["resume", str(ck)], env, tmp_path, "r")
    assert run.code == 0, run.stdout() + run.stderr()
    counts = applied_counts(writes(emulator))
    assert counts == Counter({("PUT", V1 + path): 1 for path in planned})
    assert [e for e in emulator.log() if e.get("fault") == "quota"] == []


# -- code references (--code-refs, bulkops refs) -------------------------------------------

APP = Path(__file__).resolve().parents[2] / "examples" / "app"
# The stale demo gates examples/app checks, and the file each is checked in.
APP_GATES = {
    "shipping_email_digest": "src/checkout.py",
    "web_ai_suggestions": "web/Search.tsx",
    "settings_spellcheck": "android/Support.kt",
}


def test_code_refs_block_gates_code_still_checks(
    env: dict[str, str], emulator: Emulator, tmp_path: Path
) -> None:
    """`--code-refs examples/app`: the stale gates the app checks are blocked with their
    files named, a gate whose name the app builds at run time too; the rest are marked
    not in code; `--include-referenced` archives them and says what it overrides."""
    plan_file = tmp_path / "plan.json"
    argv = ["plan", "archive-gates", "--stale", "--code-refs", str(APP), "-o", str(plan_file)]
    argv += ["--show", "1000"]  # every selected gate's row (the table is bounded by --show)
    run = run_cli(argv, env, tmp_path, "code")
    assert run.code == 0, run.stderr()
    out = run.stdout()
    planned = {
        m["object"].removeprefix("gate/") for m in json.loads(plan_file.read_text())["mutations"]
    }
    for gate, path in APP_GATES.items():
        assert gate not in planned
        line = next(line for line in out.splitlines() if f" {gate} " in line)
        assert f"blocked: in code: {APP}/{path}:" in line, line
    dynamic = next(line for line in out.splitlines() if " recs_gift_wrap_test " in line)
    assert "blocked: in code:" in dynamic and "(a name built at run time)" in dynamic
    assert "archive (not in code)" in out
    assert " in code)" in out

    forced = run_cli([*argv, "--include-referenced"], env, tmp_path, "forced")
    assert forced.code == 0, forced.stderr()
    plan = json.loads(plan_file.read_text())
    assert set(APP_GATES) <= {m["object"].removeprefix("gate/") for m in plan["mutations"]}
    assert f"archive (forced; in code: {APP}/src/checkout.py:" in forced.stdout()
    assert writes(emulator) == []


def test_refs_reads_the_project_through_the_api(
    env: dict[str, str], emulator: Emulator, tmp_path: Path
) -> None:
    """`bulkops refs PATH` with the key in the environment reads the project's objects
    and reports the app's references with their kinds and clean-up hints."""
    out = tmp_path / "refs.json"
    run = run_cli(
        ["refs", str(APP), "--kind", "gates", "--json", "-o", str(out)], env, tmp_path, "r"
    )
    assert run.code == 0, run.stderr()
    document = json.loads(out.read_text())
    found = {o["id"]: o for o in document["objects"] if o["references"]}
    assert set(found) == set(APP_GATES)
    digest = found["shipping_email_digest"]
    assert digest["hint"] == "true"  # probably launched: the check becomes true
    kinds = {(r["file"].rsplit("/", 1)[-1], r["kind"]) for r in digest["references"]}
    assert kinds == {("checkout.py", "constant"), ("checkout.py", "sdk_call"),
                     ("test_checkout.py", "test_override")}  # fmt: skip
    assert found["web_ai_suggestions"]["hint"] == "false"
    [warning] = document["warnings"]
    assert warning["prefix"] == "recs_gift_" and warning["call"] == "check_gate"
    assert writes(emulator) == []
