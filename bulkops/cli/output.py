"""What people see: plan diffs, progress and the summary table, and where they see it.

Everything goes through the rich ``Console`` objects of a :class:`Ui` (stdout for
results, stderr for progress), never ``print``. On a terminal the progress is a live bar with
done/total, the rate, an ETA from the quota limiter and live counts; otherwise a
plain line every few seconds, so logs of unattended runs stay readable.

Every command ends with :meth:`Ui.result`: one summary line, and one JSON document
(``--json``: the document alone on stdout, versioned by its ``schema``; the human display
goes to stderr). ``--quiet`` prints the summary line and errors only.

The terminal decides the look (:meth:`Ui.terminal`): its width (or ``COLUMNS``) bounds
tables and wraps long lines, and output that is not a terminal is not wrapped; ``NO_COLOR``
(any value) removes all styling; a stream that cannot encode a character
(``PYTHONIOENCODING=ascii``) gets a plain stand-in (``→`` becomes ``->``), never an error;
a closed stdout (``| head``) ends the command quietly (:class:`BrokenPipeError`, exit 141).
"""

from __future__ import annotations

import codecs
import io
import json
import os
import sys
import time
from collections import Counter
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import IO, Any, cast

from rich import box
from rich.console import Console
from rich.markup import escape
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn
from rich.table import Table

from ..engine.mutations import Mutation
from ..engine.plans import ABSENT, Plan
from ..engine.ratelimit import QuotaLimiter
from ..engine.runner import RunResult
from ..engine.stopping import Stop

__all__ = [
    "UNSETTLED",
    "ProgressView",
    "Ui",
    "console_for",
    "format_duration",
    "plain_fallback",
    "render_notes",
    "render_plan",
    "render_summary",
]

_RESULTS = ("applied", "skipped", "failed", "conflict", "rejected")
UNSETTLED = "no outcome recorded: it may or may not have been applied (a read settles it)"

# Stand-ins for the characters bulkops prints, on a stream that cannot encode them.
_PLAIN = {"→": "->", "≈": "~", "…": "...", "—": "-", "–": "-", "·": ".", "×": "x", "≤": "<="}
_FALLBACK = "bulkops-plain"
_UNSIZED = 10_000  # the width of output with none (a pipe, a file): nothing folds


def _plain(error: UnicodeError) -> tuple[str, int]:
    if not isinstance(error, UnicodeEncodeError):
        raise error
    bad = error.object[error.start : error.end]
    return "".join(_PLAIN.get(c, "?") for c in bad), error.end


codecs.register_error(_FALLBACK, _plain)


def plain_fallback(stream: IO[str]) -> None:
    """Make ``stream`` write a stand-in for what its encoding cannot hold (``→`` as
    ``->``, anything else as ``?``) instead of raising ``UnicodeEncodeError``."""
    reconfigure = getattr(stream, "reconfigure", None)
    if reconfigure is None:
        return
    encoding = getattr(stream, "encoding", None) or "utf-8"
    try:
        "→≈…".encode(encoding)
    except (UnicodeEncodeError, LookupError):
        reconfigure(errors=_FALLBACK)


class _Console(Console):
    def on_broken_pipe(self) -> None:
        # rich exits 1 here, which is "some items failed" in bulkops' contract; the
        # CLI's boundary turns this into a quiet exit 141 instead.
        self.quiet = True
        raise BrokenPipeError


class _TrimmedLines:
    """``stream`` with each whole line's trailing blanks dropped: a table with no width to
    fit pads every row to its widest cell, which a file or a pipe (grep, less) only carries
    as noise. What is not yet a whole line passes on a flush, as written. (Not an IOBase:
    nothing to close or to flush again when it is collected; the stream stays the caller's.)"""

    def __init__(self, stream: IO[str]) -> None:
        self._stream = stream
        self._partial = ""

    def write(self, text: str) -> int:
        *lines, self._partial = (self._partial + text).split("\n")
        if lines:
            self._stream.write("".join(line.rstrip(" ") + "\n" for line in lines))
        return len(text)

    def flush(self) -> None:
        if self._partial:
            self._stream.write(self._partial)
            self._partial = ""
        self._stream.flush()

    def isatty(self) -> bool:
        return False

    def fileno(self) -> int:
        return self._stream.fileno()

    @property
    def encoding(self) -> str:
        return getattr(self._stream, "encoding", None) or "utf-8"


