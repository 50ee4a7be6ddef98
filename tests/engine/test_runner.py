"""The runner against the emulator over real HTTP: order, isolation, journal, reconciliation."""

from __future__ import annotations

import asyncio
import os
import signal
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any

import anyio
import pytest
from pydantic import SecretStr

from bulkops.api.client import ConsoleClient
from bulkops.api.retry import RetryPolicy
from bulkops.api.transport import AiohttpTransport, ApiRequest, ApiResponse
from bulkops.emulator import EmulatorState
from bulkops.emulator.seed import EMPTY_READ_ONLY_KEY
from bulkops.engine.failpoints import Failpoints
from bulkops.engine.journal import Journal, read_records
from bulkops.engine.mutations import Mutation
from bulkops.engine.plans import Plan, ProjectRef
from bulkops.engine.progress import NullObserver
from bulkops.engine.quota import QuotaWindow
from bulkops.engine.ratelimit import QuotaLimiter, history_from_records
from bulkops.engine.reconcile import replay, undo_mutations
from bulkops.engine.runner import RunOptions, run_plan
from bulkops.engine.stopping import Stop
from bulkops.engine.writer import JournalWriter
from bulkops.errors import JournalError, TransportError
from bulkops.jobs.apply_calls.planner import CallPlanner, RawCall
from bulkops.settings import Settings

FAST = RetryPolicy(base=0.01, cap=0.05)


def _limiter(max_in_flight: int = 4) -> QuotaLimiter:
    windows = (QuotaWindow(1000, 1),)
    return QuotaLimiter(
        {"mutation": windows, "id_list": windows}, max_in_flight=max_in_flight, policy=FAST
    )


async def _gates(client: ConsoleClient, *names: str) -> None:
    for name in names:
        await client.call("POST", "/gates", {"name": name, "description": "t"})


async def _plan(client: ConsoleClient, *calls: tuple[str, str, Any]) -> Plan:
    planner = CallPlanner(client, "empty")
    mutations = [
        await planner.plan(RawCall(method, path, body), key=f"k{i}")
        for i, (method, path, body) in enumerate(calls)
    ]
    return Plan.build(
        job="test", params={}, projects=[ProjectRef(id="empty", name="Empty")], mutations=mutations
    )


def _journal(tmp_path: Path, plan: Plan) -> Journal:
    return Journal.create(tmp_path / "ck", {"t": "plan", "plan": plan.to_json()})


def _writes(state: EmulatorState, path: str | None = None) -> list[dict[str, Any]]:
    return [
        e
        for e in state.capture or []
        if e["method"] != "GET" and (path is None or e["path"].endswith(path))
    ]


async def _run(
    plan: Plan,
    client: ConsoleClient,
    journal: Journal,
    *,
    records: list[dict[str, Any]] | None = None,
    **options: Any,
) -> Any:
    max_in_flight = options.pop("max_in_flight", 4)
    try:
        return await run_plan(
            plan,
            client=client,
            journal=journal,
            records=records or [],
            limiter=_limiter(max_in_flight),
            options=RunOptions(max_in_flight=max_in_flight, policy=FAST, **options),
        )
    finally:
        journal.close()


def _archive(name: str) -> tuple[str, str, Any]:
    return ("PUT", f"/gates/{name}/archive", {"archiveReason": "test"})


async def test_applies_a_plan_write_ahead(
    client: ConsoleClient, state: EmulatorState, tmp_path: Path
) -> None:
    """Every send has a durable intent before it and an outcome after it."""
    await _gates(client, "gate1", "gate2", "gate3")
    plan = await _plan(client, _archive("gate1"), _archive("gate2"), _archive("gate3"))
    result = await _run(plan, client, _journal(tmp_path, plan))
    assert result.ok and result.stop is Stop.COMPLETE
    assert result.counts() == {"applied": 3}
    records = read_records(tmp_path / "ck")
    kinds = [(r["t"], r.get("key")) for r in records]
    for key in ("k0", "k1", "k2"):
        assert kinds.index(("intent", key)) < kinds.index(("outcome", key))
    assert records[1]["event"] == "start" and records[-1]["event"] == "complete"
    for name in ("gate1", "gate2", "gate3"):
        assert (await client.data("GET", f"/gates/{name}"))["status"] == "Archived"


