"""The demo's steps, in order (:data:`STEPS`), and its closing table.

Each :class:`~bulkops.cli.demo.stage.Step` runs the real command line against the
emulator as a user would and checks its outcome against the emulator's request log:
the census of the source project, a plan, an apply killed with SIGKILL halfway and
resumed (the gates that require review open reviews), status, the reviews approved
and committed, a rule rewrite, an override import (and a bad file refused), a project
copy with its verification, an undo, and the closing table (:func:`summary_table`)
built from the checkpoints and the request log.
"""

from __future__ import annotations

import asyncio
import io
import json
import re
import signal
import time
import tomllib
from collections import Counter
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from rich import box
from rich.console import Console
from rich.markup import escape
from rich.table import Table

from ...api.client import ConsoleClient
from ...api.paths import API_PREFIX, WRITE_METHODS
from ...engine.plans import read_plan
from ..census import tour
from ..commands import status
from ..output import Ui
from .stage import (
    EXAMPLES,
    SOURCE_KEY_ENV,
    TARGET_KEY_ENV,
    CliRun,
    DemoContext,
    DemoFailed,
    Step,
    Tally,
    bulkops,
    exit_text,
    prompt,
    reap,
    show_output,
    spawn,
)

__all__ = ["STEPS", "checkpoint_status", "summary_table"]

_POLL = 0.01  # seconds between looks at a growing checkpoint
_INTENT = b'"t":"intent"'
_OUTCOME = b'"t":"outcome"'


_COMMIT = re.compile(r"/(?P<kind>[a-z_]+)/(?P<id>[^/]+)/reviews/(?P<review>[^/]+)/commit$")
_ARCHIVE = re.compile(r"/gates/(?P<id>[^/]+)/archive$")


async def _pending_reviews(ctx: DemoContext, project: str) -> list[dict[str, Any]]:
    """The reviews of ``project`` waiting for a person, from the emulator's admin surface."""
    root = ctx.base_url.removesuffix(API_PREFIX)
    found = await ctx.source.data("GET", f"{root}/_emulator/reviews?status=pending")
    return [r for r in found or [] if r.get("project") == project]


async def _approve(ctx: DemoContext, reviews: Sequence[dict[str, Any]], reason: str) -> None:
    """Approve ``reviews``, as a reviewer does in the console (here: the emulator's
    admin surface, which stands in for the console)."""
    root = ctx.base_url.removesuffix(API_PREFIX)
    for review in reviews:
        await ctx.source.call(
            "POST", f"{root}/_emulator/reviews/{review['review_id']}/approve", {"reason": reason}
        )
        ctx.say(
            f"  [green]approved[/green] review {escape(str(review['review_id']))} "
            f"({escape(str(review['kind']))}/{escape(str(review['object_id']))})"
        )


async def _tour_source(ctx: DemoContext) -> None:
    await tour(ctx.source, ctx.console)


def _count(pattern: str, text: str) -> int | None:
    found = re.search(pattern, text)
    return int(found.group(1).replace(",", "")) if found else None


async def _plan_archive(ctx: DemoContext) -> None:
    run = await bulkops(
        ctx, "plan", "archive-gates", "--stale", "--time-scale", ctx.scale, "-o", "archive.plan"
    )
    planned = len(read_plan(ctx.workdir / "archive.plan").mutations)
    blocked = _count(r"([\d,]+) blocked by references", run.output) or 0
    ctx.saved["archive_planned"] = planned
    ctx.tallies.append(
        Tally(
            "plan archive-gates",
            [run.window],
            planned=planned,
            skipped=blocked,
            note=f"{blocked:,} stale gates skipped: still referenced (the plan names by whom)"
            if blocked
            else "",
        )
    )
    ctx.say(
        f"\nNothing was written. [bold]{planned:,}[/bold] archive mutations are in "
        "[cyan]archive.plan[/cyan]; its hash is checked again before anything is applied."
    )