def console_for(stream: IO[str], environ: Mapping[str, str] | None = None) -> Console:
    """A console on ``stream`` that follows the terminal: its width (or ``COLUMNS``)
    wraps lines and bounds tables; output that is not a terminal (a log, a pipe) has no
    width, so nothing is wrapped or folded unless ``COLUMNS`` is set; ``NO_COLOR`` (any
    value: no-color.org) removes every style."""
    env = os.environ if environ is None else environ
    terminal = bool(getattr(stream, "isatty", lambda: False)())
    no_color = "NO_COLOR" in env
    sized = terminal or env.get("COLUMNS", "").isdigit()
    return _Console(
        file=stream if sized else cast(IO[str], _TrimmedLines(stream)),
        width=None if sized else _UNSIZED,
        soft_wrap=not sized,
        no_color=no_color,
        color_system=None if no_color else "auto",
        highlight=False,
        emoji=False,
    )


@dataclass
class Ui:
    """Where output goes and how the user answers.

    Attributes:
        out: The human display (stdout; stderr with ``--json``; nothing with ``--quiet``).
        err: Progress and notes (stderr; nothing with ``--quiet``).
        interactive: Questions may be asked (stdin is a terminal).
        live: A live progress bar (stderr is a terminal).
        ask: Asks a question (the prompt on stderr) and returns the answer.
        handle_signals: The runner turns SIGINT/SIGTERM into a clean stop.
        results: Where :meth:`result` writes (stdout), None to drop it.
        as_json: :meth:`result` writes the JSON document instead of the line.
    """

    out: Console
    err: Console
    interactive: bool
    live: bool
    ask: Callable[[str], str] = field(default=input)
    handle_signals: bool = True
    results: Console | None = None
    as_json: bool = False

    @classmethod
    def terminal(cls, *, as_json: bool = False, quiet: bool = False) -> Ui:
        """Results on stdout, progress on stderr; questions only when stdin is a
        terminal, and a live progress bar only when stderr is one.

        Args:
            as_json: stdout carries the command's JSON document only; the human
                display goes to stderr.
            quiet: Only the final summary line (or document) and errors.
        """
        for stream in (sys.stdout, sys.stderr):
            plain_fallback(stream)
        stdout, stderr = console_for(sys.stdout), console_for(sys.stderr)
        silent = Console(file=io.StringIO(), quiet=True)

        def ask(prompt: str) -> str:
            return stderr.input(escape(prompt))  # the prompt never mixes into stdout

        return cls(
            out=silent if quiet else (stderr if as_json else stdout),
            err=silent if quiet else stderr,
            interactive=sys.stdin.isatty(),
            live=sys.stderr.isatty() and not quiet,
            ask=ask,
            results=stdout,
            as_json=as_json,
        )

    def result(self, line: str, document: Mapping[str, Any]) -> None:
        """The command's outcome: ``line`` for people (the last line of the display,
        the only one with ``--quiet``), or with ``--json`` the ``document`` (a dict
        with its ``schema``) as the only thing on stdout."""
        if self.results is None:
            return
        if self.as_json:
            stream = self.results.file
            # \u escapes where the stream cannot carry every character: never a "?".
            utf8 = codecs.lookup(getattr(stream, "encoding", None) or "utf-8").name == "utf-8"
            stream.write(json.dumps(document, ensure_ascii=not utf8) + "\n")
            stream.flush()
        else:
            self.results.print(escape(line), highlight=False)


def format_duration(seconds: float) -> str:
    """``42s``, ``3m 05s``, ``1h 02m``."""
    seconds = max(0.0, seconds)
    if seconds < 60:
        return f"{seconds:.0f}s" if seconds >= 10 else f"{seconds:.1f}s"
    minutes, secs = divmod(int(round(seconds)), 60)
    if minutes < 60:
        return f"{minutes}m {secs:02d}s"
    hours, minutes = divmod(minutes, 60)
    return f"{hours}h {minutes:02d}m"


