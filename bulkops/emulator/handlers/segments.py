"""Emulator handlers: segments (the spec's 13 "Segments" operations).

A segment is one of four types. ``rule_based`` segments hold ``rules`` (changed
only through ``POST /segments/{id}/conditional``); ``id_list`` and
``user_store_id_list`` segments hold an id list, kept in ``project.id_lists``
(an insertion-ordered dict of ids) with the segment's ``count`` equal to its
length; ``analysis_list`` segments have neither. Each id-list endpoint accepts
one type only and answers any other with the service's 400
``"Segment must be of type '<type>' to be modified on this endpoint"``.

The id list's ``currentVersion`` (``GET …/idlist_metadata``) is the segment's
``version``, which every applied change bumps; ``add_ids``/``remove_ids`` take
it as an optional optimistic-concurrency check.
"""

from __future__ import annotations

import re
from functools import partial
from typing import Any

from aiohttp import web

from ...api.paths import id_from_name
from ..checks import check_name, field_error, require_fields
from ..common import (
    SEGMENT_CONDITION_TYPES,
    get_or_404,
    new_metadata,
    normalize_rules,
    referenced_ids,
)
from ..http import (
    GENERIC_400,
    PREFIX,
    api_error,
    clone,
    ok,
    ok_page,
    paginate,
    project,
    read_body,
    record_change,
)

__all__ = ["SEGMENT_TYPES", "routes"]

SEGMENT_TYPES = ("id_list", "rule_based", "analysis_list", "user_store_id_list")
ID_LIST_TYPES = frozenset({"id_list", "user_store_id_list"})
# Per-request id limits from the spec (SegmentIDListContractDto / …UserStoreContractDto).
MAX_ID_LIST_IDS = 100_000
MAX_USER_STORE_IDS = 1000

_NAME_PATTERN = re.compile(r"^[a-zA-Z0-9_\- ]*$")
_ID_PATTERN = re.compile(r"^[a-zA-Z0-9_-]*$")
_KIND = "segments"
_USER_STORE = "user_store_id_list"


def _segment(request: web.Request) -> dict[str, Any]:
    return get_or_404(request, _KIND, request.match_info["id"], "Segment")


def _require_type(segment: dict[str, Any], *allowed: str) -> None:
    if segment.get("type") not in allowed:
        api_error(400, f"Segment must be of type '{allowed[0]}' to be modified on this endpoint")


def _id_list(request: web.Request, segment: dict[str, Any]) -> dict[str, None]:
    return project(request).id_lists.setdefault(str(segment["id"]), {})


def _rules(request: web.Request, raw: Any, segment_id: str, existing: Any = ()) -> list[Any]:
    """Validate segment rules: segment condition types, known environments, known segments."""
    envs = [str(e.get("name")) for e in project(request).environments]
    rules = normalize_rules(
        raw, existing=existing, allowed_types=SEGMENT_CONDITION_TYPES, environments=envs
    )
    store = project(request).store(_KIND)
    refs = list(dict.fromkeys(referenced_ids(rules, "segment")))
    if segment_id in refs:
        field_error("rules", f"Segment {segment_id} cannot reference itself")
    missing = [r for r in refs if r not in store]
    if missing:
        field_error("rules", f"Segments with IDs [{', '.join(missing)}] do not exist")
    return rules


def _ids(body: Any, limit: int, *, with_version: bool = False) -> tuple[list[str], Any]:
    """Validate an ``{ids[, version]}`` body; return the ids (deduplicated) and the version."""
    body = require_fields(body, "ids")
    ids = body["ids"]
    if not isinstance(ids, list):
        field_error("ids", f"Expected array, received {type(ids).__name__}")
    if len(ids) > limit:
        field_error("ids", f"Array must contain at most {limit} element(s)")
    for index, value in enumerate(ids):
        if not isinstance(value, str) or not value:
            field_error(f"ids[{index}]", "Expected a non-empty string")
    version = body.get("version") if with_version else None
    if version is not None and (isinstance(version, bool) or not isinstance(version, int | float)):
        field_error("version", f"Expected number, received {type(version).__name__}")
    return list(dict.fromkeys(ids)), version


