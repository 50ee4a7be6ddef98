"""bulkops refs: matching, classification, ignore rules and reports on a six-language tree."""

from __future__ import annotations

import itertools
import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from refs_support import OBJECTS, make_tree, write_snapshot

from bulkops.cli.main import main
from bulkops.refs import build_report, load_config, scan
from bulkops.refs.report import RefsReport, render_sarif


def _report(root: Path, *, use_git: bool = False, context: int = 0) -> RefsReport:
    found = scan([root], OBJECTS, [load_config(root)], context=context, use_git=use_git)
    return build_report(found)


def _refs(report: RefsReport) -> dict[str, set[tuple[str, int, str]]]:
    out: dict[str, set[tuple[str, int, str]]] = {}
    for refs in report.objects:
        for hit in refs.hits:
            path = report.scan.files[hit.file].split("/", 1)[1]
            out.setdefault(refs.object.id, set()).add((path, hit.line, hit.kind))
    return out


@pytest.fixture(name="tree")
def _tree(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """The tree, as ``repo`` relative to the working directory (paths read repo/…)."""
    make_tree(tmp_path / "repo")
    monkeypatch.chdir(tmp_path)
    return Path("repo")


EXPECTED = {
    "checkout_one_click": {
        ("android/Flags.kt", 3, "sdk_call"),
        ("app/checkout.py", 3, "constant"),
        ("app/checkout.py", 6, "sdk_call"),
        ("tests/test_checkout.py", 1, "test_override"),
        ("web/Checkout.tsx", 4, "sdk_call"),
        ("web/Checkout.tsx", 6, "identifier"),
    },
    "pay": {
        (".config/flags.yml", 2, "string"),
        ("gen/b.ts", 1, "sdk_call"),
        ("gen/keep.gen.ts", 1, "sdk_call"),  # re-included by a negation
        ("go/main.go", 4, "sdk_call"),
        ("ruby/app.rb", 2, "sdk_call"),
    },
    "pay_v2": {
        ("web/Checkout.tsx", 2, "constant"),
        ("web/Pay.tsx", 1, "identifier"),
        ("web/Pay.tsx", 2, "sdk_call"),
    },
    "old_banner": {("go/main.go", 6, "comment"), ("legacy/latin1.py", 2, "sdk_call")},
    "search_ranking": {("web/Checkout.tsx", 5, "sdk_call")},
    "button_color": {("android/Flags.kt", 2, "sdk_call")},
    "promo_layer": {("ios/Flags.swift", 1, "sdk_call"), ("ios/Flags.swift", 2, "sdk_call")},
}


def test_every_reference_is_found_with_its_kind_and_nothing_else(tree: Path):
    """Ids between quotes in six languages, constants' uses, aliases, a case variant and a
    regex alias are found; `pay` inside `payment`/`pay_v2_beta` is not; ignored folders,
    the binary and the symlink loop are left out."""
    report = _report(tree)
    assert _refs(report) == EXPECTED
    assert [o.object.id for o in report.not_found()] == ["unused_gate"]


def test_skipped_and_ignored_files_are_counted_never_silent(tree: Path):
    """The binary and the symlink are counted as skipped with their reasons; build/,
    gen/*.gen.ts (a nested .gitignore) and vendor/ (.bulkopsignore) as ignored."""
    report = _report(tree)
    skipped = {path.split("/", 1)[1]: why for path, why in report.scan.skipped}
    assert skipped == {"app/loop": "symlink (not followed)",
                       "assets/logo.bin": "binary (a NUL byte in the first 8 KiB)"}  # fmt: skip
    assert report.scan.ignored == 3
    files = {f.split("/", 1)[1] for f in report.scan.files}
    assert not files & {"build/out.js", "build/keep.js", "gen/a.gen.ts", "vendor/lib.js"}
    assert ".bulkops/coderefs.toml" not in files
    assert "skipped 2: 1 symlink (not followed), 1 binary" in report.summary()


@pytest.mark.skipif(shutil.which("git") is None, reason="git is not installed")
def test_a_git_checkout_is_listed_by_git_with_the_same_references(tree: Path):
    """In a checkout git lists the files (nested .gitignore and negations are git's own)
    and the references are the same as from the walk."""
    subprocess.run(["git", "init", "-q", str(tree)], check=True, capture_output=True)
    report = _report(tree, use_git=True)
    assert report.scan.methods == ["git"]
    assert _refs(report) == EXPECTED


def test_crlf_and_latin1_lines_are_read_on_bytes(tree: Path):
    """A CRLF file's line has no carriage return; a Latin-1 file is scanned, its line
    shown with its accents and the column counted in characters."""
    report = _report(tree, context=1)
    hits = {(report.scan.files[h.file].split("/", 1)[1], h.line): h for h in report.scan.hits}
    kotlin = hits[("android/Flags.kt", 3)]
    assert kotlin.text == 'fun on() = Statsig.checkGate("checkout_one_click")'
    assert kotlin.before == ('val exp = Statsig.getExperiment("button_color")',)
    latin = hits[("legacy/latin1.py", 2)]
    assert latin.text == 'statsig.check_gate(user, "old_banner")  # été'
    assert latin.column == 27 and latin.call == "check_gate"


def test_names_built_at_run_time_are_warned_about_and_tied_to_their_prefix(tree: Path):
    """`check_gate(user, f"checkout_{…}")` is a warning naming its fixed start, and the
    objects whose ids start so are marked as maybe in code; so is Ruby's `"promo_#{…}"`
    in a file that names no id at all."""
    report = _report(tree)
    warnings = [(report.scan.files[w.file], w.call, w.prefix, w.line) for w in report.scan.warnings]
    assert warnings == [("repo/app/checkout.py", "check_gate", "checkout_", 10),
                        ("repo/ruby/promo.rb", "check_gate", "promo_", 2)]  # fmt: skip
    maybe = {o.object.id for o in report.objects if o.maybe}
    assert maybe == {"checkout_one_click", "promo_layer"}


def test_clean_up_hints_follow_the_stale_reason():
    """Probably launched: checks become true; otherwise false; configs keep defaults."""
    hints = {o.id: o.hint for o in OBJECTS}
    assert hints["checkout_one_click"] == "true"
    assert hints["pay_v2"] == hints["unused_gate"] == "false"
    assert hints["search_ranking"] == "default values"


def test_cli_json_offline_from_a_snapshot(tree: Path, tmp_path: Path, capsys):
    """`bulkops refs PATH --snapshot FILE --json` needs no key and reports every live object."""
    snapshot = write_snapshot(tmp_path / "snap.json")
    code = main(["refs", str(tree), "--snapshot", str(snapshot), "--json", "--kind", "gates"])
    document = json.loads(capsys.readouterr().out)
    assert code == 0
    ids = [o["id"] for o in document["objects"]]
    assert ids == ["checkout_one_click", "pay", "pay_v2"]  # live gates in code
    assert document["not_found"] == [{"kind": "gates", "id": "unused_gate"}]
    assert {s["reason"] for s in document["skipped"]} == {
        "symlink (not followed)", "binary (a NUL byte in the first 8 KiB)"}  # fmt: skip


def test_cli_archived_exits_1_on_dead_checks_and_0_without(tree: Path, tmp_path: Path, capsys):
    """`--archived` lists code that still checks an archived object and exits 1; a tree
    without such checks exits 0."""
    snapshot = write_snapshot(tmp_path / "snap.json")
    assert main(["refs", str(tree), "--snapshot", str(snapshot), "--archived"]) == 1
    out = capsys.readouterr().out
    assert "gate old_banner" in out and "legacy/latin1.py:2:27" in out
    assert "1 archived objects are still referenced in code (2 references)" in out
    clean = tmp_path / "clean"
    clean.mkdir()
    (clean / "a.py").write_text('statsig.check_gate(user, "pay")\n')
    assert main(["refs", str(clean), "--snapshot", str(snapshot), "--archived"]) == 0


def test_cli_csv_writes_a_private_file(tree: Path, tmp_path: Path):
    """`-o FILE --csv`: one row per reference, the file created 0600."""
    snapshot = write_snapshot(tmp_path / "snap.json")
    out = tmp_path / "refs.csv"
    assert main(["refs", str(tree), "--snapshot", str(snapshot), "--csv", "-o", str(out)]) == 0
    rows = out.read_text().splitlines()
    assert rows[0] == "kind,id,file,line,column,hit,call,via,hint,text"
    assert len(rows) - 1 == sum(len(v) for k, v in EXPECTED.items() if k != "old_banner")
    assert out.stat().st_mode & 0o777 == 0o600


def test_a_bad_config_is_refused_naming_the_file_and_key(tree: Path, tmp_path: Path, capsys):
    """An unknown key in .bulkops/coderefs.toml exits 2 and names the file and the key."""
    (tree / ".bulkops" / "coderefs.toml").write_text("[match]\ndelimeters = '\"'\n")
    snapshot = write_snapshot(tmp_path / "snap.json")
    assert main(["refs", str(tree), "--snapshot", str(snapshot)]) == 2
    err = capsys.readouterr().err
    assert "coderefs.toml: unknown key 'delimeters' in [match]" in err


def test_whole_word_matching_finds_unquoted_ids(tmp_path: Path):
    """`whole_word = true` counts an id bounded by any non-name character (YAML keys)."""
    root = tmp_path / "r"
    (root / ".bulkops").mkdir(parents=True)
    (root / "a.yml").write_text("gate: pay\nother: pay_v2x\n")
    found = scan([root], OBJECTS, [load_config(root)])
    assert found.hits == []
    (root / ".bulkops" / "coderefs.toml").write_text("[match]\nwhole_word = true\n")
    found = scan([root], OBJECTS, [load_config(root)])
    assert [(h.name, h.line) for h in found.hits] == [("pay", 1)]


def test_parallel_workers_find_what_one_process_finds(tmp_path: Path):
    """Files matched in forked workers give the same hits as one process."""
    root = tmp_path / "many"
    for i in range(400):
        path = root / f"d{i % 7}" / f"f{i}.py"
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(f'x = {i}\nstatsig.check_gate(u, "{OBJECTS[i % 4].id}")\n')
    one = scan([root], OBJECTS, [load_config(root)], workers=1)
    two = scan([root], OBJECTS, [load_config(root)], workers=2)
    assert len(one.hits) == 400
    assert [(one.files[h.file], h.line) for h in one.hits] == [
        (two.files[h.file], h.line) for h in two.hits
    ]


REQUIRED_SARIF = {  # what the SARIF 2.1.0 schema requires of each object we write
    "log": ("version", "runs"),
    "run": ("tool",),
    "tool": ("driver",),
    "driver": ("name",),
    "result": ("message",),
    "rule": ("id",),
}


def test_sarif_has_the_structure_the_2_1_0_schema_requires(tree: Path):
    """SARIF output: version 2.1.0, a run with a named driver and its rules, results with
    a message, a rule id known to the driver and a location with a 1-based region.

    No well-kept PyPI package ships the SARIF JSON schema (sarif-om and sarif-tools do
    not), so the schema's required properties and types are checked explicitly."""
    report = _report(tree)
    log = json.loads(render_sarif(report, dead=True))
    for key in REQUIRED_SARIF["log"]:
        assert key in log
    assert log["version"] == "2.1.0" and len(log["runs"]) == 1
    run = log["runs"][0]
    driver = run["tool"]["driver"]
    assert driver["name"] == "bulkops"
    rules = {rule["id"] for rule in driver["rules"]}
    assert rules == {"reference", "dead-check", "dynamic-name"}
    assert run["columnKind"] in ("utf16CodeUnits", "unicodeCodePoints")
    levels = set()
    for result in run["results"]:
        assert isinstance(result["message"]["text"], str) and result["message"]["text"]
        assert result["ruleId"] in rules
        assert result["level"] in ("none", "note", "warning", "error")
        levels.add((result["ruleId"], result["level"]))
        [location] = result["locations"]
        physical = location["physicalLocation"]
        assert not physical["artifactLocation"]["uri"].startswith("/")
        region = physical["region"]
        assert region["startLine"] >= 1 and region["startColumn"] >= 1
        assert region.get("endColumn", region["startColumn"]) >= region["startColumn"]
    assert ("dead-check", "error") in levels and ("dynamic-name", "warning") in levels
    references = sum(len(v) for v in EXPECTED.values())
    assert sum(1 for r in run["results"] if r["ruleId"] != "dynamic-name") == references


def test_refs_offline_starts_without_the_http_client_pydantic_rich_or_emulator(
    tree: Path, tmp_path: Path
):
    """`bulkops refs --snapshot` imports none of aiohttp, pydantic, rich or the emulator
    (start-up is part of its speed); the command table imports commands lazily."""
    snapshot = write_snapshot(tmp_path / "snap.json")
    probe = (
        "import sys\n"
        "from bulkops.cli import main\n"
        f"code = main(['refs', {str(tree)!r}, '--snapshot', {str(snapshot)!r}, '--json', "
        f"'-o', {str(tmp_path / 'out.json')!r}])\n"
        "heavy = sorted(m for m in sys.modules if m.split('.')[0] in ('aiohttp', 'pydantic', "
        "'rich', 'structlog') or m.startswith(('bulkops.emulator', 'bulkops.engine')))\n"
        "print(code, heavy)\n"
    )
    done = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, check=True)
    assert done.stdout.strip() == "0 []", done.stdout + done.stderr


