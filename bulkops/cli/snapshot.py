"""``bulkops snapshot -o FILE``: a whole project read into the emulator's seed format.

``bulkops snapshot -o FILE`` writes what :func:`read_project` returns; ``bulkops emulator
--seed FILE`` serves it, so a job can be rehearsed offline (kill, resume, undo) before it
runs for real. The module is the reader (:func:`read_project`, :func:`write_snapshot`)
and, at its end, the command (:func:`snapshot_arguments`, :func:`snapshot_command`):
the key comes from the environment (``--key-env``, default ``STATSIG_CONSOLE_API_KEY``)
and never reaches the file or the output; the command prints the generated rehearsal
key the emulator serves the file with. The format is :meth:`bulkops.emulator.state.Project.to_snapshot`'s::

    {"format": "bulkops-snapshot/1", "project": {"id", "name"}, "keys": [...],
     "collections": {"gates": {id: gate}, ...}, "overrides": {"gates": {id: overrides}, ...},
     "id_lists": {segment id: [ids]}, "environments": [...], "settings": {...}}

Objects are stored exactly as the API returns them (archived gates and dynamic configs
included). Overrides that hold nothing are left out (a read of them answers the empty
shape either way). The file never holds the key it was read with: its one key is a
generated rehearsal key (:func:`rehearsal_key`), meaningful only to the emulator.
"""

from __future__ import annotations

import argparse
import json
import re
import time
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import anyio
import structlog
from rich.markup import escape

from ..api.client import ConsoleClient
from ..api.paths import encode_id
from ..emulator.state import SNAPSHOT_FORMAT
from ..errors import BulkOpsError, RefusedError
from ..files import check_output, write_private
from ..settings import API_KEY_ENV, ApiKeys
from .exit_codes import ExitCode
from .invocation import Invocation, add_connection_options, invoke
from .output import Ui
from .run_setup import key_project

__all__ = [
    "COLLECTION_SOURCES",
    "ID_LIST_TYPES",
    "OVERRIDE_KINDS",
    "SnapshotStats",
    "read_collection",
    "read_project",
    "rehearsal_key",
    "snapshot_arguments",
    "snapshot_command",
    "snapshot_stats",
    "write_snapshot",
]

log = structlog.get_logger()

EVENT_READ = "snapshot.read"
EVENT_WRITTEN = "snapshot.written"


@dataclass(frozen=True)
class _Source:
    path: str
    key: str = "id"
    params: Mapping[str, Any] | None = None


# Every collection a snapshot holds: where it is listed and which field keys it.
COLLECTION_SOURCES: dict[str, _Source] = {
    "tags": _Source("/tags"),
    "unit_id_types": _Source("/unit_id_types", key="name"),
    "target_apps": _Source("/target_app"),
    "segments": _Source("/segments"),
    "gates": _Source("/gates", params={"includeArchived": True}),
    "dynamic_configs": _Source("/dynamic_configs", params={"includeArchived": True}),
    "layers": _Source("/layers"),
    "experiments": _Source("/experiments"),
    "holdouts": _Source("/holdouts"),
}
# Collections whose objects have overrides (``GET /<kind>/{id}/overrides``).
OVERRIDE_KINDS = ("gates", "experiments", "layers", "holdouts")
# Segment types whose ids are read with ``GET /segments/{id}/id_list``.
ID_LIST_TYPES = frozenset({"id_list", "user_store_id_list"})
_CONCURRENCY = 8


def rehearsal_key(project_id: str) -> str:
    """The key a snapshot of ``project_id`` is served with (never a real key)."""
    return "console-rehearsal-" + re.sub(r"[^A-Za-z0-9_-]", "-", project_id)


def _is_empty(value: Any) -> bool:
    if isinstance(value, dict):
        return all(_is_empty(v) for v in value.values())
    return value in (None, [], "")