def _check_version(segment: dict[str, Any], version: Any) -> None:
    current = int(segment.get("version") or 0)
    if version is not None and int(version) != current:
        field_error(
            "version",
            f"ID list version {version:g} does not match the current version {current}",
        )


async def list_segments(request: web.Request) -> web.Response:
    """``GET /segments``: every segment, paginated."""
    items = [clone(s) for s in project(request).store(_KIND).values()]
    return ok_page(request, items, "Segments listed successfully.")


async def create_segment(request: web.Request) -> web.Response:
    """``POST /segments``: 201 with the new segment; 400 on a taken id or name."""
    body = require_fields(await read_body(request), "name", "type")
    name = check_name(body["name"], pattern=_NAME_PATTERN)
    seg_type = body["type"]
    if seg_type not in SEGMENT_TYPES:
        expected = " | ".join(f"'{t}'" for t in SEGMENT_TYPES)
        field_error("type", f"Invalid enum value. Expected {expected}, received '{seg_type}'")
    seg_id = (
        check_name(body["id"], "id", pattern=_ID_PATTERN)
        if body.get("id") is not None
        else id_from_name(name)
    )
    description = body.get("description")
    if description is not None and (not isinstance(description, str) or len(description) > 1000):
        field_error("description", "description must be a string of at most 1000 characters")
    if body.get("idType") is not None and not isinstance(body["idType"], str):
        field_error("idType", "Expected string")
    tags = body.get("tags")
    if tags is not None and (
        not isinstance(tags, list) or not all(isinstance(t, str) for t in tags)
    ):
        field_error("tags", "Expected array of strings")
    store = project(request).store(_KIND)
    if seg_id in store or any(s.get("name") == name for s in store.values()):
        api_error(400, "Name is already in use")
    rules: list[Any] | None = None
    if body.get("rules") is not None:
        if seg_type != "rule_based":
            field_error("rules", "rules can only be given for rule_based segments")
        rules = _rules(request, body["rules"], seg_id)
    segment = new_metadata(request, seg_id, name, body)
    segment.update({"isEnabled": True, "type": seg_type, "count": 0})
    if seg_type == "rule_based":
        segment["rules"] = rules or []
    store[seg_id] = segment
    if seg_type in ID_LIST_TYPES:
        project(request).id_lists[seg_id] = {}
    project(request).snapshot_version(_KIND, segment)
    record_change(request, _KIND, segment, "segment_create", versioned=False)
    return ok(segment, "Segment created successfully.", status=201)


async def get_segment(request: web.Request) -> web.Response:
    """``GET /segments/{id}``."""
    return ok(_segment(request), "Segment read successfully.")


async def delete_segment(request: web.Request) -> web.Response:
    """``DELETE /segments/{id}``: the segment and its id list go."""
    segment = _segment(request)
    proj = project(request)
    del proj.store(_KIND)[segment["id"]]
    proj.id_lists.pop(str(segment["id"]), None)
    record_change(request, _KIND, segment, "config_delete", versioned=False)
    return ok(message="Segment deleted successfully.", with_data=False)


async def archive_segment(request: web.Request) -> web.Response:
    """``PUT /segments/{id}/archive``: ``status`` becomes ``Archived``, ``isEnabled`` false."""
    segment = _segment(request)
    if segment.get("status") != "Archived":
        segment["status"] = "Archived"
        segment["isEnabled"] = False
        record_change(
            request,
            _KIND,
            segment,
            "config_state_toggle",
            changes={"status": {"old": None, "new": "Archived"}},
        )
    return ok(segment, "Segment archived successfully.")


async def set_segment_rules(request: web.Request) -> web.Response:
    """``POST /segments/{id}/conditional``: a top-level array of rules replaces the rules."""
    raw = await read_body(request)
    if not isinstance(raw, list):
        api_error(400, GENERIC_400, [{"property": "body", "errorMessage": "Expected array"}])
    segment = _segment(request)
    _require_type(segment, "rule_based")
    old = segment.get("rules") or []
    rules = _rules(request, raw, str(segment["id"]), existing=old)
    segment["rules"] = rules
    record_change(
        request,
        _KIND,
        segment,
        "config_conditions_update",
        changes={"rules": {"old": clone(old), "new": clone(rules)}},
    )
    return ok(segment, "Rules successfully updated")


