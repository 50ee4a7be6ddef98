"""A scan as a report: per object its references, the objects found nowhere, warnings,
and four renderings — a table for people, JSON, CSV and SARIF 2.1.0 (GitHub code
scanning shows SARIF results inline in pull requests).

Nothing is capped: every reference of every object is in every rendering (the table
cuts long lines of code at :data:`TABLE_TEXT` characters, never a reference).
"""

from __future__ import annotations

import io
import json
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from .. import __version__
from .objects import FlagObject
from .scan import Hit, Scan, Warning

__all__ = [
    "DYNAMIC_PREFIX_MIN",
    "REPORT_FORMAT",
    "TABLE_TEXT",
    "ObjectRefs",
    "RefsReport",
    "build_report",
    "render_csv",
    "render_json",
    "render_sarif",
    "render_table",
]

REPORT_FORMAT = "bulkops.refs/1"  # the --json document's "schema" (bulkops/cli/schemas)
TABLE_TEXT = 100
# A name built at run time is tied to the objects its fixed start could begin, when
# that start is at least this long (``f"{x}"`` could be anything: a warning only).
DYNAMIC_PREFIX_MIN = 3
_SARIF_SCHEMA = "https://json.schemastore.org/sarif-2.1.0.json"
_RULES = {
    "reference": ("code references a Statsig object", "note"),
    "dead-check": ("code checks an archived object: the SDKs return the default", "error"),
    "dynamic-name": ("an SDK call builds its object's name at run time", "warning"),
}


@dataclass
class ObjectRefs:
    """One object and what the scan found of it.

    Attributes:
        object: The gate, config, experiment or layer.
        hits: Its references, in file and line order.
        maybe: Names built at run time whose fixed start is the start of its id.
    """

    object: FlagObject
    hits: list[Hit] = field(default_factory=list)
    maybe: list[Warning] = field(default_factory=list)

    @property
    def in_code(self) -> bool:
        return bool(self.hits or self.maybe)


@dataclass
class RefsReport:
    """Per object (in the objects' order) its references; the scan beneath."""

    scan: Scan
    objects: list[ObjectRefs]

    def found(self) -> list[ObjectRefs]:
        return [o for o in self.objects if o.in_code]

    def not_found(self) -> list[ObjectRefs]:
        return [o for o in self.objects if not o.in_code]

    def where(self, hit: Hit | Warning) -> str:
        """``src/checkout.py:41``."""
        return f"{self.scan.files[hit.file]}:{hit.line}"

    def summary(self) -> str:
        """Files scanned and everything left out, counted."""
        scan = self.scan
        methods = ", ".join(sorted(set(scan.methods)))
        parts = [f"scanned {scan.scanned:,} files ({_size(scan.bytes)}; {methods})"]
        if scan.skipped:
            reasons = Counter(why.split(":")[0] for _, why in scan.skipped)
            parts.append(
                f"skipped {len(scan.skipped):,}: "
                + ", ".join(f"{n:,} {why}" for why, n in reasons.most_common())
            )
        else:
            parts.append("skipped none")
        parts.append(f"{scan.ignored:,} paths left out by ignore rules")
        if scan.configs:
            parts.append("config " + ", ".join(scan.configs))
        return "; ".join(parts)


def build_report(scan: Scan) -> RefsReport:
    """Group a scan's hits by object and tie run-time names to the ids they could be."""
    objects = [ObjectRefs(obj) for obj in scan.objects]
    for hit in scan.hits:
        for target in hit.targets:
            objects[target].hits.append(hit)
    for warning in scan.warnings:
        if len(warning.prefix) < DYNAMIC_PREFIX_MIN:
            continue
        for refs in objects:
            if refs.object.id.startswith(warning.prefix):
                refs.maybe.append(warning)
    return RefsReport(scan, objects)


def _size(n: int) -> str:
    for unit in ("bytes", "KB", "MB"):
        if n < 1024 or unit == "MB":
            return f"{n:,} {unit}" if unit == "bytes" else f"{n:,.1f} {unit}"
        n /= 1024  # type: ignore[assignment]
    return ""  # pragma: no cover


def _via(hit: Hit) -> str:
    return hit.name if hit.role != "id" else ""


