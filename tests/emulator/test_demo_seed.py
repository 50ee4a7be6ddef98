"""The demo seed: its numbers, determinism, references, keys, the tour over it, and the
demo's frame (an emulator process, titled steps)."""

from __future__ import annotations

import io
import re
from collections import Counter
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from conformance import load_spec
from pydantic import SecretStr
from rich.console import Console

from bulkops.api.client import ConsoleClient
from bulkops.cli.census import GATE_TYPES, Census, tour
from bulkops.cli.demo import DemoContext, Step, prepare_workdir, run_demo
from bulkops.emulator.common import referenced_ids
from bulkops.emulator.demo import (
    DEMO_AUDITOR_KEY,
    DEMO_SOURCE_ID,
    DEMO_SOURCE_KEY,
    DEMO_SOURCE_READ_ONLY_KEY,
    DEMO_TARGET_ID,
    DEMO_TARGET_KEY,
    DEMO_TARGET_READ_ONLY_KEY,
    demo_projects,
)
from bulkops.emulator.state import KeyInfo, Project
from bulkops.errors import Forbidden, Unauthorized, UsageError
from bulkops.settings import Settings

STALE_REASONS = {
    "STALE_PROBABLY_LAUNCHED",
    "STALE_PROBABLY_UNLAUNCHED",
    "STALE_PROBABLY_FORGOTTEN",
    "STALE_NO_RULES",
    "STALE_PROBABLY_DEAD_CHECK",
}
YEAR_MS = 365 * 86_400_000


@pytest.fixture(name="built", scope="module")
def _built() -> list[tuple[Project, dict[str, KeyInfo]]]:
    """One build of the demo projects, shared by the read-only checks of this module."""
    return demo_projects()


@pytest.fixture(name="source", scope="module")
def _source(built: list[tuple[Project, dict[str, KeyInfo]]]) -> Project:
    """The demo's source project."""
    return built[0][0]


@pytest.fixture(name="target", scope="module")
def _target(built: list[tuple[Project, dict[str, KeyInfo]]]) -> Project:
    """The demo's target project."""
    return built[1][0]


def _rules(obj: dict[str, Any]) -> list[dict[str, Any]]:
    return list(obj.get("rules") or [])


def _conditions(obj: dict[str, Any]) -> Iterator[dict[str, Any]]:
    for rule in _rules(obj):
        yield from rule["conditions"]


def _values(cond: dict[str, Any]) -> list[Any]:
    value = cond.get("targetValue")
    return value if isinstance(value, list) else [value]


def _live_gates(project: Project) -> dict[str, dict[str, Any]]:
    return {k: g for k, g in project.store("gates").items() if g["status"] != "Archived"}


def _gate_referrers(project: Project) -> dict[str, set[str]]:
    """gate id -> ids of the live gates, live configs and live experiments that use it."""
    refs: dict[str, set[str]] = {}
    for kind in ("gates", "dynamic_configs"):
        for obj in project.store(kind).values():
            if obj["status"] != "Archived":
                for gate_id in referenced_ids(_rules(obj), "gate"):
                    refs.setdefault(gate_id, set()).add(f"{kind}:{obj['id']}")
    for exp in project.store("experiments").values():
        if exp["targetingGateID"] and exp["status"] in ("setup", "active"):
            refs.setdefault(exp["targetingGateID"], set()).add(f"experiments:{exp['id']}")
    return refs


# -- the numbers ---------------------------------------------------------------------------


def test_gates_cover_every_status_and_type(source: Project) -> None:
    """The source holds 1,000+ gates of every status and type, 200+ stale of five reasons."""
    gates = list(source.store("gates").values())
    assert len(gates) >= 1000
    assert {g["status"] for g in gates} == {"In Progress", "Launched", "Disabled", "Archived"}
    assert {g["type"] for g in gates} == {"PERMANENT", "TEMPORARY", "STALE", "TEMPLATE"}
    stale = [g for g in gates if g["type"] == "STALE"]
    assert len(stale) >= 200
    reasons = Counter(g["typeReason"] for g in stale)
    assert set(reasons) == STALE_REASONS
    assert min(reasons.values()) >= 20
    assert all(g["typeReason"] == "NONE" for g in gates if g["type"] != "STALE")
    assert all(not _rules(g) for g in stale if g["typeReason"] == "STALE_NO_RULES")
    assert all(g["isEnabled"] is (g["status"] != "Disabled") for g in gates)
    assert all(g["isTemplate"] is (g["type"] == "TEMPLATE") for g in gates)


