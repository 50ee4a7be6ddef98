"""Code references: ``bulkops refs`` beside GNU grep and git grep on one generated tree.

``refs`` in ``bench/results.json``: a tree of 10,000 files and 1,000,000 lines (smaller
with ``--quick``) in six languages where each of 5,000 gate ids appears quoted (in SDK
calls, and beside decoys such as ``"<id>_v2"`` and ``<id>x`` that must not count), timed
in one run, warm cache, 5 rounds (3 quick) alternating the two, medians (of the times, the CPU
seconds and the per-round ratio): ``bulkops refs TREE --snapshot S`` (a fresh interpreter:
start-up included; its table to /dev/null) and ``grep -r -n -F -w -f ids.txt TREE`` (its
lines to /dev/null); then
``git grep -n -F -w -f ids.txt`` in a repository of the tree (once: it takes half a
minute to minutes). Also: bulkops finds exactly the lines grep finds, its peak RSS
(workers included), and its time on a tree referencing 500 ids when looking for those 500
and for 10,000 (flat: one automaton pass whatever the number of names).
"""

from __future__ import annotations

import json
import os
import random
import shutil
import statistics
import subprocess
import sys
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from .section import BenchConfig, Say, Section, Target

__all__ = ["SECTION", "generate_tree", "run", "targets"]

_WORDS = ("checkout payment search cart profile banner promo ranking signup billing invoice "
          "onboarding pricing sidebar widget feed inbox avatar upload export").split()  # fmt: skip
_FILLER = (
    "    result = compute_total(items, discount=ctx.discount, currency=order.currency)  # keep in sync",
    "    logger.info('processing request %s for user %s', request.id, user.id); counter += 1",
    "        for (const item of this.items) { total += item.price * item.quantity; seen.add(item.sku); }",
    '    if err != nil { return nil, fmt.Errorf("loading profile for %s: %w", userID, err) }',
    '    val response = client.fetch(endpoint, headers = mapOf("Accept" to "application/json"))',
    '    let cell = tableView.dequeueReusableCell(withIdentifier: "ProductCell", for: indexPath)',
    "    def render(self, template_name, context=None, status=200, content_type='text/html'):",
)
_EXTENSIONS = (".py", ".ts", ".go", ".kt", ".rb", ".swift")
# Peak RSS of a command and its descendants (the scan's forked workers), in KB.
_RSS = ("import resource, subprocess, sys\n"
        "subprocess.run(sys.argv[1:], stdout=subprocess.DEVNULL, check=True)\n"
        "print(resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss)\n")  # fmt: skip


def _ids(count: int, rng: random.Random) -> list[str]:
    return [f"{rng.choice(_WORDS)}_{rng.choice(_WORDS)}_{i:05d}" for i in range(count)]


def generate_tree(root: Path, files: int, lines: int, ids: Sequence[str], seed: int = 7) -> int:
    """Write the tree; returns how many lines reference an id (one in 40, quoted)."""
    rng = random.Random(seed)
    k = 0
    for f in range(files):
        directory = root / f"pkg{f % 100:03d}" / f"mod{(f // 100) % 10}"
        directory.mkdir(parents=True, exist_ok=True)
        out = []
        for j in range(lines):
            if rng.randrange(40):
                out.append(_FILLER[rng.randrange(len(_FILLER))])
                continue
            gid = ids[k % len(ids)]
            k += 1
            out.append((
                f'    if statsig.check_gate(user, "{gid}"):  # rollout of the {_WORDS[j % 20]} flow',
                f"    const enabled = useGateValue('{gid}') && flags.enabled && !user.isInternal;",
                f'    label = "{gid}_v2"  # a similar name: not a reference, {gid}x neither',
                f'    config := client.GetConfig(user, `{gid}`); title := config.GetString("t", "")',
            )[rng.randrange(4)])  # fmt: skip
        (directory / f"file{f:05d}{_EXTENSIONS[f % 6]}").write_text("\n".join(out) + "\n")
    return k