def render_plan(
    console: Console,
    plan: Plan,
    *,
    eta: float,
    project_name: str,
    show: int = 50,
    title: str = "Plan",
) -> str:
    """Print the per-object diff (only what changes; the first ``show`` objects), the
    counts per action (and how many will need review); return the summary line
    (mutations, objects, project, ETA)."""
    groups: dict[str, list[Mutation]] = {}
    for m in plan.mutations:
        groups.setdefault(m.object, []).append(m)
    console.print(f"[bold]{escape(title)}[/]: job {escape(plan.header.job)}", highlight=False)
    for index, (obj, mutations) in enumerate(groups.items()):
        if index >= show:
            console.print(
                f"… and {len(groups) - show} more objects (all are in the plan; --show N)",
                highlight=False,
            )
            break
        reviewed = " (needs review)" if any(m.review for m in mutations) else ""
        console.print(f"  [bold]{escape(obj)}[/]{reviewed}", highlight=False)
        for m in mutations:
            if m.absent:
                console.print(
                    f"    {escape(ABSENT)} ({escape(m.method)} {escape(m.path)} is not sent)",
                    highlight=False,
                )
                continue
            for what, before, after in m.diff():
                change = f"{before} → {after}" if before else after
                console.print(
                    f"    {escape(m.action)}: {escape(what)}: {escape(change)}", highlight=False
                )
    counts = plan.counts()
    reviews = Counter(m.action for m in plan.mutations if m.review and not m.absent)
    table = Table(title="Mutations per action", show_edge=False)
    table.add_column("action")
    table.add_column("count", justify="right")
    if reviews:
        table.add_column("need review", justify="right")
    for action, count in counts.items():
        table.add_row(escape(action), str(count), *([str(reviews[action])] if reviews else []))
    if plan.mutations:
        console.print(table)
    for action, count in reviews.items():
        total = counts.get(action, count)
        console.print(
            f"{total} {escape(action)}{'' if total == 1 else 's'}, {count} of them will need "
            "review: each opens a review instead of applying; once approved in the console, "
            "`bulkops resume` commits it.",
            highlight=False,
        )
    absent = counts.get(ABSENT, 0)
    nothing = f" ({absent} {ABSENT})" if absent else ""
    return (
        f"{len(plan.mutations) - absent} API mutations on {len(groups)} objects in project "
        f"{project_name} ({plan.target_project}){nothing}; "
        f"ETA ≈ {format_duration(eta)} at the configured quota"
    )


def render_notes(
    console: Console, notes: Sequence[str], tables: Sequence[Mapping[str, Any]], *, show: int
) -> None:
    """Print a job's tables (the first ``show`` rows of each, fitted to the width) and
    its notes."""
    for found in tables:
        rows = found["rows"]
        table = Table(title=found["title"], title_justify="left", box=box.SIMPLE_HEAD)
        for name in found["columns"]:
            table.add_column(escape(name), overflow="fold")
        for row in rows[:show]:
            table.add_row(*(escape(c) for c in row))
        console.print(table)
        if len(rows) > show:
            console.print(
                f"  … and {len(rows) - show} more rows (--show N shows more; --json all)",
                highlight=False,
            )
    for line in notes:
        console.print(escape(line), highlight=False)