async def read_collection(client: ConsoleClient, source: _Source) -> dict[str, dict[str, Any]]:
    """Every object of one collection (all pages), by the field that keys it."""
    out: dict[str, dict[str, Any]] = {}
    async for item in client.paginate(source.path, params=dict(source.params or {})):
        if not isinstance(item, dict) or not item.get(source.key):
            raise BulkOpsError(f"GET {source.path}: an item has no {source.key!r}")
        out[str(item[source.key])] = item
    return out


async def read_project(client: ConsoleClient) -> dict[str, Any]:
    """Read the key's whole project into the snapshot format (see the module docstring).

    Lists are read one after another; overrides and id lists (one read per object)
    a few at a time. The order of every collection is the API's.
    """
    project = await client.data("GET", "/project")
    project_id = str(project.get("id") or "") if isinstance(project, dict) else ""
    if not project_id:
        raise BulkOpsError("GET /project did not name the key's project")
    settings = await client.data("GET", "/settings/project")
    settings = dict(settings) if isinstance(settings, dict) else {}
    name = str(settings.pop("name", "") or project_id)
    environments = await client.data("GET", "/environments")
    if isinstance(environments, dict):
        environments = environments.get("environments")
    collections = {
        kind: await read_collection(client, src) for kind, src in COLLECTION_SOURCES.items()
    }

    overrides: dict[str, dict[str, Any]] = {kind: {} for kind in OVERRIDE_KINDS}
    id_lists: dict[str, list[str]] = {}
    limiter = anyio.CapacityLimiter(_CONCURRENCY)

    async def read_overrides(kind: str, obj_id: str) -> None:
        async with limiter:
            data = await client.data("GET", f"/{kind}/{encode_id(obj_id)}/overrides")
        if not _is_empty(data):
            overrides[kind][obj_id] = data

    async def read_id_list(segment_id: str) -> None:
        async with limiter:
            id_lists[segment_id] = [i async for i in client.segments.get_id_list(segment_id)]

    async with anyio.create_task_group() as tg:
        for kind in OVERRIDE_KINDS:
            for obj_id in collections[kind]:
                tg.start_soon(read_overrides, kind, obj_id)
        for segment_id, segment in collections["segments"].items():
            if segment.get("type") in ID_LIST_TYPES:
                tg.start_soon(read_id_list, segment_id)

    # Tasks finish in any order: put overrides and id lists in the collections' order.
    ordered_overrides = {
        kind: {i: overrides[kind][i] for i in collections[kind] if i in overrides[kind]}
        for kind in OVERRIDE_KINDS
    }
    ordered_id_lists = {i: id_lists[i] for i in collections["segments"] if i in id_lists}
    snapshot = {
        "format": SNAPSHOT_FORMAT,
        "project": {"id": project_id, "name": name},
        "keys": [
            {
                "key": rehearsal_key(project_id),
                "scopes": ["omni_read_write"],
                "description": "rehearsal key for the emulator, written by bulkops snapshot",
            }
        ],
        "collections": {kind: objs for kind, objs in collections.items() if objs},
        "overrides": {kind: objs for kind, objs in ordered_overrides.items() if objs},
        "id_lists": ordered_id_lists,
        "environments": environments if isinstance(environments, list) else [],
        "settings": settings,
    }
    log.info(EVENT_READ, project=project_id, **snapshot_stats(snapshot).counts)
    return snapshot


@dataclass(frozen=True)
class SnapshotStats:
    """What a snapshot holds, for people: objects per collection, overrides, ids."""

    counts: dict[str, int]

    def describe(self) -> str:
        parts = [
            f"{n} {kind.replace('_', ' ')}"
            for kind, n in self.counts.items()
            if n and not kind.startswith(("overrides", "id_list"))
        ]
        overrides = sum(n for k, n in self.counts.items() if k.startswith("overrides"))
        parts.append(f"overrides on {overrides} objects")
        parts.append(
            f"{self.counts.get('id_lists', 0)} id lists ({self.counts.get('id_list_ids', 0)} ids)"
        )
        return ", ".join(parts)