async def test_skips_what_is_done_and_refuses_what_changed(
    client: ConsoleClient, state: EmulatorState, tmp_path: Path
) -> None:
    """Already archived: skipped, nothing sent; changed since planning: conflict, untouched."""
    await _gates(client, "done", "moved", "fine")
    plan = await _plan(client, _archive("done"), _archive("moved"), _archive("fine"))
    await client.call("PUT", "/gates/done/archive", {"archiveReason": "by hand"})
    await client.call("PUT", "/gates/moved/disable")
    before = len(_writes(state))
    result = await _run(plan, client, _journal(tmp_path, plan))
    assert {k: s.state for k, s in result.states.items()} == {
        "k0": "skipped",
        "k1": "conflict",
        "k2": "applied",
    }
    assert [e["path"] for e in _writes(state)[before:]] == ["/console/v1/gates/fine/archive"]
    assert (await client.data("GET", "/gates/moved"))["status"] == "Disabled"
    assert "changed since planning" in (result.states["k1"].error or "")
    assert not result.ok
    # Each intent (appended before the re-read) is closed by an outcome, and one that
    # found nothing to send is not counted as an attempt, in the run or on replay.
    records = read_records(tmp_path / "ck")
    open_intents: set[str] = set()
    for r in records:
        if r["t"] == "intent":
            open_intents.add(r["key"])
        elif r["t"] == "outcome":
            open_intents.discard(r["key"])
    assert not open_intents
    replayed = replay(records)
    assert [replayed[k].attempts for k in ("k0", "k1", "k2")] == [0, 0, 1]
    assert [result.states[k].attempts for k in ("k0", "k1", "k2")] == [0, 0, 1]
    # Each settled mutation carries the seq of the record that settled it, in the run as
    # on replay: the undo's newest-first order is the same either way.
    settled = {k: (st.state, st.settled_at) for k, st in result.states.items()}
    assert settled == {k: (st.state, st.settled_at) for k, st in replayed.items()}


async def test_one_bad_item_does_not_stop_the_run_and_fails_its_dependents(
    client: ConsoleClient, tmp_path: Path
) -> None:
    """A 404 is recorded for its item; what depends on it fails; the rest applies."""
    await _gates(client, "gate_a", "gate_b")
    plan = await _plan(client, _archive("gate_a"), _archive("gate_b"))
    bad = Mutation(
        key="bad",
        project="empty",
        action="archive",
        object="gate/nope",
        method="PUT",
        path="/gates/nope/archive",
        body={},
    )
    dependent = plan.mutations[1].model_copy(update={"depends_on": ("bad",)})
    plan = Plan.build(
        job="test",
        params={},
        projects=plan.header.projects,
        mutations=[bad, plan.mutations[0], dependent],
    )
    result = await _run(plan, client, _journal(tmp_path, plan))
    assert result.states["bad"].state == "failed" and result.states["bad"].status == 404
    assert result.states["k0"].state == "applied"
    assert result.states["k1"].state == "failed"
    assert result.states["k1"].error == "dependency bad failed"
    assert (await client.data("GET", "/gates/gate_b"))["status"] != "Archived"


async def test_forbidden_stops_cleanly_and_resume_finishes(
    client: ConsoleClient, make_client: Callable[..., ConsoleClient], tmp_path: Path
) -> None:
    """A 403 stops the run with nothing lost; a resume with a good key completes it."""
    await _gates(client, "ro1", "ro2", "ro3")
    plan = await _plan(client, _archive("ro1"), _archive("ro2"), _archive("ro3"))
    journal = _journal(tmp_path, plan)
    result = await _run(plan, make_client(EMPTY_READ_ONLY_KEY), journal, max_in_flight=1)
    assert result.stop is Stop.UNAUTHORIZED
    assert result.counts()["pending"] == 3
    journal, records = Journal.open(tmp_path / "ck")
    result = await _run(plan, client, journal, records=records)
    assert result.ok and result.counts() == {"applied": 3}


