"""Emulator handlers: reviews (the rule is :mod:`bulkops.api.reviews`).

* ``GET``/``POST /settings/reviews``: the project's review settings
  (``SettingsReviewsContractDto``; the update takes all three required flags).
* :func:`with_reviews` wraps every handler: a mutation sent with
  ``x-respect-review-settings: true`` to a gate, dynamic config, experiment or segment
  that requires review, whose change touches an environment that requires review, is
  **not applied**. The handler runs (so a bad request still gets its 400 at once), its
  change is taken back, and a review holding the change is opened instead: the object
  shows it as ``activeReview``, the audit log records ``config_review_create``, and the
  quota counted the request as any other.
* ``GET /{kind}/{id}/reviews`` (newest first, paginated), ``GET …/reviews/{reviewID}``
  and ``PUT …/reviews/{reviewID}/commit`` for the four kinds.
* ``POST /_emulator/reviews/{reviewID}/approve|reject`` (body optional ``{"reason"}``)
  and ``GET /_emulator/reviews[?status=…]``: what people do in the console, for tests
  and the demo; outside ``/console/v1`` (no key), from loopback only.

Where the docs leave a choice open, these are ours (``[inferred]``):

* **The response** of a mutation turned into a review has the status the operation
  documents and the operation's body shape: an object response shows the object as it
  still is, with ``activeReview``; other responses carry what was proposed. Its
  ``message`` says a review was opened and names it.
* **The description** of that review is the request's ``x-review-description`` header
  (percent-encoded where needed), else ``"<METHOD> <path> (Console API)"``. Its
  ``type`` is the operation (``archive``, ``update_rules``, ``update_overrides``,
  ``update_id_list``, ``update_settings``, ``delete``, …).
* **A second mutation** with the header on an object whose review is still open
  (pending or approved) is refused with 400 naming that review: the object is locked
  while a change waits, as the console makes it read-only. Without the header a change
  applies directly, as before, and an open review it makes out of date can no longer
  be committed.
* **Which environments a change touches**: :mod:`bulkops.api.reviews` (rules: those of
  the rules that change; overrides: those the entries name; anything else: all).
* **Commit** applies the change exactly as reviewed, once: 400 for a pending, rejected
  or committed review, and for one whose object changed since it was opened. It logs
  ``config_review_commit`` and the change's own audit entries, and answers
  ``{"message": "<Kind> review committed successfully"}`` (the documented body).
* A review's ``reason`` (why it was approved or rejected) is our addition to the
  documented review object, so that a tool can report it.
"""

from __future__ import annotations

import copy
import json
from collections.abc import Awaitable, Callable
from functools import partial
from typing import Any

from aiohttp import web

from ...api.paths import WRITE_METHODS
from ...api.reviews import (
    DESCRIPTION_HEADER,
    RESPECT_HEADER,
    REVIEWABLE_KINDS,
    ReviewStatus,
    decode_description,
    environments_requiring_review,
    needs_review,
    object_requires_review,
    override_environments,
    review_target,
    rule_environments,
)
from ..checks import check_types, json_object, require_fields
from ..http import (
    APPLIED,
    PREFIX,
    REVIEW,
    api_error,
    clone,
    mark_applied,
    now_ms,
    ok,
    ok_page,
    project,
    read_body,
    state,
)
from ..state import EmulatorState, Project, Review

__all__ = [
    "ADMIN_PREFIX",
    "REVIEW_SETTINGS",
    "open_review",
    "require_reviews",
    "review_settings",
    "routes",
    "with_reviews",
]

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]

ADMIN_PREFIX = "/_emulator/reviews"
REVIEW_SETTINGS = (
    "is_config_review_required",
    "is_metric_review_required",
    "is_metric_review_required_on_verified_only",
)
_LABELS = {
    "gates": "Gate",
    "dynamic_configs": "Dynamic Config",
    "experiments": "Experiment",
    "segments": "Segment",
}
# Operations (the path after /{kind}/{id}/) and the review type of their change.
_TYPES = {
    "overrides": "update_overrides",
    "rules": "update_rules",
    "rule": "update_rules",
    "id_list": "update_id_list",
}
# Fields every change stamps: a change of these alone touches no environment.
_STAMPS = frozenset(
    {"version", "lastModifiedTime", "lastModifierName", "lastModifierID", "lastModifierEmail"}
)
_LOOPBACK = frozenset({"127.0.0.1", "::1"})