def test_several_paths_and_a_single_file_are_scanned_together(tree: Path):
    """Two directories and one file given at once: each one's references are reported."""
    roots = [tree / "go", tree / "ruby", tree / "web" / "Checkout.tsx"]
    found = scan(roots, OBJECTS, [load_config(r if r.is_dir() else r.parent) for r in roots])
    places = {(found.files[h.file], h.line) for h in found.hits}
    assert places == {("repo/go/main.go", 4), ("repo/go/main.go", 6), ("repo/ruby/app.rb", 2),
                      ("repo/web/Checkout.tsx", 2), ("repo/web/Checkout.tsx", 4),
                      ("repo/web/Checkout.tsx", 5)}  # fmt: skip


def test_a_long_minified_line_is_read_whole_and_a_fifo_is_counted(tmp_path: Path):
    """A 300 KB one-line bundle is scanned to its end (no line cap); a named pipe is
    skipped as not a regular file, counted, never opened (it would block)."""
    import os

    root = tmp_path / "dist"
    root.mkdir()
    (root / "bundle.min.js").write_text("var a=1;" * 40_000 + 'x=checkGate("pay_v2");\n')
    os.mkfifo(root / "pipe")
    found = scan([root], OBJECTS, [load_config(root)])
    [hit] = found.hits
    assert (hit.name, hit.line, hit.column, hit.kind) == ("pay_v2", 1, 320_014, "sdk_call")
    assert [(p.rsplit("/", 1)[-1], why) for p, why in found.skipped] == [
        ("pipe", "not a regular file")
    ]


