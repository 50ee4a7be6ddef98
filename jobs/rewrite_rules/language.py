"""The rule-rewrite language of ``rewrite-rules``: a file of operations applied to rule lists.

A rewrite file (TOML, or JSON of the same structure) has a ``[select]`` table and
``[[rewrite]]`` operations, applied in order to every rule of every selected
object. Everything here is pure: loading validates the file (each error names the
operation's position), and :meth:`RewriteSpec.apply` turns one object's rules into
its new rules without touching any field the operations do not name.
"""

from __future__ import annotations

import copy
import fnmatch
import importlib.util
import json
import tomllib
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Annotated, Any, Literal, NamedTuple

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from bulkops.errors import InputError
from bulkops.inputs import check_source, read_text

__all__ = [
    "KINDS",
    "Operation",
    "RewriteSpec",
    "RuleChange",
    "RuleFunction",
    "Select",
    "load_rewrite_file",
    "load_rule_function",
]

KINDS = ("gates", "dynamic_configs")
KindName = Literal["gates", "dynamic_configs"]


def _all_kinds() -> list[KindName]:
    return ["gates", "dynamic_configs"]


# A user-supplied rewrite: (rule, object) -> new rule, or None to drop the rule.
RuleFunction = Callable[[dict[str, Any], dict[str, Any]], dict[str, Any] | None]


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, populate_by_name=True)


class Select(_Strict):
    """Which objects a rewrite touches: kinds, and optionally tags (any) and id patterns."""

    kinds: list[KindName] = Field(default_factory=_all_kinds, min_length=1)
    tags: list[str] = []
    ids: list[str] = []

    def matches(self, kind: str, obj: dict[str, Any]) -> bool:
        """True if ``obj`` of ``kind`` is selected."""
        if kind not in self.kinds:
            return False
        if self.tags and not set(self.tags) & set(obj.get("tags") or []):
            return False
        return not self.ids or any(fnmatch.fnmatchcase(str(obj.get("id")), p) for p in self.ids)


class _Op(_Strict):
    def rule_selected(self, rule: dict[str, Any]) -> bool:
        pattern = getattr(self, "rule", None)
        return pattern is None or fnmatch.fnmatchcase(str(rule.get("name", "")), pattern)


class ReplaceReference(_Op):
    """Swap a segment or gate in ``passes_*``/``fails_*`` conditions."""

    op: Literal["replace-reference"]
    kind: Literal["segment", "gate"]
    from_: str = Field(alias="from", min_length=1)
    to: str = Field(min_length=1)


class AddValues(_Op):
    """Add target values to every condition of one type."""

    op: Literal["add-values"]
    condition: str = Field(min_length=1)
    values: list[str | int | float] = Field(min_length=1)


class RemoveValues(_Op):
    """Remove target values from every condition of one type."""

    op: Literal["remove-values"]
    condition: str = Field(min_length=1)
    values: list[str | int | float] = Field(min_length=1)


class SetPassPercentage(_Op):
    """Set the pass percentage of rules whose name matches."""

    op: Literal["set-pass-percentage"]
    rule: str = "*"
    value: float

    @field_validator("value")
    @classmethod
    def _percentage(cls, value: float) -> float:
        if not 0 <= value <= 100:
            raise ValueError(f"value {value:g} is outside 0–100")
        if abs(round(value * 100) - value * 100) > 1e-6:
            raise ValueError(f"value {value:g} is not a multiple of 0.01")
        return value


class RenameRule(_Op):
    """Rename rules whose name matches."""

    op: Literal["rename-rule"]
    rule: str = Field(min_length=1)
    to: str = Field(min_length=1)


class DropRule(_Op):
    """Drop rules whose name matches."""

    op: Literal["drop-rule"]
    rule: str = Field(min_length=1)


class SetEnvironments(_Op):
    """Restrict matching rules to environments (an empty list means all environments)."""

    op: Literal["set-environments"]
    rule: str = "*"
    environments: list[str]


