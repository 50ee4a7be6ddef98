"""copy-project against the emulator's demo projects: a whole copy, re-runs, prefixes, refusals,
a kill and resume, and undo.

The deep comparison of both projects reads the emulator's stored objects directly and
normalises them here (not with the job's own helpers), so what the job forgets to copy
shows up as a difference.
"""

from __future__ import annotations

import json
import logging
from collections import Counter
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
import structlog
from engine_support import seeded_state
from jobs_support import job_context, run, undo
from pydantic import SecretStr, ValidationError

from bulkops.api.client import ConsoleClient
from bulkops.emulator import EmulatorState
from bulkops.emulator.demo import (
    DEMO_SOURCE_ID,
    DEMO_SOURCE_KEY,
    DEMO_TARGET_ID,
    DEMO_TARGET_KEY,
    demo_projects,
)
from bulkops.emulator.seed import EMPTY_KEY, apply_seed
from bulkops.emulator.state import Project
from bulkops.engine.mutations import JobContext, Mutation
from bulkops.engine.plans import Plan, ProjectRef
from bulkops.engine.runner import RunResult
from bulkops.errors import PlanError, RefusedError
from bulkops.jobs import JOBS, copy_project
from bulkops.jobs.copy_project.bodies import ID_LIST_CHUNK
from bulkops.jobs.copy_project.canonical import KINDS
from bulkops.settings import Settings
from bulkops.testing import Emulator, applied_counts, run_cli, serve_forked

SRC, DST = "COPY_SOURCE_KEY", "COPY_TARGET_KEY"
APPS = ("web", "ios", "android", "backend", "admin_console")
ALL = list(KINDS)

# Fields the server owns, and experiment lifecycle fields (copies are drafts); sorted.
SERVER = {
    "checksPerHour",
    "createdTime",
    "creatorEmail",
    "creatorID",
    "creatorName",
    "holdoutIDs",
    "lastModifiedTime",
    "lastModifierEmail",
    "lastModifierID",
    "lastModifierName",
    "owner",
    "typeReason",
    "version",
}
LIFECYCLE = {
    "decisionReason",
    "decisionTime",
    "endTime",
    "healthCheckStatus",
    "healthChecks",
    "inlineTargetingRulesJSON",
    "launchedGroupID",
    "startTime",
    "status",
}
RULE_SERVER = {"id", "baseID", "completedAutomatedRollouts", "pendingAutomatedRollouts"}


@pytest.fixture(autouse=True)
def _quiet_logs() -> Iterator[None]:
    """Mutation events at info level would print thousands of lines: keep warnings only."""
    structlog.configure(wrapper_class=structlog.make_filtering_bound_logger(logging.WARNING))
    yield
    structlog.reset_defaults()


def _sample_exchanges(state: EmulatorState, per_route: int = 8) -> None:
    """Keep at most ``per_route`` captured exchanges per (method, route, status).

    A whole copy makes ~8,000 exchanges of a few dozen shapes; the spec conformance
    check (run on what is captured when the test ends) then sees every shape without
    spending ten seconds on repeats.
    """
    seen: Counter[tuple[Any, ...]] = Counter()
    kept = []
    for exchange in state.capture or ():
        key = (exchange["method"], exchange.get("route"), exchange["status"])
        seen[key] += 1
        if seen[key] <= per_route:
            kept.append(exchange)
    if state.capture is not None:
        state.capture[:] = kept


@dataclass
class Demo:
    """The demo emulator (quotas off) and clients on it."""

    state: EmulatorState
    url: str
    clients: list[ConsoleClient] = field(default_factory=list)

    def client(self, key: str) -> ConsoleClient:
        made = ConsoleClient(Settings(api_key=SecretStr(key), base_url=self.url))
        self.clients.append(made)
        return made

    def context(self, key: str = DEMO_TARGET_KEY, project: str = DEMO_TARGET_ID) -> JobContext:
        return job_context(
            self.client(key),
            project,
            open_client=lambda env: self.client({SRC: DEMO_SOURCE_KEY}[env]),
        )

    @property
    def source(self) -> Project:
        return self.state.projects[DEMO_SOURCE_ID]

    @property
    def target(self) -> Project:
        return self.state.projects[DEMO_TARGET_ID]