# -- settings ----------------------------------------------------------------------------------


def review_settings(proj: Project) -> dict[str, Any]:
    """The project's review settings (every flag off unless set)."""
    stored = proj.settings.get("reviews") or {}
    return {name: bool(stored.get(name, False)) for name in REVIEW_SETTINGS}


def require_reviews(proj: Project) -> None:
    """Turn the project's review requirement on, production's too
    (``bulkops emulator --require-reviews``)."""
    proj.settings["reviews"] = {**review_settings(proj), "is_config_review_required": True}
    for env in proj.environments:
        if env.get("isProduction"):
            env["requiresReview"] = True


async def get_settings(request: web.Request) -> web.Response:
    """``GET /settings/reviews``."""
    return ok(review_settings(project(request)), "Settings read successfully.")


async def update_settings(request: web.Request) -> web.Response:
    """``POST /settings/reviews``: all three flags (the contract requires them)."""
    body = require_fields(await read_body(request), *REVIEW_SETTINGS)
    check_types(body, dict.fromkeys(REVIEW_SETTINGS, "boolean"))
    proj = project(request)
    before = review_settings(proj)
    proj.settings["reviews"] = {name: body[name] for name in REVIEW_SETTINGS}
    after = review_settings(proj)
    if after != before:
        changes = {k: {"old": before[k], "new": after[k]} for k in after if after[k] != before[k]}
        proj.audit("config_reviews_settings_update", proj.id, proj.name, changes=changes)
        mark_applied(request)
    return ok(after, "Settings updated successfully.")


# -- which changes need review -----------------------------------------------------------------


def _teams_requiring(proj: Project) -> set[str]:
    return {
        str(value)
        for team in proj.store("teams").values()
        if team.get("requireReviews")
        for value in (team.get("id"), team.get("name"))
        if value
    }


def open_review(proj: Project, kind: str, obj_id: str) -> Review | None:
    """The review still holding a change of ``kind/obj_id`` (pending or approved), if any."""
    for review in reversed(proj.reviews.values()):
        if (
            review.kind == kind
            and review.object_id == obj_id
            and ReviewStatus.is_open(review.status)
        ):
            return review
    return None


def _scope(proj: Project, kind: str, obj_id: str) -> dict[str, Any]:
    """What a change of ``kind/obj_id`` can touch: the object (without its
    ``activeReview``), its overrides, its id list and its version history."""
    obj = proj.store(kind).get(obj_id)
    ids = proj.id_lists.get(obj_id) if kind == "segments" else None
    return {
        "object": None
        if obj is None
        else {k: clone(v) for k, v in obj.items() if k != "activeReview"},
        "overrides": clone(proj.overrides.get(kind, {}).get(obj_id)),
        "id_list": None if ids is None else list(ids),
        "versions": list(proj.versions.get(kind, {}).get(obj_id, [])),
    }


def _same(a: dict[str, Any], b: dict[str, Any]) -> bool:
    return all(a[name] == b[name] for name in ("object", "overrides", "id_list"))


def _restore(proj: Project, kind: str, obj_id: str, scope: dict[str, Any]) -> None:
    """Make ``kind/obj_id`` show ``scope`` again (its version history too)."""
    store = proj.store(kind)
    if scope["object"] is None:
        store.pop(obj_id, None)
    else:
        store[obj_id] = clone(scope["object"])
    if scope["overrides"] is None:
        proj.overrides.get(kind, {}).pop(obj_id, None)
    else:
        proj.overrides.setdefault(kind, {})[obj_id] = clone(scope["overrides"])
    if kind == "segments":
        if scope["id_list"] is None:
            proj.id_lists.pop(obj_id, None)
        else:
            proj.id_lists[obj_id] = dict.fromkeys(scope["id_list"])
    if scope["versions"]:
        proj.versions.setdefault(kind, {})[obj_id] = list(scope["versions"])
    else:
        proj.versions.get(kind, {}).pop(obj_id, None)


