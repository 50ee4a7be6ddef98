"""The plan's rule-by-rule diff of one object (what ``bulkops plan`` shows for a rewrite)."""

from __future__ import annotations

import json
from typing import Any

from .language import RuleChange

__all__ = ["rule_rows"]

_FIELD_ORDER = ("name", "passPercentage", "environments", "conditions", "returnValue")


def _text(value: Any, limit: int = 100) -> str:
    if value is None:
        text = "null"
    elif isinstance(value, str):
        text = value
    elif isinstance(value, float) and value.is_integer():
        text = str(int(value))
    elif isinstance(value, list) and all(not isinstance(v, dict | list) for v in value):
        text = "[" + ", ".join(_text(v) for v in value) + "]"
    else:
        text = json.dumps(value, sort_keys=True, ensure_ascii=False)
    return text if len(text) <= limit else text[: limit - 1] + "…"


def _condition_text(cond: Any, *, with_type: bool = True) -> str:
    if not isinstance(cond, dict):
        return _text(cond)
    parts = [str(cond.get("type"))] if with_type else []
    if cond.get("field"):
        parts.append(f"field={cond['field']}")
    if cond.get("customID"):
        parts.append(f"customID={cond['customID']}")
    if cond.get("operator"):
        parts.append(str(cond["operator"]))
    if "targetValue" in cond and cond["targetValue"] is not None:
        parts.append(_text(cond["targetValue"]))
    return " ".join(parts) or "-"


def _summary(rule: dict[str, Any]) -> str:
    pct = rule.get("passPercentage", 100)
    conditions = " AND ".join(_condition_text(c) for c in rule.get("conditions") or []) or "-"
    return _text(f"{_text(pct)}% of {conditions}", 120)


def _envs(value: Any) -> str:
    return "all" if not value else _text(value)


def rule_rows(pairs: list[RuleChange]) -> list[tuple[str, str, str]]:
    """The rule-by-rule diff of one object: ``(what, before, after)`` rows.

    A dropped rule is one row; a changed rule has one row per changed field, one per
    changed condition and one per changed return-value key.
    """
    rows: list[tuple[str, str, str]] = []
    for old, new, note in pairs:
        label = f"rule {json.dumps(old.get('name'), ensure_ascii=False)}"
        if new is None:
            rows.append((label, _summary(old), f"dropped ({note})" if note else "dropped"))
            continue
        if new == old:
            continue
        keys = [k for k in _FIELD_ORDER if k in old or k in new]
        keys += sorted(
            k for k in {*old, *new} - {*_FIELD_ORDER, "id", "baseID", "returnValueJson5"}
        )
        for key in keys:
            before, after = old.get(key), new.get(key)
            if before == after:
                continue
            if key == "environments":
                rows.append((f"{label}: environments", _envs(before), _envs(after)))
            elif key == "conditions":
                rows += _condition_rows(label, before or [], after or [])
            elif key == "returnValue" and isinstance(before, dict) and isinstance(after, dict):
                for name in [*before, *(k for k in after if k not in before)]:
                    if before.get(name, ...) != after.get(name, ...):
                        rows.append(
                            (
                                f"{label}: returnValue.{name}",
                                "(unset)" if name not in before else _text(before[name]),
                                "(unset)" if name not in after else _text(after[name]),
                            )
                        )
            else:
                rows.append((f"{label}: {key}", _text(before), _text(after)))
    return rows


def _condition_rows(label: str, before: list[Any], after: list[Any]) -> list[tuple[str, str, str]]:
    if len(before) != len(after):
        return [
            (
                f"{label}: conditions",
                " AND ".join(_condition_text(c) for c in before) or "-",
                " AND ".join(_condition_text(c) for c in after) or "-",
            )
        ]
    rows = []
    for number, (old, new) in enumerate(zip(before, after, strict=True), 1):
        if old != new:
            kind = old.get("type") if isinstance(old, dict) else "?"
            # The row names the type; repeat it only when the type itself changed.
            typed = not (isinstance(new, dict) and new.get("type") == kind)
            rows.append(
                (
                    f"{label}: condition {number} ({kind})",
                    _condition_text(old, with_type=typed),
                    _condition_text(new, with_type=typed),
                )
            )
    return rows
