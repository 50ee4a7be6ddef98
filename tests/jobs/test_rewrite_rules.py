"""rewrite-rules against the demo project: one write per changed object, resume, undo, validation.

In-process tests run the job and the engine against an emulator whose exchanges are
checked against the spec; command-line tests run ``bulkops`` in forked processes and
read the emulator's request log, the ground truth of what was sent.
"""

from __future__ import annotations

import copy
import json
import os
import signal
import time
import urllib.request
from collections.abc import Awaitable, Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from jobs_support import cli_env, job_context, run_mutations, writes
from pydantic import SecretStr

from bulkops.api.client import ConsoleClient
from bulkops.emulator import EmulatorState
from bulkops.emulator.demo import DEMO_SOURCE_ID, DEMO_SOURCE_KEY
from bulkops.engine.mutations import JobContext, Mutation
from bulkops.engine.reconcile import Match, judge, undo_mutations
from bulkops.jobs import JOBS, check_job_module, rewrite_rules
from bulkops.jobs.rewrite_rules.diff import rule_rows
from bulkops.jobs.rewrite_rules.language import RuleChange, load_rewrite_file
from bulkops.settings import Settings
from bulkops.testing import (
    Emulator,
    applied_counts,
    fork_cli,
    run_cli,
    serve_forked,
    wait_cli,
)

EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "rewrite.toml"
V1 = "/console/v1"
WRITES = ("POST", "PUT", "PATCH", "DELETE")
KINDS = ("gates", "dynamic_configs")
# Fields every write stamps, and rule fields the server owns or fills in.
STAMPED = {"version", "lastModifiedTime", "lastModifierName", "lastModifierID", "lastModifierEmail"}
SERVER_RULE_DEFAULTS = ("completedAutomatedRollouts", "pendingAutomatedRollouts")


def _get(emulator: Emulator, path: str) -> Any:
    request = urllib.request.Request(
        emulator.url + path, headers={"STATSIG-API-KEY": DEMO_SOURCE_KEY}
    )
    with urllib.request.urlopen(request, timeout=10) as response:
        return json.loads(response.read())["data"]


def _originals(state: EmulatorState) -> dict[tuple[str, str], dict[str, Any]]:
    """The live ``checkout_*`` objects tagged ``payments``: what the README example selects."""
    project = state.projects[DEMO_SOURCE_ID]
    return {
        (kind, obj_id): obj
        for kind in KINDS
        for obj_id, obj in project.store(kind).items()
        if obj_id.startswith("checkout_")
        and "payments" in obj.get("tags", [])
        and obj.get("status") != "Archived"
    }


def _plain(rule: dict[str, Any], *drop: str) -> dict[str, Any]:
    """A rule without the given keys and without server-filled empty rollout lists."""
    return {
        k: v
        for k, v in rule.items()
        if k not in drop and not (k in SERVER_RULE_DEFAULTS and v == [])
    }


def _check_rewritten(original: dict[str, Any], now: dict[str, Any], kind: str) -> None:
    """``now`` is ``original`` rewritten by the README example and nothing else."""
    assert {k: v for k, v in now.items() if k not in STAMPED | {"rules"}} == {
        k: v for k, v in original.items() if k not in STAMPED | {"rules"}
    }
    expected = load_rewrite_file(EXAMPLE).apply(kind, original)
    assert [_plain(r, "id") for r in now["rules"]] == [_plain(r, "id") for r in expected]
    old = {r["baseID"]: r for r in original["rules"]}
    for rule in now["rules"]:
        assert rule["baseID"] in old  # rule ids kept: no rule was recreated
        if rule["passPercentage"] == old[rule["baseID"]]["passPercentage"]:
            assert rule["id"] == old[rule["baseID"]]["id"]
    # What the example does, said plainly.
    names = [r["name"] for r in now["rules"]]
    assert not any(n.startswith("Temp") for n in names) and "Old name" not in names
    if kind == "gates":
        assert ("New name" in names) == any(r["name"] == "Old name" for r in original["rules"])
    else:
        # The configs' "Old name" rules target only u_123 and u_456: with both removed
        # they match no one, so remove-values dropped them before the rename.
        assert "New name" not in names
    for rule in now["rules"]:
        assert rule["environments"] == ["production", "staging"]
        if rule["name"].startswith("Rollout"):
            assert rule["passPercentage"] == 100
        for cond in rule["conditions"]:
            assert cond.get("targetValue") != "beta_testers"
            if cond["type"] == "email":
                assert "@newco.com" in cond["targetValue"]
            if cond["type"] == "user_id":
                assert not {"u_123", "u_456"} & set(cond["targetValue"])
        if kind == "dynamic_configs":
            assert rule["returnValue"]["theme"] == "dark"
            assert json.loads(rule["returnValueJson5"]) == rule["returnValue"]
        else:
            assert "returnValue" not in rule