def test_gates_vary_in_age_creator_tags_and_rules(source: Project) -> None:
    """Gates differ in last change (some idle for years), creator, tags and rule kinds."""
    gates = list(source.store("gates").values())
    newest = max(g["lastModifiedTime"] for g in gates)
    idle = [g for g in gates if newest - g["lastModifiedTime"] > 2 * YEAR_MS]
    assert len(idle) >= 50
    assert len({g["creatorName"] for g in gates}) >= 8
    assert len({t for g in gates for t in g["tags"]}) >= 10
    kinds = Counter(c["type"] for g in gates for c in _conditions(g))
    for kind in (
        "public",
        "email",
        "user_id",
        "custom_field",
        "country",
        "passes_gate",
        "fails_gate",
        "passes_segment",
        "fails_segment",
        "unit_id",
    ):
        assert kinds[kind] >= 5, kind
    rules = [r for g in gates for r in _rules(g)]
    assert sum(1 for r in rules if r["environments"]) >= 50
    assert len({r["passPercentage"] for r in rules}) >= 8
    assert len({r["id"] for r in rules}) == len(rules)
    assert all(r["id"].split(":")[0] == r["baseID"] and len(r["baseID"]) == 22 for r in rules)


def test_checkout_family_carries_the_rewrite_examples(source: Project) -> None:
    """``checkout_*`` gates and configs are tagged payments and hold the rules rewrites target."""
    gates = [g for g in source.store("gates").values() if g["id"].startswith("checkout_")]
    assert len(gates) >= 10
    assert all("payments" in g["tags"] for g in gates)
    names = [r["name"] for g in gates for r in _rules(g)]
    assert any(n.startswith("Rollout ") for n in names)
    assert any(n.startswith("Temp ") for n in names)
    assert "Old name" in names
    conditions = [c for g in gates for c in _conditions(g)]
    assert sum(1 for c in conditions if c["type"] == "passes_segment" and "beta_testers" in _values(c)) >= 5  # fmt: skip
    assert any(c["type"] == "email" for c in conditions)
    user_ids = {v for c in conditions if c["type"] == "user_id" for v in _values(c)}
    assert {"u_123", "u_456"} <= user_ids
    assert "beta_testers_v2" in source.store("segments")
    configs = [c for c in source.store("dynamic_configs").values() if c["id"].startswith("checkout_")]  # fmt: skip
    assert configs
    assert all("payments" in c["tags"] for c in configs)


def test_configs_segments_and_tags_meet_the_numbers(source: Project) -> None:
    """100+ dynamic configs, 30+ segments of both kinds with real id lists, 10+ tags."""
    configs = list(source.store("dynamic_configs").values())
    assert len(configs) >= 100
    assert all(isinstance(c["defaultValue"], dict) for c in configs)
    assert all(isinstance(r["returnValue"], dict) for c in configs for r in _rules(c))
    segments = source.store("segments")
    assert len(segments) >= 30
    types = Counter(s["type"] for s in segments.values())
    assert types["id_list"] >= 10 and types["rule_based"] >= 10
    sizes = []
    for seg_id, seg in segments.items():
        if seg["type"] == "id_list":
            assert seg["count"] == len(source.id_lists[seg_id])
            sizes.append(seg["count"])
        else:
            assert seg_id not in source.id_lists and seg["rules"]
    assert min(sizes) <= 10 and max(sizes) >= 2000
    assert any(
        c["type"] in ("passes_segment", "fails_segment")
        for s in segments.values()
        if s["type"] == "rule_based"
        for c in _conditions(s)
    )
    tags = source.store("tags")
    assert len(tags) >= 10
    assert all(tag_id == tag["id"] and tag["name"] for tag_id, tag in tags.items())


