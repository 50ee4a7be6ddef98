"""The rewrite-rules language: loading with positioned errors, and each operation."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from bulkops.errors import InputError
from bulkops.jobs.rewrite_rules.language import (
    OP_NAMES,
    RewriteSpec,
    load_rewrite_file,
    load_rule_function,
)

EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "rewrite.toml"


def _gate(**extra):
    return {
        "id": "checkout_flow",
        "tags": ["payments"],
        "owner": {"ownerID": "x"},
        "rules": [
            {
                "id": "AAA:10.00:1",
                "baseID": "AAA",
                "name": "Rollout 10",
                "passPercentage": 10,
                "conditions": [
                    {"type": "passes_segment", "targetValue": "beta_testers"},
                    {"type": "email", "operator": "str_contains_any", "targetValue": ["@corp.com"]},
                ],
                "environments": None,
                "futureField": {"kept": True},
            },
            {
                "id": "BBB",
                "baseID": "BBB",
                "name": "Temp hack",
                "passPercentage": 5,
                "conditions": [],
            },
            {
                "id": "CCC",
                "baseID": "CCC",
                "name": "Old name",
                "passPercentage": 50,
                "conditions": [
                    {"type": "user_id", "operator": "any", "targetValue": ["u_123", "u_9"]}
                ],
            },
        ],
        **extra,
    }


def _spec(*ops, select=None):
    return RewriteSpec.model_validate({"select": select or {}, "rewrite": list(ops)})


def test_readme_example_loads_verbatim():
    """The README's example file is valid and shows all eight operations, in the language's order."""
    spec = load_rewrite_file(EXAMPLE)
    assert [op.op for op in spec.rewrite] == list(OP_NAMES) and len(OP_NAMES) == 8
    assert spec.select.matches("gates", _gate())
    assert not spec.select.matches("gates", _gate(tags=["growth"]))
    assert not spec.select.matches("gates", {**_gate(), "id": "signup_flow"})


def test_readme_example_on_a_gate_and_a_config():
    """Every operation applies; rule ids, order and untouched fields are kept; return values only on configs."""
    spec = load_rewrite_file(EXAMPLE)
    rules = spec.apply("gates", _gate())
    assert [r["name"] for r in rules] == ["Rollout 10", "New name"]
    first, second = rules
    assert first["id"] == "AAA:10.00:1" and first["futureField"] == {"kept": True}
    assert first["passPercentage"] == 100
    assert first["conditions"][0]["targetValue"] == "beta_testers_v2"
    assert first["conditions"][1]["targetValue"] == ["@corp.com", "@newco.com"]
    assert second["conditions"][0]["targetValue"] == ["u_9"]
    assert first["environments"] == ["production", "staging"]
    assert "returnValue" not in first
    config_rules = spec.apply("dynamic_configs", _gate())
    assert config_rules[0]["returnValue"] == {"theme": "dark"}


def test_apply_does_not_mutate_the_input():
    """The object read from the API is left as it was (it is the before-image)."""
    gate = _gate()
    before = json.dumps(gate, sort_keys=True)
    load_rewrite_file(EXAMPLE).apply("gates", gate)
    assert json.dumps(gate, sort_keys=True) == before


def test_unchanged_object_gives_identical_rules():
    """An object no operation touches comes back equal, so the job sends nothing for it."""
    spec = _spec({"op": "replace-reference", "kind": "gate", "from": "nope", "to": "other"})
    assert spec.apply("gates", _gate()) == _gate()["rules"]


def test_replace_reference_in_lists_dedupes():
    """A list target holding both old and new ids ends with the new id once."""
    gate = {
        "id": "g",
        "rules": [{"name": "r", "conditions": [{"type": "fails_gate", "targetValue": ["a", "b"]}]}],
    }
    spec = _spec({"op": "replace-reference", "kind": "gate", "from": "a", "to": "b"})
    assert spec.apply("gates", gate)[0]["conditions"][0]["targetValue"] == ["b"]


def test_empty_environments_means_all():
    """set-environments with an empty list clears the restriction (null = all environments)."""
    spec = _spec({"op": "set-environments", "rule": "*", "environments": []})
    rules = spec.apply(
        "gates",
        {"id": "g", "rules": [{"name": "r", "environments": ["staging"], "conditions": []}]},
    )
    assert rules[0]["environments"] is None


def test_rename_that_duplicates_a_name_is_refused():
    """Renaming onto an existing rule name names the operation and the object."""
    spec = _spec({"op": "rename-rule", "rule": "Old name", "to": "Temp hack"})
    with pytest.raises(InputError, match=r"rewrite\[1\].*checkout_flow.*'Temp hack'"):
        spec.apply("gates", _gate())


@pytest.mark.parametrize(
    ("body", "message"),
    [
        ('[[rewrite]]\nop = "frobnicate"\n', r"rewrite\[1\]: unknown op 'frobnicate'"),
        (
            '[[rewrite]]\nop = "drop-rule"\nrule = "x"\ncolour = "red"\n',
            r"rewrite\[1\] \(op = \"drop-rule\"\): unknown field 'colour'",
        ),
        (
            '[[rewrite]]\nop = "drop-rule"\nrule = "a"\n[[rewrite]]\nop = "set-pass-percentage"\nvalue = 101\n',
            r"rewrite\[2\] .*outside 0–100",
        ),
        ('[[rewrite]]\nop = "set-pass-percentage"\nvalue = -1\n', r"outside 0–100"),
        ('[[rewrite]]\nop = "set-pass-percentage"\nvalue = 33.333\n', r"not a multiple of 0.01"),
        (
            '[select]\nkinds = ["gates"]\n[[rewrite]]\nop = "set-return-value"\nmerge = { a = 1 }\n',
            r"dynamic configs only",
        ),
        (
            '[select]\nkinds = ["experiments"]\n[[rewrite]]\nop = "drop-rule"\nrule = "x"\n',
            r"select.kinds",
        ),
        (
            '[select]\nkind = ["gates"]\n[[rewrite]]\nop = "drop-rule"\nrule = "x"\n',
            r"unknown field 'kind'",
        ),
        ("[select]\n", r"rewrite"),
        ("this is = = not toml", r"not valid TOML"),
    ],
)
def test_bad_files_name_the_problem(tmp_path, body, message):
    """Each kind of bad file is refused with a message naming file and position."""
    path = tmp_path / "bad.toml"
    path.write_text(body)
    with pytest.raises(InputError, match=message) as info:
        load_rewrite_file(path)
    assert str(path) in str(info.value)


def test_json_with_the_same_structure_is_accepted(tmp_path):
    """A JSON rewrite file is read like TOML."""
    path = tmp_path / "rw.json"
    path.write_text(json.dumps({"rewrite": [{"op": "drop-rule", "rule": "Temp*"}]}))
    assert load_rewrite_file(path).apply("gates", _gate())[-1]["name"] == "Old name"


def test_python_escape_hatch(tmp_path):
    """--python FILE.py:function loads a function; bad references are clear errors."""
    path = tmp_path / "mine.py"
    path.write_text(
        "def halve(rule, obj):\n    return {**rule, 'passPercentage': rule['passPercentage'] / 2}\n"
    )
    func = load_rule_function(f"{path}:halve")
    assert func({"name": "r", "passPercentage": 50}, {"id": "g"})["passPercentage"] == 25
    with pytest.raises(InputError, match="no function 'nope'"):
        load_rule_function(f"{path}:nope")
    with pytest.raises(InputError, match="FILE.py:function"):
        load_rule_function(str(path))


def _values_gate(*conditions):
    return {
        "id": "g",
        "rules": [
            {"name": "Target", "passPercentage": 100, "conditions": list(conditions)},
            {"name": "Everyone", "passPercentage": 10, "conditions": [{"type": "public"}]},
        ],
    }


def test_remove_values_that_empty_an_any_condition_drop_the_rule():
    """ "any of nothing" matches no one: the rule goes, and the change says why."""
    spec = _spec({"op": "remove-values", "condition": "user_id", "values": ["u_1", "u_2"]})
    gate = _values_gate(
        {"type": "country", "operator": "any", "targetValue": ["DE"]},
        {"type": "user_id", "operator": "any", "targetValue": ["u_1", "u_2"]},
    )
    changes = spec.pairs("gates", gate)
    assert changes[0].new is None and "matching no one" in changes[0].note
    assert "rewrite[1]" in changes[0].note
    assert changes[1].new == gate["rules"][1] and changes[1].note is None


def test_remove_values_that_empty_a_none_condition_drop_the_condition():
    """ "none of nothing" holds for everyone: the condition goes; a rule left bare is Everyone."""
    spec = _spec({"op": "remove-values", "condition": "user_id", "values": ["u_1"]})
    both = _values_gate(
        {"type": "country", "operator": "any", "targetValue": ["DE"]},
        {"type": "user_id", "operator": "none", "targetValue": ["u_1"]},
    )
    assert spec.apply("gates", both)[0]["conditions"] == [
        {"type": "country", "operator": "any", "targetValue": ["DE"]}
    ]
    alone = _values_gate({"type": "user_id", "operator": "none", "targetValue": "u_1"})
    assert spec.apply("gates", alone)[0]["conditions"] == [{"type": "public"}]


def test_remove_values_keeps_the_shape_of_untouched_and_partly_emptied_conditions():
    """A scalar or list target that loses nothing is left exactly as it was."""
    spec = _spec({"op": "remove-values", "condition": "user_id", "values": ["u_1"]})
    gate = _values_gate(
        {"type": "user_id", "operator": "any", "targetValue": "u_9"},
        {"type": "user_id", "operator": "any", "targetValue": ["u_1", "u_9"]},
    )
    assert spec.apply("gates", gate)[0]["conditions"] == [
        {"type": "user_id", "operator": "any", "targetValue": "u_9"},
        {"type": "user_id", "operator": "any", "targetValue": ["u_9"]},
    ]


def test_remove_values_refuses_to_guess_an_empty_list_under_other_operators():
    """Emptying a condition whose operator gives an empty list no meaning is a named error."""
    spec = _spec(
        {"op": "drop-rule", "rule": "nothing"},
        {"op": "remove-values", "condition": "app_version", "values": ["1.0"]},
    )
    gate = _values_gate({"type": "app_version", "operator": "version_gt", "targetValue": ["1.0"]})
    with pytest.raises(InputError, match=r'rewrite\[2\] \(op = "remove-values"\).*version_gt'):
        spec.apply("gates", gate)