def _check_restored(original: dict[str, Any], now: dict[str, Any], rewritten: set[str]) -> None:
    """``now`` holds ``original``'s rules exactly, but for the ids the server owns.

    A rule the rewrite dropped comes back with a new ``baseID``; a rule whose pass
    percentage went there and back keeps its ``baseID`` with a new ``id`` suffix.
    """
    assert [_plain(r, "id", "baseID") for r in now["rules"]] == [
        _plain(r, "id", "baseID") for r in original["rules"]
    ]
    for old, new in zip(original["rules"], now["rules"], strict=True):
        if old["baseID"] in rewritten:
            assert new["baseID"] == old["baseID"]
        else:
            assert new["baseID"] != old["baseID"]  # it was dropped, then recreated
    assert {k: v for k, v in now.items() if k not in STAMPED | {"rules"}} == {
        k: v for k, v in original.items() if k not in STAMPED | {"rules"}
    }


# -- in process: the job and the engine, exchanges checked against the spec -------------


async def _plan(ctx: JobContext, **params: Any) -> list[Mutation]:
    return [m async for m in rewrite_rules.plan(ctx, rewrite_rules.Params(**params))]


def test_rewrite_rules_is_registered() -> None:
    """The registry knows the job under its command-line name, with the job contract."""
    assert JOBS["rewrite-rules"] is rewrite_rules
    check_job_module(rewrite_rules)


async def test_readme_example_rewrites_undoes_and_replans_to_nothing(
    make_emulator: Callable[..., Awaitable[tuple[EmulatorState, str]]], tmp_path: Path
) -> None:
    """One PATCH per selected object shows every change and keeps the rest; undo restores."""
    state, url = await make_emulator("demo")
    originals = copy.deepcopy(_originals(state))
    async with ConsoleClient(Settings(api_key=SecretStr(DEMO_SOURCE_KEY), base_url=url)) as client:
        ctx = job_context(client, DEMO_SOURCE_ID)
        mutations = await _plan(ctx, file=EXAMPLE)
        assert sorted(m.object for m in mutations) == sorted(
            f"{'gate' if kind == 'gates' else 'dynamic_config'}/{obj_id}"
            for kind, obj_id in originals
        )
        assert len(mutations) == 36  # 24 checkout gates and 12 checkout configs
        for m in mutations:
            assert (m.method, m.path, m.read) == ("PATCH", m.read, m.read)
            assert list(m.body) == ["rules"] and not m.idempotent
            assert all("id" not in r and r["baseID"] for r in m.body["rules"])
            before_read = {"rules": m.before_image["rules"]}
            assert judge(m, before_read) is Match.BEFORE
        _, result = await run_mutations(client, mutations, tmp_path / "ck")
        assert result.sent == 36
        for (kind, obj_id), original in originals.items():
            _check_rewritten(original, await client.data("GET", f"/{kind}/{obj_id}"), kind)
        assert await _plan(ctx, file=EXAMPLE) == []

        undone, not_undoable = undo_mutations(mutations, result.states)
        assert not not_undoable and len(undone) == 36
        await run_mutations(client, undone, tmp_path / "ck.undo")
        spec = load_rewrite_file(EXAMPLE)
        for (kind, obj_id), original in originals.items():
            kept = {r["baseID"] for r in spec.apply(kind, original)}
            _check_restored(original, await client.data("GET", f"/{kind}/{obj_id}"), kept)


