"""Override rows from a spreadsheet: read, validate against the project, group per target.

Input is CSV with the header ``kind,id,unit_id,value,environment,unit_type`` or JSON
lines with the same fields. Rows are streamed (a 100,000-row file is never held as
rows), validated with their line numbers, and folded into one
:class:`TargetOverrides` per target, which is all the ``import-overrides`` job needs.

Experiment and layer groups may be named by id or by name; when the catalog knows the
groups (:attr:`Catalog.groups`), every value is folded to the group's id, so two rows
naming one group two ways land in one bucket, and a name two experiments of a layer
share is refused as ambiguous.
"""

from __future__ import annotations

import csv
import json
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from bulkops.errors import InputError
from bulkops.inputs import utf8_errors

__all__ = [
    "DEFAULT_UNIT_TYPE",
    "FIELDS",
    "KINDS",
    "Catalog",
    "GroupRef",
    "RowProblem",
    "TargetOverrides",
    "read_overrides_file",
]

FIELDS = ("kind", "id", "unit_id", "value", "environment", "unit_type")
KINDS = ("gate", "holdout", "experiment", "layer", "segment")
DEFAULT_UNIT_TYPE = "userID"
_PASS_FAIL = {
    "pass": "pass",
    "fail": "fail",
    "passing": "pass",
    "failing": "fail",
    "true": "pass",
    "false": "fail",
}


@dataclass(frozen=True)
class GroupRef:
    """One experiment group: the experiment it belongs to, its id and its name."""

    experiment: str
    id: str
    name: str


@dataclass
class Catalog:
    """What the project has, for validating rows (read once through the client).

    ``groups`` is optional: ``(kind, target id) -> {group id or name: [GroupRef]}``
    for experiments and layers. When a target has an entry, values are checked and
    folded to group ids through it (a name with two refs is ambiguous); without one,
    values are checked against ``experiments``/``layers`` as given.
    """

    gates: set[str] = field(default_factory=set)
    holdouts: set[str] = field(default_factory=set)
    experiments: dict[str, set[str]] = field(default_factory=dict)  # id -> group ids and names
    layers: dict[str, set[str]] = field(default_factory=dict)  # id -> group ids of its experiments
    segments: dict[str, str] = field(default_factory=dict)  # id -> segment type
    environments: set[str] = field(default_factory=set)
    unit_types: set[str] = field(default_factory=lambda: {"userID", "stableID"})
    groups: dict[tuple[str, str], dict[str, list[GroupRef]]] = field(default_factory=dict)

    def add_group(self, kind: str, target: str, group: GroupRef) -> None:
        """Record that ``target`` (an experiment or a layer) has ``group``."""
        refs = (self.experiments if kind == "experiment" else self.layers).setdefault(target, set())
        by_ref = self.groups.setdefault((kind, target), {})
        for ref in dict.fromkeys((group.id, group.name)):
            if not ref:
                continue
            refs.add(ref)
            known = by_ref.setdefault(ref, [])
            if group not in known:
                known.append(group)

    def group(self, kind: str, target: str, ref: str) -> GroupRef | None:
        """The one group ``ref`` names in ``target`` (None if unknown or ambiguous)."""
        found = self.groups.get((kind, target), {}).get(ref) or []
        return found[0] if len(found) == 1 else None


@dataclass(frozen=True)
class RowProblem:
    """One bad row: its line number and what is wrong."""

    line: int
    message: str

    def __str__(self) -> str:
        return f"line {self.line}: {self.message}"


@dataclass
class TargetOverrides:
    """Every id the file gives one target, per (environment, unit type, value)."""

    kind: str
    id: str
    # (environment or None for all, unit type, value) -> {unit id: line}, in file order
    buckets: dict[tuple[str | None, str, str], dict[str, int]] = field(default_factory=dict)
    rows: int = 0

    def add(
        self, environment: str | None, unit_type: str, value: str, unit_id: str, line: int = 0
    ) -> None:
        """Record ``unit_id`` (first seen on ``line``) under its bucket."""
        ids = self.buckets.setdefault((environment, unit_type, value), {})
        if unit_id not in ids:
            ids[unit_id] = line
            self.rows += 1


def _rows(path: Path) -> Iterator[tuple[int, dict[str, Any] | None, str | None]]:
    """Yield ``(line, fields, problem)`` for every data row of a CSV or JSON-lines file."""
    try:
        handle = path.open(encoding="utf-8-sig", newline="")
    except OSError as exc:
        raise InputError(f"{path}: cannot read overrides file: {exc.strerror}") from exc
    with handle, utf8_errors(path, what="overrides file"):
        if path.suffix in (".jsonl", ".ndjson", ".json"):
            for line_no, text in enumerate(handle, 1):
                if not text.strip():
                    continue
                try:
                    obj = json.loads(text)
                except json.JSONDecodeError as exc:
                    yield line_no, None, f"not valid JSON: {exc.msg}"
                    continue
                if not isinstance(obj, dict):
                    yield line_no, None, "expected a JSON object"
                    continue
                unknown = sorted(set(obj) - set(FIELDS))
                if unknown:
                    yield (
                        line_no,
                        None,
                        f"unknown field {unknown[0]!r}; expected {', '.join(FIELDS)}",
                    )
                    continue
                yield line_no, obj, None
            return
        reader = csv.reader(handle)
        header = next(reader, None)
        if header is None:
            raise InputError(f"{path}: the file is empty; expected the header {','.join(FIELDS)}")
        names = [h.strip().lower() for h in header]
        missing = [f for f in FIELDS[:3] if f not in names]
        unknown = [n for n in names if n not in FIELDS]
        if missing or unknown:
            what = f"missing column {missing[0]!r}" if missing else f"unknown column {unknown[0]!r}"
            raise InputError(f"{path}: line 1: {what}; the header must be {','.join(FIELDS)}")
        for row in reader:
            line_no = reader.line_num
            if not any(cell.strip() for cell in row):
                continue
            if len(row) != len(names):
                yield line_no, None, f"expected {len(names)} columns, found {len(row)}"
                continue
            yield line_no, dict(zip(names, row, strict=True)), None