@pytest.fixture(scope="module", name="demo_files")
def _demo_files(tmp_path_factory: pytest.TempPathFactory) -> tuple[str, str]:
    """The demo projects as two seed files, built once (loading is faster than building)."""
    folder = tmp_path_factory.mktemp("demo")
    paths = []
    for project, keys in demo_projects():
        path = folder / f"{project.id}.json"
        path.write_text(json.dumps(project.to_snapshot(keys)))
        paths.append(str(path))
    return paths[0], paths[1]


@pytest.fixture(name="demo")
async def _demo(
    make_emulator: Callable[..., Awaitable[tuple[EmulatorState, str]]],
    demo_files: tuple[str, str],
) -> AsyncIterator[Demo]:
    """The demo projects served with quotas off."""
    state, url = await make_emulator(*demo_files, quotas_enabled=False)
    demo = Demo(state, url)
    yield demo
    for made in demo.clients:
        await made.aclose()


async def _add_target_apps(demo: Demo) -> None:
    target = demo.client(DEMO_TARGET_KEY)
    for app in APPS:
        await target.call("POST", "/target_app", {"name": app, "description": "copied apps"})


def _params(**options: Any) -> copy_project.Params:
    return copy_project.Params(source_key_env=SRC, target_key_env=DST, **options)


async def _plan(ctx: JobContext, params: copy_project.Params) -> Plan:
    mutations = [m async for m in copy_project.plan(ctx, params)]
    return Plan.build(
        job="copy-project",
        params=params.model_dump(mode="json"),
        projects=[ProjectRef(id=ctx.project_id, name=ctx.project_name)],
        mutations=mutations,
    )


def _done(plan: Plan, result: RunResult) -> list[Mutation]:
    return [m for m in plan.mutations if result.states[m.key].state in ("applied", "skipped")]


# -- the deep comparison --------------------------------------------------------------------


def _rules(rules: Any) -> list[dict[str, Any]]:
    return [{k: v for k, v in r.items() if k not in RULE_SERVER} for r in rules or ()]


def _sorted(items: Any) -> list[Any]:
    return sorted(items or (), key=lambda i: json.dumps(i, sort_keys=True))


def _object_view(kind: str, obj: dict[str, Any]) -> dict[str, Any]:
    view = {k: v for k, v in obj.items() if k not in SERVER and v is not None}
    if "rules" in view:
        view["rules"] = _rules(view["rules"])
    if kind == "gates":
        if view.get("type") in ("STALE", "TEMPLATE"):  # server classifications, not writable
            del view["type"]
        view["reviewSettings"] = {"requiredReview": obj["reviewSettings"]["requiredReview"]}
    if kind == "experiments":
        names = {g["id"]: g["name"] for g in obj["groups"]}
        view = {k: v for k, v in view.items() if k not in LIFECYCLE}
        view["groups"] = [{k: v for k, v in g.items() if k != "id"} for g in obj["groups"]]
        view["controlGroupID"] = names[obj["controlGroupID"]]
        view["targetingGateID"] = obj.get("targetingGateID") or ""
    if kind == "segments":
        view.pop("targetApps", None)  # the API cannot set them: an accepted loss
        if obj.get("type") != "id_list":
            view.pop("count", None)  # the server's id-list length: compared where there is one
    if kind == "layers":
        view.pop("tags", None)  # likewise
    return view