async def test_a_change_that_only_removes_keys_is_told_apart(
    client: ConsoleClient, tmp_path: Path
) -> None:
    """Dropping a return-value key: the read before matches only before, after only after."""
    await client.call(
        "POST",
        "/dynamic_configs",
        {
            "name": "shape_config",
            "rules": [
                {
                    "name": "Everyone",
                    "passPercentage": 100,
                    "conditions": [{"type": "public"}],
                    "returnValue": {"a": 1, "b": 2},
                }
            ],
        },
    )
    hook = tmp_path / "hook.py"
    hook.write_text(
        "def drop_b(rule, obj):\n    rule['returnValue'].pop('b', None)\n    return rule\n"
    )
    ctx = job_context(client, "empty")
    [mutation] = await _plan(ctx, python=f"{hook}:drop_b", kind=["dynamic_configs"])
    read_before = await client.data("GET", "/dynamic_configs/shape_config")
    assert judge(mutation, read_before) is Match.BEFORE
    await run_mutations(client, [mutation], tmp_path / "ck")
    read_after = await client.data("GET", "/dynamic_configs/shape_config")
    assert read_after["rules"][0]["returnValue"] == {"a": 1}
    assert judge(mutation, read_after) is Match.AFTER
    assert not mutation.before.matches(read_after) and not mutation.after.matches(read_before)
    assert await _plan(ctx, python=f"{hook}:drop_b", kind=["dynamic_configs"]) == []


async def test_a_tag_the_project_does_not_have_is_named_in_the_plan(
    client: ConsoleClient, tmp_path: Path
) -> None:
    """A rewrite selected by a tag nobody has changes nothing, and the plan says why."""
    hook = tmp_path / "hook.py"
    hook.write_text("def same(rule, obj):\n    return rule\n")
    ctx = job_context(client, "empty")
    assert await _plan(ctx, python=f"{hook}:same", tag=["paymnets"]) == []
    assert ctx.notes == [
        "tag 'paymnets': project empty has no such tag, so nothing carries it (its tags: none)"
    ]


async def test_the_diff_is_rule_by_rule(make_client: Callable[..., ConsoleClient]) -> None:
    """diff() names each rule and what changes in it; the undo shows the same rows reversed."""
    pairs = [
        RuleChange(
            {
                "name": "Old name",
                "passPercentage": 10.0,
                "conditions": [{"type": "passes_segment", "targetValue": "beta_testers"}],
                "environments": None,
            },
            {
                "name": "New name",
                "passPercentage": 100,
                "conditions": [{"type": "passes_segment", "targetValue": "beta_testers_v2"}],
                "environments": ["production"],
            },
        ),
        RuleChange(
            {"name": "Temp x", "passPercentage": 5.0, "conditions": [{"type": "public"}]},
            None,
        ),
        RuleChange(
            {
                "name": "QA",
                "conditions": [{"type": "user_id", "operator": "any", "targetValue": ["u"]}],
            },
            None,
            'rewrite[3] (op = "remove-values") left its user_id condition matching no one',
        ),
    ]
    rows = rule_rows(pairs)
    assert rows == [
        ('rule "Old name": name', "Old name", "New name"),
        ('rule "Old name": passPercentage', "10", "100"),
        ('rule "Old name": environments', "all", "[production]"),
        ('rule "Old name": condition 1 (passes_segment)', "beta_testers", "beta_testers_v2"),
        ('rule "Temp x"', "5% of public", "dropped"),
        (
            'rule "QA"',
            "100% of user_id any [u]",
            'dropped (rewrite[3] (op = "remove-values") left its user_id condition matching no one)',
        ),
    ]
    client = make_client()
    mutation = rewrite_rules._mutation(
        job_context(client, "empty"), "gates", {"id": "g", "rules": [p[0] for p in pairs]}, pairs
    )
    assert mutation.diff() == rows
    assert mutation.reverse()[0].diff() == [(w, a, b) for w, b, a in rows]


# -- the command line, against a forked emulator ------------------------------------------