def test_experiments_layers_holdout_and_overrides(source: Project) -> None:
    """Experiments in every early state sit in layers, with groups, targeting and overrides."""
    experiments = source.store("experiments")
    assert {"setup", "active", "decision_made"} <= {e["status"] for e in experiments.values()}
    assert all(len(e["groups"]) >= 2 for e in experiments.values())
    assert all(round(sum(g["size"] for g in e["groups"]), 2) == 100 for e in experiments.values())
    assert sum(1 for e in experiments.values() if e["targetingGateID"]) >= 5
    assert len(source.overrides["experiments"]) >= 3
    layers = source.store("layers")
    assert sum(1 for x in layers.values() if not x["isImplicitLayer"] and x["parameters"]) >= 3
    assert source.overrides["layers"]
    assert source.store("holdouts") and source.overrides["holdouts"]
    assert len(source.overrides["gates"]) >= 20
    assert source.store("unit_id_types") and source.store("target_apps")
    assert len(source.audit_log) >= 100


def test_versions_match_the_histories(source: Project) -> None:
    """Every versioned object has versions 1..n stored, the last one equal to the object."""
    for kind in ("gates", "dynamic_configs", "segments", "experiments", "layers", "holdouts"):
        for obj_id, obj in source.store(kind).items():
            history = source.versions[kind][obj_id]
            assert obj["version"] >= 1
            assert [v["version"] for v in history] == list(range(1, obj["version"] + 1))
            assert history[-1] == obj and history[-1] is not obj
            times = [v["lastModifiedTime"] for v in history]
            assert times == sorted(times) and times[0] == obj["createdTime"]


def test_target_is_empty_with_the_same_environments(source: Project, target: Project) -> None:
    """The target project holds nothing but the source's environments."""
    assert target.id == DEMO_TARGET_ID
    assert not any(target.collections.values())
    assert not any(target.overrides.values()) and not target.id_lists
    assert target.environments == source.environments


def test_two_builds_are_equal(built: list[tuple[Project, dict[str, KeyInfo]]]) -> None:
    """The seed is deterministic: a second build equals the first, histories included."""
    again = demo_projects()
    for (one, keys_one), (two, keys_two) in zip(built, again, strict=True):
        assert keys_one == keys_two
        assert one.to_snapshot(keys_one) == two.to_snapshot(keys_two)
        assert one.versions == two.versions
        assert one.audit_log == two.audit_log


# -- references ------------------------------------------------------------------------------


def test_rule_references_point_at_objects_that_exist(source: Project) -> None:
    """Every gate and segment a rule, override, experiment or holdout names exists."""
    gates, segments = source.store("gates"), source.store("segments")
    for kind in ("gates", "dynamic_configs", "segments"):
        for obj in source.store(kind).values():
            for gate_id in referenced_ids(_rules(obj), "gate"):
                assert gate_id in gates and gate_id != obj["id"], (kind, obj["id"], gate_id)
                assert gates[gate_id]["status"] != "Archived"
            for seg_id in referenced_ids(_rules(obj), "segment"):
                assert seg_id in segments and seg_id != obj["id"], (kind, obj["id"], seg_id)
    experiments, layers = source.store("experiments"), source.store("layers")
    for exp in experiments.values():
        assert exp["targetingGateID"] is None or exp["targetingGateID"] in gates
        layer = layers[exp["layerID"]]
        params = {p["name"] for p in layer["parameters"]}
        assert all(set(g["parameterValues"]) <= params for g in exp["groups"])
    for exp_id, entry in source.overrides["experiments"].items():
        groups = {g["name"] for g in experiments[exp_id]["groups"]}
        for item in entry["overrides"]:
            assert item["id"] in (gates if item["type"] == "gate" else segments)
            assert item["groupID"] in groups
        assert all(u["groupID"] in groups for u in entry["userIDOverrides"])
    for layer_id, entry in source.overrides["layers"].items():
        assert layer_id in layers
        for item in entry["conditionalOverrides"] + entry["idOverrides"]:
            assert experiments[item["experimentName"]]["layerID"] == layer_id
    for holdout in source.store("holdouts").values():
        assert all(g in gates for g in holdout["gateIDs"])
        assert all(e in experiments for e in holdout["experimentIDs"])
        assert all(x in layers for x in holdout["layerIDs"])
    assert set(source.overrides["gates"]) <= set(gates)