def _what(hit: Hit) -> str:
    what = hit.kind + (f" {hit.call}" if hit.call else "")
    if hit.constant:
        what += f" {hit.constant}"
    if hit.role != "id":
        what += f" (via {hit.name})"
    return what


def _cut(text: str) -> str:
    text = text.strip()
    return text if len(text) <= TABLE_TEXT else text[: TABLE_TEXT - 1] + "…"


def render_table(
    report: RefsReport, *, context: bool = False, missing: bool = True, show: int = 0
) -> str:
    """The people's rendering: per object in code its references; then the objects in
    code nowhere (listed when ``missing``, else counted; the first ``show`` of them, one
    per line, and how many more, unless ``show`` is 0), the warnings, and what was scanned
    and left out."""
    out: list[str] = []
    for refs in report.found():
        obj = refs.object
        status = " · ".join(x for x in (obj.status, obj.type_reason) if x)
        count = f"{len(refs.hits):,} reference" + ("" if len(refs.hits) == 1 else "s")
        out.append(f"{obj.label}  {status + ' · ' if status else ''}{count} · "
                   f"clean-up: checks become {obj.hint}")  # fmt: skip
        rows = [(f"{report.where(h)}:{h.column}", _what(h), h) for h in refs.hits]
        width = max((len(r[0]) for r in rows), default=0)
        kinds = max((len(r[1]) for r in rows), default=0)
        for where, what, hit in rows:
            out += [f"  {'':{width}}  {'':{kinds}}  | {_cut(x)}" for x in hit.before if context]
            out.append(f"  {where:{width}}  {what:{kinds}}  {_cut(hit.text)}")
            out += [f"  {'':{width}}  {'':{kinds}}  | {_cut(x)}" for x in hit.after if context]
        out += [
            f"  {report.where(w)}:{w.column}  maybe: a name built at run time in {w.call} "
            f"starts {w.prefix!r}"
            for w in refs.maybe
        ]
    nowhere = report.not_found()
    if nowhere and missing:
        listed = nowhere[:show] if show else nowhere
        out.append(f"not in code ({len(nowhere):,}):")
        out += [f"  {o.object.label}" for o in listed]
        if len(listed) < len(nowhere):
            out.append(f"  … and {len(nowhere) - len(listed):,} more (--show 0 lists them all; "
                       "--json names every one)")  # fmt: skip
    if report.scan.warnings:
        out.append(f"warnings ({len(report.scan.warnings):,}): names built at run time in SDK "
                   "calls (the objects they name cannot be known):")  # fmt: skip
        for w in report.scan.warnings:
            start = f"starts {w.prefix!r}" if w.prefix else "no fixed start"
            out.append(f"  {report.where(w)}:{w.column}  {w.call}: {start}  {_cut(w.text)}")
    found = len(report.found())
    refs_count = sum(len(o.hits) for o in report.objects)
    out.append(f"{found:,} of {len(report.objects):,} objects in code ({refs_count:,} references); "
               + report.summary())  # fmt: skip
    return "\n".join(out) + "\n"


def _hit_dict(files: Sequence[str], hit: Hit, hint: str) -> dict[str, Any]:
    # Unpacked once: attribute access on a named tuple costs more than building the dict.
    file, line, column, name, role, _, kind, call, constant, text, before, after = hit
    return {
        "file": files[file],
        "line": line,
        "column": column,
        "kind": kind,
        "call": call or None,
        "constant": constant or None,
        "via": name if role != "id" else None,
        "text": text,
        "context_before": list(before),
        "context_after": list(after),
        "hint": hint,
    }


def _warning_dict(report: RefsReport, w: Warning) -> dict[str, Any]:
    return {"file": report.scan.files[w.file], "line": w.line, "column": w.column,
            "call": w.call, "prefix": w.prefix, "text": w.text}  # fmt: skip