def test_readme_example_from_the_command_line(
    demo_state: EmulatorState, emulator: Emulator, tmp_path: Path
) -> None:
    """Dry run sends nothing; apply sends one PATCH per object; re-plan is empty; undo restores."""
    env = cli_env(emulator, tmp_path)
    originals = _originals(demo_state)
    argv = ["run", "rewrite-rules", "--file", str(EXAMPLE), "--show", "100"]
    dry = run_cli(argv, env, tmp_path, "dry")
    assert dry.code == 0, dry.stderr()
    out = dry.stdout()
    assert writes(emulator) == [] and "Dry run: nothing was sent" in out
    assert "36 API mutations on 36 objects" in out
    assert 'rule "Old name": name: Old name → New name' in out
    assert 'rule "Temp allowlist": 100% of user_id any [u_123, u_456] → dropped' in out
    assert "condition 1 (passes_segment): beta_testers → beta_testers_v2" in out
    assert "returnValue.theme: (unset) → dark" in out

    ck = tmp_path / "ck"
    apply = [*argv, "--apply", "--yes", "--checkpoint", str(ck), "--time-scale", "60"]
    run = run_cli(apply, env, tmp_path, "apply")
    assert run.code == 0, run.stderr()
    sent = writes(emulator)
    assert sorted((e["method"], e["path"]) for e in sent) == sorted(
        ("PATCH", f"{V1}/{kind}/{obj_id}") for kind, obj_id in originals
    )
    assert all(e["applied"] for e in sent)
    for (kind, obj_id), original in originals.items():
        _check_rewritten(original, _get(emulator, f"/{kind}/{obj_id}"), kind)

    replan = run_cli(argv, env, tmp_path, "replan")
    assert replan.code == 0 and "0 API mutations on 0 objects" in replan.stdout()
    assert len(writes(emulator)) == 36

    undo = run_cli(["undo", str(ck), "--apply", "--yes", "--time-scale", "60"], env, tmp_path, "u")
    assert undo.code == 0, undo.stderr()
    assert len(writes(emulator)) == 72
    spec = load_rewrite_file(EXAMPLE)
    for (kind, obj_id), original in originals.items():
        kept = {r["baseID"] for r in spec.apply(kind, original)}
        _check_restored(original, _get(emulator, f"/{kind}/{obj_id}"), kept)


def test_only_changed_objects_are_written(
    demo_state: EmulatorState, emulator: Emulator, tmp_path: Path
) -> None:
    """A rewrite that changes a few objects writes those once each and nothing else."""
    having = sorted(
        gate_id
        for (kind, gate_id), gate in _originals(demo_state).items()
        if kind == "gates" and any(r["name"] == "Beta testers EU" for r in gate["rules"])
    )
    assert 0 < len(having) < 24
    rewrite = tmp_path / "drop_eu.toml"
    rewrite.write_text(
        '[select]\nkinds = ["gates"]\nids = ["checkout_*"]\n\n'
        '[[rewrite]]\nop = "drop-rule"\nrule = "Beta testers EU"\n'
    )
    env = cli_env(emulator, tmp_path)
    argv = [
        "run",
        "rewrite-rules",
        "--file",
        str(rewrite),
        "--apply",
        "--yes",
        "--time-scale",
        "60",
    ]
    run = run_cli(argv, env, tmp_path, "apply")
    assert run.code == 0, run.stderr()
    assert f"{len(having)} API mutations on {len(having)} objects" in run.stdout()
    assert sorted(e["path"] for e in writes(emulator)) == [f"{V1}/gates/{g}" for g in having]
    for gate_id in having:
        rules = _get(emulator, f"/gates/{gate_id}")["rules"]
        assert [r["name"] for r in rules] == [
            r["name"]
            for r in demo_state.projects[DEMO_SOURCE_ID].store("gates")[gate_id]["rules"]
            if r["name"] != "Beta testers EU"
        ]


def test_python_hatch_one_write_per_changed_object(
    demo_state: EmulatorState, emulator: Emulator, tmp_path: Path
) -> None:
    """--python FILE:function rewrites rule by rule, with one write per changed gate."""
    hook = tmp_path / "hook.py"
    hook.write_text(
        "def halve(rule, obj):\n"
        "    assert obj['id'].startswith('checkout_')\n"
        "    if rule['name'] == 'Temp allowlist':\n"
        "        return None\n"
        "    if rule['name'].startswith('Rollout') and rule['passPercentage'] > 50:\n"
        "        rule['passPercentage'] = 50\n"
        "    return rule\n"
    )
    gates = {
        gate_id: gate for (kind, gate_id), gate in _originals(demo_state).items() if kind == "gates"
    }
    changed = sorted(
        gate_id
        for gate_id, gate in gates.items()
        if any(
            r["name"] == "Temp allowlist"
            or (r["name"].startswith("Rollout") and r["passPercentage"] > 50)
            for r in gate["rules"]
        )
    )
    assert 0 < len(changed) < len(gates)
    env = cli_env(emulator, tmp_path)
    argv = [
        "run", "rewrite-rules", "--python", f"{hook}:halve", "--kind", "gates", "--tag",
        "payments", "--id", "checkout_*",
    ]  # fmt: skip
    run = run_cli([*argv, "--apply", "--yes", "--time-scale", "60"], env, tmp_path, "apply")
    assert run.code == 0, run.stderr()
    assert sorted(e["path"] for e in writes(emulator)) == [f"{V1}/gates/{g}" for g in changed]
    for gate_id in changed:
        rules = _get(emulator, f"/gates/{gate_id}")["rules"]
        assert "Temp allowlist" not in [r["name"] for r in rules]
        assert all(r["passPercentage"] <= 50 for r in rules if r["name"].startswith("Rollout"))
    replan = run_cli(argv, env, tmp_path, "replan")
    assert replan.code == 0 and "0 API mutations on 0 objects" in replan.stdout()


