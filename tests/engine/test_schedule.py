"""The schedule: dependencies first, one object at a time in plan order, failures cascade."""

from __future__ import annotations

from bulkops.engine.mutations import Mutation
from bulkops.engine.schedule import Schedule
from bulkops.engine.states import KeyState, State


def _m(key: str, *, obj: str | None = None, deps: tuple[str, ...] = ()) -> Mutation:
    return Mutation(
        key=key,
        project="p",
        action="archive",
        object=obj or f"gate/{key}",
        method="PUT",
        path=f"/gates/{key}/archive",
        depends_on=deps,
    )


def _schedule(mutations: list[Mutation], **settled: State) -> Schedule:
    states = {m.key: KeyState(state=settled.get(m.key, State.PENDING)) for m in mutations}
    return Schedule(mutations, states)


def _ready(schedule: Schedule) -> list[str]:
    """Every key that may start now, in the order the workers would take them."""
    keys = []
    while (key := schedule.next_key()) is not None:
        keys.append(key)
    return keys


def test_mutations_on_one_object_run_one_at_a_time_in_plan_order() -> None:
    """The next change to an object starts only once the one before it has ended."""
    schedule = _schedule(
        [_m("a1", obj="gate/a"), _m("b"), _m("a2", obj="gate/a"), _m("a3", obj="gate/a")]
    )
    assert _ready(schedule) == ["a1", "b"]
    assert schedule.completed("a1", State.APPLIED) == []
    assert _ready(schedule) == ["a2"]
    # A failure on the object does not hold back the next change to it.
    assert schedule.completed("a2", State.FAILED) == []
    assert _ready(schedule) == ["a3"]


def test_a_mutation_waits_for_every_dependency_to_apply_or_skip() -> None:
    """A dependent starts once each of its dependencies is applied or skipped."""
    schedule = _schedule([_m("a"), _m("b"), _m("c", deps=("a", "b"))])
    assert _ready(schedule) == ["a", "b"]
    schedule.completed("a", State.APPLIED)
    assert _ready(schedule) == []
    schedule.completed("b", State.SKIPPED)
    assert _ready(schedule) == ["c"]


def test_a_failed_dependency_fails_its_dependents_in_turn() -> None:
    """A dependency that did not apply fails what depends on it, and theirs, with a reason."""
    schedule = _schedule([_m("a"), _m("b", deps=("a",)), _m("c", deps=("b",)), _m("d")])
    assert _ready(schedule) == ["a", "d"]
    assert schedule.completed("a", State.CONFLICT) == [
        ("b", "dependency a conflict"),
        ("c", "dependency b failed"),
    ]
    assert _ready(schedule) == []


def test_an_unsettled_mutation_holds_back_what_waits_for_it() -> None:
    """Left pending or in doubt by a stop: what waits for it neither starts nor fails."""
    schedule = _schedule([_m("a", obj="gate/x"), _m("b", deps=("a",)), _m("c", obj="gate/x")])
    assert _ready(schedule) == ["a"]
    assert schedule.completed("a", State.IN_DOUBT) == []
    assert _ready(schedule) == []


def test_a_resume_counts_what_the_checkpoint_already_settled() -> None:
    """Settled mutations do not run again; a dependency that failed before blocks at once."""
    mutations = [_m("a"), _m("b"), _m("c", deps=("a",)), _m("d", deps=("b",)), _m("e", deps=("d",))]
    schedule = _schedule(mutations, a=State.APPLIED, b=State.FAILED)
    assert schedule.blocked == [("d", "dependency b failed")]
    assert schedule.fail("d", "dependency b failed") == [
        ("d", "dependency b failed"),
        ("e", "dependency d failed"),
    ]
    assert schedule.fail("e", "again") == []  # failed already: nothing to record twice
    assert _ready(schedule) == ["c"]