def _text(value: Any) -> str:
    return "" if value is None else str(value).strip()


def read_overrides_file(
    path: Path, catalog: Catalog
) -> tuple[dict[tuple[str, str], TargetOverrides], list[RowProblem]]:
    """Read and validate every row of ``path`` against ``catalog``.

    Returns:
        The valid rows folded per ``(kind, id)`` target, and every problem found
        (one per bad row, with its line number). A row with a problem contributes
        nothing. The caller refuses the whole file when there is any problem, unless
        the user asked to skip invalid rows.

    Raises:
        InputError: the file cannot be read or its header is wrong.
    """
    targets: dict[tuple[str, str], TargetOverrides] = {}
    problems: list[RowProblem] = []
    # (kind, id, environment, unit type, unit id) -> (value, line): catches pass+fail clashes.
    seen: dict[tuple[str, str, str | None, str, str], tuple[str, int]] = {}
    clashed: set[tuple[str, str, str | None, str, str]] = set()
    for line, raw, problem in _rows(path):
        if problem is not None or raw is None:
            problems.append(RowProblem(line, problem or "unreadable row"))
            continue
        kind = _text(raw.get("kind")).lower()
        target = _text(raw.get("id"))
        unit_id = _text(raw.get("unit_id"))
        value = _text(raw.get("value"))
        environment = _text(raw.get("environment")) or None
        unit_type = _text(raw.get("unit_type")) or DEFAULT_UNIT_TYPE
        message = _check(kind, target, unit_id, value, environment, unit_type, catalog)
        if message is not None:
            problems.append(RowProblem(line, message))
            continue
        if kind in ("gate", "holdout"):
            value = _PASS_FAIL[value.lower()]
        elif kind in ("experiment", "layer"):
            group = catalog.group(kind, target, value)
            if group is not None:
                value = group.id
        key = (kind, target, environment, unit_type, unit_id)
        previous = seen.get(key)
        if previous is not None and previous[0] != value:
            what = (
                "both passing and failing"
                if kind in ("gate", "holdout")
                else f"in groups {previous[0]!r} and {value!r}"
            )
            where = f"environment {environment}" if environment else "all environments"
            clash = f"{kind} {target}: unit id {unit_id!r} is {what} in {where}"
            problems.append(RowProblem(line, f"{clash} (also line {previous[1]})"))
            if key not in clashed:  # the first row is wrong too: name it once
                problems.append(RowProblem(previous[1], f"{clash} (also line {line})"))
            clashed.add(key)
            continue
        seen[key] = (value, line)
        entry = targets.get((kind, target))
        if entry is None:
            entry = targets[(kind, target)] = TargetOverrides(kind, target)
        entry.add(environment, unit_type, value, unit_id, line)
    # A clash makes both rows wrong: take the first row's id back out of its target.
    for kind, target, environment, unit_type, unit_id in clashed:
        value = seen[(kind, target, environment, unit_type, unit_id)][0]
        entry = targets[(kind, target)]
        ids = entry.buckets[(environment, unit_type, value)]
        if unit_id in ids:
            del ids[unit_id]
            entry.rows -= 1
            if not ids:
                del entry.buckets[(environment, unit_type, value)]
            if entry.rows == 0:
                del targets[(kind, target)]
    problems.sort(key=lambda p: p.line)
    return targets, problems


def _check(
    kind: str,
    target: str,
    unit_id: str,
    value: str,
    environment: str | None,
    unit_type: str,
    catalog: Catalog,
) -> str | None:
    if kind not in KINDS:
        return f"unknown kind {kind!r}; expected one of {', '.join(KINDS)}"
    if not target:
        return "empty id"
    if not unit_id:
        return "empty unit_id"
    if environment is not None and environment not in catalog.environments:
        return f"environment {environment!r} does not exist in the project (has: {', '.join(sorted(catalog.environments))})"
    if unit_type not in catalog.unit_types:
        return f"unit type {unit_type!r} does not exist in the project"
    if kind in ("gate", "holdout"):
        known = catalog.gates if kind == "gate" else catalog.holdouts
        if target not in known:
            return f"{kind} {target!r} does not exist in the project"
        if value.lower() not in _PASS_FAIL:
            return f"value {value!r} for a {kind} must be pass or fail"
        return None
    if kind in ("experiment", "layer"):
        groups = (catalog.experiments if kind == "experiment" else catalog.layers).get(target)
        if groups is None:
            return f"{kind} {target!r} does not exist in the project"
        if not value:
            return f"value for an {kind} must be a group id"
        if value not in groups:
            return f"{kind} {target!r} has no group {value!r}"
        found = catalog.groups.get((kind, target), {}).get(value) or []
        if len(found) > 1:
            where = ", ".join(sorted({g.experiment for g in found}))
            return (
                f"{kind} {target!r} has several groups named {value!r} (experiments {where}); "
                "use the group id"
            )
        return None
    segment_type = catalog.segments.get(target)
    if segment_type is None:
        return f"segment {target!r} does not exist in the project"
    if segment_type != "id_list":
        return f"segment {target!r} is of type {segment_type!r}; only id_list segments take ids"
    if value:
        return f"value must be empty for a segment (got {value!r})"
    if environment is not None:
        return "segments have no per-environment ids; leave environment empty"
    return None
