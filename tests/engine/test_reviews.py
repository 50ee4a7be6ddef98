"""Reviews in the engine, over real HTTP: the plan step's forecast, writes that open a
review, and what later runs do with it (wait, commit once approved, report a rejection)."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import pytest
from pydantic import SecretStr

from bulkops.api.client import ConsoleClient
from bulkops.api.retry import RetryPolicy
from bulkops.api.reviews import DESCRIPTION_HEADER
from bulkops.api.transport import AiohttpTransport, ApiRequest, ApiResponse
from bulkops.cli.exit_codes import ExitCode, exit_code_for_run
from bulkops.emulator import EmulatorState, Project
from bulkops.emulator.handlers.reviews import require_reviews
from bulkops.emulator.seed import EMPTY_KEY
from bulkops.engine.journal import Journal, read_records
from bulkops.engine.plans import Plan, ProjectRef
from bulkops.engine.quota import QuotaWindow
from bulkops.engine.ratelimit import QuotaLimiter
from bulkops.engine.reconcile import replay, undo_mutations
from bulkops.engine.reviews import forecast, marker
from bulkops.engine.runner import RunOptions, RunResult, run_plan
from bulkops.errors import TransportError
from bulkops.jobs.apply_calls.planner import CallPlanner, RawCall
from bulkops.settings import Settings

Admin = Callable[..., Awaitable[tuple[int, Any]]]  # the ``admin`` fixture (tests/conftest.py)
FAST = RetryPolicy(base=0.01, cap=0.05)
RULE = {"name": "All", "passPercentage": 100, "conditions": [{"type": "public"}]}


@pytest.fixture(name="project")
def _project(state: EmulatorState) -> Project:
    """The empty project, its production environment requiring review."""
    project = state.projects["empty"]
    require_reviews(project)
    project.settings["reviews"]["is_config_review_required"] = False
    return project


async def _gate(client: ConsoleClient, name: str, *, review: bool = True, **fields: Any) -> None:
    body = {"name": name, "description": "t", "reviewSettings": {"requiredReview": review}}
    await client.call("POST", "/gates", {**body, **fields})


async def _plan(client: ConsoleClient, *calls: tuple[str, str, Any], plan_id: str = "p1") -> Plan:
    planner = CallPlanner(client, "empty")
    mutations = [
        await planner.plan(RawCall(method, path, body), key=f"k{i}")
        for i, (method, path, body) in enumerate(calls)
    ]
    found = await forecast(client, mutations)
    return Plan.build(
        job="test",
        params={},
        projects=[ProjectRef(id="empty", name="Empty")],
        mutations=found.mutations,
        plan_id=plan_id,
    )


def _journal(plan: Plan, path: Path) -> tuple[Journal, list[dict[str, Any]]]:
    """The checkpoint at ``path``, created or (a later run) opened with its records."""
    if path.exists():
        return Journal.open(path)
    return Journal.create(path, {"t": "plan", "plan": plan.to_json()}), []


async def _run(
    plan: Plan, client: ConsoleClient, path: Path, *, note: str = "", **options: Any
) -> RunResult:
    journal, records = _journal(plan, path)
    windows = (QuotaWindow(1000, 1),)
    try:
        return await run_plan(
            plan,
            client=client,
            journal=journal,
            records=records,
            limiter=QuotaLimiter({"mutation": windows, "id_list": windows}, max_in_flight=4),
            options=RunOptions(
                policy=FAST, checkpoint=str(path), review_note=note, max_in_flight=2, **options
            ),
        )
    finally:
        journal.close()


def _writes(state: EmulatorState) -> list[dict[str, Any]]:
    return [e for e in state.capture or [] if e["method"] != "GET"]


def _archive(name: str) -> tuple[str, str, Any]:
    return ("PUT", f"/gates/{name}/archive", {"archiveReason": "t"})


async def test_the_plan_step_marks_what_will_need_review(
    client: ConsoleClient, project: Project
) -> None:
    """Object, team and project requirements count; a rule change only in staging does not;
    an object already under review is named."""
    await _gate(client, "reviewed")
    await _gate(client, "free", review=False)
    await _gate(client, "staged", rules=[{**RULE, "environments": ["staging"]}])
    team = await client.teams.create("Payments", requireReviews=True)
    await _gate(client, "teamed", review=False, teamID=team.id)
    staging = {"rules": [{**RULE, "passPercentage": 50, "environments": ["staging"]}]}
    plan = await _plan(
        client,
        _archive("reviewed"),
        _archive("free"),
        ("PATCH", "/gates/staged", staging),
        ("PUT", "/gates/teamed/disable", None),
        ("POST", "/tags", {"name": "a tag", "description": "x"}),
    )
    assert [m.review for m in plan.mutations] == [True, False, False, True, False]
    made = {"name": "made later", "reviewSettings": {"requiredReview": True}}
    later = await _plan(client, ("POST", "/gates", made), ("PUT", "/gates/made_later/launch", None))
    assert [m.review for m in later.mutations] == [False, True]  # from the create's body
    project.settings["reviews"]["is_config_review_required"] = True
    await client.call("PUT", "/gates/reviewed/launch")  # opens a review
    found = await forecast(client, list(plan.mutations[:2]))
    assert [m.review for m in found.mutations] == [True, True]
    assert any("gates/reviewed" in line and "in progress" in line for line in found.notes)


async def test_a_write_that_opens_a_review_waits_and_is_committed_once_approved(
    client: ConsoleClient, project: Project, state: EmulatorState, admin: Admin, tmp_path: Path
) -> None:
    """Two reviews open (pending_review, the ids in the outcomes, exit 5), the free gate
    applies; a resume while they are pending sends nothing; approved → committed through
    an intent naming the review; rejected → reported with the reason, never retried."""
    for name in ("gate one", "gate two"):
        await _gate(client, name)
    await _gate(client, "free", review=False)
    plan = await _plan(client, _archive("gate_one"), _archive("gate_two"), _archive("free"))
    ck = tmp_path / "ck"
    result = await _run(plan, client, ck, note="Q4 clean-up")
    assert result.counts() == {"pending_review": 2, "applied": 1}
    assert result.waiting_for_review and exit_code_for_run(result) is ExitCode.REVIEW_PENDING
    opened = {r.object_id: r for r in project.reviews.values()}
    assert set(opened) == {"gate_one", "gate_two"}
    assert opened["gate_one"].description.startswith("Q4 clean-up — bulkops test: archive ")
    assert f"checkpoint {ck}" in opened["gate_one"].description
    assert marker(plan.mutations[0], "p1") in opened["gate_one"].description
    outcomes = {r["key"]: r for r in read_records(ck) if r["t"] == "outcome"}
    assert outcomes["k0"]["review_id"] == opened["gate_one"].id
    assert outcomes["k0"]["result"] == "pending_review"

    sent = len(_writes(state))
    again = await _run(plan, client, ck)
    assert again.counts()["pending_review"] == 2 and len(_writes(state)) == sent

    await admin("POST", f"/_emulator/reviews/{opened['gate_one'].id}/approve")
    await admin("POST", f"/_emulator/reviews/{opened['gate_two'].id}/reject", {"reason": "keep it"})
    done = await _run(plan, client, ck)
    assert done.counts() == {"applied": 2, "rejected": 1}
    assert exit_code_for_run(done) is ExitCode.FAILED
    assert done.states["k1"].reason == f"review {opened['gate_two'].id} was rejected: keep it"
    commits = [e for e in _writes(state) if e["path"].endswith("/commit")]
    assert [e["path"] for e in commits] == [
        f"/console/v1/gates/gate_one/reviews/{opened['gate_one'].id}/commit"
    ]
    records = read_records(ck)
    intent = next(r for r in records if r["t"] == "intent" and r.get("commit"))
    outcome = next(r for r in records if r["t"] == "outcome" and r["seq"] > intent["seq"])
    assert (intent["key"], intent["commit"]) == ("k0", opened["gate_one"].id)
    assert (outcome["key"], outcome["result"]) == ("k0", "applied")
    assert (await client.data("GET", "/gates/gate_one"))["status"] == "Archived"

    sent = len(_writes(state))
    last = await _run(plan, client, ck)
    assert last.counts() == {"applied": 2, "rejected": 1} and len(_writes(state)) == sent


async def test_a_change_already_under_review_is_never_submitted_again(
    client: ConsoleClient, project: Project, state: EmulatorState, tmp_path: Path
) -> None:
    """A re-run of the same change (a new plan and checkpoint) takes up the open review;
    a change of an object someone else's review holds is a conflict; neither is sent."""
    await _gate(client, "busy")
    await _gate(client, "theirs")
    first = await _plan(client, _archive("busy"), plan_id="first")
    await _run(first, client, tmp_path / "first")
    await client.call("PUT", "/gates/theirs/disable")  # a person's change, under review
    sent = len(_writes(state))
    rerun = await _plan(client, _archive("busy"), _archive("theirs"), plan_id="again")
    result = await _run(rerun, client, tmp_path / "again")
    assert len(_writes(state)) == sent
    [mine] = [r for r in project.reviews.values() if r.object_id == "busy"]
    assert (
        result.states["k0"].state == "pending_review" and result.states["k0"].review_id == mine.id
    )
    assert result.states["k1"].state == "conflict"
    assert "has a review in progress that is not this change" in str(result.states["k1"].reason)


