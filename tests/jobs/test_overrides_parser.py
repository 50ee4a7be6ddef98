"""Reading override rows: every validation error carries its line number."""

from __future__ import annotations

import json

import pytest

from bulkops.errors import InputError
from bulkops.jobs.import_overrides.parser import Catalog, read_overrides_file

HEADER = "kind,id,unit_id,value,environment,unit_type\n"


@pytest.fixture(name="catalog")
def _catalog() -> Catalog:
    return Catalog(
        gates={"g1", "g2"},
        holdouts={"h1"},
        experiments={"e1": {"control", "test"}},
        layers={"l1": {"control"}},
        segments={"ids": "id_list", "rules": "rule_based"},
        environments={"development", "staging", "production"},
        unit_types={"userID", "stableID", "companyID"},
    )


def _read(tmp_path, text, catalog, name="rows.csv"):
    path = tmp_path / name
    path.write_text(text)
    return read_overrides_file(path, catalog)


def test_valid_rows_are_grouped_per_target(tmp_path, catalog):
    """Rows fold into one entry per target, bucketed by environment, unit type and value."""
    targets, problems = _read(
        tmp_path,
        HEADER + "gate,g1,u1,pass,,\ngate,g1,u2,PASS,,\ngate,g1,u3,fail,staging,companyID\n"
        "experiment,e1,u4,test,,\nsegment,ids,u5,,,\ngate,g1,u1,pass,,\n",
        catalog,
    )
    assert problems == []
    g1 = targets[("gate", "g1")]
    assert list(g1.buckets[(None, "userID", "pass")]) == ["u1", "u2"]
    assert list(g1.buckets[("staging", "companyID", "fail")]) == ["u3"]
    assert list(targets[("experiment", "e1")].buckets[(None, "userID", "test")]) == ["u4"]
    assert list(targets[("segment", "ids")].buckets[(None, "userID", "")]) == ["u5"]


@pytest.mark.parametrize(
    ("row", "message"),
    [
        ("flag,g1,u1,pass,,", "unknown kind 'flag'"),
        ("gate,,u1,pass,,", "empty id"),
        ("gate,g1,,pass,,", "empty unit_id"),
        ("gate,missing,u1,pass,,", "gate 'missing' does not exist"),
        ("gate,g1,u1,maybe,,", "must be pass or fail"),
        ("holdout,h2,u1,pass,,", "holdout 'h2' does not exist"),
        ("experiment,e1,u1,blue,,", "experiment 'e1' has no group 'blue'"),
        ("experiment,e1,u1,,,", "must be a group id"),
        ("layer,l9,u1,control,,", "layer 'l9' does not exist"),
        ("gate,g1,u1,pass,prod,", "environment 'prod' does not exist"),
        ("gate,g1,u1,pass,,deviceID", "unit type 'deviceID' does not exist"),
        ("segment,rules,u1,,,", "type 'rule_based'; only id_list"),
        ("segment,ids,u1,pass,,", "value must be empty"),
        ("gate,g1,u1,pass", "expected 6 columns, found 4"),
    ],
)
def test_each_bad_row_is_reported_with_its_line(tmp_path, catalog, row, message):
    """A bad row is reported with its line number; the good row beside it is kept."""
    targets, problems = _read(tmp_path, HEADER + "gate,g2,ok,pass,,\n" + row + "\n", catalog)
    assert [p.line for p in problems] == [3]
    assert message in problems[0].message
    assert ("gate", "g2") in targets


def test_pass_and_fail_for_one_unit_id_invalidates_both_rows(tmp_path, catalog):
    """The same unit id passing and failing one target in one environment is refused, naming both lines."""
    targets, problems = _read(
        tmp_path, HEADER + "gate,g1,u1,pass,,\ngate,g1,u2,pass,,\ngate,g1,u1,fail,,\n", catalog
    )
    assert [p.line for p in problems] == [2, 4]
    assert "also line 4" in problems[0].message and "also line 2" in problems[1].message
    assert list(targets[("gate", "g1")].buckets[(None, "userID", "pass")]) == ["u2"]
    # Different environments do not clash.
    _, problems = _read(tmp_path, HEADER + "gate,g1,u1,pass,,\ngate,g1,u1,fail,staging,\n", catalog)
    assert problems == []


def test_json_lines_with_the_same_fields(tmp_path, catalog):
    """JSON lines are read like CSV, with bad lines and unknown fields reported by line."""
    lines = [
        json.dumps({"kind": "gate", "id": "g1", "unit_id": "u1", "value": "pass"}),
        "{not json",
        json.dumps({"kind": "gate", "id": "g1", "unit_id": "u2", "value": "pass", "colour": "red"}),
    ]
    targets, problems = _read(tmp_path, "\n".join(lines) + "\n", catalog, name="rows.jsonl")
    assert [(p.line, p.message.split(":")[0]) for p in problems] == [
        (2, "not valid JSON"),
        (3, "unknown field 'colour'; expected kind, id, unit_id, value, environment, unit_type"),
    ]
    assert list(targets[("gate", "g1")].buckets[(None, "userID", "pass")]) == ["u1"]


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("", "the file is empty"),
        ("kind,id,value\n", "missing column 'unit_id'"),
        (HEADER.replace("value", "val"), "unknown column 'val'"),
    ],
)
def test_bad_header_is_refused(tmp_path, catalog, text, message):
    """A wrong or missing header stops before any row, naming file and line 1."""
    with pytest.raises(InputError, match=message):
        _read(tmp_path, text, catalog)


def test_missing_file(tmp_path, catalog):
    """A file that cannot be read is an InputError naming it."""
    with pytest.raises(InputError, match="cannot read overrides file"):
        read_overrides_file(tmp_path / "nope.csv", catalog)