class SetReturnValue(_Op):
    """Dynamic configs only: merge keys into the return value of matching rules."""

    op: Literal["set-return-value"]
    rule: str = "*"
    merge: dict[str, Any] = Field(min_length=1)


Operation = Annotated[
    ReplaceReference
    | AddValues
    | RemoveValues
    | SetPassPercentage
    | RenameRule
    | DropRule
    | SetEnvironments
    | SetReturnValue,
    Field(discriminator="op"),
]

OP_NAMES = (
    "replace-reference",
    "add-values",
    "remove-values",
    "set-pass-percentage",
    "rename-rule",
    "drop-rule",
    "set-environments",
    "set-return-value",
)


class RewriteSpec(_Strict):
    """A validated rewrite file."""

    select: Select = Field(default_factory=Select)
    rewrite: list[Operation] = Field(min_length=1)

    def references(self) -> list[tuple[int, str, str]]:
        """``(position, kind, id)`` of every object an operation points ``to``."""
        return [
            (i, op.kind, op.to)
            for i, op in enumerate(self.rewrite, 1)
            if isinstance(op, ReplaceReference)
        ]

    def apply(self, kind: str, obj: dict[str, Any]) -> list[dict[str, Any]]:
        """The new rule list of ``obj`` (of ``kind``) after every operation, in order.

        Raises:
            InputError: a rename would give two rules of the object the same name.
        """
        return [change.new for change in self.pairs(kind, obj) if change.new is not None]

    def pairs(self, kind: str, obj: dict[str, Any]) -> list[RuleChange]:
        """Each rule of ``obj`` with what it becomes (None: dropped), in rule order.

        Operations never add or reorder rules, so the surviving rules are the new list.

        Raises:
            InputError: a rename would give two rules of the object the same name, or
                ``remove-values`` would empty a condition whose operator does not say
                what an empty list means.
        """
        originals = list(obj.get("rules") or [])
        rules = copy.deepcopy(originals)
        source = {id(rule): index for index, rule in enumerate(rules)}
        notes: dict[int, str] = {}
        for position, op in enumerate(self.rewrite, 1):
            if isinstance(op, SetReturnValue) and kind != "dynamic_configs":
                continue  # return values exist on dynamic configs only
            if isinstance(op, RemoveValues):
                try:
                    rules = _remove_values(op, rules, notes, position)
                except _Unresolvable as exc:
                    raise InputError(
                        f'rewrite[{position}] (op = "remove-values"): {exc} in rule '
                        f"{exc.rule!r} of {obj.get('id')}; nothing says what an empty list "
                        "means there"
                    ) from None
                continue
            rules = _apply_op(op, rules)
            names = [r.get("name") for r in rules]
            duplicates = sorted({n for n in names if names.count(n) > 1}, key=str)
            if duplicates and isinstance(op, RenameRule):
                raise InputError(
                    f'rewrite[{position}] (op = "rename-rule"): renaming {op.rule!r} to {op.to!r} '
                    f"would give {obj.get('id')} two rules named {duplicates[0]!r}"
                )
        # Operations edit the copies in place and drop by filtering, so identity
        # tells which original each surviving rule came from.
        kept = {source[id(rule)]: rule for rule in rules}
        dropped_because = {source[key]: note for key, note in notes.items()}
        return [
            RuleChange(original, kept.get(index), dropped_because.get(index))
            for index, original in enumerate(originals)
        ]


class RuleChange(NamedTuple):
    """One rule of an object and what a rewrite makes of it."""

    old: dict[str, Any]
    new: dict[str, Any] | None  # None: dropped
    note: str | None = None  # why, when an operation other than drop-rule dropped it


# Operators under which a condition holds if the value is ANY of the list (an empty
# list: for no one), and those under which it holds if it is NONE of them (for all).
_ANY_OPERATORS = frozenset(
    {
        "any",
        "any_case_sensitive",
        "str_contains_any",
        "str_starts_with_any",
        "str_ends_with_any",
        "str_matches",
    }
)
_NONE_OPERATORS = frozenset({"none", "none_case_sensitive", "str_contains_none"})