async def get_id_list(request: web.Request) -> web.Response:
    """``GET /segments/{id}/id_list``: ``{name, count, ids}`` with one page of ids."""
    segment = _segment(request)
    _require_type(segment, "id_list", "user_store_id_list")
    ids = list(_id_list(request, segment))
    chunk, meta = paginate(request, ids)
    data = {"name": segment.get("name") or segment["id"], "count": len(ids), "ids": chunk}
    return web.json_response({"message": "IDs read successfully", "data": data, "pagination": meta})


async def reset_id_list(request: web.Request) -> web.Response:
    """``POST /segments/{id}/id_list/reset``: the id list becomes exactly ``ids``."""
    ids, _ = _ids(await read_body(request), MAX_ID_LIST_IDS)
    segment = _segment(request)
    _require_type(segment, "id_list")
    current = _id_list(request, segment)
    if list(current) != ids:
        project(request).id_lists[str(segment["id"])] = dict.fromkeys(ids)
        _record_count(request, segment, len(current), {})
    return ok(message="Segment Reset reset successfully.", with_data=False)


async def id_list_metadata(request: web.Request) -> web.Response:
    """``GET /segments/{id}/idlist_metadata``: ``{currentVersion, isUpdating}``."""
    segment = _segment(request)
    _require_type(segment, "id_list", "user_store_id_list")
    data = {"currentVersion": int(segment.get("version") or 0), "isUpdating": False}
    return ok(data, "ID List metadata read successfully")


async def change_ids(seg_type: str, adding: bool, request: web.Request) -> web.Response:
    """Add or remove ids: ``PATCH``/``DELETE /segments/{id}/id_list`` (``id_list`` segments,
    ≤100,000 ids) or ``PATCH …/add_ids``/``…/remove_ids`` (``user_store_id_list``, ≤1000
    ids, optional ``version``)."""
    user_store = seg_type == "user_store_id_list"
    limit = MAX_USER_STORE_IDS if user_store else MAX_ID_LIST_IDS
    ids, version = _ids(await read_body(request), limit, with_version=user_store)
    segment = _segment(request)
    _require_type(segment, seg_type)
    _check_version(segment, version)
    current = _id_list(request, segment)
    changed = [i for i in ids if (i in current) != adding]
    if changed:
        before = len(current)
        for value in changed:
            if adding:
                current[value] = None
            else:
                del current[value]
        _record_count(request, segment, before, {"added" if adding else "removed": len(changed)})
    verb = "added to" if adding else "removed from"
    return ok(message=f"IDs successfully {verb} Segment ID List", with_data=False)


def _record_count(
    request: web.Request, segment: dict[str, Any], before: int, extra: dict[str, Any]
) -> None:
    """Set the segment's ``count`` from its id list and record the change."""
    ids = _id_list(request, segment)
    segment["count"] = len(ids)
    changes = {"count": {"old": before, "new": len(ids)}, **extra}
    record_change(request, _KIND, segment, "ID_list_update", changes=changes)


routes = [
    web.get(f"{PREFIX}/segments", list_segments),
    web.post(f"{PREFIX}/segments", create_segment),
    web.get(f"{PREFIX}/segments/{{id}}", get_segment),
    web.delete(f"{PREFIX}/segments/{{id}}", delete_segment),
    web.put(f"{PREFIX}/segments/{{id}}/archive", archive_segment),
    web.post(f"{PREFIX}/segments/{{id}}/conditional", set_segment_rules),
    web.get(f"{PREFIX}/segments/{{id}}/id_list", get_id_list),
    web.patch(f"{PREFIX}/segments/{{id}}/id_list", partial(change_ids, "id_list", True)),
    web.delete(f"{PREFIX}/segments/{{id}}/id_list", partial(change_ids, "id_list", False)),
    web.post(f"{PREFIX}/segments/{{id}}/id_list/reset", reset_id_list),
    web.get(f"{PREFIX}/segments/{{id}}/idlist_metadata", id_list_metadata),
    web.patch(f"{PREFIX}/segments/{{id}}/add_ids", partial(change_ids, _USER_STORE, True)),
    web.patch(f"{PREFIX}/segments/{{id}}/remove_ids", partial(change_ids, _USER_STORE, False)),
]