async def test_in_flight_writes_are_capped_and_one_object_runs_in_order(
    make_client: Callable[..., ConsoleClient], tmp_path: Path
) -> None:
    """At most max_in_flight writes at once, never two on one object, in plan order."""
    running: dict[str, int] = {}
    peak = {"all": 0, "object": 0}
    order: list[str] = []

    async def spy(request: ApiRequest, nxt: Callable[[ApiRequest], Any]) -> ApiResponse:
        if request.method == "GET":
            return await nxt(request)  # type: ignore[no-any-return]
        obj = request.path.split("/")[4]
        running[obj] = running.get(obj, 0) + 1
        peak["all"] = max(peak["all"], sum(running.values()))
        peak["object"] = max(peak["object"], running[obj])
        order.append(f"{obj}:{request.json['passingUserIDs'][0]}")
        try:
            await anyio.sleep(0.01)
            return await nxt(request)  # type: ignore[no-any-return]
        finally:
            running[obj] -= 1

    client = make_client()
    await _gates(client, *(f"obj{i}" for i in range(5)))
    calls = [
        ("PATCH", f"/gates/obj{i}/overrides", {"passingUserIDs": [f"u{n}"], "failingUserIDs": []})
        for n in range(4)
        for i in range(5)
    ]
    plan = await _plan(client, *calls)
    client.add_middleware(spy)
    result = await _run(plan, client, _journal(tmp_path, plan), max_in_flight=3)
    assert result.ok
    assert peak["all"] == 3 and peak["object"] == 1
    for i in range(5):
        mine = [o for o in order if o.startswith(f"obj{i}:")]
        assert mine == [f"obj{i}:u{n}" for n in range(4)]


class _LosingTransport:
    """A network that loses one response: the request goes through, the answer does not."""

    def __init__(self, *, applied: bool) -> None:
        self.inner = AiohttpTransport(timeout=5)
        self.applied = applied
        self.lost = 0

    async def handle(self, request: ApiRequest) -> ApiResponse:
        if request.method == "PATCH" and self.lost == 0:
            self.lost += 1
            if self.applied:
                await self.inner.handle(request)
            raise TransportError("connection reset", method="PATCH", path=request.path, sent=True)
        return await self.inner.handle(request)

    async def aclose(self) -> None:
        await self.inner.aclose()


@pytest.mark.parametrize("applied", [True, False])
async def test_a_lost_response_is_settled_by_a_read(
    client: ConsoleClient, emulator_url: str, state: EmulatorState, tmp_path: Path, applied: bool
) -> None:
    """A reset after sending a PATCH is ambiguous: a read decides; never a blind resend."""
    await _gates(client, "lost")
    plan = await _plan(
        client,
        ("PATCH", "/gates/lost/overrides", {"passingUserIDs": ["u1"], "failingUserIDs": []}),
    )
    transport = _LosingTransport(applied=applied)
    settings = Settings(api_key=SecretStr("console-emulator-empty"), base_url=emulator_url)
    async with ConsoleClient(settings, transport=transport) as lossy:
        result = await _run(plan, lossy, _journal(tmp_path, plan))
    assert result.ok
    records = [r for r in read_records(tmp_path / "ck") if r.get("key") == "k0"]
    story = [(r["t"], r.get("result") or r.get("verdict")) for r in records]
    if applied:
        assert story == [
            ("intent", None),
            ("outcome", "ambiguous"),
            ("reconciled", "applied"),
        ]
    else:
        assert story == [
            ("intent", None),
            ("outcome", "ambiguous"),
            ("reconciled", "not_applied"),
            ("intent", None),
            ("outcome", "applied"),
        ]
    assert sum(1 for e in _writes(state, "/lost/overrides") if e["applied"]) == 1


class _FailingWrites:
    """A server that answers every write with a 500 before applying it; reads go through."""

    def __init__(self) -> None:
        self.inner = AiohttpTransport(timeout=5)

    async def handle(self, request: ApiRequest) -> ApiResponse:
        if request.method != "GET":
            return ApiResponse(500, {}, b'{"status":500,"message":"Internal Server Error"}')
        return await self.inner.handle(request)

    async def aclose(self) -> None:
        await self.inner.aclose()


@pytest.mark.parametrize(
    ("call", "idempotent"),
    [
        (
            ("PATCH", "/gates/flaky/overrides", {"passingUserIDs": ["u1"], "failingUserIDs": []}),
            False,
        ),
        (("PUT", "/gates/flaky/disable", None), True),
    ],
    ids=["ambiguous-patch", "idempotent-put"],
)
async def test_a_write_that_never_lands_is_left_for_resume_not_failed(
    client: ConsoleClient,
    emulator_url: str,
    state: EmulatorState,
    tmp_path: Path,
    call: tuple[str, str, Any],
    idempotent: bool,
) -> None:
    """Transient errors on every attempt, each read back as not applied: resume finishes it (T11)."""
    await _gates(client, "flaky")
    plan = await _plan(client, call)
    assert plan.mutations[0].idempotent is idempotent  # the two paths: settle by read, resend
    settings = Settings(api_key=SecretStr("console-emulator-empty"), base_url=emulator_url)
    async with ConsoleClient(settings, transport=_FailingWrites()) as failing:
        result = await _run(plan, failing, _journal(tmp_path, plan), max_in_flight=1)
    assert not result.ok
    assert result.states["k0"].state == "pending"
    assert not _writes(state, call[1])
    journal, records = Journal.open(tmp_path / "ck")
    resumed = await _run(plan, client, journal, records=records)
    assert resumed.ok and resumed.states["k0"].state == "applied"
    assert sum(1 for e in _writes(state, call[1]) if e["applied"]) == 1


