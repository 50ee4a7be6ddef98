"""``bulkops refs PATH…``: where code references the project's gates, configs, experiments.

Reads the project's object ids from the Console API (the key from the environment) or,
offline and without a key, from a snapshot file (``--snapshot FILE``, what ``bulkops
snapshot`` writes), scans the source trees (:mod:`bulkops.refs`) and reports every
reference per object and the objects found nowhere: a table, or ``--json``, ``--csv``,
``--sarif``. ``--archived`` looks for archived objects only: code that still checks
one gets the default, and the command exits 1 when it finds any (a CI check).

The offline path imports no HTTP client, pydantic or rich: start-up is part of the
speed the benchmark holds it to.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from pathlib import Path

from ..errors import UsageError
from ..refs import KINDS, FlagObject, build_report, load_config, read_snapshot, scan
from ..refs.report import (
    ObjectRefs,
    RefsReport,
    render_csv,
    render_json,
    render_sarif,
    render_table,
)
from .exit_codes import ExitCode

__all__ = ["refs_arguments", "refs_command", "run_refs"]

_KEY_HINTS = ("console-", "secret-")


def refs_arguments(p: argparse.ArgumentParser) -> None:
    """``bulkops refs PATH… [--kind K] [--snapshot FILE] [--archived] [--context N] [--show N]
    [--json|--csv|--sarif] [-o FILE] [--config FILE] [--no-git] [--workers N]``."""
    p.add_argument("paths", nargs="+", type=Path, metavar="PATH", help="source trees to scan")
    p.add_argument(
        "--kind",
        choices=[*KINDS, "all"],
        action="append",
        help="objects to look for, repeatable (default all)",
    )
    p.add_argument(
        "--snapshot",
        type=Path,
        metavar="FILE",
        help="read the objects from a `bulkops snapshot` file (no key, no network)",
    )
    p.add_argument(
        "--archived",
        action="store_true",
        help="look for archived objects only (dead checks); exit 1 when code references one",
    )
    p.add_argument("--context", type=int, default=0, metavar="N", help="lines around each hit")
    p.add_argument(
        "--show",
        type=int,
        default=50,
        metavar="N",
        help="objects found nowhere listed in the table (default 50; 0 lists them all)",
    )
    shape = p.add_mutually_exclusive_group()
    shape.add_argument("--json", action="store_true", help="JSON: every object and reference")
    shape.add_argument("--csv", action="store_true", help="CSV: one row per reference")
    shape.add_argument("--sarif", action="store_true", help="SARIF 2.1.0 (GitHub code scanning)")
    p.add_argument("-o", "--output", type=Path, metavar="FILE", help="write the report here (0600)")
    p.add_argument(
        "--config",
        type=Path,
        metavar="FILE",
        help="settings file (default: .bulkops/coderefs.toml)",
    )
    p.add_argument("--no-git", action="store_true", help="walk the trees even in a git checkout")
    p.add_argument(
        "--workers",
        type=int,
        metavar="N",
        help="processes matching files (default: one per idle core)",
    )
    p.add_argument("--api-url", help="Console API base URL (or $STATSIG_API_URL)")
    p.add_argument("--timeout", type=float, help="request timeout, seconds")


def _kinds(args: argparse.Namespace) -> tuple[str, ...]:
    chosen = args.kind or ["all"]
    return KINDS if "all" in chosen else tuple(k for k in KINDS if k in chosen)


def _select(objects: Sequence[FlagObject], archived: bool) -> list[FlagObject]:
    return [o for o in objects if o.archived == archived]


def run_refs(args: argparse.Namespace, objects: Sequence[FlagObject]) -> int:
    """Scan ``args.paths`` for ``objects`` and print or write the report; the exit code."""
    for path in args.paths:
        if not path.exists():
            raise UsageError(f"{path}: no such file or directory")
    if args.context < 0:
        raise UsageError("--context must be 0 or more")
    if args.show < 0:
        raise UsageError("--show must be 0 or more")
    selected = _select(objects, args.archived)
    configs = [
        load_config(path if path.is_dir() else path.parent, args.config) for path in args.paths
    ]
    found = scan(
        args.paths,
        selected,
        configs,
        context=args.context,
        workers=args.workers,
        use_git=not args.no_git,
    )
    report = build_report(found)
    text = _render(report, args)
    if args.output is not None:
        from ..files import write_private

        write_private(args.output, text, durable=False)
        verdict = f"{_verdict(report)}; " if args.archived else ""
        print(verdict + report.summary(), file=sys.stderr)
    else:
        sys.stdout.write(text)
    if args.archived:
        return ExitCode.FAILED if _dead(report) else ExitCode.OK
    return ExitCode.OK


def _dead(report: RefsReport) -> list[ObjectRefs]:
    """Archived objects code references (a name built at run time is a warning only)."""
    return [o for o in report.objects if o.hits]


def _verdict(report: RefsReport) -> str:
    found = _dead(report)
    if not found:
        return "no code references an archived object"
    references = sum(len(o.hits) for o in found)
    return (
        f"{len(found):,} archived objects are still referenced in code ({references:,} references)"
    )


def _render(report: RefsReport, args: argparse.Namespace) -> str:
    if args.json:
        return render_json(report)
    if args.csv:
        return render_csv(report)
    if args.sarif:
        return render_sarif(report, dead=args.archived)
    # Archived objects found nowhere are as they should be: counted, not listed.
    text = render_table(report, context=args.context > 0, missing=not args.archived, show=args.show)
    if args.archived:
        text += _verdict(report) + "\n"
    return text


def refs_command(args: argparse.Namespace) -> int:
    """``bulkops refs``: offline from ``--snapshot``, else through the API with the key."""
    values = [str(p) for p in args.paths] + [str(args.snapshot or ""), str(args.output or "")]
    if any(hint in value for value in values for hint in _KEY_HINTS):
        # Only then is the (heavier) shared check imported: it names the argument.
        from .invocation import refuse_key_arguments

        refuse_key_arguments(values)
    if args.snapshot is not None:
        return run_refs(args, read_snapshot(args.snapshot, _kinds(args)))
    return _online(args)


def _online(args: argparse.Namespace) -> int:
    import asyncio

    from ..api.client import ConsoleClient
    from ..settings import ApiKeys
    from .invocation import Invocation, invoke
    from .output import Ui
    from .run_setup import key_project
    from .snapshot import COLLECTION_SOURCES, read_collection

    def action(ui: Ui, keys: ApiKeys) -> int:
        overrides = {} if args.timeout is None else {"timeout": args.timeout}
        settings = keys.settings(base_url=args.api_url, **overrides)

        async def read() -> list[FlagObject]:
            from ..refs import objects_from_collections

            async with ConsoleClient(settings) as client:
                await key_project(client)  # a wrong URL or key is told as such (exit 4)
                collections = {
                    kind: await read_collection(client, COLLECTION_SOURCES[kind])
                    for kind in _kinds(args)
                }
            return objects_from_collections(collections, _kinds(args))

        # The reads end (and their threads with them) before the scan forks workers.
        return run_refs(args, asyncio.run(read()))

    return invoke([str(p) for p in args.paths], lambda: Invocation(action))