# The gates examples/app checks (stale in the demo seed): its code-references step
# expects each blocked and named with its file.
APP_GATES = {
    "shipping_email_digest": "src/checkout.py",
    "web_ai_suggestions": "web/Search.tsx",
    "settings_spellcheck": "android/Support.kt",
}


async def _plan_with_code(ctx: DemoContext) -> None:
    # As a user would type it in the demo's directory (examples/ is linked there): the plan
    # names files under the path given.
    argv = ["plan", "archive-gates", "--stale", "--code-refs", "examples/app"]
    argv += ["--time-scale", ctx.scale]
    run = await bulkops(ctx, *argv, "-o", "archive-code.plan", keep=40)
    planned = read_plan(ctx.workdir / "archive-code.plan").mutations
    archived = {m.object.removeprefix("gate/") for m in planned}
    # The table wraps to the terminal; its rows, whole, are in the plan's JSON document.
    document = json.loads((await bulkops(ctx, *argv, "--json", "-q", show=False)).output)
    actions = {row[0]: row[-1] for table in document["tables"] for row in table["rows"]}
    missing = [
        gate for gate, path in APP_GATES.items()
        if gate in archived or not re.search(rf"blocked: .*in code: \S*{re.escape(path)}",
                                             actions.get(gate, ""))
    ]  # fmt: skip
    if missing:
        raise DemoFailed(f"plan --code-refs did not block {', '.join(missing)} with its file")
    in_code = _count(r"\(([\d,]+) in code\)", run.output) or len(APP_GATES)
    maybe = in_code - len(APP_GATES)
    ctx.tallies.append(
        Tally(
            "plan archive-gates --code-refs",
            [run.window],
            planned=len(planned),
            skipped=in_code,
            note=f"{in_code} stale gates blocked: examples/app still checks them"
            + (f" ({maybe} through a name built at run time)" if maybe > 0 else ""),
        )
    )
    ctx.say(
        f"\n{len(APP_GATES)} stale gates the API would let us archive are still checked by name in "
        "[cyan]examples/app[/cyan]: archiving them would switch those checks to `false`. "
        "The plan blocks them and names the files; `bulkops refs` lists every reference."
        + (
            f" {maybe} more may be reached by a name the code builds at run time "
            '([cyan]f"recs_gift_{variant}"[/cyan]): blocked too, until someone looks.'
            if maybe > 0
            else ""
        )
    )