class _LostThenThrottled:
    """The first write is applied but its answer is lost; every later write gets a 429."""

    def __init__(self) -> None:
        self.inner = AiohttpTransport(timeout=5)
        self.writes = 0

    async def handle(self, request: ApiRequest) -> ApiResponse:
        if request.method == "GET":
            return await self.inner.handle(request)
        self.writes += 1
        if self.writes == 1:
            await self.inner.handle(request)
            raise TransportError(
                "connection reset", method=request.method, path=request.path, sent=True
            )
        return ApiResponse(429, {"Retry-After": "0"}, b'{"status":429,"message":"Too Many"}')

    async def aclose(self) -> None:
        await self.inner.aclose()


@pytest.mark.parametrize("ends", ["attempts run out", "retry budget runs out"])
async def test_a_write_applied_before_a_run_of_429s_is_recorded_applied(
    client: ConsoleClient, emulator_url: str, state: EmulatorState, tmp_path: Path, ends: str
) -> None:
    """A lost answer, then only 429s: the item ends applied, not "skipped" by a later run."""
    await _gates(client, "lost")
    plan = await _plan(client, ("PUT", "/gates/lost/disable", None))
    assert plan.mutations[0].idempotent  # resent by value after the lost answer, not read
    budget = {"budget_ratio": 0.0, "budget_minimum": 1} if "budget" in ends else {}
    # Without the review header: a gate write that may open a review is read, not resent.
    settings = Settings(
        api_key=SecretStr("console-emulator-empty"), base_url=emulator_url, respect_reviews=False
    )
    async with ConsoleClient(settings, transport=_LostThenThrottled()) as flaky:
        result = await _run(plan, flaky, _journal(tmp_path, plan), max_in_flight=1, **budget)
    if budget:
        assert result.stop is Stop.BUDGET
        journal, records = Journal.open(tmp_path / "ck")
        result = await _run(plan, client, journal, records=records)
    # Not left "not applied" (the next run's pre-write read would call it skipped, and an
    # undo would leave this run's change in place).
    assert result.states["k0"].state == "applied", result.states["k0"]
    assert sum(1 for e in _writes(state, "/lost/disable") if e["applied"]) == 1
    assert result.ok


async def test_resume_settles_intents_without_outcome(
    client: ConsoleClient, state: EmulatorState, tmp_path: Path
) -> None:
    """An intent the crash left open is read back: applied ones are not sent again."""
    await _gates(client, "xx1", "xx2")
    plan = await _plan(client, _archive("xx1"), _archive("xx2"))
    journal = _journal(tmp_path, plan)
    journal.append({"t": "intent", "key": "k0", "attempt": 1, "at": 0.0}, sync=True)
    journal.append({"t": "intent", "key": "k1", "attempt": 1, "at": 0.0}, sync=True)
    journal.close()
    await client.call("PUT", "/gates/xx1/archive", {"archiveReason": "the crashed run"})
    before = len(_writes(state))
    journal, records = Journal.open(tmp_path / "ck")
    result = await _run(plan, client, journal, records=records)
    assert result.ok
    assert [e["path"] for e in _writes(state)[before:]] == ["/console/v1/gates/xx2/archive"]
    verdicts = {
        r["key"]: r["verdict"] for r in read_records(tmp_path / "ck") if r["t"] == "reconciled"
    }
    assert verdicts == {"k0": "applied", "k1": "not_applied"}
    assert result.states["k1"].attempts == 2


class _CancelAfter(NullObserver):
    def __init__(self, n: int, scope: anyio.CancelScope) -> None:
        self.n, self.scope = n, scope

    def result(self, key: str, result: str, klass: str) -> None:
        self.n -= 1
        if self.n == 0:
            self.scope.cancel()