class _Unresolvable(Exception):
    def __init__(self, message: str, rule: Any) -> None:
        super().__init__(message)
        self.rule = rule


def _remove_values(
    op: RemoveValues, rules: list[dict[str, Any]], notes: dict[int, str], position: int
) -> list[dict[str, Any]]:
    """Remove target values; a condition left with none is simplified as its operator says.

    The API takes no empty target lists, and none is needed: "any of nothing" holds
    for no one, so the rule can never match and goes (rules are tried in order, so a
    rule that never matches changes nothing); "none of nothing" holds for everyone,
    so the condition goes (a rule left without conditions is for Everyone).
    """
    out: list[dict[str, Any]] = []
    for rule in rules:
        conditions: list[dict[str, Any]] = []
        dead = False
        emptied = False
        for cond in rule.get("conditions") or []:
            target = cond.get("targetValue")
            if cond.get("type") != op.condition or target is None:
                conditions.append(cond)
                continue
            values = list(target) if isinstance(target, list) else [target]
            kept = [v for v in values if v not in op.values]
            if len(kept) == len(values):
                conditions.append(cond)  # nothing to remove: leave its shape alone
                continue
            if kept:
                cond["targetValue"] = kept if isinstance(target, list) else kept[0]
                conditions.append(cond)
                continue
            operator = cond.get("operator")
            if operator is None or operator in _ANY_OPERATORS:
                dead = True
                conditions.append(cond)
            elif operator in _NONE_OPERATORS:
                emptied = True
            else:
                raise _Unresolvable(
                    f"removing every value of a {op.condition} condition (operator {operator!r})",
                    rule.get("name"),
                )
        if dead:
            notes[id(rule)] = (
                f'rewrite[{position}] (op = "remove-values") left its {op.condition} '
                "condition matching no one"
            )
            continue
        if emptied:
            rule["conditions"] = conditions or [{"type": "public"}]
        out.append(rule)
    return out


def _apply_op(op: Any, rules: list[dict[str, Any]]) -> list[dict[str, Any]]:
    if isinstance(op, DropRule):
        return [r for r in rules if not op.rule_selected(r)]
    for rule in rules:
        if not op.rule_selected(rule):
            continue
        if isinstance(op, ReplaceReference):
            for cond in rule.get("conditions") or []:
                if cond.get("type") in (f"passes_{op.kind}", f"fails_{op.kind}"):
                    cond["targetValue"] = _replace(cond.get("targetValue"), op.from_, op.to)
        elif isinstance(op, AddValues):
            for cond in rule.get("conditions") or []:
                if cond.get("type") == op.condition:
                    cond["targetValue"] = _edit_values(cond.get("targetValue"), op)
        elif isinstance(op, SetPassPercentage):
            rule["passPercentage"] = int(op.value) if op.value.is_integer() else op.value
        elif isinstance(op, RenameRule):
            rule["name"] = op.to
        elif isinstance(op, SetEnvironments):
            rule["environments"] = list(op.environments) or None
        elif isinstance(op, SetReturnValue):
            current = rule.get("returnValue")
            merged = {**(current if isinstance(current, dict) else {}), **op.merge}
            if merged != current:
                rule["returnValue"] = merged
                if "returnValueJson5" in rule:  # keep the JSON5 twin saying the same
                    rule["returnValueJson5"] = json.dumps(merged)
    return rules


def _replace(target: Any, old: str, new: str) -> Any:
    if isinstance(target, list):
        out: list[Any] = []
        for value in target:
            value = new if value == old else value
            if value not in out:
                out.append(value)
        return out
    return new if target == old else target


def _edit_values(target: Any, op: AddValues) -> Any:
    values = list(target) if isinstance(target, list) else ([] if target is None else [target])
    added = [v for v in op.values if v not in values]
    return values + added if added else target