def _overrides_view(overrides: dict[str, Any]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for name, value in overrides.items():
        if isinstance(value, list) and value and isinstance(value[0], dict):
            value = [
                {
                    k: sorted(v) if k in ("ids", "passingIDs", "failingIDs") else v
                    for k, v in e.items()
                }
                for e in value
            ]
            out[name] = _sorted(value)
        elif isinstance(value, list):
            out[name] = sorted(value)
        else:
            out[name] = value
    return {k: v for k, v in out.items() if v}


def _project_view(project: Project) -> dict[str, Any]:
    view: dict[str, Any] = {
        "tags": {
            t["name"]: (t["description"], t["isCore"]) for t in project.store("tags").values()
        },
        "unit_id_types": dict(project.store("unit_id_types")),
    }
    for kind in ("segments", "gates", "dynamic_configs", "layers", "experiments"):
        view[kind] = {i: _object_view(kind, o) for i, o in project.store(kind).items()}
    for kind in ("gates", "experiments", "layers"):
        view[f"{kind} overrides"] = {
            i: _overrides_view(o)
            for i, o in project.overrides.get(kind, {}).items()
            if _overrides_view(o)
        }
    view["id lists"] = {s: sorted(ids) for s, ids in project.id_lists.items()}
    return view


def _assert_same_projects(source: Project, target: Project) -> None:
    left, right = _project_view(source), _project_view(target)
    for gate_id, gate in left["gates"].items():
        if "type" not in gate and gate_id in right["gates"]:
            right["gates"][gate_id].pop("type", None)  # a STALE or TEMPLATE gate's copy
    for section in left:
        if left[section] == right[section]:
            continue
        missing = sorted(set(left[section]) - set(right[section]))
        extra = sorted(set(right[section]) - set(left[section]))
        changed = [
            k
            for k in left[section]
            if k in right[section] and left[section][k] != right[section][k]
        ]
        first = changed[0] if changed else None
        pytest.fail(
            f"{section}: missing {missing[:5]}, extra {extra[:5]}, {len(changed)} differ; first: "
            f"{first} {left[section].get(first)} != {right[section].get(first)}"
        )


# -- tests ----------------------------------------------------------------------------------


def test_the_job_is_registered_and_its_options_are_checked() -> None:
    """copy-project is in the registry; env maps, prefixes and kinds are validated."""
    assert JOBS["copy-project"] is copy_project
    params = _params(include=["experiments", "tags"], env_map=["qa=staging"])
    assert params.include == ["tags", "experiments"]
    assert params.environment_map() == {"qa": "staging"}
    assert _params().include == ALL[:-1] and _params().on_conflict == "skip"
    for bad in (
        {"env_map": ["qa"]},
        {"prefix": "Copy."},
        {"include": []},
        {"on_conflict": "merge"},
    ):
        with pytest.raises(ValidationError):
            _params(**bad)


async def test_a_whole_copy_matches_then_skips_then_overwrites_what_changed(
    demo: Demo, tmp_path: Path
) -> None:
    """The whole demo copies faithfully; a re-run sends nothing; overwrite fixes only drift."""
    await _add_target_apps(demo)
    ctx = demo.context()
    everything = {"include": ALL, "with_overrides": True, "with_id_lists": True}
    with pytest.raises(RefusedError) as refused:
        await _plan(ctx, _params(include=ALL))
    assert "segment fraud_blocklist: targetApps" in refused.value.message
    assert "layer search_ranking_layer: tags" in refused.value.message
    assert not demo.target.store("gates")

    params = _params(**everything, accept_loss=True)
    plan = await _plan(ctx, params)
    assert any(
        n.startswith("dropped (--accept-loss): layer onboarding_layer: tags") for n in ctx.notes
    )
    counts = plan.counts()
    objects = sum(len(demo.source.store(k)) for k in ALL) - sum(
        1 for layer in demo.source.store("layers").values() if layer["isImplicitLayer"]
    )
    assert counts["create"] == objects  # one create per object, rules included
    source_gates = Counter(g["status"] for g in demo.source.store("gates").values())
    assert counts["launch"] == source_gates["Launched"]
    id_list_writes = [m for m in plan.mutations if m.quota_class == "id_list"]
    assert all(len(m.body["ids"]) <= ID_LIST_CHUNK for m in id_list_writes)
    position = {m.key: i for i, m in enumerate(plan.mutations)}
    assert all(position[d] < position[m.key] for m in plan.mutations for d in m.depends_on)
    result = await run(ctx.client, plan, tmp_path / "copy", in_flight=16)
    assert await copy_project.verify(ctx, params, _done(plan, result)) == []
    _assert_same_projects(demo.source, demo.target)
    print(f"copy: {objects} objects, {len(plan.mutations)} mutations, {dict(counts)}")

    again = await _plan(demo.context(), params)
    assert again.mutations == []

    target = demo.client(DEMO_TARGET_KEY)
    launched = next(g for g, o in demo.source.store("gates").items() if o["status"] == "Launched")
    with_overrides = sorted(demo.source.overrides["gates"])[0]
    growth = next(t["id"] for t in demo.target.store("tags").values() if t["name"] == "growth")
    removed = sorted(demo.target.id_lists["beta_testers"])[:3]
    await target.call("PATCH", "/gates/checkout_one_click", {"description": "drifted"})
    await target.call("PATCH", "/dynamic_configs/checkout_copy", {"defaultValue": {"x": 1}})
    await target.call("PUT", f"/gates/{launched}/disable")
    await target.call(
        "POST",
        f"/gates/{with_overrides}/overrides",
        {"passingUserIDs": ["zz"], "failingUserIDs": []},
    )
    await target.call("PATCH", f"/tags/{growth}", {"description": "drifted"})
    await target.call(
        "POST",
        "/segments/power_users/conditional",
        [
            {
                "name": "Other",
                "passPercentage": 10,
                "conditions": [{"type": "country", "operator": "any", "targetValue": ["FR"]}],
            }
        ],
    )
    await target.call("DELETE", "/segments/beta_testers/id_list", {"ids": removed})

    ctx = demo.context()
    overwrite = _params(**everything, accept_loss=True, on_conflict="overwrite")
    fix = await _plan(ctx, overwrite)
    assert sorted(m.key for m in fix.mutations) == sorted(
        [
            "update:gate:checkout_one_click",
            "update:dynamic_config:checkout_copy",
            f"update:gate:{launched}",
            f"launch:gate:{launched}",
            f"overrides:gate:{with_overrides}:ids",
            "update:tag:growth",
            "update:segment:power_users:rules",
            "id-list:segment:beta_testers:reset",
        ]
    )
    drift = fix.by_key()["update:gate:checkout_one_click"].diff()
    wanted = demo.source.store("gates")["checkout_one_click"]["description"]
    ((what, was, becomes),) = drift  # the dry run shows only the drift
    assert (what, was) == ("description", "drifted") and wanted.startswith(becomes.rstrip("…"))
    fixed = await run(ctx.client, fix, tmp_path / "overwrite", in_flight=16)
    assert fixed.states[f"launch:gate:{launched}"].state == "skipped"  # the update relaunched it
    _assert_same_projects(demo.source, demo.target)

    await undo(ctx.client, fix, fixed, tmp_path / "overwrite.undo", in_flight=16)
    gates = demo.target.store("gates")
    assert gates["checkout_one_click"]["description"] == "drifted"
    assert gates[launched]["status"] == "Disabled"
    assert demo.target.overrides["gates"][with_overrides]["passingUserIDs"] == ["zz"]
    assert demo.target.store("tags")[growth]["description"] == "drifted"
    assert [r["name"] for r in demo.target.store("segments")["power_users"]["rules"]] == ["Other"]
    assert not set(removed) & set(demo.target.id_lists["beta_testers"])
    assert demo.target.store("dynamic_configs")["checkout_copy"]["defaultValue"] == {"x": 1}
    _sample_exchanges(demo.state)


async def test_a_prefixed_copy_keeps_every_reference_inside_the_copy(
    demo: Demo, tmp_path: Path
) -> None:
    """Copying checkout_* into the same project under a prefix: every reference is rewritten."""
    ctx = demo.context(DEMO_SOURCE_KEY, DEMO_SOURCE_ID)
    params = _params(
        include=ALL, id=["checkout_*"], prefix="copy_", with_overrides=True, accept_loss=True
    )
    before = {k: set(demo.source.store(k)) for k in ALL if k not in ("tags", "unit_id_types")}
    original = json.loads(json.dumps(demo.source.store("gates")["checkout_one_click"]))
    plan = await _plan(ctx, params)
    result = await run(ctx.client, plan, tmp_path / "prefix", in_flight=16)
    assert await copy_project.verify(ctx, params, _done(plan, result)) == []
    new = {k: set(demo.source.store(k)) - before[k] for k in before}
    assert all(i.startswith(("copy_", "statsig::copy_")) for ids in new.values() for i in ids)
    assert {"copy_checkout_one_click", "copy_beta_testers", "copy_checkout_layer"} <= (
        new["gates"] | new["segments"] | new["layers"]
    )
    assert "copy_checkout_button_color" in new["experiments"]

    def inside(kind: str, ref: str) -> None:
        assert ref in new[kind], f"{kind} reference {ref!r} points outside the copy"

    for kind in ("gates", "dynamic_configs", "segments"):
        for obj_id in new[kind]:
            for rule in demo.source.store(kind)[obj_id].get("rules") or ():
                for cond in rule["conditions"]:
                    ref_kind = {"gate": "gates", "segment": "segments"}.get(
                        cond["type"].split("_")[-1]
                    )
                    if ref_kind is not None:
                        values = cond["targetValue"]
                        for ref in values if isinstance(values, list) else [values]:
                            inside(ref_kind, ref)
    for obj_id in new["experiments"]:
        experiment = demo.source.store("experiments")[obj_id]
        if experiment["targetingGateID"]:
            inside("gates", experiment["targetingGateID"])
        inside("layers", experiment["layerID"])
        for entry in demo.source.overrides["experiments"].get(obj_id, {}).get("overrides", []):
            inside(f"{entry['type']}s", entry["id"])
    layer_overrides = demo.source.overrides["layers"]["copy_checkout_layer"]
    for entry in layer_overrides["conditionalOverrides"]:
        inside(f"{entry['type']}s", entry["name"])
        inside("experiments", entry["experimentName"])
    for entry in layer_overrides["idOverrides"]:
        inside("experiments", entry["experimentName"])
    assert demo.source.store("gates")["checkout_one_click"] == original  # the original is untouched
    _sample_exchanges(demo.state)


async def test_on_conflict_fail_refuses_before_any_write(demo: Demo) -> None:
    """With --on-conflict fail, one existing object refuses the whole plan; nothing is sent."""
    await _add_target_apps(demo)
    target = demo.client(DEMO_TARGET_KEY)
    await target.call("POST", "/gates", {"id": "checkout_one_click", "name": "checkout_one_click"})
    audit = len(demo.target.audit_log)
    with pytest.raises(RefusedError) as refused:
        await _plan(
            demo.context(), _params(id=["checkout_*"], on_conflict="fail", accept_loss=True)
        )
    assert "1 object(s) already exist" in refused.value.message
    assert "gate/checkout_one_click" in refused.value.message
    assert len(demo.target.audit_log) == audit
    skip = await _plan(demo.context(), _params(id=["checkout_*"], accept_loss=True))
    assert "create:gate:checkout_one_click" not in {m.key for m in skip.mutations}
    assert "create:gate:checkout_apple_pay" in {m.key for m in skip.mutations}
    _sample_exchanges(demo.state)


async def test_a_missing_dependency_is_an_error_naming_both_objects(demo: Demo) -> None:
    """A gate whose segment is neither copied nor in the target: a plan error naming both."""
    with pytest.raises(PlanError) as error:
        await _plan(demo.context(), _params(include=["gates"], id=["checkout_one_click"]))
    message = error.value.message
    assert "gate checkout_one_click references segment beta_testers" in message
    assert "add --include segments" in message
    assert not demo.target.store("gates")
    _sample_exchanges(demo.state)


async def test_one_missing_reference_met_in_several_overrides_is_one_problem(demo: Demo) -> None:
    """The checkout layer overrides an experiment in several places; left out, that
    experiment is named once, not once per override."""
    with pytest.raises(PlanError) as error:
        await _plan(demo.context(), _params(id=["checkout_*"], with_overrides=True))
    lines = error.value.message.splitlines()[1:]
    assert len(lines) == len(set(lines))
    missing = [line for line in lines if "references experiment checkout_button_color" in line]
    assert len(missing) == 1 and "add --include experiments" in missing[0]
    assert error.value.message.startswith(f"copy-project: {len(lines)} problem(s)")
    _sample_exchanges(demo.state)


async def test_a_tag_the_source_does_not_have_is_named_in_the_plan(demo: Demo) -> None:
    """--tag with a typo copies nothing, and the plan says the source has no such tag."""
    ctx = demo.context()
    plan = await _plan(ctx, _params(tag=["paymnets"]))
    assert plan.mutations == []
    (note,) = [n for n in ctx.notes if n.startswith("tag ")]
    assert note.startswith("tag 'paymnets': the source project has no such tag")
    assert "payments" in note.partition("its tags: ")[2]
    assert not demo.target.store("gates")


async def test_a_reference_cycle_is_created_in_two_steps(demo: Demo, tmp_path: Path) -> None:
    """Gates that reference each other are created without rules, then given their rules."""
    source = demo.client(DEMO_SOURCE_KEY)
    await source.call("POST", "/gates", {"name": "cyc_a", "description": "a"})
    rule = {
        "name": "needs",
        "passPercentage": 100,
        "conditions": [{"type": "passes_gate", "targetValue": "cyc_a"}],
    }
    await source.call("POST", "/gates", {"name": "cyc_b", "description": "b", "rules": [rule]})
    rule = {**rule, "conditions": [{"type": "fails_gate", "targetValue": "cyc_b"}]}
    await source.call("PATCH", "/gates/cyc_a", {"rules": [rule]})
    ctx = demo.context()
    params = _params(include=["gates"], id=["cyc_*"])
    plan = await _plan(ctx, params)
    keys = [m.key for m in plan.mutations]
    assert sorted(keys[:2]) == ["create:gate:cyc_a", "create:gate:cyc_b"]
    assert sorted(keys[2:]) == ["rules:gate:cyc_a", "rules:gate:cyc_b"]
    assert plan.mutations[0].body["rules"] == plan.mutations[1].body["rules"] == []
    assert set(plan.mutations[2].depends_on) == {"create:gate:cyc_a", "create:gate:cyc_b"}
    result = await run(ctx.client, plan, tmp_path / "cycle", in_flight=16)
    assert await copy_project.verify(ctx, params, _done(plan, result)) == []
    assert (
        demo.target.store("gates")["cyc_a"]["rules"][0]["conditions"][0]["targetValue"] == "cyc_b"
    )
    await demo.client(DEMO_TARGET_KEY).call("PATCH", "/gates/cyc_b", {"description": "edited"})
    problems = await copy_project.verify(ctx, params, _done(plan, result))
    assert problems == ['gate/cyc_b: description: wanted "b", found "edited"']
    _sample_exchanges(demo.state)


# -- the command line: kill -9, resume, undo ------------------------------------------------


@pytest.fixture(scope="module", name="demo_seed")
def _demo_seed() -> EmulatorState:
    """The demo projects; the target already holds one gate and the source's target apps."""
    state = EmulatorState()
    apply_seed(state, "demo")
    target = state.projects[DEMO_TARGET_ID]
    for app in APPS:
        target.store("target_apps")[app] = {"id": app, "name": app, "description": "apps"}
    gate = dict(state.projects[DEMO_SOURCE_ID].store("gates")["checkout_apple_pay"])
    gate.update(description="the target's own", tags=[], rules=[])  # consistent on its own
    target.store("gates")["checkout_apple_pay"] = gate
    return state


def _target_listing(emulator: Emulator) -> dict[str, Any]:
    """Everything the target holds, as the API lists it (objects, overrides, id lists)."""
    import asyncio

    async def read() -> dict[str, Any]:
        settings = Settings(api_key=SecretStr(DEMO_TARGET_KEY), base_url=emulator.url)
        async with ConsoleClient(settings) as client:
            out: dict[str, Any] = {}
            for path in (
                "/tags",
                "/unit_id_types",
                "/segments",
                "/layers",
                "/experiments",
                "/target_app",
            ):
                out[path] = [i async for i in client.paginate(path)]
            for path in ("/gates", "/dynamic_configs"):
                out[path] = [
                    i async for i in client.paginate(path, params={"includeArchived": True})
                ]
            for gate in out["/gates"]:
                out[f"/gates/{gate['id']}/overrides"] = await client.data(
                    "GET", f"/gates/{gate['id']}/overrides"
                )
            return out

    return asyncio.run(read())


def test_kill_9_mid_copy_then_resume_then_undo(demo_seed: EmulatorState, tmp_path: Path) -> None:
    """A copy killed after a send resumes with no duplicate and nothing missing; undo restores."""
    with serve_forked(demo_seed, tmp_path / "requests.log", quotas_enabled=False) as emulator:
        env = {
            SRC: DEMO_SOURCE_KEY,
            DST: DEMO_TARGET_KEY,
            "STATSIG_API_URL": emulator.url,
            "BULKOPS_STATE_DIR": str(tmp_path / "state"),
        }
        before = _target_listing(emulator)
        ck = tmp_path / "ck"
        argv = [
            "run", "copy-project", "--source-key-env", SRC, "--target-key-env", DST,
            "--id", "checkout_*", "--include", "segments", "--include", "gates",
            "--include", "dynamic_configs", "--include", "tags", "--include", "unit_id_types",
            "--with-overrides", "--with-id-lists", "--accept-loss",
            "--apply", "--yes", "--checkpoint", str(ck), "--time-scale", "1000", "--max-in-flight", "2",
        ]  # fmt: skip
        crash = run_cli(argv, {**env, "BULKOPS_FAILPOINT": "after-send:40"}, tmp_path, "crash")
        assert crash.code == 137, crash.stderr()
        resumed = run_cli(["resume", str(ck), "--time-scale", "1000"], env, tmp_path, "resume")
        assert resumed.code == 0, resumed.stderr()[-3000:]
        assert "verification: the target matches" in resumed.stdout()
        status = json.loads(run_cli(["status", str(ck), "--json"], env, tmp_path, "st").stdout())
        assert status["complete"] and status["counts"]["applied"] == status["mutations"]
        records = [json.loads(line.split(" ", 1)[1]) for line in ck.read_text().splitlines()]
        plan = Plan.from_json(records[0]["plan"])
        assert "create:gate:checkout_apple_pay" not in plan.by_key()  # it exists: skipped
        writes = [e for e in emulator.log() if e["method"] != "GET"]
        assert not [e for e in writes if e["status"] >= 400]  # no create hit an existing object
        planned = Counter((m.method, f"/console/v1{m.path}") for m in plan.mutations)
        assert applied_counts(writes) == planned  # each planned write applied exactly once
        creates = Counter(m.path for m in plan.mutations if m.action == "create")
        after = _target_listing(emulator)
        assert len(after["/gates"]) == len(before["/gates"]) + creates["/gates"]

        # The undo is killed too, and resumed: its checkpoint names the target's key
        # variable (there is no STATSIG_CONSOLE_API_KEY here to fall back on).
        undo_argv = ["undo", str(ck), "--apply", "--yes", "--time-scale", "1000"]
        undo_ck = tmp_path / "undo.ckpt"
        killed = run_cli(
            [*undo_argv, "--checkpoint", str(undo_ck)],
            {**env, "BULKOPS_FAILPOINT": "after-send:10"},
            tmp_path,
            "undo",
        )
        assert killed.code == 137, killed.stderr()[-3000:]
        assert "cannot undo" not in killed.stdout()
        undone = run_cli(["resume", str(undo_ck), "--time-scale", "1000"], env, tmp_path, "ur")
        assert undone.code == 0, undone.stderr()[-3000:]
        assert _target_listing(emulator) == before


JOB_WITH_A_CHECK = """
from pydantic import BaseModel
from bulkops.engine.mutations import Expect, Mutation


class Params(BaseModel):
    pass


async def plan(ctx, params):
    yield Mutation(
        key="archive", project=ctx.project_id, action="archive", object="gate/seed_gate_0",
        method="PUT", path="/gates/seed_gate_0/archive", body={}, read="/gates/seed_gate_0",
        before=Expect(fields={"status": "In Progress"}), after=Expect(fields={"status": "Archived"}),
    )


async def verify(ctx, params, done):
    gate = await ctx.client.data("GET", "/gates/seed_gate_0")
    return [f"{m.object}: read back {gate['status']}, expected Launched" for m in done]
"""


def test_the_engine_prints_a_jobs_verification_and_exits_1(tmp_path: Path) -> None:
    """A job's verify hook runs after a complete apply; its lines turn exit 0 into 1."""
    job = tmp_path / "checked_job.py"
    job.write_text(JOB_WITH_A_CHECK)
    with serve_forked(seeded_state(gates=1), tmp_path / "requests.log") as emulator:
        env = {
            "STATSIG_CONSOLE_API_KEY": EMPTY_KEY,
            "STATSIG_API_URL": emulator.url,
            "BULKOPS_STATE_DIR": str(tmp_path / "state"),
        }
        argv = ["run", str(job), "--apply", "--yes", "--checkpoint", str(tmp_path / "ck")]
        run = run_cli(argv, env, tmp_path, "run")
    assert run.code == 1, run.stderr()
    assert "differs: gate/seed_gate_0: read back Archived, expected Launched" in run.stdout()
    assert "verification: 1 difference(s) found" in run.stderr()