def test_names_on_configs_exist(source: Project) -> None:
    """Tags, target apps and id types named on objects exist in the project."""
    tag_names = {t["name"] for t in source.store("tags").values()}
    apps = {a["name"] for a in source.store("target_apps").values()}
    id_types = {"userID", "stableID"} | set(source.store("unit_id_types"))
    for kind in ("gates", "dynamic_configs", "segments", "experiments", "layers", "holdouts"):
        for obj in source.store(kind).values():
            assert set(obj.get("tags") or []) <= tag_names, (kind, obj["id"])
            assert set(obj.get("targetApps") or []) <= apps, (kind, obj["id"])
            assert obj["idType"] in id_types, (kind, obj["id"])


def test_some_stale_gates_are_still_referenced(source: Project) -> None:
    """Archive jobs meet both kinds: stale gates still in use, and unused ones."""
    referrers = _gate_referrers(source)
    stale = [g for g in _live_gates(source).values() if g["type"] == "STALE"]
    used = [g for g in stale if g["id"] in referrers]
    assert len(used) >= 30
    assert len(stale) - len(used) >= 150
    assert any(r.startswith("dynamic_configs:") for g in used for r in referrers[g["id"]])
    assert any(r.startswith("experiments:") for g in used for r in referrers[g["id"]])


def test_stored_objects_have_the_api_response_shape(source: Project) -> None:
    """Each stored object validates against the spec's response schema for reading it."""
    spec = load_spec()
    if spec is None:
        pytest.skip("the Console API spec is not beside the project")
    one = "/console/v1"
    reads = {
        "gates": ("/gates/{id}", 200),
        "dynamic_configs": ("/dynamic_configs/{id}", 200),
        "segments": ("/segments/{id}", 200),
        "tags": ("/tags/{id}", 200),
        "experiments": ("/experiments/{id}", 200),
        "layers": ("/layers/{id}", 200),
        "holdouts": ("/holdouts/{id}", 200),
        "target_apps": ("/target_app/{id}", 200),
        "unit_id_types": ("/unit_id_types/{id}", 200),
    }
    override_reads = {
        "gates": ("/gates/{id}/overrides", 201),
        "experiments": ("/experiments/{id}/overrides", 200),
        "layers": ("/layers/{id}/overrides", 200),
        "holdouts": ("/holdouts/{id}/overrides", 200),
    }
    problems: list[str] = []

    def check(route: str, status: int, what: str, obj: Any) -> None:
        code, validator = spec.response_schema("GET", one + route, status)
        assert code == status and validator is not None, route
        errors = validator.iter_errors({"message": "Read successfully.", "data": obj})
        problems.extend(f"{what}: {error.message[:200]}" for error in errors)

    # Validation costs milliseconds per object: every 10th gate and config, with its
    # history, is checked here; the tour test reads all of them through the emulator,
    # whose exchanges the conformance check validates.
    for kind, (route, status) in reads.items():
        assert source.store(kind), kind
        step = 10 if kind in ("gates", "dynamic_configs") else 1
        for obj_id, obj in list(source.store(kind).items())[::step]:
            for old in source.versions.get(kind, {}).get(obj_id, [obj]):
                check(route, status, f"{kind}/{obj_id} v{old.get('version')}", old)
    for kind, (route, status) in override_reads.items():
        for obj_id, entry in source.overrides[kind].items():
            check(route, status, f"{kind}/{obj_id}/overrides", entry)
    assert not problems, "\n".join(problems[:20])


# -- over HTTP -------------------------------------------------------------------------------


@pytest.fixture(name="demo_url")
async def _demo_url(make_emulator) -> str:
    """The URL of an emulator serving the demo seed (exchanges checked against the spec)."""
    _, url = await make_emulator("demo", quotas_enabled=False)
    return url