class _LostAnswers:
    """Every write reaches the server, but its answer is lost (a reset after the send);
    optionally the review description is dropped on the way (a service that ignores it)."""

    def __init__(self, *, drop_description: bool = False) -> None:
        self.inner = AiohttpTransport(timeout=5)
        self.drop = drop_description

    async def handle(self, request: ApiRequest) -> ApiResponse:
        if self.drop:
            headers = {k: v for k, v in request.headers.items() if k != DESCRIPTION_HEADER}
            request = ApiRequest(
                request.method, request.url, headers, request.params, request.json, request.has_body
            )
        response = await self.inner.handle(request)
        if request.method == "GET":
            return response
        raise TransportError(
            "connection reset", method=request.method, path=request.path, sent=True
        )

    async def aclose(self) -> None:
        await self.inner.aclose()


async def test_a_lost_answer_is_settled_by_the_reviews_never_by_a_resend(
    client: ConsoleClient, project: Project, state: EmulatorState, emulator_url: str, tmp_path: Path
) -> None:
    """The answer of a write that opened a review is lost: a read finds the review by its
    description (pending_review, one review, one send). When the service dropped the
    description, the open review cannot be told apart: a conflict, still one send."""
    await _gate(client, "lost one")
    await _gate(client, "lost two")
    settings = Settings(api_key=SecretStr(EMPTY_KEY), base_url=emulator_url)
    plan = await _plan(client, _archive("lost_one"))
    async with ConsoleClient(settings, transport=_LostAnswers()) as flaky:
        result = await _run(plan, flaky, tmp_path / "a")
    assert result.states["k0"].state == "pending_review"
    plan = await _plan(client, _archive("lost_two"))
    async with ConsoleClient(settings, transport=_LostAnswers(drop_description=True)) as flaky:
        result = await _run(plan, flaky, tmp_path / "b")
    assert result.states["k0"].state == "conflict"
    assert [e["path"] for e in _writes(state) if e["path"].endswith("/archive")] == [
        "/console/v1/gates/lost_one/archive",
        "/console/v1/gates/lost_two/archive",
    ]
    assert len(project.reviews) == 2


