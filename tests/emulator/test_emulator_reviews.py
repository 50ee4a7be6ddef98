"""Reviews in the emulator: settings, mutations turned into reviews, commit, the admin surface."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any
from unittest import mock

import pytest
from aiohttp import web
from aiohttp.test_utils import make_mocked_request
from emulator_support import actions, rejected

from bulkops.api.client import ConsoleClient
from bulkops.api.reviews import DESCRIPTION_HEADER, encode_description
from bulkops.emulator import EmulatorState, Project, create_app
from bulkops.emulator.handlers.reviews import admin_decide, require_reviews
from bulkops.emulator.state import QuotaWindow
from bulkops.errors import BadRequest, NotFound, RateLimited

Admin = Callable[..., Awaitable[tuple[int, Any]]]
RULE = {"name": "All", "passPercentage": 100, "conditions": [{"type": "public"}]}


@pytest.fixture(name="reviewing")
def _reviewing(make_client: Callable[..., ConsoleClient]) -> ConsoleClient:
    """A client that sends ``x-respect-review-settings: true`` (the default)."""
    return make_client()


@pytest.fixture(name="direct")
def _direct(make_client: Callable[..., ConsoleClient]) -> ConsoleClient:
    """A client without the review header."""
    return make_client(respect_reviews=False)


async def _gate(client: ConsoleClient, name: str, **fields: Any) -> dict[str, Any]:
    return dict(await client.data("POST", "/gates", json={"name": name, **fields}))


async def _described(client: ConsoleClient, method: str, path: str, text: str, body: Any) -> Any:
    request = client.build_request(method, path, json=body)
    headers = {**request.headers, DESCRIPTION_HEADER: encode_description(text)}
    response = await client.send(type(request)(method, request.url, headers, {}, body, True))
    return response.json()


async def test_review_settings_read_and_update(reviewing: ConsoleClient, project: Project) -> None:
    """``/settings/reviews`` answers the three flags, all off; an update takes all three."""
    assert await reviewing.data("GET", "/settings/reviews") == {
        "is_config_review_required": False,
        "is_metric_review_required": False,
        "is_metric_review_required_on_verified_only": False,
    }
    body = {
        "is_config_review_required": True,
        "is_metric_review_required": False,
        "is_metric_review_required_on_verified_only": False,
    }
    assert await reviewing.data("POST", "/settings/reviews", json=body) == body
    assert project.settings["reviews"]["is_config_review_required"] is True
    with pytest.raises(BadRequest):
        await reviewing.data("POST", "/settings/reviews", json={"is_config_review_required": True})


async def test_a_change_that_needs_review_opens_one_and_applies_nothing(
    reviewing: ConsoleClient, project: Project, state: EmulatorState
) -> None:
    """An archive of a review-required gate: a pending review, the gate unchanged but
    showing it, one audit entry, nothing applied; the list shows the review."""
    await _gate(reviewing, "old gate", reviewSettings={"requiredReview": True})
    require_reviews(project)  # production requires review
    envelope = await _described(
        reviewing, "PUT", "/gates/old_gate/archive", "bulkops: archive — ünïcode", {}
    )
    gate = envelope["data"]
    assert gate["status"] == "In Progress"
    review_id = gate["activeReview"]["reviewID"]
    assert review_id in envelope["message"] and "review" in envelope["message"]
    assert gate["activeReview"] == {
        "reviewID": review_id,
        "reviewStatus": "pending",
        "description": "bulkops: archive — ünïcode",
    }
    [review] = await reviewing.data("GET", "/gates/old_gate/reviews")
    assert review["review_id"] == review_id and review["status"] == "pending"
    assert review["type"] == "archive" and review["created_at"].endswith("Z")
    assert (await reviewing.data("GET", f"/gates/old_gate/reviews/{review_id}")) == review
    assert project.store("gates")["old_gate"]["version"] == 1
    assert actions(project, "old_gate") == ["gate_create", "config_review_create"]


async def test_a_mutation_turned_into_a_review_counts_against_the_quota(
    reviewing: ConsoleClient, project: Project, state: EmulatorState
) -> None:
    """Opening a review is a mutation attempt like any other: with a quota of two, a
    create and an archive turned into a review leave none for the next create."""
    require_reviews(project)
    state.quota = (QuotaWindow(2, 3600),)
    await _gate(reviewing, "counted")
    await reviewing.data("PUT", "/gates/counted/archive", json={})
    assert project.reviews
    with pytest.raises(RateLimited):
        await _gate(reviewing, "one too many")


async def test_without_the_header_or_without_a_requirement_changes_apply(
    reviewing: ConsoleClient, direct: ConsoleClient, project: Project
) -> None:
    """No header: applied directly. A gate that does not require review: applied too."""
    require_reviews(project)
    project.settings["reviews"]["is_config_review_required"] = False
    await _gate(reviewing, "strict", reviewSettings={"requiredReview": True})
    await _gate(reviewing, "free")
    assert (await direct.data("PUT", "/gates/strict/archive", json={}))["status"] == "Archived"
    assert (await reviewing.data("PUT", "/gates/free/archive", json={}))["status"] == "Archived"
    assert "activeReview" not in project.store("gates")["strict"]


async def test_the_project_and_team_requirements_and_environments(
    reviewing: ConsoleClient, project: Project
) -> None:
    """The project's or the team's requirement is enough; a rule change only in staging
    touches no environment that requires review, one for production does."""
    require_reviews(project)
    await _gate(reviewing, "plain", rules=[{**RULE, "environments": ["staging"]}])
    staging = {"rules": [{**RULE, "passPercentage": 50, "environments": ["staging"]}]}
    applied = await reviewing.data("PATCH", "/gates/plain", json=staging)
    assert applied["rules"][0]["passPercentage"] == 50 and "activeReview" not in applied
    production = {"rules": [{**RULE, "environments": ["production"]}]}
    held = await reviewing.data("PATCH", "/gates/plain", json=production)
    assert held["rules"][0]["environments"] == ["staging"] and held["activeReview"]
    project.settings["reviews"]["is_config_review_required"] = False
    team = await reviewing.teams.create("Payments", requireReviews=True)
    await _gate(reviewing, "team gate", teamID=team.id)
    held = await reviewing.data("PUT", "/gates/team_gate/disable")
    assert held["isEnabled"] is True and held["activeReview"]["reviewStatus"] == "pending"


async def test_commit_applies_an_approved_review_once(
    reviewing: ConsoleClient, project: Project, admin: Admin
) -> None:
    """Pending or rejected: 400. Approved: the change lands, logged, once; a second commit
    and any commit of a rejected review are refused."""
    require_reviews(project)
    await _gate(reviewing, "gate one")
    await _gate(reviewing, "gate two")
    first = (await reviewing.data("PUT", "/gates/gate_one/archive", json={"archiveReason": "x"}))[
        "activeReview"
    ]["reviewID"]
    second = (await reviewing.data("PUT", "/gates/gate_two/archive", json={}))["activeReview"][
        "reviewID"
    ]
    with rejected(f"Review {first} is pending: only an approved review can be committed"):
        await reviewing.call("PUT", f"/gates/gate_one/reviews/{first}/commit")
    status, body = await admin("POST", f"/_emulator/reviews/{first}/approve")
    assert status == 200 and body["data"]["status"] == "accepted"
    assert (await reviewing.data("GET", "/gates/gate_one"))["activeReview"][
        "reviewStatus"
    ] == "accepted"
    envelope = await reviewing.call("PUT", f"/gates/gate_one/reviews/{first}/commit")
    assert envelope == {"message": "Gate review committed successfully"}
    gate = await reviewing.data("GET", "/gates/gate_one")
    assert gate["status"] == "Archived" and "activeReview" not in gate and gate["version"] == 2
    assert actions(project, "gate_one")[-2:] == ["config_review_commit", "gate_archive"]
    with rejected(f"Review {first} is already committed"):
        await reviewing.call("PUT", f"/gates/gate_one/reviews/{first}/commit")
    status, body = await admin("POST", f"/_emulator/reviews/{second}/reject", {"reason": "no"})
    assert status == 200 and body["data"]["status"] == "rejected" and body["data"]["reason"] == "no"
    with rejected(f"Review {second} was rejected; it cannot be committed"):
        await reviewing.call("PUT", f"/gates/gate_two/reviews/{second}/commit")
    assert (await reviewing.data("GET", "/gates/gate_two"))["status"] == "In Progress"


async def test_an_open_review_locks_its_object_and_goes_out_of_date(
    reviewing: ConsoleClient, direct: ConsoleClient, project: Project, admin: Admin
) -> None:
    """A second change with the header is refused while the review is open; a change
    without it applies, and the approved review can then no longer be committed."""
    require_reviews(project)
    await _gate(reviewing, "locked")
    review_id = (await reviewing.data("PUT", "/gates/locked/disable"))["activeReview"]["reviewID"]
    with rejected(
        f"Gate locked has a review in progress ({review_id}, pending); "
        "it must be committed or rejected before another change"
    ):
        await reviewing.data("PATCH", "/gates/locked", json={"description": "again"})
    await direct.data("PATCH", "/gates/locked", json={"description": "by hand"})
    await admin("POST", f"/_emulator/reviews/{review_id}/approve")
    with rejected(
        f"Gate locked changed since review {review_id} was opened; the review is out of date"
    ):
        await reviewing.call("PUT", f"/gates/locked/reviews/{review_id}/commit")


async def test_override_and_segment_changes_are_reviewed_whole(
    reviewing: ConsoleClient, project: Project, admin: Admin
) -> None:
    """An override add and an id-list add open reviews; the commit installs exactly them."""
    require_reviews(project)
    await _gate(reviewing, "ovr")
    body = {"passingUserIDs": ["u1"], "failingUserIDs": []}
    answer = await reviewing.call("PATCH", "/gates/ovr/overrides", body)
    assert "submitted for review" in answer["message"]
    assert (await reviewing.data("GET", "/gates/ovr/overrides"))["passingUserIDs"] == []
    [review] = await reviewing.data("GET", "/gates/ovr/reviews")
    assert review["type"] == "update_overrides"
    await reviewing.data(
        "POST", "/segments", json={"name": "ids", "type": "id_list", "description": "d"}
    )
    await reviewing.call("PATCH", "/segments/ids/id_list", {"ids": ["a", "b"]})
    [held] = await reviewing.data("GET", "/segments/ids/reviews")
    assert project.id_lists["ids"] == {} and held["type"] == "update_id_list"
    for review_id, path in (
        (review["review_id"], "/gates/ovr"),
        (held["review_id"], "/segments/ids"),
    ):
        await admin("POST", f"/_emulator/reviews/{review_id}/approve")
        await reviewing.call("PUT", f"{path}/reviews/{review_id}/commit")
    assert (await reviewing.data("GET", "/gates/ovr/overrides"))["passingUserIDs"] == ["u1"]
    assert list(project.id_lists["ids"]) == ["a", "b"]
    assert (await reviewing.data("GET", "/segments/ids"))["count"] == 2


async def test_a_bad_request_is_refused_not_reviewed(
    reviewing: ConsoleClient, project: Project
) -> None:
    """A change the handler refuses is answered as refused; no review is opened."""
    require_reviews(project)
    await _gate(reviewing, "picky")
    with pytest.raises(BadRequest):
        await reviewing.data("PATCH", "/gates/picky", json={"rules": "nope"})
    assert project.reviews == {}


async def test_the_admin_surface(admin: Admin, reviewing: ConsoleClient, project: Project) -> None:
    """Unknown reviews are 404; a closed review cannot be decided again; the list filters."""
    require_reviews(project)
    await _gate(reviewing, "adm")
    review_id = (await reviewing.data("PUT", "/gates/adm/launch"))["activeReview"]["reviewID"]
    assert (await admin("POST", "/_emulator/reviews/nope/approve"))[0] == 404
    status, body = await admin("GET", "/_emulator/reviews?status=pending")
    assert status == 200 and [r["review_id"] for r in body["data"]] == [review_id]
    assert body["data"][0]["object_id"] == "adm" and body["data"][0]["kind"] == "gates"
    assert (await admin("POST", f"/_emulator/reviews/{review_id}/reject"))[0] == 200
    assert (await admin("POST", f"/_emulator/reviews/{review_id}/approve"))[0] == 400
    assert "activeReview" not in (await reviewing.data("GET", "/gates/adm"))
    with pytest.raises(NotFound):
        await reviewing.data("GET", "/gates/adm/reviews/nope")


async def _decided(admin: Admin, review_id: str) -> str:
    _, body = await admin("GET", "/_emulator/reviews")
    return next(r["status"] for r in body["data"] if r["review_id"] == review_id)


async def test_the_admin_surface_answers_loopback_only(state: EmulatorState) -> None:
    """A request from another host is refused with 403 before anything is looked up."""
    transport = mock.Mock()
    transport.get_extra_info.side_effect = lambda name, default=None: (
        ("10.1.2.3", 40000) if name == "peername" else default
    )
    request = make_mocked_request(
        "POST",
        "/_emulator/reviews/rv000001/approve",
        match_info={"reviewID": "rv000001"},
        app=create_app(state),
        transport=transport,
    )
    with pytest.raises(web.HTTPException) as info:
        await admin_decide(True, request)
    assert info.value.status == 403
