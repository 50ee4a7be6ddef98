"""Plan files: a hashed header plus the mutations, written 0600 and refused once edited.

A plan is what ``bulkops plan`` writes and ``bulkops apply`` executes exactly::

    {
      "header": {"format": "bulkops-plan/1", "job": "archive-gates", "params": {...},
                 "projects": [{"id": "...", "name": "..."}], "tool_version": "0.1.0",
                 "created": "2024-06-01T12:00:00Z", "plan_id": "...",
                 "respect_reviews": true, "hash": "<sha256>"},
      "mutations": [ {Mutation}, ... ]
    }

``hash`` is the sha256 of the canonical JSON (sorted keys, no spaces) of the whole
document with ``hash`` set to ``""``. Any edit changes it, and :func:`read_plan`
refuses the file (exit 3), as Terraform refuses a stale saved plan.

A plan never holds an API key: a plan built or read with a key-shaped string, or one of
the run's keys, anywhere in it is refused (:func:`check_keys`, with a
:class:`~bulkops.keyguard.KeyGuard`), naming the mutation and the field, never the
value. The scan rides on the canonical JSON the hash is computed from.
"""

from __future__ import annotations

import datetime as dt
import gc
import hashlib
import json
import os
import uuid
from collections import Counter
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any, TypeVar

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from .. import __version__, files
from ..api.paths import WRITE_METHODS
from ..errors import PlanError, RefusedError
from ..inputs import FileKind, not_utf8, require_kind
from ..keyguard import PATTERN_ONLY, KeyGuard
from .mutations import QUOTA_CLASSES, Expect, InverseCall, Mutation

__all__ = [
    "ABSENT",
    "PLAN_FORMAT",
    "Plan",
    "PlanHeader",
    "ProjectRef",
    "canonical_json",
    "check_keys",
    "read_plan",
    "validate_mutations",
    "write_plan",
]

PLAN_FORMAT = "bulkops-plan/1"
ABSENT = "absent: nothing to do"

_M = TypeVar("_M", bound=BaseModel)


def canonical_json(value: Any) -> str:
    """JSON with sorted keys and no spaces: the input of every hash."""
    return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False)


class ProjectRef(BaseModel):
    """A project a plan touches or reads."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    id: str
    name: str


class PlanHeader(BaseModel):
    """Who made the plan, for which project, from which job and parameters."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    format: str = PLAN_FORMAT
    job: str
    params: dict[str, Any] = Field(default_factory=dict)
    projects: list[ProjectRef]
    tool_version: str = __version__
    created: str
    plan_id: str
    respect_reviews: bool = True
    hash: str = ""