def snapshot_stats(snapshot: Mapping[str, Any]) -> SnapshotStats:
    """Count what ``snapshot`` holds."""
    counts = {
        kind: len((snapshot.get("collections") or {}).get(kind, {})) for kind in COLLECTION_SOURCES
    }
    for kind in OVERRIDE_KINDS:
        counts[f"overrides_{kind}"] = len((snapshot.get("overrides") or {}).get(kind, {}))
    id_lists = snapshot.get("id_lists") or {}
    counts["id_lists"] = len(id_lists)
    counts["id_list_ids"] = sum(len(ids) for ids in id_lists.values())
    return SnapshotStats(counts)


def write_snapshot(
    path: Path, snapshot: Mapping[str, Any], *, secrets: tuple[str, ...] = ()
) -> None:
    """Write ``snapshot`` to ``path`` (atomic, mode 0600).

    Raises:
        RefusedError: one of ``secrets`` (the key it was read with) occurs in what
            was read (anything but the generated ``keys``); nothing is written.
    """
    text = json.dumps(snapshot, ensure_ascii=False, separators=(",", ":")) + "\n"
    content = json.dumps({k: v for k, v in snapshot.items() if k != "keys"}, ensure_ascii=False)
    if any(s and s in content for s in secrets):
        raise RefusedError(
            "the snapshot's content contains the API key it was read with; nothing was written"
        )
    write_private(Path(path), text)
    log.info(EVENT_WRITTEN, path=str(path), bytes=len(text))


# -- the command -------------------------------------------------------------------------


def snapshot_arguments(p: argparse.ArgumentParser) -> None:
    """``bulkops snapshot -o FILE [--key-env VAR] [--api-url URL] [--timeout S] [-v]``."""
    p.add_argument("-o", "--output", type=Path, required=True, help="the snapshot file (0600)")
    p.add_argument(
        "--key-env",
        default=API_KEY_ENV,
        metavar="VAR",
        help=f"environment variable holding the project's key (default {API_KEY_ENV})",
    )
    add_connection_options(p)
    p.add_argument("-v", "--verbose", action="store_true")


async def _snapshot(args: argparse.Namespace, keys: ApiKeys, ui: Ui) -> ExitCode:
    overrides: dict[str, Any] = {"allow_insecure_http": args.allow_insecure_http}
    if args.timeout is not None:
        overrides["timeout"] = args.timeout
    settings = keys.settings(args.key_env, base_url=args.api_url, **overrides)
    started = time.monotonic()
    async with ConsoleClient(settings) as client:
        await key_project(client)  # a wrong URL or key is told as such (exit 4)
        snapshot = await read_project(client)
    path: Path = args.output
    write_snapshot(path, snapshot, secrets=keys.secrets())
    project = snapshot["project"]
    key = rehearsal_key(project["id"])
    ui.out.print(
        f"snapshot of project {escape(project['name'])} ({escape(project['id'])}) written to "
        f"{escape(str(path))} (mode 0600) in {time.monotonic() - started:.1f}s:\n"
        f"  {escape(snapshot_stats(snapshot).describe())}\n"
        f"The file holds no real key. Rehearse offline with:\n"
        f"  bulkops emulator --seed {escape(str(path))} --port 8700\n"
        f"  export STATSIG_API_URL=http://127.0.0.1:8700/console/v1\n"
        f"  export {API_KEY_ENV}={key}",
        highlight=False,
    )
    return ExitCode.OK


def snapshot_command(args: argparse.Namespace) -> int:
    """``bulkops snapshot``: the key in ``--key-env`` is read once and redacted."""
    return invoke(
        [str(args.output), args.key_env, args.api_url or ""],
        lambda: Invocation(lambda ui, keys: _snapshot(args, keys, ui), [args.key_env]),
        verbose=args.verbose,
        check=lambda: check_output(args.output, "-o"),
    )