def test_kill_9_during_a_rewrite_then_resume_rewrites_each_object_once(
    demo_state: EmulatorState, tmp_path: Path
) -> None:
    """A crash between send and record, then a SIGKILL mid-run: every object written once."""
    originals = _originals(demo_state)
    ck = tmp_path / "ck"
    quota = ["20/10s"]
    with serve_forked(
        demo_state, tmp_path / "requests.log", time_scale=10, quota=quota
    ) as emulator:
        env = cli_env(emulator, tmp_path)
        argv = [
            "run", "rewrite-rules", "--file", str(EXAMPLE), "--apply", "--yes",
            "--checkpoint", str(ck), "--quota", quota[0], "--time-scale", "10",
        ]  # fmt: skip
        crash = run_cli(argv, {**env, "BULKOPS_FAILPOINT": "after-send:4"}, tmp_path, "crash")
        assert crash.code == 137, crash.stderr()
        assert len(writes(emulator)) == 4  # the 4th was applied, and not recorded

        resumed = fork_cli(["resume", str(ck)], env, tmp_path, "resume")
        deadline = time.monotonic() + 20
        while len(writes(emulator)) < 12 and time.monotonic() < deadline:
            time.sleep(0.01)
        os.kill(resumed.pid, signal.SIGKILL)
        assert wait_cli(resumed) == 128 + signal.SIGKILL
        assert 12 <= len(writes(emulator)) < 36

        for attempt in range(3):
            run = run_cli(["resume", str(ck)], env, tmp_path, f"finish{attempt}")
            if run.code == 0:
                break
        assert run.code == 0, run.stdout()[-2000:]
        entries = emulator.log()
        counts = applied_counts(entries)
        assert counts == {("PATCH", f"{V1}/{kind}/{obj_id}"): 1 for kind, obj_id in originals}
        assert [e for e in entries if e["method"] in WRITES and not e["applied"]] == []
        assert [e for e in entries if e.get("fault") == "quota"] == []
        for (kind, obj_id), original in originals.items():
            _check_rewritten(original, _get(emulator, f"/{kind}/{obj_id}"), kind)


# -- validation: exit 2, nothing sent ----------------------------------------------------------


@pytest.fixture(scope="module", name="shared")
def _shared(
    demo_state: EmulatorState, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Emulator]:
    """One emulator for the validation cases (none of them may write)."""
    with serve_forked(demo_state, tmp_path_factory.mktemp("shared") / "requests.log") as emulator:
        yield emulator


_FIRST = '[[rewrite]]\nop = "drop-rule"\nrule = "No such rule"\n\n'