class Plan(BaseModel):
    """A header and the mutations, in the order the job yielded them."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    header: PlanHeader
    mutations: list[Mutation]

    @classmethod
    def build(
        cls,
        *,
        job: str,
        params: dict[str, Any],
        projects: Sequence[ProjectRef],
        mutations: Sequence[Mutation],
        respect_reviews: bool = True,
        plan_id: str | None = None,
        guard: KeyGuard = PATTERN_ONLY,
    ) -> Plan:
        """Validate ``mutations`` and return the hashed plan.

        Args:
            guard: Finds keys (give it the run's keys: :meth:`KeyGuard.of`).

        Raises:
            PlanError: duplicate keys, unknown or cyclic dependencies, a mutation
                for a project the plan does not name, or an API key anywhere in it.
        """
        validate_mutations(mutations, project_ids={p.id for p in projects})
        header = PlanHeader(
            job=job,
            params=params,
            projects=list(projects),
            created=dt.datetime.now(dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
            plan_id=plan_id or uuid.uuid4().hex,
            respect_reviews=respect_reviews,
        )
        plan = cls(header=header, mutations=list(mutations))
        return plan.model_copy(
            update={"header": header.model_copy(update={"hash": plan.compute_hash(guard)})}
        )

    def compute_hash(self, guard: KeyGuard | None = None) -> str:
        """sha256 of the canonical JSON of the plan with an empty ``hash``.

        Fed one mutation at a time: the same bytes as ``canonical_json`` of the whole
        document (keys ``header`` < ``mutations``), without holding all of it at once.

        Args:
            guard: Also refuse the plan if that JSON holds a key.

        Raises:
            PlanError: ``guard`` found a key (see :func:`check_keys`).
        """
        header = self.header.model_dump(mode="json")
        header["hash"] = ""
        header_text = canonical_json(header)
        if guard is not None and guard.holds_key(header_text):
            raise _key_in_header(header, guard)
        digest = hashlib.sha256(f'{{"header":{header_text},"mutations":['.encode())
        for i, m in enumerate(self.mutations):
            text = canonical_json(m.model_dump(mode="json"))
            if guard is not None and guard.holds_key(text):
                raise _key_in_mutation(i, m, guard)
            digest.update((f",{text}" if i else text).encode())
        digest.update(b"]}")
        return digest.hexdigest()

    def to_json(self) -> dict[str, Any]:
        """The plan as plain JSON data (what the file and the journal hold)."""
        return self.model_dump(mode="json")

    @classmethod
    def from_json(cls, data: Any, *, source: str = "plan", guard: KeyGuard = PATTERN_ONLY) -> Plan:
        """Parse and verify a plan document.

        Args:
            data: The document.
            source: What it is, for messages.
            guard: Finds keys (the pattern alone by default; give it the run's keys).

        Raises:
            RefusedError: the hash does not match (the plan was edited) or the
                format is unknown.
            PlanError: an API key anywhere in it (see :func:`check_keys`).
        """
        if not isinstance(data, dict) or not isinstance(data.get("header"), dict):
            raise RefusedError(f"{source}: not a bulkops plan")
        fmt = data["header"].get("format")
        if fmt != PLAN_FORMAT:
            raise RefusedError(f"{source}: unknown plan format {fmt!r} (expected {PLAN_FORMAT})")
        plan = _trusted_plan(data, guard)
        if plan is not None:
            # The hash over the document as given matched and every mutation has exactly
            # the shape ``to_json`` writes: skip the pydantic round trip (the slow part
            # of a resume), keep the checks that guard what is sent.
            validate_mutations(plan.mutations, project_ids={p.id for p in plan.header.projects})
            return plan
        try:
            plan = cls.model_validate(data)
        except ValidationError as exc:
            raise RefusedError(f"{source}: the plan does not parse: {_first_error(exc)}") from exc
        # The hash covers the document as written; a document from an older writer
        # may omit fields that now have defaults, so either hash proves integrity.
        if plan.header.hash not in (_hash_document(data), plan.compute_hash(guard)):
            raise RefusedError(
                f"{source}: the plan's hash does not match its content (it was edited)",
                hint="make a new plan with `bulkops plan`; plans cannot be edited",
            )
        validate_mutations(plan.mutations, project_ids={p.id for p in plan.header.projects})
        return plan

    @property
    def target_project(self) -> str:
        """The project every mutation writes to (the first one named)."""
        if self.mutations:
            return self.mutations[0].project
        return self.header.projects[0].id if self.header.projects else ""

    def project_name(self, project_id: str) -> str:
        """The name the header records for ``project_id`` (the id if none)."""
        for ref in self.header.projects:
            if ref.id == project_id:
                return ref.name
        return project_id

    def counts(self) -> dict[str, int]:
        """Mutations per action, in first-seen order; those planned on an absent object
        (:attr:`Mutation.absent`) as ``absent: nothing to do``."""
        return dict(Counter(ABSENT if m.absent else m.action for m in self.mutations))

    def quota_counts(self) -> dict[str, int]:
        """Mutations that may send a request, per quota class (for the ETA)."""
        return dict(Counter(m.quota_class for m in self.mutations if not m.absent))

    def by_key(self) -> dict[str, Mutation]:
        """The mutations by key."""
        return {m.key: m for m in self.mutations}


def _canonical_document(data: dict[str, Any]) -> str:
    """The canonical JSON of a plan document with an empty ``hash``: what is hashed."""
    return canonical_json({**data, "header": {**data["header"], "hash": ""}})


def _hash_document(data: dict[str, Any]) -> str:
    """sha256 of the canonical JSON of a plan document with an empty ``hash``."""
    return hashlib.sha256(_canonical_document(data).encode()).hexdigest()


def _key_in_header(header: dict[str, Any], guard: KeyGuard) -> PlanError:
    where = guard.find(header) or "?"
    return PlanError(
        f"the plan's header field {where} holds an API key; a plan never holds one, so "
        "nothing was written or sent",
        hint="keys are read from the environment only; remove it from the job's options",
    )


def _key_in_mutation(index: int, m: Mutation, guard: KeyGuard) -> PlanError:
    # Named by position when its key itself holds the API key; the value never shows.
    name = f"mutation {index + 1}"
    if not guard.holds_key(m.key):
        name += f" ({m.key})"
    where = guard.find(m.model_dump(mode="json")) or "?"
    return PlanError(
        f"{name}: the field {where} holds an API key (a console-/secret-/client- key, or "
        "the value of a key variable this run read); a plan, checkpoint or report never "
        "holds one, so nothing was written or sent",
        hint="keep keys out of the job's input (a path, a body, a name); manage keys in "
        "the Statsig console",
    )


def check_keys(plan: Plan, guard: KeyGuard) -> None:
    """Refuse ``plan`` if it holds an API key: a key-shaped token or one of ``guard``'s.

    Raises:
        PlanError: naming the mutation (or the header) and the field, never the value.
    """
    header = plan.header.model_dump(mode="json")
    if guard.holds_key(canonical_json(header)):
        raise _key_in_header(header, guard)
    for i, m in enumerate(plan.mutations):
        if guard.holds_key(m.model_dump_json()):
            raise _key_in_mutation(i, m, guard)


def _fast_constructible(cls: type[BaseModel]) -> bool:
    # What _construct skips of model_construct: aliases, defaults, post-init, extras.
    return (
        not cls.__pydantic_post_init__
        and cls.model_config.get("extra") != "allow"
        and all(f.alias is None and f.validation_alias is None for f in cls.model_fields.values())
    )


_FAST = all(_fast_constructible(c) for c in (Mutation, Expect, InverseCall))


# Every model built by _construct has every field set, and the three models are frozen
# (pydantic copies the set before changing it in model_copy), so one set per class is
# shared: 200,000 fewer objects for the cyclic GC to walk on a 50,000-mutation plan.
_ALL_SET: dict[type[BaseModel], set[str]] = {
    cls: set(cls.model_fields) for cls in (Mutation, Expect, InverseCall)
}


def _construct(cls: type[_M], values: dict[str, Any]) -> _M:
    """``cls.model_construct(**values)`` for a dict holding exactly every field.

    model_construct walks every field in Python (aliases, defaults); with all fields
    present and none aliased that is only overhead: 200,000 nested models of a
    50,000-mutation plan spent most of their load time there. ``values`` becomes the
    instance's ``__dict__`` (not copied).
    """
    if not _FAST:  # pragma: no cover - only if the models grow aliases or post-init
        return cls.model_construct(**values)
    obj = cls.__new__(cls)
    object.__setattr__(obj, "__dict__", values)
    object.__setattr__(obj, "__pydantic_fields_set__", _ALL_SET[cls])
    object.__setattr__(obj, "__pydantic_extra__", None)
    object.__setattr__(obj, "__pydantic_private__", None)
    return obj


_MUTATION_FIELDS = frozenset(Mutation.model_fields)
_EXPECT_FIELDS = frozenset(Expect.model_fields)
_INVERSE_FIELDS = frozenset(InverseCall.model_fields)


def _expect(data: Any) -> Expect | None:
    """An :class:`Expect` from its dumped form, or None if it is not exactly that."""
    if type(data) is not dict or data.keys() != _EXPECT_FIELDS:
        return None
    exists = data["exists"]
    if exists is not None and exists is not True and exists is not False:
        return None
    if type(data["fields"]) is not dict or type(data["differs"]) is not dict:
        return None
    for name in ("contains", "excludes"):
        lists = data[name]
        if type(lists) is not dict:
            return None
        for value in lists.values():
            if type(value) is not list:
                return None
    return _construct(Expect, data)


def _inverse(data: Any) -> InverseCall | None:
    if type(data) is not dict or data.keys() != _INVERSE_FIELDS:
        return None
    if type(data["method"]) is not str or type(data["path"]) is not str:
        return None
    for name in ("read", "quota_class", "action"):
        if data[name] is not None and type(data[name]) is not str:
            return None
    if data["idempotent"] is not True and data["idempotent"] is not False:
        return None
    fields = dict(data)
    for name in ("before", "after"):
        if data[name] is not None:
            expect = fields[name] = _expect(data[name])
            if expect is None:
                return None
    return _construct(InverseCall, fields)


def _mutation(data: Any) -> Mutation | None:
    """A :class:`Mutation` from exactly the form ``to_json`` writes, or None.

    Only called once the plan's hash matched. The checks of the model's validators
    that guard what is sent (method, paths, quota class, key) are repeated here;
    anything unexpected returns None and the caller validates the slow, thorough way.
    """
    if type(data) is not dict or data.keys() != _MUTATION_FIELDS:
        return None
    for name in ("key", "project", "action", "object", "method", "path", "quota_class"):
        if type(data[name]) is not str:
            return None
    key, read = data["key"], data["read"]
    if (
        data["method"] not in WRITE_METHODS
        or not data["path"].startswith("/")
        or not (read is None or (type(read) is str and read.startswith("/")))
        or data["quota_class"] not in QUOTA_CLASSES
        or type(data["idempotent"]) is not bool
        or type(data["review"]) is not bool
        or not key
        or "\n" in key
        or "\r" in key
    ):
        return None
    depends, display, inverse = data["depends_on"], data["display"], data["inverse"]
    if type(depends) is not list or type(display) is not list or type(inverse) is not list:
        return None
    if key in depends or not all(type(d) is str for d in depends):
        return None
    rows: list[tuple[str, str, str]] = []
    for row in display:
        if type(row) is not list or len(row) != 3 or not all(type(c) is str for c in row):
            return None
        rows.append((row[0], row[1], row[2]))
    calls: list[InverseCall] = []
    for item in inverse:
        call = _inverse(item)
        if call is None:
            return None
        calls.append(call)
    before, after = _expect(data["before"]), _expect(data["after"])
    if before is None or after is None:
        return None
    return _construct(
        Mutation,
        {
            **data,
            "before": before,
            "after": after,
            "inverse": tuple(calls),
            "depends_on": tuple(depends),
            "display": tuple(rows),
        },
    )


def _trusted_plan(data: dict[str, Any], guard: KeyGuard) -> Plan | None:
    """The plan, built without pydantic validation, when its hash matches as written.

    The hash covers the canonical JSON of the document exactly as read, so a match
    means nothing was edited since ``to_json`` wrote it: every value was validated
    when the plan was built, and re-validating 50,000 mutations took seconds. Returns
    None (validate the slow way) when the hash does not match as given (for instance
    a plan written without some default field) or anything has an unexpected shape.

    Raises:
        PlanError: the document holds an API key (``guard`` scans the JSON hashed).
    """
    mutations = data.get("mutations")
    header = data["header"]
    if type(mutations) is not list or data.keys() != {"header", "mutations"}:
        return None
    text = _canonical_document(data)
    if header.get("hash") != hashlib.sha256(text.encode()).hexdigest():
        return None
    try:
        head = PlanHeader.model_validate(header)
    except ValidationError:
        return None
    built: list[Mutation] = []
    append = built.append
    # 200,000 new objects on top of a large heap: the cyclic GC's passes find nothing
    # (no cycles here) and cost about half the time; pause it, as the journal's scan does.
    gc_was_enabled = gc.isenabled()
    gc.disable()
    try:
        for item in mutations:
            m = _mutation(item)
            if m is None:
                return None
            append(m)
    finally:
        if gc_was_enabled:
            gc.enable()
    plan = Plan.model_construct(header=head, mutations=built)
    if guard.holds_key(text):
        check_keys(plan, guard)  # names where
    return plan


def _first_error(exc: ValidationError) -> str:
    err = exc.errors()[0]
    where = ".".join(str(p) for p in err.get("loc", ()))
    return f"{where}: {err.get('msg')}"


def validate_mutations(mutations: Sequence[Mutation], *, project_ids: Iterable[str]) -> None:
    """Check keys are unique, dependencies exist and form no cycle, projects are named.

    Raises:
        PlanError: naming the first problem found.
    """
    known = set(project_ids)
    seen: dict[str, Mutation] = {}
    for m in mutations:
        if m.key in seen:
            raise PlanError(f"two mutations have the key {m.key!r}")
        if known and m.project not in known:
            raise PlanError(f"{m.key}: project {m.project!r} is not named in the plan header")
        seen[m.key] = m
    targets = {m.project for m in mutations}
    if len(targets) > 1:
        raise PlanError(f"a plan writes to one project; this one names {sorted(targets)}")
    for m in mutations:
        for dep in m.depends_on:
            if dep not in seen:
                raise PlanError(f"{m.key} depends on {dep!r}, which is not in the plan")
    # Kahn's algorithm: whatever is left over sits on a cycle.
    indegree = {m.key: len(set(m.depends_on)) for m in mutations}
    dependents: dict[str, list[str]] = {}
    for m in mutations:
        for dep in set(m.depends_on):
            dependents.setdefault(dep, []).append(m.key)
    ready = [k for k, n in indegree.items() if n == 0]
    done = 0
    while ready:
        key = ready.pop()
        done += 1
        for child in dependents.get(key, []):
            indegree[child] -= 1
            if indegree[child] == 0:
                ready.append(child)
    if done != len(mutations):
        stuck = sorted(k for k, n in indegree.items() if n > 0)
        raise PlanError(f"dependency cycle among {stuck[:5]}")


def write_plan(path: Path, plan: Plan) -> None:
    """Write ``plan`` to ``path`` (0600, atomic), indented for people to read."""
    # Serialised by pydantic straight to text: no dumped copy of every mutation.
    files.write_private(Path(path), plan.model_dump_json(indent=1) + "\n")


def read_plan(path: Path) -> Plan:
    """Read and verify a plan file.

    Raises:
        InputError: the file is another kind of file (a checkpoint, a report…: told as
            such), or it is not UTF-8 (naming where).
        RefusedError: the file is not a private file of ours (see
            :func:`bulkops.files.check_private`), does not parse, or was edited.
        PlanError: the file does not exist, or holds a key-shaped string.
    """
    path = Path(path)
    if not path.exists():
        raise PlanError(f"{path}: no such plan file")
    require_kind(path, FileKind.PLAN)
    try:
        fd = files.open_private(path, os.O_RDONLY, what="plan")
        try:
            raw = files.read_all(fd)
        finally:
            os.close(fd)
    except OSError as exc:
        raise RefusedError(f"{path}: the plan cannot be read ({exc.strerror})") from exc
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError:
        raise not_utf8(path, "plan", raw) from None
    try:
        data = json.loads(text)
    except ValueError as exc:
        raise RefusedError(f"{path}: the plan does not parse as JSON ({exc})") from exc
    return Plan.from_json(data, source=str(path))