async def test_a_cancelled_run_resumes_without_loss_or_doubling(
    client: ConsoleClient, state: EmulatorState, tmp_path: Path
) -> None:
    """Cancel mid-way, resume from the journal: every archive happens exactly once."""
    names = [f"can{i}" for i in range(12)]
    await _gates(client, *names)
    plan = await _plan(client, *(_archive(n) for n in names))
    journal = _journal(tmp_path, plan)
    with anyio.CancelScope() as scope:
        await run_plan(
            plan,
            client=client,
            journal=journal,
            limiter=_limiter(),
            options=RunOptions(policy=FAST),
            observer=_CancelAfter(4, scope),
        )
    journal.close()
    records = read_records(tmp_path / "ck")
    assert records[-1]["t"] == "run"  # the end record was still written (shielded)
    journal, records = Journal.open(tmp_path / "ck")
    result = await _run(plan, client, journal, records=records)
    assert result.ok
    applied = [e["path"] for e in _writes(state) if e["applied"] and "/archive" in e["path"]]
    assert sorted(applied) == sorted(f"/console/v1/gates/{n}/archive" for n in names)


async def test_throttling_alone_exhausts_the_retry_budget(
    client: ConsoleClient, state: EmulatorState, tmp_path: Path
) -> None:
    """Only 429s: the run stops once retries exceed the budget, resumable."""
    await _gates(client, "thr1", "thr2", "thr3")
    plan = await _plan(client, _archive("thr1"), _archive("thr2"), _archive("thr3"))
    state.faults.rate_429 = 1.0
    state.faults.retry_after_share = 0.0
    result = await _run(
        plan, client, _journal(tmp_path, plan), budget_ratio=0.0, budget_minimum=3, max_in_flight=1
    )
    assert result.stop is Stop.BUDGET
    assert result.throttled >= 3 and result.retries == 3
    assert all(s.state == "pending" for s in result.states.values())
    outcome = [r for r in read_records(tmp_path / "ck") if r["t"] == "outcome"]
    assert outcome and outcome[-1]["result"] == "not_applied" and outcome[-1]["status"] == 429


async def test_sigint_stops_sending_and_closes_the_journal(
    client: ConsoleClient, tmp_path: Path
) -> None:
    """Ctrl-C: no new sends, requests in flight finish, the journal says interrupted."""

    class _Interrupt(NullObserver):
        def result(self, key: str, result: str, klass: str) -> None:
            if key == "k1":
                os.kill(os.getpid(), signal.SIGINT)

    names = [f"sig{i}" for i in range(8)]
    await _gates(client, *names)
    plan = await _plan(client, *(_archive(n) for n in names))
    journal = _journal(tmp_path, plan)
    result = await run_plan(
        plan,
        client=client,
        journal=journal,
        limiter=_limiter(1),
        options=RunOptions(max_in_flight=1, policy=FAST, handle_signals=True),
        observer=_Interrupt(),
    )
    journal.close()
    assert result.stop is Stop.INTERRUPTED
    counts = result.counts()
    assert counts["applied"] >= 2 and counts["pending"] >= 4
    assert read_records(tmp_path / "ck")[-1]["event"] == "interrupted"


def test_failpoints_are_parsed_strictly() -> None:
    """A typo in BULKOPS_FAILPOINT is an error, not a silently disabled crash test."""
    assert Failpoints.from_env({"BULKOPS_FAILPOINT": "after-intent:3,after-send:1"})
    for bad in ("after-intnet:3", "after-intent", "after-intent:0", "after-intent:x"):
        with pytest.raises(ValueError):
            Failpoints(bad)


async def test_undo_restores_and_refuses_objects_changed_since(
    client: ConsoleClient, tmp_path: Path
) -> None:
    """The undo removes exactly the added ids, except where the object changed since."""
    await _gates(client, "und1", "und2")

    def add(name: str) -> tuple[str, str, Any]:
        body = {"passingUserIDs": ["p1", "p2"], "failingUserIDs": []}
        return ("PATCH", f"/gates/{name}/overrides", body)

    plan = await _plan(client, add("und1"), add("und2"))
    result = await _run(plan, client, _journal(tmp_path, plan))
    assert result.ok
    await client.call(
        "DELETE", "/gates/und2/overrides", {"passingUserIDs": ["p1"], "failingUserIDs": []}
    )
    mutations, skipped = undo_mutations(plan, result.states)
    assert [m.key for m in mutations] == ["undo:k1", "undo:k0"] and skipped == []
    undo = Plan.build(job="undo", params={}, projects=plan.header.projects, mutations=mutations)
    journal = Journal.create(tmp_path / "undo", {"t": "plan", "plan": undo.to_json()})
    result = await _run(undo, client, journal)
    assert result.states["undo:k0"].state == "applied"
    assert result.states["undo:k1"].state == "conflict"
    assert (await client.data("GET", "/gates/und1/overrides"))["passingUserIDs"] == []
    assert (await client.data("GET", "/gates/und2/overrides"))["passingUserIDs"] == ["p2"]