def _touched(base: dict[str, Any], proposal: dict[str, Any], body: Any) -> frozenset[str] | None:
    """The environments the change from ``base`` to ``proposal`` touches (None: all)."""
    old, new = base["object"], proposal["object"]
    if old is None or new is None or base["id_list"] != proposal["id_list"]:
        return None
    changed = {k for k in old.keys() | new.keys() if old.get(k) != new.get(k)} - _STAMPS
    if changed - {"rules"}:
        return None
    touched: set[str] = set()
    if "rules" in changed:
        rules = rule_environments(old.get("rules") or [], new.get("rules") or [])
        if rules is None:
            return None
        touched |= rules
    if base["overrides"] != proposal["overrides"]:
        overrides = override_environments(body)
        if overrides is None:
            return None
        touched |= overrides
    return frozenset(touched)


def _active(review: Review) -> dict[str, Any]:
    return {"reviewID": review.id, "reviewStatus": review.status, "description": review.description}


def _show(proj: Project, review: Review) -> None:
    """Show ``review`` on its object while it is open; take it off once it closed."""
    obj = proj.store(review.kind).get(review.object_id)
    if obj is None:
        return
    if ReviewStatus.is_open(review.status):
        obj["activeReview"] = _active(review)
    elif (obj.get("activeReview") or {}).get("reviewID") == review.id:
        del obj["activeReview"]


def _review_type(request: web.Request) -> str:
    rest = request.path[len(PREFIX) :].strip("/").split("/")[2:]
    if not rest:
        return "delete" if request.method == "DELETE" else "update_settings"
    return _TYPES.get(rest[0], rest[0])


def _reviewed(request: web.Request) -> tuple[str, str] | None:
    """``(kind, id)`` when this request asks to respect review settings on a reviewable object."""
    if request.method not in WRITE_METHODS:
        return None
    if request.headers.get(RESPECT_HEADER, "").strip().lower() != "true":
        return None
    target = review_target(request.path[len(PREFIX) :])
    if target is None:
        return None
    return target.kind, target.object_id


def with_reviews(handler: Handler) -> Handler:
    """``handler`` with the review rule in front of it (see the module docstring)."""

    async def reviewed(request: web.Request) -> web.StreamResponse:
        target = _reviewed(request)
        if target is None:
            return await handler(request)
        kind, obj_id = target
        proj = project(request)
        obj = proj.store(kind).get(obj_id)
        if obj is None or not object_requires_review(
            obj,
            project=review_settings(proj)["is_config_review_required"],
            teams=_teams_requiring(proj),
        ):
            return await handler(request)
        held = open_review(proj, kind, obj_id)
        if held is not None:
            api_error(
                400,
                f"{_LABELS[kind]} {obj_id} has a review in progress ({held.id}, {held.status}); "
                "it must be committed or rejected before another change",
            )
        base = _scope(proj, kind, obj_id)
        logged = len(proj.audit_log)
        response = await handler(request)
        if not request.get(APPLIED) or not 200 <= response.status < 300:
            return response
        proposal = _scope(proj, kind, obj_id)
        body = await _body(request)
        touched = _touched(base, proposal, body)
        if not needs_review(touched, environments_requiring_review(proj.environments)):
            return response
        entries = proj.audit_log[logged:]
        del proj.audit_log[logged:]
        _restore(proj, kind, obj_id, base)
        request[APPLIED] = False
        review = _open(request, kind, obj_id, base, proposal, entries)
        return _answer(proj, review, response)

    return reviewed


async def _body(request: web.Request) -> Any:
    try:
        return await read_body(request, required=False)
    except web.HTTPException:
        return None