async def test_a_later_change_of_the_object_waits_for_the_review(
    client: ConsoleClient, project: Project, state: EmulatorState, admin: Admin, tmp_path: Path
) -> None:
    """Two changes of one gate: the second is not sent while the first is under review,
    then opens its own once the first is committed."""
    await _gate(client, "twice")
    plan = await _plan(client, ("PATCH", "/gates/twice", {"description": "new"}), _archive("twice"))
    result = await _run(plan, client, tmp_path / "ck")
    assert result.counts() == {"pending_review": 1, "pending": 1} and result.waiting_for_review
    [first] = project.reviews.values()
    await admin("POST", f"/_emulator/reviews/{first.id}/approve")
    result = await _run(plan, client, tmp_path / "ck")
    assert result.states["k0"].state == "applied"
    assert result.states["k1"].state == "pending_review"
    assert len(project.reviews) == 2


async def test_undo_names_what_waits_for_review(
    client: ConsoleClient, project: Project, tmp_path: Path
) -> None:
    """An undo has nothing to undo for a change still under review, and says so."""
    await _gate(client, "undone")
    await _gate(client, "plain", review=False)
    plan = await _plan(client, _archive("undone"), _archive("plain"))
    await _run(plan, client, tmp_path / "ck")
    states = replay(read_records(tmp_path / "ck"), [m.key for m in plan.mutations])
    mutations, cannot = undo_mutations(plan, states)
    assert [m.path for m in mutations] == ["/gates/plain/unarchive"]
    [(key, reason)] = cannot
    assert key == "k0" and "still open" in reason and states["k0"].review_id in reason


async def test_without_the_review_header_changes_apply_directly(
    make_client: Callable[..., ConsoleClient], project: Project, tmp_path: Path
) -> None:
    """``--no-review-header``: the same plan applies at once and opens no review."""
    direct = make_client(respect_reviews=False)
    await _gate(direct, "direct")
    plan = await _plan(direct, _archive("direct"))
    assert not plan.mutations[0].review  # the plan step does not forecast without the header
    result = await _run(plan, direct, tmp_path / "ck")
    assert result.ok and project.reviews == {}