class ProgressView:
    """A runner observer: a live rich bar on a terminal, plain lines otherwise.

    Args:
        console: Where progress goes (stderr).
        limiter: For the quota-based ETA and the 429 count.
        live: Use the live bar (a terminal).
        interval: Seconds between plain lines.
    """

    def __init__(
        self,
        console: Console,
        limiter: QuotaLimiter,
        *,
        live: bool,
        interval: float = 5.0,
        clock: Any = time.monotonic,
    ) -> None:
        self.console = console
        self.limiter = limiter
        self.live = live
        self.interval = interval
        self.clock = clock
        self.counts: Counter[str] = Counter()
        self.remaining: Counter[str] = Counter()
        self.total = 0
        self.done = 0
        self.done_here = 0
        self.n_retries = 0
        self.n_throttled = 0
        self._started = clock()
        self._last_line = 0.0
        self._eta = 0.0
        self._eta_at = -1.0
        self._progress: Progress | None = None
        self._task: Any = None

    def start(self, total: int, done: int, remaining: Mapping[str, int]) -> None:
        self.total, self.done = total, done
        self.remaining = Counter(remaining)
        self._started = self.clock()
        if self.live:
            self._progress = Progress(
                BarColumn(bar_width=20),
                MofNCompleteColumn(),
                TextColumn("{task.fields[rate]}"),
                TextColumn("ETA {task.fields[eta]}"),
                TextColumn("{task.fields[counts]}"),
                console=self.console,
                refresh_per_second=4,
            )
            self._task = self._progress.add_task(
                "apply", total=total, completed=done, rate="", eta="", counts=""
            )
            self._progress.start()
        self._update(force=True)

    def result(self, key: str, result: str, klass: str) -> None:
        self.counts[result] += 1
        if self.remaining[klass] > 0:
            self.remaining[klass] -= 1
        if result in _RESULTS:
            self.done += 1
            self.done_here += 1
        self._update()

    def retry(self) -> None:
        self.n_retries += 1

    def throttled(self) -> None:
        self.n_throttled += 1

    def stop(self) -> None:
        self._update(force=True)

    def close(self) -> None:
        """Stop the live bar (call once the run is over)."""
        if self._progress is not None:
            self._update(force=True)
            self._progress.stop()
            self._progress = None

    def _eta_text(self) -> str:
        now = self.clock()
        if now - self._eta_at >= 0.5:
            self._eta_at = now
            try:
                self._eta = self.limiter.eta(+self.remaining)
            except KeyError:
                self._eta = 0.0
        return format_duration(self._eta)

    def _counts_text(self, short: bool = False) -> str:
        c = self.counts
        review = c["pending_review"]
        if short:  # the live bar shares one terminal line with everything else
            return (
                f"ok {c['applied']} skip {c['skipped']} fail {c['failed']} "
                f"conflict {c['conflict']}"
                + (f" review {review}" if review else "")
                + f" 429 {self.n_throttled} retry {self.n_retries}"
            )
        return (
            f"applied {c['applied']} skipped {c['skipped']} failed {c['failed']} "
            f"conflicts {c['conflict']}"
            + (f" waiting for review {review}" if review else "")
            + f" 429s {self.n_throttled} retries {self.n_retries}"
        )

    def _update(self, force: bool = False) -> None:
        now = self.clock()
        elapsed = max(now - self._started, 1e-9)
        rate = f"{self.done_here / elapsed:.1f}/s"
        if self._progress is not None:
            self._progress.update(
                self._task,
                completed=self.done,
                rate=rate,
                eta=self._eta_text(),
                counts=self._counts_text(short=True),
            )
            return
        if force or now - self._last_line >= self.interval:
            self._last_line = now
            self.console.print(
                f"progress {self.done}/{self.total} {self._counts_text()} "
                f"rate {rate} ETA {self._eta_text()}",
                highlight=False,
            )


def render_summary(console: Console, result: RunResult, plan: Plan, *, problems: int = 20) -> None:
    """Print the summary table and the first ``problems`` items that need a look."""
    counts = result.counts()
    table = Table(title="Summary", show_edge=False)
    table.add_column("state")
    table.add_column("count", justify="right")
    labels = {
        "in_doubt": "unsettled",
        "pending": "not yet sent",
        "pending_review": "waiting for review",
    }
    for state in (
        "applied",
        "skipped",
        "failed",
        "conflict",
        "rejected",
        "pending_review",
        "in_doubt",
        "pending",
    ):
        if counts.get(state) or state in _RESULTS[:4]:
            table.add_row(labels.get(state, state), str(counts.get(state, 0)))
    table.add_row("429s", str(result.throttled))
    table.add_row("retries", str(result.retries))
    table.add_row("requests sent", str(result.sent))
    table.add_row("elapsed", format_duration(result.elapsed))
    console.print(table)
    shown = 0
    for m in plan.mutations:
        st = result.states[m.key]
        if st.state in ("failed", "conflict", "rejected", "in_doubt"):
            if shown == 0:
                console.print("[bold]Needs a look:[/]")
            if shown >= problems:
                console.print("  … (see the report)", highlight=False)
                break
            shown += 1
            reason = st.reason or st.error or UNSETTLED
            console.print(
                f"  {escape(st.state)} {escape(m.key)}: {escape(reason)}", highlight=False
            )
    waiting = [m for m in plan.mutations if result.states[m.key].state == "pending_review"]
    if waiting:
        console.print("[bold]Waiting for review:[/]")
    for m in waiting[:problems]:
        review_id = result.states[m.key].review_id or "?"
        console.print(
            f"  review {escape(review_id)}  {escape(m.object)}  ({escape(m.key)})", highlight=False
        )
    if len(waiting) > problems:
        console.print(f"  … and {len(waiting) - problems} more (`bulkops status`)", highlight=False)
    if result.stop in (Stop.INTERRUPTED, Stop.TERMINATED):
        what = "Interrupted" if result.stop is Stop.INTERRUPTED else "Terminated"
        console.print(f"{what}: the checkpoint is consistent; resume to continue.")
    elif result.stop is not Stop.COMPLETE:
        console.print(f"Stopped: {escape(result.reason or result.stop.value)}", highlight=False)