def _snapshot(path: Path, ids: Sequence[str]) -> None:
    gates = {i: {"id": i, "name": i, "status": "Launched", "type": "STALE",
                 "typeReason": "STALE_PROBABLY_LAUNCHED", "isEnabled": True, "rules": [],
                 "tags": [], "description": ""} for i in ids}  # fmt: skip
    document = {"format": "bulkops-snapshot/1", "project": {"id": "bench", "name": "bench"},
                "collections": {"gates": gates}}  # fmt: skip
    path.write_text(json.dumps(document))


def _once(argv: Sequence[str], cwd: Path) -> tuple[float, float]:
    """(wall seconds, CPU seconds of the command and its children) of one run."""
    probe = ("import resource, subprocess, sys, time\n"
             "t = time.perf_counter()\n"
             "subprocess.run(sys.argv[1:], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)\n"
             "wall = time.perf_counter() - t\n"
             "u = resource.getrusage(resource.RUSAGE_CHILDREN)\n"
             "print(wall, u.ru_utime + u.ru_stime)\n")  # fmt: skip
    done = subprocess.run([sys.executable, "-c", probe, *argv], cwd=cwd, capture_output=True,
                          text=True, check=True)  # fmt: skip
    wall, cpu = done.stdout.split()
    return float(wall), float(cpu)


def _paired(a: Sequence[str], b: Sequence[str], cwd: Path, rounds: int) -> dict[str, Any]:
    """``rounds`` rounds of ``a`` then ``b`` after a warm-up of each: the medians of their
    wall and CPU times and of the per-round wall ratio (each round's pair shares the
    machine's load of that moment, so the ratio is steadier than a ratio of medians)."""
    _once(a, cwd), _once(b, cwd)
    rows = [(*_once(a, cwd), *_once(b, cwd)) for _ in range(rounds)]
    return {
        "a_s": statistics.median(r[0] for r in rows),
        "a_cpu_s": statistics.median(r[1] for r in rows),
        "b_s": statistics.median(r[2] for r in rows),
        "b_cpu_s": statistics.median(r[3] for r in rows),
        "ratio": statistics.median(r[0] / r[2] for r in rows),
        "a_runs": [round(r[0], 3) for r in rows],
        "b_runs": [round(r[2], 3) for r in rows],
    }