@pytest.fixture(name="demo_client")
async def _demo_client(demo_url: str) -> Iterator[Callable[[str], ConsoleClient]]:
    """A factory of clients for the demo emulator, by key; all closed at teardown."""
    made: list[ConsoleClient] = []

    def make(key: str) -> ConsoleClient:
        client = ConsoleClient(Settings(api_key=SecretStr(key), base_url=demo_url))
        made.append(client)
        return client

    yield make
    for client in made:
        await client.aclose()


async def test_keys_open_their_projects(demo_client: Callable[[str], ConsoleClient]) -> None:
    """Each demo key opens its own project; the target starts without any gate."""
    for key, project_id in (
        (DEMO_SOURCE_KEY, DEMO_SOURCE_ID),
        (DEMO_SOURCE_READ_ONLY_KEY, DEMO_SOURCE_ID),
        (DEMO_AUDITOR_KEY, DEMO_SOURCE_ID),
        (DEMO_TARGET_KEY, DEMO_TARGET_ID),
        (DEMO_TARGET_READ_ONLY_KEY, DEMO_TARGET_ID),
    ):
        assert (await demo_client(key).project.get())["id"] == project_id
    target = demo_client(DEMO_TARGET_KEY)
    assert [g async for g in target.gates.list(include_archived=True)] == []
    source_envs = await demo_client(DEMO_SOURCE_KEY).environments.get()
    assert [e.name for e in await target.environments.get()] == [e.name for e in source_envs]


async def test_read_only_keys_read_but_never_write(
    demo_client: Callable[[str], ConsoleClient], source: Project
) -> None:
    """A read-only demo key reads the source but a write is refused with 403."""
    reader = demo_client(DEMO_SOURCE_READ_ONLY_KEY)
    gate_id = next(iter(_live_gates(source)))
    assert (await reader.gates.get(gate_id)).id == gate_id
    with pytest.raises(Forbidden):
        await reader.gates.disable(gate_id)
    with pytest.raises(Forbidden):
        await demo_client(DEMO_TARGET_READ_ONLY_KEY).tags.create("new", "a tag")
    with pytest.raises(Unauthorized):
        await demo_client("console-demo-nope").project.get()


async def test_referenced_stale_gates_show_their_referrers(
    demo_client: Callable[[str], ConsoleClient], source: Project
) -> None:
    """The reference endpoints name the gates and configs that keep stale gates in use."""
    client = demo_client(DEMO_SOURCE_READ_ONLY_KEY)
    referrers = _gate_referrers(source)
    stale = [g for g in _live_gates(source) if source.store("gates")[g]["type"] == "STALE"]
    used = [g for g in stale if any(not r.startswith("experiments:") for r in referrers.get(g, ()))]
    for gate_id in used[:3]:
        gates = {g.id async for g in client.gates.gate_references(gate_id)}
        configs = {c.id async for c in client.gates.dynamic_config_references(gate_id)}
        expected = {
            kind: {
                o["id"]
                for o in source.store(kind).values()
                if gate_id in referenced_ids(_rules(o), "gate")
            }
            for kind in ("gates", "dynamic_configs")
        }
        assert gates == expected["gates"] and configs == expected["dynamic_configs"]
        assert gates | configs


def _expected_lines(source: Project) -> list[str]:
    gates = list(source.store("gates").values())
    stale = sum(g["type"] == "STALE" for g in gates)
    return [
        f"Feature gates: {len(gates):,}",
        f"Stale gates by reason: {stale:,}",
        f"Dynamic configs: {len(source.store('dynamic_configs')):,}",
        f"Segments: {len(source.store('segments')):,}",
        f"Tags: {len(source.store('tags')):,}",
        f"Experiments: {len(source.store('experiments')):,}",
        f"of {len(source.audit_log):,} entries",
    ]