def _open(
    request: web.Request,
    kind: str,
    obj_id: str,
    base: dict[str, Any],
    proposal: dict[str, Any],
    entries: list[dict[str, Any]],
) -> Review:
    st = state(request)
    proj = project(request)
    header = request.headers.get(DESCRIPTION_HEADER)
    description = (
        decode_description(header)
        if header
        else f"{request.method} {request.path[len(PREFIX) :]} (Console API)"
    )
    review = Review(
        id=f"rv{next(st.review_seq):06d}",
        kind=kind,
        object_id=obj_id,
        type=_review_type(request),
        description=description,
        created_ms=now_ms(request),
        base=base,
        proposal=proposal,
        entries=entries,
    )
    proj.reviews[review.id] = review
    _show(proj, review)
    name = str((base["object"] or {}).get("name") or obj_id)
    proj.audit(
        "config_review_create",
        obj_id,
        name,
        changes={"reviewID": review.id, "type": review.type, "description": description},
        now_ms=review.created_ms,
    )
    request[REVIEW] = {"event": "opened", "id": review.id}
    return review


def _answer(proj: Project, review: Review, response: web.StreamResponse) -> web.Response:
    """The handler's answer as a review's: same status and shape, the object unchanged."""
    sent: Any = None
    if isinstance(response, web.Response) and isinstance(response.body, bytes | bytearray):
        try:
            sent = json.loads(response.body)
        except ValueError:
            sent = None
    message = (
        f"{_LABELS[review.kind]} change submitted for review {review.id}: it applies once the "
        "review is approved and committed"
    )
    body: dict[str, Any] = {"message": message}
    if isinstance(sent, dict) and "data" in sent:
        data = sent["data"]
        if isinstance(data, dict) and data.get("id") == review.object_id:
            data = proj.store(review.kind).get(review.object_id)
        body["data"] = data
    return web.json_response(body, status=response.status)


# -- reading and committing ----------------------------------------------------------------


def _object(request: web.Request, kind: str) -> dict[str, Any]:
    obj = project(request).store(kind).get(request.match_info["id"])
    if obj is None:
        api_error(404, f"{_LABELS[kind]} not found.")
    return obj


def _review(request: web.Request, kind: str) -> Review:
    _object(request, kind)
    review = project(request).reviews.get(request.match_info["reviewID"])
    if review is None or review.kind != kind or review.object_id != request.match_info["id"]:
        api_error(404, "Review not found.")
    return review


async def list_reviews(kind: str, request: web.Request) -> web.Response:
    """``GET /{kind}/{id}/reviews``: the object's reviews, newest first."""
    obj = _object(request, kind)
    found = [
        r.public()
        for r in reversed(project(request).reviews.values())
        if r.kind == kind and r.object_id == obj["id"]
    ]
    return ok_page(request, found, "Reviews listed successfully.")


async def get_review(kind: str, request: web.Request) -> web.Response:
    """``GET /{kind}/{id}/reviews/{reviewID}``."""
    return ok(_review(request, kind).public(), "Review read successfully.")


async def commit_review(kind: str, request: web.Request) -> web.Response:
    """``PUT /{kind}/{id}/reviews/{reviewID}/commit``: apply an approved review, once."""
    review = _review(request, kind)
    label = _LABELS[kind]
    if review.status == ReviewStatus.COMMITTED:
        api_error(400, f"Review {review.id} is already committed")
    if review.status == ReviewStatus.REJECTED:
        api_error(400, f"Review {review.id} was rejected; it cannot be committed")
    if not ReviewStatus.committable(review.status):
        api_error(
            400, f"Review {review.id} is {review.status}: only an approved review can be committed"
        )
    proj = project(request)
    if not _same(_scope(proj, kind, review.object_id), review.base):
        api_error(
            400,
            f"{label} {review.object_id} changed since review {review.id} was opened; "
            "the review is out of date",
        )
    _install(request, review)
    return ok(message=f"{label} review committed successfully", with_data=False)