async def test_a_journal_failure_surfaces_as_a_journal_error(
    client: ConsoleClient, tmp_path: Path
) -> None:
    """A checkpoint that cannot be written stops the run with JournalError (not a group)."""
    await _gates(client, "jf1")
    plan = await _plan(client, _archive("jf1"))
    journal = _journal(tmp_path, plan)
    os.close(journal._fd)  # type: ignore[arg-type]  # the disk goes away under the run
    unwritable = journal._fd = os.open(os.devnull, os.O_RDONLY)
    try:
        with pytest.raises(JournalError):
            await run_plan(
                plan, client=client, journal=journal, limiter=_limiter(), options=RunOptions()
            )
    finally:
        os.close(unwritable)
        journal._fd = None


async def test_a_failed_fsync_stops_the_run_before_the_write_is_sent(
    client: ConsoleClient, state: EmulatorState, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The intent's fsync runs beside the re-read; if it fails, nothing is sent.

    Both workers are made to wait on the one failing fsync, so both see its error in
    the same tick: the run still raises one JournalError (never an exception group,
    which would reach the user as a traceback).
    """
    await _gates(client, "fs1", "fs2")
    plan = await _plan(client, _archive("fs1"), _archive("fs2"))
    journal = _journal(tmp_path, plan)

    fsyncs = 0
    both_waiting = threading.Event()

    def broken_disk(fd: int) -> None:  # the run's start record is synced; then the disk fails
        nonlocal fsyncs
        fsyncs += 1
        if fsyncs > 1:
            assert both_waiting.wait(10), "the workers never both waited for the fsync"
            raise OSError(5, "Input/output error")

    durable = JournalWriter.durable
    waiting = 0

    async def counted(self: Any, seq: int) -> None:
        nonlocal waiting
        if fsyncs >= 1:  # an intent's wait, not the start record's
            waiting += 1
            if waiting == 2:
                asyncio.get_running_loop().call_soon(both_waiting.set)
        await durable(self, seq)

    monkeypatch.setattr("bulkops.files.fsync", broken_disk)
    monkeypatch.setattr(JournalWriter, "durable", counted)
    before = len(_writes(state))
    with pytest.raises(JournalError, match="fsync failed"):
        await _run(plan, client, journal, max_in_flight=2)
    assert waiting == 2
    assert _writes(state)[before:] == []
    for name in ("fs1", "fs2"):
        assert (await client.data("GET", f"/gates/{name}"))["status"] != "Archived"


def test_history_from_the_journal_is_never_earlier_than_the_sends() -> None:
    """Known send times are used; unknown ones are bounded by what came after them."""
    plan = Plan.build(
        job="t",
        params={},
        projects=[ProjectRef(id="empty", name="E")],
        mutations=[
            Mutation(
                key=k,
                project="empty",
                action="call",
                object=k,
                method="PUT",
                path=f"/{k}",
                quota_class="id_list" if k == "c" else "mutation",
            )
            for k in ("a", "b", "c", "d")
        ],
    )
    records = [
        {"t": "plan"},
        {"t": "run", "event": "start", "at": 100.0},
        {"t": "intent", "key": "a", "attempt": 1, "at": 101.0},
        {"t": "outcome", "key": "a", "result": "applied", "sent_at": 101.5},
        {"t": "intent", "key": "b", "attempt": 1, "at": 102.0},  # 429, retried
        {"t": "intent", "key": "b", "attempt": 2, "at": 104.0},
        {"t": "outcome", "key": "b", "result": "applied", "sent_at": 104.2},
        {"t": "intent", "key": "c", "attempt": 1, "at": 105.0},  # killed in flight
        {"t": "run", "event": "start", "at": 110.0},
        {"t": "intent", "key": "d", "attempt": 1, "at": 111.0},
        {"t": "outcome", "key": "d", "result": "not_applied", "error": "stopped before sending"},
        {"t": "intent", "key": "a", "attempt": 2, "at": 112.0},  # in flight now
    ]
    assert history_from_records(records, plan, now=120.0) == {
        "mutation": [101.5, 104.0, 104.2, 120.0],
        "id_list": [110.0],
    }