def _expected_rows(source: Project) -> list[str]:
    """Regular expressions for table rows holding the seed's real counts."""
    gates = list(source.store("gates").values())
    rows = []
    for status, n in Counter(g["status"] for g in gates).items():
        rows.append(rf"^\s*{status}\s.*\s{n:,}\s*$")  # the matrix's total column
    by_type = Counter(g["type"] for g in gates)
    counts = [f"{by_type[t]:,}" for t in GATE_TYPES] + [f"{len(gates):,}"]
    rows.append(r"^\s*all\s+" + r"\s+".join(counts) + r"\s*$")
    for reason, n in Counter(g["typeReason"] for g in gates if g["type"] == "STALE").items():
        label = reason.removeprefix("STALE_").replace("_", " ").lower()
        rows.append(rf"^\s*{label}\s+{n:,}\b")
    for status, n in Counter(c["status"] for c in source.store("dynamic_configs").values()).items():
        rows.append(rf"\b{status}\s+{n:,}\b")
    segments = source.store("segments").values()
    ids = sum(len(v) for v in source.id_lists.values())
    rows.append(rf"\bid_list\s+{sum(s['type'] == 'id_list' for s in segments)}\s+{ids:,}\s*$")
    rows.append(rf"\brule_based\s+{sum(s['type'] == 'rule_based' for s in segments)}\b")
    payments = sum("payments" in g["tags"] for g in gates)
    rows.append(rf"^\s*payments\s+{payments:,}\b")
    for status, n in Counter(e["status"] for e in source.store("experiments").values()).items():
        rows.append(rf"\b{status}\s.*\s{n:,}\s*$")
    newest = source.audit_log[-1]
    rows.append(rf"\s{newest['updatedBy']}\s+{newest['actionType']}\s+{newest['name']}\s*$")
    return rows


async def test_tour_prints_the_real_counts(
    demo_client: Callable[[str], ConsoleClient], source: Project
) -> None:
    """The tour reads the source over HTTP and prints its real counts, table by table."""
    out = io.StringIO()
    await tour(demo_client(DEMO_SOURCE_KEY), Console(file=out, width=160, color_system=None))
    text = out.getvalue()
    for line in _expected_lines(source):
        assert line in text, line
    for row in _expected_rows(source):
        assert re.search(row, text, re.MULTILINE), row


async def test_demo_runs_titled_steps_on_both_projects(tmp_path: Path) -> None:
    """The demo serves the seed from an emulator process and runs each step under its title,
    counting each step's requests from the emulator's log."""
    seen: list[tuple[str, str]] = []

    async def look(ctx: DemoContext) -> None:
        source, target = await ctx.source.project.get(), await ctx.target.project.get()
        seen.append((source["id"], target["id"]))
        ctx.console.print(f"looked at {source['id']} and {target['id']}")

    steps = [Step("Look around", "Two reads.", look), Step("Look again", "Two more.", look)]
    out = io.StringIO()
    result = await run_demo(
        Console(file=out, width=140, color_system=None), steps, workdir=tmp_path / "demo"
    )
    text = out.getvalue()
    assert result.ok and result.workdir == (tmp_path / "demo").resolve()
    assert seen == [(DEMO_SOURCE_ID, DEMO_TARGET_ID)] * 2
    assert DEMO_SOURCE_KEY in text and DEMO_TARGET_KEY in text
    assert "Step 1 of 2: Look around" in text and "Step 2 of 2: Look again" in text
    assert text.index("Look around") < text.index("Two reads.") < text.index("Look again")
    assert len(re.findall(r"2 reads, 0 writes, [\d.]+ s", text)) == 2
    assert "Demo finished" in text
    assert (result.workdir / "examples" / "rewrite.toml").is_file()


def test_demo_refuses_a_workdir_that_is_not_empty(tmp_path: Path) -> None:
    """The demo starts from scratch: a directory with files in it is refused."""
    (tmp_path / "archive.ckpt").write_text("x")
    with pytest.raises(UsageError, match="not empty"):
        prepare_workdir(tmp_path)


def test_census_totals() -> None:
    """A census adds its gate counts up by status and by type."""
    found = Census(project_id="p")
    found.gates["Launched", "STALE"] = 3
    found.gates["Launched", "PERMANENT"] = 2
    found.gates["Archived", "STALE"] = 1
    assert found.gate_count == 6
    assert found.gates_with(status="Launched") == 5
    assert found.gates_with(type="STALE") == 4
    assert found.gates_with(status="Archived", type="PERMANENT") == 0