def _install(request: web.Request, review: Review) -> None:
    """Apply ``review``'s change now: the object, its overrides and id list as proposed,
    a new version, and the change's audit entries."""
    proj = project(request)
    kind, obj_id = review.kind, review.object_id
    ts = now_ms(request)
    proposal = copy.deepcopy(review.proposal)
    proposal["versions"] = review.base["versions"]
    _restore(proj, kind, obj_id, proposal)
    obj = proj.store(kind).get(obj_id)
    if obj is None:
        proj.versions.get(kind, {}).pop(obj_id, None)
    elif obj.get("version") != (review.base["object"] or {}).get("version"):
        obj["lastModifiedTime"] = ts
        proj.snapshot_version(kind, obj)
    review.status = ReviewStatus.COMMITTED
    name = str((review.base["object"] or {}).get("name") or obj_id)
    proj.audit("config_review_commit", obj_id, name, changes={"reviewID": review.id}, now_ms=ts)
    for entry in review.entries:
        proj.audit(
            str(entry.get("actionType")),
            str(entry.get("targetID", obj_id)),
            str(entry.get("name", name)),
            changes=entry.get("changes"),
            now_ms=ts,
            tags=list(entry.get("tags") or []),
        )
    mark_applied(request)
    request[REVIEW] = {"event": "committed", "id": review.id}


# -- the console's part (approve, reject), for tests and the demo ------------------------------


def _all_reviews(st: EmulatorState) -> list[tuple[Project, Review]]:
    return [(p, r) for p in st.projects.values() for r in p.reviews.values()]


def _loopback(request: web.Request) -> None:
    if request.remote not in _LOOPBACK:
        api_error(403, "The emulator's review admin surface answers loopback requests only")


def _found(request: web.Request) -> tuple[Project, Review]:
    _loopback(request)
    wanted = request.match_info["reviewID"]
    for proj, review in _all_reviews(state(request)):
        if review.id == wanted:
            return proj, review
    api_error(404, "Review not found.")


async def _reason(request: web.Request) -> str | None:
    body = json_object(await read_body(request, required=False) or {})
    check_types(body, {"reason": "string?"})
    reason = body.get("reason")
    return str(reason) if reason is not None else None


async def admin_list(request: web.Request) -> web.Response:
    """``GET /_emulator/reviews[?status=S]``: every review of every project, oldest first."""
    _loopback(request)
    wanted = request.rel_url.query.getall("status", [])
    found = [
        {**r.public(), "project": p.id, "kind": r.kind, "object_id": r.object_id}
        for p, r in _all_reviews(state(request))
        if not wanted or r.status in wanted
    ]
    return web.json_response({"message": "Reviews listed successfully.", "data": found})


async def admin_decide(approve: bool, request: web.Request) -> web.Response:
    """``POST /_emulator/reviews/{reviewID}/approve|reject`` ``{"reason"?}``."""
    proj, review = _found(request)
    reason = await _reason(request)
    if not ReviewStatus.is_open(review.status):
        api_error(400, f"Review {review.id} is {review.status}")
    if approve and ReviewStatus.committable(review.status):
        return ok(review.public(), "Review already approved.")
    review.status = ReviewStatus.ACCEPTED if approve else ReviewStatus.REJECTED
    review.reason = reason
    _show(proj, review)
    name = str((review.base["object"] or {}).get("name") or review.object_id)
    proj.audit(
        "config_review_accept" if approve else "config_review_reject",
        review.object_id,
        name,
        changes={"reviewID": review.id, "reason": reason},
        now_ms=now_ms(request),
    )
    request[REVIEW] = {"event": "approved" if approve else "rejected", "id": review.id}
    return ok(review.public(), "Review approved." if approve else "Review rejected.")


routes = [
    web.get(f"{PREFIX}/settings/reviews", get_settings),
    web.post(f"{PREFIX}/settings/reviews", update_settings),
    *(
        route
        for kind in REVIEWABLE_KINDS
        for route in (
            web.get(f"{PREFIX}/{kind}/{{id}}/reviews", partial(list_reviews, kind)),
            web.get(f"{PREFIX}/{kind}/{{id}}/reviews/{{reviewID}}", partial(get_review, kind)),
            web.put(
                f"{PREFIX}/{kind}/{{id}}/reviews/{{reviewID}}/commit", partial(commit_review, kind)
            ),
        )
    ),
    web.get(ADMIN_PREFIX, admin_list),
    web.post(f"{ADMIN_PREFIX}/{{reviewID}}/approve", partial(admin_decide, True)),
    web.post(f"{ADMIN_PREFIX}/{{reviewID}}/reject", partial(admin_decide, False)),
]
"""The review routes (settings, the four kinds' reviews, the admin surface)."""