def test_the_table_lists_objects_found_nowhere_one_per_line_up_to_show(tmp_path: Path, capsys):
    """The objects in code nowhere are what a clean-up is after: one per line, the first
    --show of them and how many more, so a project of thousands does not flood the screen."""
    snapshot = write_snapshot(tmp_path / "snap.json")
    empty = tmp_path / "empty"
    empty.mkdir()
    assert main(["refs", str(empty), "--snapshot", str(snapshot), "--show", "0"]) == 0
    whole = capsys.readouterr().out.splitlines()
    assert whole[0].startswith("not in code (")
    nowhere = list(itertools.takewhile(lambda line: line.startswith("  "), whole[1:]))
    assert "  gate unused_gate" in nowhere and "  gate pay" in nowhere
    assert whole[0] == f"not in code ({len(nowhere)}):"
    assert main(["refs", str(empty), "--snapshot", str(snapshot), "--show", "2"]) == 0
    bounded = capsys.readouterr().out.splitlines()
    assert bounded[1:4] == [
        *nowhere[:2],
        f"  … and {len(nowhere) - 2} more (--show 0 lists them all; --json names every one)",
    ]


def test_a_settings_file_or_snapshot_that_is_not_utf8_names_the_byte(
    tree: Path, tmp_path: Path, capsys
):
    """A Latin-1 byte in .bulkops/coderefs.toml or in the snapshot: exit 2 naming the file,
    the line and the byte offset, as every other file a user gives."""
    snapshot = write_snapshot(tmp_path / "snap.json")
    (tree / ".bulkops" / "coderefs.toml").write_bytes(b"[match]\n# caf\xe9\n")
    assert main(["refs", str(tree), "--snapshot", str(snapshot)]) == 2
    err = capsys.readouterr().err
    assert "coderefs.toml: line 2, column 6 (byte offset 13): byte 0xe9 is not UTF-8" in err
    (tree / ".bulkops" / "coderefs.toml").unlink()
    latin1 = tmp_path / "latin1.json"
    latin1.write_bytes(snapshot.read_bytes().replace(b"unused_gate", b"unused_g\xe9te", 1))
    assert main(["refs", str(tree), "--snapshot", str(latin1)]) == 2
    err = capsys.readouterr().err
    assert f"snapshot {latin1}: line " in err and "byte 0xe9 is not UTF-8" in err


def test_online_a_url_that_cannot_be_reached_is_exit_4_naming_it(
    tree: Path, capsys, monkeypatch: pytest.MonkeyPatch
):
    """Without --snapshot, refs reads the project first, as every command does: a URL
    where nothing listens is exit 4 naming the URL and the setting, not a failed read."""
    monkeypatch.setenv("STATSIG_CONSOLE_API_KEY", "console-refs0test0key")
    monkeypatch.setenv("STATSIG_API_URL", "http://127.0.0.1:1")
    assert main(["refs", str(tree)]) == 4
    err = capsys.readouterr().err
    assert "cannot reach the Console API at http://127.0.0.1:1/console/v1" in err
    assert "STATSIG_API_URL" in err