def run(cfg: BenchConfig, tmp: Path, say: Say) -> dict[str, Any]:
    """Generate the tree, time the three scanners, compare lines, RSS and flatness."""
    files, lines, count = cfg.refs_files, 100, cfg.refs_ids
    rng = random.Random(1)
    ids = _ids(10_000, rng)
    root = tmp / "refs-tree"
    say(f"refs: generating {files:,} files of {lines} lines, {count:,} ids")
    shutil.rmtree(root, ignore_errors=True)
    hit_lines = generate_tree(root, files, lines, ids[:count])
    (tmp / "ids.txt").write_text("\n".join(ids[:count]) + "\n")
    for n in (500, count, 10_000):
        _snapshot(tmp / f"refs-{n}.json", ids[:n])
    bulkops = [sys.executable, "-m", "bulkops", "refs", "refs-tree"]
    # Timed as typed: the table on stdout (to /dev/null, as grep's lines are); the lines
    # found are compared from a --json run of the same command.
    mine = [*bulkops, "--snapshot", str(tmp / f"refs-{count}.json")]
    out: dict[str, Any] = {"files": files, "lines": files * lines, "ids": count,
                           "quoted_lines": hit_lines}  # fmt: skip
    say("refs: bulkops and grep -r -F -w, warm cache, in alternating rounds")
    grep = ["grep", "-r", "-n", "-F", "-w", "-f", "ids.txt", "refs-tree"]
    pair = _paired(mine, grep, tmp, cfg.refs_rounds)
    out.update(bulkops_s=round(pair["a_s"], 3), bulkops_cpu_s=round(pair["a_cpu_s"], 3),
               bulkops_runs=pair["a_runs"], grep_s=round(pair["b_s"], 3),
               grep_cpu_s=round(pair["b_cpu_s"], 3), grep_runs=pair["b_runs"],
               ratio_vs_grep=round(pair["ratio"], 2),
               cpu_ratio_vs_grep=round(pair["a_cpu_s"] / pair["b_cpu_s"], 2),
               loadavg=[round(x, 2) for x in os.getloadavg()])  # fmt: skip
    if shutil.which("git"):
        say("refs: git grep (a repository of the tree; it takes a while)")
        quiet = {"stdout": subprocess.DEVNULL, "stderr": subprocess.DEVNULL, "check": True}
        subprocess.run(["git", "init", "-q"], cwd=root, **quiet)  # type: ignore[call-overload]
        subprocess.run(["git", "add", "-A"], cwd=root, **quiet)  # type: ignore[call-overload]
        git = ["git", "grep", "-n", "-F", "-w", "-f", "../ids.txt"]
        out["git_grep_s"] = round(_once(git, root)[0], 2)
    as_json = [*mine, "--json", "-o", str(tmp / "refs.json")]
    subprocess.run(
        as_json, cwd=tmp, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, check=True
    )
    done = subprocess.run(grep, cwd=tmp, capture_output=True, check=False)
    grep_lines = {tuple(line.split(b":", 2)[:2]) for line in done.stdout.splitlines()}
    report = json.loads((tmp / "refs.json").read_text())
    found = {(r["file"].encode(), str(r["line"]).encode())
             for o in report["objects"] for r in o["references"]}  # fmt: skip
    out["grep_lines"], out["bulkops_lines"] = len(grep_lines), len(found)
    out["same_lines"] = grep_lines == found
    rss = subprocess.run([sys.executable, "-c", _RSS, *mine], cwd=tmp, capture_output=True,
                         text=True, check=True)  # fmt: skip
    out["peak_rss_mb"] = round(int(rss.stdout.strip()) / 1024, 1)
    shutil.rmtree(root, ignore_errors=True)
    # Flatness: a tree whose references are to 500 ids, scanned for those 500 and for
    # 10,000 ids (the same hits, 20 times the names).
    say("refs: the same tree scanned for 500 and for 10,000 ids")
    flat_root = tmp / "refs-flat"
    shutil.rmtree(flat_root, ignore_errors=True)
    generate_tree(flat_root, files, lines, ids[:500])
    few, many = ([sys.executable, "-m", "bulkops", "refs", "refs-flat", "--snapshot",
                  str(tmp / f"refs-{n}.json")] for n in (500, 10_000))  # fmt: skip
    flat = _paired(many, few, tmp, max(2, cfg.refs_rounds - 2))
    out["ids_500_s"], out["ids_10000_s"] = round(flat["b_s"], 3), round(flat["a_s"], 3)
    out["ratio_10000_vs_500_ids"] = round(flat["ratio"], 2)
    shutil.rmtree(flat_root, ignore_errors=True)
    return out


def targets(refs: Mapping[str, Any]) -> list[Target]:
    """Within 3× grep; the same lines as grep; ≤ 200 MB; flat from 500 to 10,000 ids."""
    return [
        Target("refs speed: bulkops / grep -r -F -w (start-up included)",
               refs["ratio_vs_grep"], "≤ 3", refs["ratio_vs_grep"] <= 3),
        Target("refs: lines found = grep's lines", f"{refs['bulkops_lines']:,} / {refs['grep_lines']:,}",
               "equal", bool(refs["same_lines"])),
        Target("refs: peak RSS (MB)", refs["peak_rss_mb"], "≤ 200", refs["peak_rss_mb"] <= 200),
        Target("refs speed: 10,000 ids / 500 ids", refs["ratio_10000_vs_500_ids"], "≤ 1.25",
               refs["ratio_10000_vs_500_ids"] <= 1.25),
    ]  # fmt: skip


SECTION = Section("refs", run, targets)