def render_json(report: RefsReport) -> str:
    """Everything, for programs: the objects in code with their references, the objects
    found nowhere, warnings, constants, what was scanned and what was skipped."""
    scan = report.scan
    document = {
        "schema": REPORT_FORMAT,
        "objects": [
            {
                "kind": o.object.kind,
                "id": o.object.id,
                "status": o.object.status,
                "type_reason": o.object.type_reason,
                "hint": o.object.hint,
                "in_code": o.in_code,
                "references": [_hit_dict(scan.files, h, o.object.hint) for h in o.hits],
                "maybe": [_warning_dict(report, w) for w in o.maybe],
            }
            for o in report.found()
        ],
        "not_found": [{"kind": o.object.kind, "id": o.object.id} for o in report.not_found()],
        "warnings": [_warning_dict(report, w) for w in scan.warnings],
        "constants": {
            name: [scan.objects[t].id for t in targets] for name, targets in scan.constants.items()
        },  # fmt: skip
        "scanned": {
            "files": scan.scanned,
            "bytes": scan.bytes,
            "ignored": scan.ignored,
            "methods": scan.methods,
            "configs": scan.configs,
        },  # fmt: skip
        "skipped": [{"file": path, "reason": why} for path, why in scan.skipped],
    }
    return json.dumps(document, ensure_ascii=False) + "\n"


CSV_COLUMNS = ("kind", "id", "file", "line", "column", "hit", "call", "via", "hint", "text")


def render_csv(report: RefsReport) -> str:
    """One row per reference (objects in code nowhere are not rows: see the table or JSON)."""
    import csv

    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(CSV_COLUMNS)
    files = report.scan.files
    for o in report.objects:
        kind, object_id, hint = o.object.kind, o.object.id, o.object.hint
        writer.writerows((kind, object_id, files[h.file], h.line, h.column, h.kind, h.call,
                          _via(h), hint, h.text) for h in o.hits)  # fmt: skip
    return buffer.getvalue()


def _location(report: RefsReport, hit: Hit | Warning, length: int) -> dict[str, Any]:
    region: dict[str, Any] = {"startLine": hit.line, "startColumn": hit.column,
                              "snippet": {"text": hit.text}}  # fmt: skip
    if length:
        region["endColumn"] = hit.column + length
    return {"physicalLocation": {
        "artifactLocation": {"uri": report.scan.files[hit.file], "uriBaseId": "%SRCROOT%"},
        "region": region}}  # fmt: skip


def render_sarif(report: RefsReport, *, dead: bool = False) -> str:
    """SARIF 2.1.0: one result per reference (rule ``dead-check`` for an archived object
    when ``dead``, else ``reference``) and per warning (``dynamic-name``)."""
    rules = [
        {"id": rule, "shortDescription": {"text": text},
         "defaultConfiguration": {"level": level}}
        for rule, (text, level) in _RULES.items()
    ]  # fmt: skip
    results: list[dict[str, Any]] = []
    for o in report.objects:
        obj = o.object
        rule = "dead-check" if dead and obj.archived else "reference"
        for h in o.hits:
            if rule == "dead-check":
                text = (f"{obj.label} is archived: this {h.kind.replace('_', ' ')} now gets "
                        f"the default; clean-up: it should become {obj.hint}")  # fmt: skip
            else:
                text = f"{obj.label} ({h.kind.replace('_', ' ')}); once it is gone: {obj.hint}"
            results.append({
                "ruleId": rule,
                "level": _RULES[rule][1],
                "message": {"text": text},
                "locations": [_location(report, h, len(h.name))],
                "partialFingerprints": {"bulkopsReference/v1": f"{obj.kind}:{obj.id}:{h.kind}"},
                "properties": {"objectKind": obj.kind, "objectId": obj.id, "hit": h.kind,
                               "hint": obj.hint},
            })  # fmt: skip
    for w in report.scan.warnings:
        start = f"starting {w.prefix!r}" if w.prefix else "with no fixed start"
        results.append({
            "ruleId": "dynamic-name",
            "level": "warning",
            "message": {"text": f"{w.call} gets a name built at run time ({start}): "
                                "the object it checks cannot be known"},
            "locations": [_location(report, w, 0)],
        })  # fmt: skip
    document = {
        "$schema": _SARIF_SCHEMA,
        "version": "2.1.0",
        "runs": [{
            "tool": {"driver": {"name": "bulkops", "version": __version__, "rules": rules}},
            "columnKind": "unicodeCodePoints",
            "results": results,
        }],
    }  # fmt: skip
    return json.dumps(document, ensure_ascii=False) + "\n"