@pytest.mark.parametrize(
    ("case", "text", "message", "reads"),
    [
        (
            "unknown-op",
            _FIRST + '[[rewrite]]\nop = "rename-rules"\nrule = "a"\nto = "b"\n',
            "rewrite[2]: unknown op 'rename-rules'",
            False,
        ),
        (
            "unknown-field",
            _FIRST + '[[rewrite]]\nop = "set-pass-percentage"\nrule = "*"\npercent = 5\n',
            "rewrite[2] (op = \"set-pass-percentage\"): unknown field 'percent'",
            False,
        ),
        (
            "percentage-over-100",
            _FIRST + '[[rewrite]]\nop = "set-pass-percentage"\nvalue = 100.5\n',
            'rewrite[2] (op = "set-pass-percentage"): value: value 100.5 is outside 0–100',
            False,
        ),
        (
            "percentage-below-0",
            _FIRST + '[[rewrite]]\nop = "set-pass-percentage"\nvalue = -1\n',
            "value -1 is outside 0–100",
            False,
        ),
        (
            "percentage-step",
            _FIRST + '[[rewrite]]\nop = "set-pass-percentage"\nvalue = 12.345\n',
            'rewrite[2] (op = "set-pass-percentage"): value: value 12.345 is not a multiple of 0.01',
            False,
        ),
        (
            "return-value-on-gates",
            '[select]\nkinds = ["gates"]\n\n'
            + _FIRST
            + '[[rewrite]]\nop = "set-return-value"\nmerge = { theme = "dark" }\n',
            'rewrite[2] (op = "set-return-value"): return values exist on dynamic configs only',
            False,
        ),
        (
            "missing-segment",
            _FIRST
            + '[[rewrite]]\nop = "replace-reference"\nkind = "segment"\n'
            + 'from = "beta_testers"\nto = "beta_testers_v3"\n',
            "rewrite[2] (op = \"replace-reference\"): to: segment 'beta_testers_v3' does not "
            "exist in project",
            True,
        ),
        (
            "missing-gate",
            _FIRST
            + '[[rewrite]]\nop = "replace-reference"\nkind = "gate"\n'
            + 'from = "checkout_paypal"\nto = "checkout_venmo"\n',
            "rewrite[2] (op = \"replace-reference\"): to: gate 'checkout_venmo' does not exist",
            True,
        ),
        (
            "rename-duplicates",
            '[select]\nids = ["checkout_one_click"]\n\n'
            + _FIRST
            + '[[rewrite]]\nop = "rename-rule"\nrule = "Old name"\nto = "Temp allowlist"\n',
            "gate/checkout_one_click: rewrite[2] (op = \"rename-rule\"): renaming 'Old name' to "
            "'Temp allowlist' would give checkout_one_click two rules named 'Temp allowlist'",
            True,
        ),
    ],
)
def test_a_bad_rewrite_exits_2_and_sends_nothing(
    shared: Emulator, tmp_path: Path, case: str, text: str, message: str, reads: bool
) -> None:
    """Each validation error names the operation's position; no write (file errors: no request)."""
    path = tmp_path / f"{case}.toml"
    path.write_text(text)
    before = len(shared.log())
    argv = ["run", "rewrite-rules", "--file", str(path), "--apply", "--yes"]
    run = run_cli(argv, cli_env(shared, tmp_path), tmp_path, case)
    assert run.code == 2, run.stderr()
    assert message in run.stderr()
    assert "FAILED" in run.stderr()
    sent = shared.log()[before:]
    assert [e for e in sent if e["method"] in WRITES] == []
    if not reads:
        assert sent == []


@pytest.mark.parametrize(
    ("case", "args", "message"),
    [
        ("neither", [], "give exactly one of --file and --python"),
        ("both", ["--file", str(EXAMPLE), "--python", "x.py:f"], "exactly one of"),
        ("select-with-file", ["--file", str(EXAMPLE), "--tag", "payments"], "go with --python"),
        ("no-function", ["--python", "{hook}:nope"], "has no function 'nope'"),
        ("raises", ["--python", "{hook}:boom", "--id", "checkout_*"], "ZeroDivisionError"),
        ("not-a-rule", ["--python", "{hook}:number", "--id", "checkout_*"], "returned int"),
        ("duplicates", ["--python", "{hook}:same", "--id", "checkout_*"], "two rules named 'x'"),
        ("percentage", ["--python", "{hook}:over", "--id", "checkout_*"], "passPercentage 101"),
        (
            "missing-segment",
            ["--python", "{hook}:ghost", "--id", "checkout_*"],
            "would reference segment 'ghost_segment', which does not exist",
        ),
    ],
)
def test_bad_options_and_python_hooks_exit_2_and_write_nothing(
    shared: Emulator, tmp_path: Path, case: str, args: list[str], message: str
) -> None:
    """Option mistakes and failing or wrong --python functions stop the run before any write."""
    hook = tmp_path / "hook.py"
    hook.write_text(
        "def boom(rule, obj):\n    return 1 / 0\n\n"
        "def number(rule, obj):\n    return 7\n\n"
        "def same(rule, obj):\n    return {**rule, 'name': 'x'}\n\n"
        "def over(rule, obj):\n    return {**rule, 'passPercentage': 101}\n\n"
        "def ghost(rule, obj):\n"
        "    return {**rule, 'conditions': [{'type': 'fails_segment', 'targetValue': 'ghost_segment'}]}\n"
    )
    before = len(shared.log())
    argv = ["run", "rewrite-rules", *(a.format(hook=hook) for a in args), "--apply", "--yes"]
    run = run_cli(argv, cli_env(shared, tmp_path), tmp_path, case)
    assert run.code == 2, run.stderr()
    assert message in run.stderr()
    assert [e for e in shared.log()[before:] if e["method"] in WRITES] == []