class _Growth:
    """Counts the intent and outcome records of a checkpoint as it grows."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.offset = 0
        self.tail = b""
        self.intents = 0
        self.outcomes = 0

    def read(self) -> int:
        if not self.path.exists():
            return 0
        with self.path.open("rb") as f:
            f.seek(self.offset)
            data = f.read()
        self.offset += len(data)
        whole, _, self.tail = (self.tail + data).rpartition(b"\n")
        self.intents += whole.count(_INTENT)
        self.outcomes += whole.count(_OUTCOME)
        return self.intents


async def _apply_killed(ctx: DemoContext, argv: Sequence[str], checkpoint: Path) -> CliRun:
    """Run ``bulkops apply``, watch its checkpoint and SIGKILL it at half the intents."""
    total = int(ctx.saved["archive_planned"])
    half = (total + 1) // 2
    prompt(ctx, argv)
    started = time.time()
    process = await spawn(ctx, argv, color=True, merge=False)
    growth = _Growth(checkpoint)
    seen: list[int] = []
    killed_at: float | None = None
    step = max(1, half // 4)  # about four samples on the way to the kill
    try:
        talk = asyncio.ensure_future(process.communicate())
        while not talk.done():
            n = growth.read()
            if n >= half:
                process.send_signal(signal.SIGKILL)  # kill -9: no handler, no cleanup
                killed_at = time.time()
                seen.append(n)
                break
            if n and n // step > (seen[-1] // step if seen else 0):
                seen.append(n)
            await asyncio.sleep(_POLL)
        out, err = await talk
    finally:
        await reap(process)
    growth.read()
    run = CliRun(
        tuple(argv), process.returncode or 0, err.decode(errors="replace"), started, time.time()
    )
    show_output(ctx.console, run.output, keep=3)
    ctx.say(
        f"[dim]watching {checkpoint.name}:[/dim] "
        + " → ".join(f"{n:,}" for n in seen)
        + f" intents written (of {total:,})"
    )
    if killed_at is None:
        ctx.say(
            f"[yellow]The apply finished ({exit_text(run.code)}) before half its intents "
            "were written, so there was nothing to kill; run the demo with a lower "
            "--time-scale to see it.[/yellow]"
        )
        return run
    ctx.say(
        f"[bold red]kill -9 {process.pid}[/bold red] after {killed_at - started:.1f} s, "
        f"with {growth.intents:,} intents and {growth.outcomes:,} outcomes in the "
        f"checkpoint: {exit_text(run.code)}."
    )
    ctx.saved["killed"] = (growth.intents, growth.outcomes)
    return run


async def _apply_kill_resume(ctx: DemoContext) -> None:
    checkpoint = ctx.workdir / "archive.ckpt"
    argv = ["apply", "archive.plan", "--checkpoint", "archive.ckpt", "--yes"]
    applied = await _apply_killed(ctx, [*argv, "--time-scale", ctx.scale], checkpoint)
    ctx.say(
        "\n`status` reads only the checkpoint. An intent without an outcome is "
        "[italic]unsettled[/italic]: its request may or may not have reached the server."
    )
    await bulkops(ctx, "status", "archive.ckpt", expect=(6,))
    ctx.say(
        "\n`resume` reads each unsettled gate back to learn whether its archive landed, "
        "skips every mutation already applied and sends only the rest, under the same quota."
    )
    resumed = await bulkops(ctx, "resume", "archive.ckpt", "--time-scale", ctx.scale, expect=(0, 5))
    # One window for the whole episode: a request the killed process had in flight
    # reaches the server after the kill, between the two processes' own windows.
    windows = [(applied.window[0], resumed.window[1])]
    tally = Tally("apply, kill -9, resume", windows, checkpoint=checkpoint)
    ctx.tallies.append(tally)
    # The ground truth: which gates the emulator archived, or put under review, and how often.
    planned = int(ctx.saved["archive_planned"])
    archived = Counter(
        found["id"]
        for e in ctx.emulator.entries(windows)
        if (e.get("applied") or (e.get("review") or {}).get("event") == "opened")
        and (found := _ARCHIVE.search(str(e.get("path"))))
    )
    reviews = await _pending_reviews(ctx, "demo-source")
    ctx.saved["archive_reviews"] = reviews
    sent_before = len(ctx.emulator.writes([(applied.window[0], resumed.window[0])]))
    sent_after = len(ctx.emulator.writes([resumed.window]))
    twice = sum(1 for n in archived.values() if n > 1)
    if "killed" in ctx.saved:
        tally.note = (
            f"killed with {ctx.saved['killed'][0]:,} intents in the checkpoint; "
            f"{sent_before:,} writes before the kill, {sent_after:,} after the resume"
        )
    landed = ""
    if "killed" in ctx.saved:
        unrecorded = sent_before - int(ctx.saved["killed"][1])
        landed = (
            f" ({unrecorded:,} of them landed with no outcome recorded: the resume read "
            f"{'it' if unrecorded == 1 else 'them'} back instead of sending again)"
            if unrecorded > 0
            else ""
        )
    ctx.check(
        len(archived) == planned and twice == 0 and resumed.code == (5 if reviews else 0),
        f"The emulator's request log: {sent_before:,} archive requests before the kill"
        f"{landed}, {sent_after:,} after the resume; each of the {planned:,} gates archived "
        f"exactly once, or (the {len(reviews)} that require review) put under review once. "
        "Nothing lost, nothing sent twice.",
        f"the emulator archived or put under review {len(archived):,} of {planned:,} gates, "
        f"{twice:,} of them more than once",
    )
    if reviews:
        ctx.say(
            f"\n[bold]{len(reviews)}[/bold] of these gates require review "
            "(`reviewSettings.requiredReview`). bulkops sends `x-respect-review-settings: true`, "
            "so their archives opened reviews instead of applying: the run ends with "
            '[bold]exit 5[/bold], "waiting for review", and never sends them again.'
        )


async def _status(ctx: DemoContext) -> None:
    await bulkops(ctx, "status", "archive.ckpt", expect=(5,))
    ctx.say(
        "\nThe checkpoint stays: `bulkops undo archive.ckpt` would unarchive exactly these "
        "gates (we undo a later step instead). The reviews it lists wait for a person: "
        "`status` exits 5, only reviews are left (0 complete, 6 work left, 3 damaged)."
    )


async def _approve_and_resume(ctx: DemoContext) -> None:
    reviews: list[dict[str, Any]] = ctx.saved.get("archive_reviews") or []
    if not reviews:
        ctx.say("No review is waiting: nothing to approve.")
        return
    ctx.say(
        "A reviewer approves them in the console; here the emulator's admin surface "
        "(`POST /_emulator/reviews/ID/approve`, loopback only) stands in for it:"
    )
    await _approve(ctx, reviews, "stale, unused: fine to archive")
    ctx.say(
        "\n`resume` finds them approved and commits each one: an intent naming the review, "
        "fsynced, then `PUT /gates/ID/reviews/REVIEW/commit` under the same quota."
    )
    run = await bulkops(ctx, "resume", "archive.ckpt", "--time-scale", ctx.scale)
    ctx.tallies.append(Tally("approve, resume: commits", [run.window]))
    commits = Counter(
        (found["id"], found["review"])
        for e in ctx.emulator.entries([run.window])
        if e.get("applied") and (found := _COMMIT.search(str(e.get("path"))))
    )
    wanted = {(str(r["object_id"]), str(r["review_id"])) for r in reviews}
    ctx.check(
        set(commits) == wanted and set(commits.values()) == {1},
        f"The emulator committed each of the {len(wanted)} reviews exactly once; every "
        "planned gate is now archived, once.",
        f"commits seen: {dict(commits)}; expected one each of {sorted(wanted)}",
    )


# Rule fields the server owns: ids (a rule dropped and recreated gets new ones) and the
# automated-rollout lists it fills in empty.
_SERVER_RULE_IDS = ("id", "baseID")
_SERVER_RULE_DEFAULTS = ("completedAutomatedRollouts", "pendingAutomatedRollouts")


def _plain_rule(rule: Any) -> Any:
    if not isinstance(rule, dict):
        return rule
    return {
        k: v
        for k, v in rule.items()
        if k not in _SERVER_RULE_IDS and not (k in _SERVER_RULE_DEFAULTS and v == [])
    }


async def _rules(client: ConsoleClient) -> dict[str, Any]:
    """The rules of every gate and dynamic config by ``kind/id``, without the fields the
    server owns."""
    rules: dict[str, Any] = {}
    for kind in ("gates", "dynamic_configs"):
        async for obj in client.paginate(f"/{kind}"):
            rules[f"{kind}/{obj.get('id')}"] = [_plain_rule(r) for r in obj.get("rules") or []]
    return rules


def _describe_rewrite(path: Path) -> str:
    spec = tomllib.loads(path.read_text(encoding="utf-8"))
    select = spec.get("select") or {}
    ops = [str(r.get("op")) for r in spec.get("rewrite") or []]
    where = ", ".join(
        f"{name} {', '.join(str(v) for v in values)}"
        for name, values in (
            ("kinds", select.get("kinds") or []),
            ("tags", select.get("tags") or []),
            ("ids", select.get("ids") or []),
        )
        if values
    )
    return f"selects {where or 'everything'}; {len(ops)} rewrites: {', '.join(ops)}"


async def _rewrite(ctx: DemoContext) -> None:
    ctx.saved["rules_before"] = await _rules(ctx.source)
    ctx.say(
        f"[cyan]examples/rewrite.toml[/cyan] {escape(_describe_rewrite(EXAMPLES / 'rewrite.toml'))}.\n"
    )
    run = await bulkops(
        ctx,
        "run",
        "rewrite-rules",
        "--file",
        "examples/rewrite.toml",
        "--apply",
        "--yes",
        "--checkpoint",
        "rewrite.ckpt",
        "--time-scale",
        ctx.scale,
    )
    ctx.tallies.append(
        Tally("run rewrite-rules", [run.window], checkpoint=ctx.workdir / "rewrite.ckpt")
    )


async def _import(ctx: DemoContext) -> None:
    run = await bulkops(
        ctx,
        "run",
        "import-overrides",
        "--file",
        "examples/overrides.csv",
        "--apply",
        "--yes",
        "--checkpoint",
        "overrides.ckpt",
        "--time-scale",
        ctx.scale,
    )
    ctx.tallies.append(
        Tally("run import-overrides", [run.window], checkpoint=ctx.workdir / "overrides.ckpt")
    )
    ctx.say(
        "\nNow a file with bad rows. It is checked whole against the project before any "
        "request: every bad row is named by its line, and nothing is sent (exit 2)."
    )
    bad = await bulkops(
        ctx,
        "run",
        "import-overrides",
        "--file",
        "examples/overrides-bad.csv",
        "--apply",
        "--yes",
        "--checkpoint",
        "overrides-bad.ckpt",
        "--time-scale",
        ctx.scale,
        expect=(2,),
        keep=20,
    )
    rows = _count(r"([\d,]+) bad row", bad.output) or 0
    ctx.tallies.append(
        Tally(
            "import-overrides (bad file)",
            [bad.window],
            refused=rows,
            note=f"{rows:,} bad rows named by line; the whole file refused (exit 2)",
        )
    )
    writes = ctx.emulator.writes([bad.window])
    ctx.check(
        not writes and not (ctx.workdir / "overrides-bad.ckpt").exists(),
        "The emulator's request log shows no write during that run, and no checkpoint was created.",
        f"the refused import sent {len(writes)} writes",
    )


async def _copy(ctx: DemoContext) -> None:
    ctx.say(
        f"The two keys are in [cyan]${SOURCE_KEY_ENV}[/cyan] and "
        f"[cyan]${TARGET_KEY_ENV}[/cyan]: the command line only names the variables.\n"
    )
    run = await bulkops(
        ctx,
        "run",
        "copy-project",
        "--source-key-env",
        SOURCE_KEY_ENV,
        "--target-key-env",
        TARGET_KEY_ENV,
        "--accept-loss",
        "--apply",
        "--yes",
        "--checkpoint",
        "copy.ckpt",
        "--time-scale",
        ctx.scale,
        keep=4,
        expect=(0, 5),
    )
    dropped = sum(1 for line in run.output.splitlines() if "dropped (--accept-loss)" in line)
    verified = run.output
    ctx.tallies.append(
        Tally(
            "run copy-project",
            [run.window],
            checkpoint=ctx.workdir / "copy.ckpt",
            note=f"{dropped:,} settings the target cannot hold were dropped (--accept-loss)"
            if dropped
            else "",
        )
    )
    if run.code == 5:
        reviews = await _pending_reviews(ctx, "demo-target")
        ctx.say(
            f"\nThe copies of the {len(reviews)} gates that require review require it in the "
            "target too: archiving them there opened reviews. Approved, the resume commits "
            "them and verifies the copy."
        )
        await _approve(ctx, reviews, "copy of an archived gate")
        resumed = await bulkops(ctx, "resume", "copy.ckpt", "--time-scale", ctx.scale, keep=4)
        ctx.tallies.append(Tally("approve, resume the copy", [resumed.window]))
        verified = resumed.output
    ctx.check(
        "verification: the target matches" in verified,
        "The copy read the target back: it matches the source.",
        "the copy's verification did not report a match",
    )


async def _undo(ctx: DemoContext) -> None:
    run = await bulkops(ctx, "undo", "rewrite.ckpt", "--apply", "--yes", "--time-scale", ctx.scale)
    named = re.findall(r"checkpoint: (\S+)", run.output)
    checkpoint = ctx.workdir / (named[-1] if named else "rewrite.ckpt.undo")
    ctx.tallies.append(Tally("undo rewrite.ckpt", [run.window], checkpoint=checkpoint))
    before: dict[str, Any] = ctx.saved.get("rules_before") or {}
    after = await _rules(ctx.source)
    changed = sorted(k for k in before if after.get(k) != before[k])
    ctx.check(
        bool(before) and not changed and set(after) == set(before),
        f"Read back: the rules of all {len(before):,} gates and dynamic configs are as they "
        "were before the rewrite (rules it dropped came back with new ids, which the server "
        "assigns).",
        f"{len(changed)} objects' rules differ from before the rewrite: {', '.join(changed[:5])}",
    )


def checkpoint_status(path: Path) -> dict[str, Any]:
    """What ``bulkops status PATH --json`` prints, parsed (the same command, in process)."""
    out = io.StringIO()
    ui = Ui(
        out=Console(file=io.StringIO()),
        err=Console(file=io.StringIO()),
        interactive=False,
        live=False,
        results=Console(file=out),
        as_json=True,
    )
    status(path, ui)
    found: dict[str, Any] = json.loads(out.getvalue())
    return found


async def _summary(ctx: DemoContext) -> None:
    ctx.say(
        "[dim]Per checkpoint, the counts of `bulkops status CKPT --json` (run in this "
        "process: it only reads the file); the requests from the emulator's log.[/dim]"
    )
    for tally in ctx.tallies:
        if tally.checkpoint is not None:
            tally.status = checkpoint_status(tally.checkpoint)
    for tally in ctx.tallies:
        for entry in ctx.emulator.entries(tally.windows):
            write = entry.get("method") in WRITE_METHODS
            tally.log["writes" if write else "reads"] += 1
            # A write that opened a review did what it should: it is "changed" too.
            tally.log["changed"] += bool(entry.get("applied") or entry.get("review"))
            tally.log["throttled"] += entry.get("status") == 429
    ctx.console.print()
    ctx.console.print(summary_table(ctx.tallies))
    ctx.console.print()
    for tally in ctx.tallies:
        if tally.note:
            ctx.say(f"  [bold]{escape(tally.label)}[/bold]: {escape(tally.note)}")
    writes = sum(t.log["writes"] for t in ctx.tallies)
    changed = sum(t.log["changed"] for t in ctx.tallies)
    throttled = sum(t.log["throttled"] for t in ctx.tallies)
    ctx.check(
        writes == changed and throttled == 0,
        f"In all, {writes:,} write requests and every one of them changed something or "
        "opened a review: no wasted request, no 429 from the quota.",
        f"{writes:,} write requests, {changed:,} changed something, {throttled:,} got a 429",
    )


def summary_table(tallies: Sequence[Tally]) -> Table:
    """The closing table: per step, mutations planned, requests sent, and outcomes."""
    table = Table(
        title="What each step sent, skipped and refused",
        caption="sent and changed: write requests in the emulator's log, and those that "
        "changed something (or opened a review); applied and skipped: from the checkpoint; "
        "refused: bad input, failed, conflicting or rejected mutations",
        caption_justify="left",
        title_justify="left",
        title_style="bold",
        box=box.SIMPLE_HEAD,
    )
    table.add_column("step")
    for name in ("mutations", "sent", "changed", "applied", "skipped", "refused", "429s", "reads"):
        table.add_column(name, justify="right")
    for t in tallies:
        counts = (t.status or {}).get("counts") or {}
        planned = (t.status or {}).get("mutations", t.planned)
        applied = counts.get("applied") if t.status else None
        failed = sum(int(counts.get(k, 0)) for k in ("failed", "conflict", "rejected"))
        table.add_row(
            escape(t.label),
            "·" if planned is None else f"{planned:,}",
            f"{t.log['writes']:,}",
            f"{t.log['changed']:,}",
            "·" if applied is None else f"{applied:,}",
            f"{t.skipped + int(counts.get('skipped', 0)):,}",
            f"{t.refused + failed:,}",
            f"{t.log['throttled']:,}",
            f"{t.log['reads']:,}",
        )
    return table


STEPS: tuple[Step, ...] = (
    Step(
        "What is in the source project",
        "A read-only tour through the Console API, page by page. The stale gates are what "
        "the next steps clean up.",
        _tour_source,
    ),
    Step(
        "Plan: archive the stale gates",
        "`plan` only reads. It selects the gates the API classifies as stale, leaves alone "
        "those that other gates, configs or experiments still use, and writes a plan file "
        "with the per-object diff, the counts and an ETA computed from the quota.",
        _plan_archive,
    ),
    Step(
        "Know the code: stale gates that code still checks",
        "`--code-refs PATH` scans a source tree for the selected gates (between quotes, "
        "through constants, in any language; binary and ignored files counted, never read "
        "silently). A gate that code still checks is blocked, and the plan says where.",
        _plan_with_code,
    ),
    Step(
        "Apply the plan, kill -9 it halfway, resume",
        "`apply` executes exactly the plan file. Before each request it appends an intent to "
        "the checkpoint and fsyncs it. We watch the checkpoint grow and kill the process "
        "outright when half the intents are in: no signal handler, no cleanup.",
        _apply_kill_resume,
    ),
    Step(
        "Status",
        "`status` reads a checkpoint and says what happened: counts per state, runs, the "
        "reviews still waiting (id, object, age), and whether anything is left to resume.",
        _status,
    ),
    Step(
        "Approve the reviews, resume: the commits",
        "Changes that need review land only once people approve them. `resume` commits "
        "each approved review once, journaled like any write; a rejected one would be "
        "reported with its reason and never retried.",
        _approve_and_resume,
    ),
    Step(
        "Rewrite rules from examples/rewrite.toml",
        "A declarative rewrite of the rules of selected gates and dynamic configs: one write "
        "per object that changes, none for the others. `run` is a dry run unless `--apply`.",
        _rewrite,
    ),
    Step(
        "Import overrides from examples/overrides.csv",
        "Override rows for gates, experiments, layers, holdouts and id-list segments; only "
        "ids not already there are sent, grouped into as few requests as the API allows.",
        _import,
    ),
    Step(
        "Copy the source project into the target",
        "Tags, unit id types, segments with their ids, gates, dynamic configs and layers, "
        "dependencies first, written with the target's key; the target has no target apps, "
        "so --accept-loss lets the copy drop those, each drop listed. A read-back "
        "verification ends the run.",
        _copy,
    ),
    Step(
        "Undo the rule rewrite",
        "`undo` plans the inverse of every applied mutation of a checkpoint (here: each "
        "object's previous rules), refuses objects changed since, and runs it like any plan, "
        "with its own checkpoint.",
        _undo,
    ),
    Step(
        "What each step sent, skipped and refused",
        "The checkpoints say what each run applied and skipped; the emulator's request log "
        "is the ground truth of what reached the server.",
        _summary,
    ),
)
