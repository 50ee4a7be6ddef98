"""apply-calls: send a file of raw Console API calls with the quota, journal, resume and undo.

Each line of the file is one JSON object::

    {"method": "PUT", "path": "/gates/old_gate/archive", "body": {"archiveReason": "cleanup"}}
    {"method": "POST", "path": "/gates", "body": {"name": "new gate"}, "key": "create-new-gate"}

``method`` is POST, PUT, PATCH or DELETE; ``path`` is relative to ``/console/v1``
(a leading ``/console/v1`` is accepted); ``body`` is any JSON; ``key`` (optional) names
the call in the checkpoint and reports (default ``L<line>:<METHOD> <path>``). Blank
lines are ignored. Every line is checked before anything is sent: bad lines are listed
with their line numbers and nothing runs.

A line holding an API key is refused, and so is every call to the Keys endpoints
(``/keys…``: their paths and answers are keys): a plan is applied later, by a process
that reads only the plan file, so it cannot leave a key out of the plan and still send
it, and bulkops never writes a key into a plan, checkpoint or report.

For the endpoints the Console API documents (creates, archive/unarchive, enable/disable,
launch, full and partial updates, deletes, overrides, segment id lists, tags) each call
is planned from a read of its object, so it is skipped when already done, refused when
the object changed since planning, settled by a read after a timeout, and undoable.
Other endpoints run as given; an ambiguous outcome on those is reported as a conflict to
check by hand, never resent.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from pathlib import Path

from pydantic import BaseModel, ConfigDict, Field

from bulkops.api.paths import WRITE_METHODS, normalize_path
from bulkops.errors import InputError
from bulkops.inputs import read_text
from bulkops.job import JobContext, Mutation, listing
from bulkops.keyguard import PATTERN_ONLY, KeyGuard

from .planner import CallPlanner, RawCall

__all__ = ["Params", "load_calls", "plan"]

_FIELDS = frozenset({"method", "path", "body", "key"})
_KEYS_ENDPOINT = "/keys"


class Params(BaseModel):
    """Options of apply-calls."""

    model_config = ConfigDict(extra="forbid")

    file: Path = Field(description="JSON-lines file of calls: method, path, body?, key?")


def _check(text: str, guard: KeyGuard) -> tuple[RawCall, str | None] | str:
    try:
        item = json.loads(text)
    except json.JSONDecodeError as exc:
        return f"not valid JSON ({exc.msg} at column {exc.colno})"
    if not isinstance(item, dict):
        return "expected a JSON object"
    # First: every message below may quote the line.
    where = guard.find(item)
    if where is not None:
        return (
            f"{where} holds an API key (a console-/secret-/client- key, or a key this run "
            "read); bulkops never writes a key into a plan, checkpoint or report"
        )
    unknown = sorted(set(item) - _FIELDS)
    if unknown:
        return f"unknown field(s) {', '.join(unknown)} (allowed: body, key, method, path)"
    method = item.get("method")
    if not isinstance(method, str) or method.upper() not in WRITE_METHODS:
        return f"method must be one of {', '.join(sorted(WRITE_METHODS))}, got {method!r}"
    path = item.get("path")
    if not isinstance(path, str) or not path.startswith("/") or "://" in path:
        return "path must be a string starting with '/' (relative to /console/v1)"
    if any(c.isspace() for c in path):
        return "path must not contain spaces (percent-encode ids)"
    if normalize_path(path) in ("", "/"):
        return "path names no endpoint"
    if (normalize_path(path).split("?", 1)[0] + "/").startswith(_KEYS_ENDPOINT + "/"):
        return (
            "the Keys endpoints (/keys…) are not supported: their paths and answers are "
            "API keys, which bulkops never writes into a plan, checkpoint or report "
            "(manage keys in the Statsig console)"
        )
    key = item.get("key")
    if key is not None and (not isinstance(key, str) or not key.strip() or "\n" in key):
        return "key must be a non-empty one-line string"
    return RawCall(method=method.upper(), path=path, body=item.get("body")), key


def load_calls(path: Path, guard: KeyGuard = PATTERN_ONLY) -> list[tuple[int, RawCall, str]]:
    """Read and check every line; returns ``(line number, call, key)`` per call.

    Args:
        path: The calls file.
        guard: Finds API keys (``ctx.key_guard``: key-shaped strings and the run's keys).

    Raises:
        InputError: the file cannot be read, or lines are bad (all are listed, with
            their numbers: a line holding an API key or calling ``/keys`` is bad), or
            two calls share a key.
    """
    text = read_text(Path(path), what="calls file")
    calls: list[tuple[int, RawCall, str]] = []
    problems: list[str] = []
    seen: dict[str, int] = {}
    for lineno, line in enumerate(text.splitlines(), start=1):
        if not line.strip():
            continue
        checked = _check(line, guard)
        if isinstance(checked, str):
            problems.append(f"line {lineno}: {checked}")
            continue
        call, key = checked
        key = key or f"L{lineno}:{call.method} {normalize_path(call.path)}"
        if key in seen:
            problems.append(f"line {lineno}: key {key!r} is also used on line {seen[key]}")
            continue
        seen[key] = lineno
        calls.append((lineno, call, key))
    if problems:
        raise InputError(
            listing(f"{path}: {len(problems)} bad line(s); nothing was sent", problems)
        )
    if not calls:
        raise InputError(f"{path}: no calls in the file")
    return calls


async def plan(ctx: JobContext, params: Params) -> AsyncIterator[Mutation]:
    """Yield one mutation per call, in file order (checked whole before the first read)."""
    calls = load_calls(params.file, ctx.key_guard)
    planner = CallPlanner(ctx.client, ctx.project_id)
    for _lineno, call, key in calls:
        yield await planner.plan(call, key=key)