def _position(loc: Sequence[int | str], data: dict[str, Any]) -> str:
    if len(loc) >= 2 and loc[0] == "rewrite" and isinstance(loc[1], int):
        index = loc[1]
        ops = data.get("rewrite") or []
        name = ops[index].get("op") if index < len(ops) and isinstance(ops[index], dict) else None
        where = f"rewrite[{index + 1}]" + (f" (op = {json.dumps(name)})" if name else "")
        rest = [str(p) for p in loc[3:] if not str(p).startswith("function-")]
        field = ".".join(p for p in rest if p not in OP_NAMES)
        return f"{where}{': ' + field if field else ''}"
    return ".".join(str(p) for p in loc)


def load_rewrite_file(path: Path) -> RewriteSpec:
    """Read and validate a rewrite file (TOML, or JSON with the same structure).

    Raises:
        InputError: unreadable file, bad syntax, unknown ``op`` or field, bad values;
            every message names the file and the operation's position.
    """
    text = read_text(path, what="rewrite file")
    try:
        data = json.loads(text) if path.suffix == ".json" else tomllib.loads(text)
    except (ValueError, tomllib.TOMLDecodeError) as exc:
        raise InputError(
            f"{path}: not valid {'JSON' if path.suffix == '.json' else 'TOML'}: {exc}"
        ) from exc
    if not isinstance(data, dict):
        raise InputError(f"{path}: expected a table with [select] and [[rewrite]]")
    for index, op in enumerate(data.get("rewrite") or []):
        if isinstance(op, dict) and op.get("op") not in OP_NAMES:
            raise InputError(
                f"{path}: rewrite[{index + 1}]: unknown op {op.get('op')!r}; expected one of {', '.join(OP_NAMES)}"
            )
    try:
        spec = RewriteSpec.model_validate(data)
    except ValidationError as exc:
        problems = []
        for err in exc.errors():
            message = err["msg"].removeprefix("Value error, ")
            if err["type"] == "extra_forbidden":
                message = f"unknown field {err['loc'][-1]!r}"
                err_loc = err["loc"][:-1]
            else:
                err_loc = err["loc"]
            problems.append(f"{path}: {_position(err_loc, data)}: {message}")
        raise InputError("\n".join(problems)) from None
    if not any(k == "dynamic_configs" for k in spec.select.kinds):
        for position, op in enumerate(spec.rewrite, 1):
            if isinstance(op, SetReturnValue):
                raise InputError(
                    f'{path}: rewrite[{position}] (op = "set-return-value"): return values exist on '
                    "dynamic configs only, and [select] kinds holds only gates"
                )
    return spec


def load_rule_function(spec: str) -> RuleFunction:
    """Load ``FILE.py:function`` for ``--python``: ``function(rule, obj) -> rule | None``.

    Raises:
        InputError: the file or function is missing or not callable.
    """
    file_name, sep, func_name = spec.rpartition(":")
    if not sep or not file_name or not func_name:
        raise InputError(f"--python {spec!r}: expected FILE.py:function")
    path = Path(file_name)
    if not path.is_file():
        raise InputError(f"--python {spec!r}: no such file {path}")
    check_source(path, what="--python file")
    module_spec = importlib.util.spec_from_file_location(f"bulkops_user_rewrite_{path.stem}", path)
    if module_spec is None or module_spec.loader is None:
        raise InputError(f"--python {spec!r}: cannot load {path}")
    module = importlib.util.module_from_spec(module_spec)
    try:
        module_spec.loader.exec_module(module)
    except Exception as exc:
        raise InputError(
            f"--python {spec!r}: {path} failed to load: {type(exc).__name__}: {exc}"
        ) from exc
    func = getattr(module, func_name, None)
    if not callable(func):
        raise InputError(f"--python {spec!r}: {path} has no function {func_name!r}")
    return func  # type: ignore[no-any-return]
