"""Mutations and their predicates: matching reads, diffs, validation and undo."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from bulkops.engine.mutations import (
    CREATED_ID,
    Expect,
    InverseCall,
    Mutation,
    resolve_path,
    value_matches,
)
from bulkops.errors import PlanError

GATE = {
    "id": "g",
    "status": "In Progress",
    "isEnabled": True,
    "tags": ["a", "b"],
    "rules": [{"id": "r1", "baseID": "r1", "name": "all", "passPercentage": 10}],
}


def _archive(**extra: object) -> Mutation:
    fields: dict[str, object] = {
        "key": "gate:archive:g",
        "project": "p",
        "action": "archive",
        "object": "gate/g",
        "method": "put",
        "path": "/gates/g/archive",
        "body": {},
        "read": "/gates/g",
        "before": Expect(fields={"status": "In Progress"}),
        "after": Expect(fields={"status": "Archived"}),
        "before_image": {"status": "In Progress"},
        "inverse": (InverseCall(method="PUT", path="/gates/g/unarchive", body={}),),
        "idempotent": True,
    }
    fields.update(extra)
    return Mutation(**fields)  # type: ignore[arg-type]


def test_resolve_path_walks_keys_indexes_stars_and_selectors() -> None:
    """Dotted paths reach keys, list indexes, every element, and filtered elements."""
    data = {
        "a": {"b": [{"k": "x", "v": 1}, {"k": "y", "v": 2}, {"k": None, "v": 3}]},
    }
    assert resolve_path(data, "a.b.1.v") == [2]
    assert resolve_path(data, "a.b.*.v") == [1, 2, 3]
    assert resolve_path(data, "a.b[k=y].v") == [2]
    assert resolve_path(data, "a.b[k=null].v") == [3]
    assert resolve_path(data, "a.missing") == []
    assert resolve_path(data, "") == [data]


def test_value_matching_is_subset_for_dicts_and_unordered_for_scalar_lists() -> None:
    """The server may add keys (rule ids) and reorder id lists; types still matter."""
    assert value_matches({"name": "all"}, {"name": "all", "id": "r1"})
    assert value_matches(["b", "a"], ["a", "b"])
    assert not value_matches(["a"], ["a", "b"])
    assert value_matches([{"name": "x"}], [{"name": "x", "id": 1}])
    assert not value_matches(True, 1)
    assert value_matches(10, 10.0)


def test_expect_fields_differs_contains_excludes() -> None:
    """Each kind of condition checks what the read shows."""
    assert Expect(fields={"status": "In Progress"}).matches(GATE)
    assert not Expect(fields={"status": "Archived"}).matches(GATE)
    assert Expect(differs={"status": "Archived"}).matches(GATE)
    assert Expect(contains={"tags": ["a"]}).matches(GATE)
    assert not Expect(contains={"tags": ["c"]}).matches(GATE)
    assert Expect(excludes={"tags": ["c"]}).matches(GATE)
    assert not Expect(excludes={"tags": ["a", "c"]}).matches(GATE)
    assert Expect(fields={"rules": [{"name": "all", "passPercentage": 10}]}).matches(GATE)


def test_expect_existence_and_404() -> None:
    """None stands for a 404: only ``exists=False`` (or no condition) matches it."""
    assert Expect(exists=False).matches(None)
    assert not Expect(exists=False).matches(GATE)
    assert Expect(exists=True).matches(GATE)
    assert not Expect(exists=True).matches(None)
    assert not Expect(fields={"status": "In Progress"}).matches(None)
    assert Expect().matches(None) and Expect().is_empty


def test_expect_predict_applies_fields_and_list_changes() -> None:
    """predict() gives the read expected after the change (for chained plans)."""
    after = Expect(
        fields={"status": "Archived"}, contains={"tags": ["c"]}, excludes={"tags": ["a"]}
    )
    predicted = after.predict(GATE)
    assert predicted["status"] == "Archived"
    assert predicted["tags"] == ["b", "c"]
    assert GATE["status"] == "In Progress"  # the input is not changed
    assert Expect(exists=False).predict(GATE) is None


def test_mutation_validates_method_path_quota_class_and_key() -> None:
    """Bad mutations are refused when they are built, not when they run."""
    assert _archive().method == "PUT"
    for bad in (
        {"method": "GET"},
        {"path": "gates/g"},
        {"read": "gates/g"},
        {"quota_class": "reads"},
        {"key": ""},
        {"key": "a\nb"},
        {"depends_on": ("gate:archive:g",)},
        {"unknown": 1},
    ):
        with pytest.raises(ValidationError):
            _archive(**bad)


def test_mutation_is_frozen() -> None:
    """Mutations are data: they cannot be changed after a job yields them."""
    m = _archive()
    with pytest.raises(ValidationError):
        m.key = "other"  # type: ignore[misc]


def test_diff_and_describe_show_only_what_changes() -> None:
    """The dry-run line names the object and the before → after of each changed field."""
    m = _archive()
    assert m.diff() == [("status", "In Progress", "Archived")]
    assert m.describe() == "archive gate/g: status In Progress → Archived"
    create = _archive(
        action="create",
        method="POST",
        path="/gates",
        before=Expect(exists=False),
        after=Expect(exists=True, fields={"name": "g"}),
    )
    assert create.diff() == [("(object)", "absent", "created")]


def test_reverse_swaps_states_and_keeps_a_way_back() -> None:
    """The undo expects this mutation's after-state and restores its before-state."""
    (undo,) = _archive().reverse()
    assert undo.key == "undo:gate:archive:g"
    assert undo.method == "PUT" and undo.path == "/gates/g/unarchive"
    assert undo.before == Expect(fields={"status": "Archived"})
    assert undo.after == Expect(fields={"status": "In Progress"})
    (again,) = undo.reverse()
    assert again.path == "/gates/g/archive" and again.after == Expect(fields={"status": "Archived"})


def test_reverse_fills_in_the_created_id() -> None:
    """An undo that needs the server-assigned id gets it from the create's outcome."""
    m = _archive(
        action="create",
        method="POST",
        path="/tags",
        read="/tags",
        before=Expect(excludes={"*.name": ["t"]}),
        after=Expect(contains={"*.name": ["t"]}),
        inverse=(InverseCall(method="DELETE", path=f"/tags/{CREATED_ID}", idempotent=True),),
    )
    (undo,) = m.reverse("tag_123")
    assert undo.path == "/tags/tag_123"
    with pytest.raises(PlanError):
        m.reverse(None)


def test_verifiable_needs_a_read_and_a_predicate() -> None:
    """Without a read (unknown endpoint) a mutation cannot be reconciled."""
    assert _archive().verifiable
    assert not _archive(read=None).verifiable
    assert not _archive(before=Expect(), after=Expect()).verifiable
