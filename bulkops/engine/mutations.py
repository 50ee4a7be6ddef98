"""Mutations: what a job wants done, as frozen data the engine can check, journal and undo.

A job never writes. It yields :class:`Mutation` objects; the runner executes them
(:mod:`bulkops.engine.apply`), journals every attempt and settles ambiguous ones by reading
the object back (:mod:`bulkops.engine.reconcile`). Each mutation says how to observe its
object (``read``, a GET path) and what that read shows before and after the change
(:class:`Expect` predicates over the response's ``data``). Those two predicates are
what make a write safe to resume:

* before the first send, the object must match ``before`` (else: ``conflict``, never
  overwritten) or already match ``after`` (``skipped``, nothing sent);
* after a timeout, reset or 5xx, a read that matches ``after`` means applied, one that
  matches ``before`` means not applied (safe to send again), anything else is a conflict.

``inverse`` describes the undo call(s); the undo of a mutation expects this mutation's
``after`` as its before-state and restores ``before``.

Example::

    Mutation(
        key="gate:archive:old_gate",
        project=ctx.project_id,
        action="archive",
        object="gate/old_gate",
        method="PUT",
        path="/gates/old_gate/archive",
        body={"archiveReason": "stale"},
        read="/gates/old_gate",
        before=Expect(fields={"status": "In Progress"}),
        after=Expect(fields={"status": "Archived"}),
        inverse=(InverseCall(method="PUT", path="/gates/old_gate/unarchive", body={}),),
        idempotent=True,
    )
"""

from __future__ import annotations

import json
import re
from collections import Counter
from collections.abc import AsyncIterator, Callable, Iterable, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Protocol

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from ..api.paths import WRITE_METHODS
from ..errors import PlanError
from ..keyguard import KeyGuard
from .quota import ID_LIST_CLASS, MUTATION_CLASS

if TYPE_CHECKING:
    from ..api.client import ConsoleClient
    from ..settings import Settings

__all__ = [
    "CREATED_ID",
    "QUOTA_CLASSES",
    "Expect",
    "InverseCall",
    "JobContext",
    "JobModule",
    "Mutation",
    "resolve_path",
]

QUOTA_CLASSES = frozenset({MUTATION_CLASS, ID_LIST_CLASS})
# Placeholder for an id the server assigns on create (tags): filled in from the
# create's response when the undo is planned.
CREATED_ID = "{created_id}"

_SELECTOR = re.compile(r"^(?P<name>[^\[\]]*)\[(?P<filters>[^\[\]]+)\]$")


def _fmt(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


def resolve_path(data: Any, path: str) -> list[Any]:
    """Every value ``path`` reaches in ``data`` (empty when it reaches none).

    Segments are separated by dots: ``name`` (a key, or an index into a list),
    ``*`` (every element of a list), and ``name[k=v,k2=v2]`` (the elements of list
    ``name`` whose ``k`` renders as ``v``; ``null``, ``true`` and ``false`` for
    those JSON values). ``""`` is ``data`` itself.
    """
    current: list[Any] = [data]
    if path == "":
        return current
    for segment in path.split("."):
        found: list[Any] = []
        selector = _SELECTOR.match(segment)
        name = selector.group("name") if selector else segment
        for value in current:
            if name == "*":
                if isinstance(value, list):
                    found.extend(value)
                continue
            if name == "":
                found.append(value)
            elif isinstance(value, dict):
                if name in value:
                    found.append(value[name])
            elif isinstance(value, list) and name.isdigit():
                index = int(name)
                if index < len(value):
                    found.append(value[index])
        if selector:
            filters = [f.split("=", 1) for f in selector.group("filters").split(",")]
            picked: list[Any] = []
            for value in found:
                picked.extend(
                    item
                    for item in (value if isinstance(value, list) else [])
                    if isinstance(item, dict)
                    and all(len(f) == 2 and _fmt(item.get(f[0])) == f[1] for f in filters)
                )
            found = picked
        current = found
    return current


def _canon(value: Any) -> str:
    return json.dumps(value, sort_keys=True, separators=(",", ":"), default=str)


def value_matches(expected: Any, actual: Any) -> bool:
    """Whether ``actual`` (read from the API) shows ``expected``.

    Dicts match key by key (the server may add keys, such as rule ids); lists of
    scalars match as multisets (order is not significant); other lists match element
    by element; scalars by equality.
    """
    if isinstance(expected, dict):
        if not isinstance(actual, dict):
            return False
        return all(value_matches(v, actual.get(k)) for k, v in expected.items())
    if isinstance(expected, list):
        if not isinstance(actual, list) or len(expected) != len(actual):
            return False
        scalars = all(not isinstance(v, dict | list) for v in [*expected, *actual])
        if scalars:
            return Counter(map(_canon, expected)) == Counter(map(_canon, actual))
        return all(value_matches(e, a) for e, a in zip(expected, actual, strict=True))
    if isinstance(expected, bool) or isinstance(actual, bool):
        return expected is actual
    return bool(expected == actual)


def _strings(pool: list[Any], values: list[Any]) -> frozenset[str] | None:
    # Id lists (overrides, segment ids) hold thousands of strings: a set makes
    # contains/excludes linear instead of len(values) * len(pool) comparisons.
    if len(values) < 8 or not all(isinstance(v, str) for v in values):
        return None
    return frozenset(p for p in pool if isinstance(p, str))


def _in_pool(value: Any, pool: list[Any], strings: frozenset[str] | None) -> bool:
    if strings is not None and isinstance(value, str):
        return value in strings
    return any(value_matches(value, p) for p in pool)


def _pool(data: Any, path: str) -> list[Any]:
    pool: list[Any] = []
    for value in resolve_path(data, path):
        if isinstance(value, list):
            pool.extend(value)
        else:
            pool.append(value)
    return pool


class Expect(BaseModel):
    """A serialisable predicate over what ``GET read`` returns (its ``data``).

    ``None`` stands for "the read answered 404". All given conditions must hold.

    Attributes:
        exists: True: the object must exist; False: it must not; None: either.
        fields: ``{dotted path: value}`` the read must show (see :func:`value_matches`).
        differs: ``{dotted path: value}`` the read must *not* show.
        contains: ``{dotted path: [values]}``: the list(s) there hold every value.
        excludes: ``{dotted path: [values]}``: the list(s) there hold none of them.
    """

    model_config = ConfigDict(frozen=True, extra="forbid")

    exists: bool | None = None
    fields: dict[str, Any] = Field(default_factory=dict)
    differs: dict[str, Any] = Field(default_factory=dict)
    contains: dict[str, list[Any]] = Field(default_factory=dict)
    excludes: dict[str, list[Any]] = Field(default_factory=dict)

    @property
    def is_empty(self) -> bool:
        """True when the predicate holds for anything (nothing can be verified)."""
        return (
            self.exists is None
            and not self.fields
            and not self.differs
            and not self.contains
            and not self.excludes
        )

    def matches(self, data: Any) -> bool:
        """Whether the read result ``data`` (None for 404) satisfies every condition."""
        if self.exists is True and data is None:
            return False
        if self.exists is False:
            return data is None
        for path, expected in self.fields.items():
            values = resolve_path(data, path) if data is not None else []
            if not values:
                if expected is not None:
                    return False
            elif not all(value_matches(expected, v) for v in values):
                return False
        for path, unwanted in self.differs.items():
            values = resolve_path(data, path) if data is not None else []
            if any(value_matches(unwanted, v) for v in values):
                return False
        for path, wanted in self.contains.items():
            pool = _pool(data, path) if data is not None else []
            strings = _strings(pool, wanted)
            if not all(_in_pool(w, pool, strings) for w in wanted):
                return False
        for path, banned in self.excludes.items():
            pool = _pool(data, path) if data is not None else []
            strings = _strings(pool, banned)
            if any(_in_pool(b, pool, strings) for b in banned):
                return False
        return True

    def predict(self, image: Any) -> Any:
        """Best guess of what a read shows once this state is reached from ``image``.

        Used to plan several calls on one object in a row (the second is planned
        from the first's expected result). Only top-level and plain dotted paths
        are applied; selectors and ``differs`` are left as they were.
        """
        if self.exists is False:
            return None
        out: Any = json.loads(json.dumps(image)) if image is not None else {}
        if not isinstance(out, dict):
            return out
        for path, value in self.fields.items():
            _set_path(out, path, value)
        for path, values in self.contains.items():
            current = _get_plain(out, path)
            if isinstance(current, list) or current is None:
                merged = list(current or [])
                merged += [v for v in values if not any(value_matches(v, c) for c in merged)]
                _set_path(out, path, merged)
        for path, values in self.excludes.items():
            current = _get_plain(out, path)
            if isinstance(current, list):
                kept = [c for c in current if not any(value_matches(v, c) for v in values)]
                _set_path(out, path, kept)
        return out

    def describe(self) -> str:
        """A short human rendering, e.g. ``status=Archived``."""
        parts: list[str] = []
        if self.exists is True:
            parts.append("exists")
        elif self.exists is False:
            parts.append("absent")
        parts += [f"{p}={_short(v)}" for p, v in self.fields.items()]
        parts += [f"{p}!={_short(v)}" for p, v in self.differs.items()]
        parts += [f"{p} has {_short(v)}" for p, v in self.contains.items()]
        parts += [f"{p} lacks {_short(v)}" for p, v in self.excludes.items()]
        return ", ".join(parts) or "anything"


def _plain_segments(path: str) -> list[str] | None:
    segments = path.split(".")
    if any(s == "*" or "[" in s or s.isdigit() for s in segments):
        return None
    return segments


def _get_plain(data: dict[str, Any], path: str) -> Any:
    segments = _plain_segments(path)
    if segments is None:
        return None
    current: Any = data
    for segment in segments:
        if not isinstance(current, dict):
            return None
        current = current.get(segment)
    return current


def _set_path(data: dict[str, Any], path: str, value: Any) -> None:
    segments = _plain_segments(path)
    if segments is None:
        return
    current = data
    for segment in segments[:-1]:
        nxt = current.get(segment)
        if not isinstance(nxt, dict):
            nxt = current[segment] = {}
        current = nxt
    current[segments[-1]] = value


def _short(value: Any, limit: int = 80) -> str:
    text = value if isinstance(value, str) else _canon(value)
    return text if len(text) <= limit else text[: limit - 1] + "…"


class InverseCall(BaseModel):
    """One call of a mutation's undo.

    ``before``/``after`` default to the mutation's ``after``/``before`` (the undo
    starts where the mutation ended and restores where it started). ``path`` and
    ``body`` may hold ``{created_id}``, filled in from the create's response.
    """

    model_config = ConfigDict(frozen=True, extra="forbid")

    method: str
    path: str
    body: Any = None
    read: str | None = None
    before: Expect | None = None
    after: Expect | None = None
    idempotent: bool = False
    quota_class: str | None = None
    action: str | None = None


class Mutation(BaseModel):
    """One planned write, with everything needed to check, journal, resume and undo it.

    Attributes:
        key: Stable and unique within a plan, e.g. ``gate:archive:my_gate``.
        project: Id of the project the write goes to (checked against the key's).
        action: What it does, for counts and reports (``archive``, ``create``…).
        object: The object it changes, e.g. ``gate/my_gate``; the runner never has two
            writes on one object in flight, and runs them in plan order.
        method, path, body: The request (path relative to ``/console/v1``).
        read: A GET path that observes the object, or None when it cannot be observed
            (then an ambiguous outcome is a conflict, "check by hand").
        before, after: What ``read`` shows before and after the change.
        before_image: The object (or the relevant part) as the plan saw it.
        inverse: The undo call(s); empty when the change cannot be undone.
        depends_on: Keys that must be applied (or skipped) first.
        quota_class: ``mutation`` or ``id_list`` (:mod:`bulkops.engine.quota`).
        idempotent: Safe to send again by value (PUT state actions, full updates,
            override replace, id-list reset): a 5xx or reset is retried, not reconciled.
        display: ``(what, before, after)`` rows :meth:`diff` shows instead of the rows
            derived from ``after`` (a rule list reads better rule by rule); the undo
            shows them swapped.
        review: The review settings read when planning say this write will open a
            review (set by the engine's plan step, :mod:`bulkops.engine.reviews`; jobs
            leave it alone). A hint: the run checks every answer for a review anyway.
    """

    model_config = ConfigDict(frozen=True, extra="forbid")

    key: str
    project: str
    action: str
    object: str
    method: str
    path: str
    body: Any = None
    read: str | None = None
    before: Expect = Field(default_factory=Expect)
    after: Expect = Field(default_factory=Expect)
    before_image: Any = None
    inverse: tuple[InverseCall, ...] = ()
    depends_on: tuple[str, ...] = ()
    quota_class: str = MUTATION_CLASS
    idempotent: bool = False
    display: tuple[tuple[str, str, str], ...] = ()
    review: bool = False

    @field_validator("method")
    @classmethod
    def _method(cls, value: str) -> str:
        value = value.upper()
        if value not in WRITE_METHODS:
            raise ValueError(f"method must be one of {sorted(WRITE_METHODS)}, got {value!r}")
        return value

    @field_validator("path", "read")
    @classmethod
    def _path(cls, value: str | None) -> str | None:
        if value is not None and not value.startswith("/"):
            raise ValueError(f"paths start with '/', got {value!r}")
        return value

    @field_validator("quota_class")
    @classmethod
    def _quota_class(cls, value: str) -> str:
        if value not in QUOTA_CLASSES:
            raise ValueError(f"quota_class must be one of {sorted(QUOTA_CLASSES)}")
        return value

    @model_validator(mode="after")
    def _key(self) -> Mutation:
        if not self.key or any(c in self.key for c in "\n\r"):
            raise ValueError("key must be a non-empty single line")
        if self.key in self.depends_on:
            raise ValueError(f"{self.key} depends on itself")
        return self

    @property
    def absent(self) -> bool:
        """Planned on an object that does not exist and is to stay so (a delete, or a
        change, of something absent): nothing to do. Applying it only reads the object:
        still absent, skipped; there again since planning, a conflict (never deleted or
        changed: it is not the object the plan saw)."""
        return self.before.exists is False and self.after.exists is False

    def on_absent_object(self) -> Mutation:
        """This mutation as planned on an object a plan-time read found absent: "absent:
        nothing to do" (:attr:`absent`; its read at apply time skips it, and an object
        there again by then is a conflict, never deleted or changed: it is not the one
        planned on)."""
        return self.model_copy(
            update={
                "before": Expect(exists=False),
                "after": Expect(exists=False),
                "before_image": None,
                "inverse": (),
                "display": (),
                "idempotent": True,
            }
        )

    @property
    def verifiable(self) -> bool:
        """Whether a read can tell this mutation's before-state from its after-state."""
        return self.read is not None and not (self.before.is_empty and self.after.is_empty)

    def diff(self) -> list[tuple[str, str, str]]:
        """``(what, before, after)`` rows: only what this mutation changes."""
        if self.display:
            return list(self.display)
        if self.absent:
            return [("(object)", "absent", "nothing to do")]
        rows: list[tuple[str, str, str]] = []
        if self.after.exists is True and self.before.exists is False:
            return [("(object)", "absent", "created")]
        if self.after.exists is False and self.before.exists is not False:
            return [("(object)", "exists", "deleted")]
        for path, value in self.after.fields.items():
            rows.append((path, self._before_text(path), _short(value)))
        for path, value in self.after.differs.items():
            rows.append((path, _short(self.before.fields.get(path, value)), f"not {_short(value)}"))
        for path, values in self.after.contains.items():
            rows.append((path, "", "+ " + _short(values)))
        for path, values in self.after.excludes.items():
            rows.append((path, "", "- " + _short(values)))
        if not rows:
            rows.append(("(call)", "", f"{self.method} {self.path}"))
        return rows

    def _before_text(self, path: str) -> str:
        if path in self.before.fields:
            return _short(self.before.fields[path])
        old = resolve_path(self.before_image, path) if self.before_image is not None else []
        if len(old) == 1 and old[0] is not None:
            return _short(old[0])
        if path in self.before.differs:
            return f"not {_short(self.before.differs[path])}"
        return "?"

    def describe(self) -> str:
        """One line for dry runs: ``archive gate/x: status In Progress → Archived``."""
        changes = "; ".join(
            f"{what} {b} → {a}" if b else f"{what} {a}" for what, b, a in self.diff()
        )
        return f"{self.action} {self.object}: {changes}"

    def reverse(self, created_id: str | None = None) -> list[Mutation]:
        """The undo of this mutation as mutations (empty when it has no inverse).

        Raises:
            PlanError: an inverse needs the server-assigned id and none is known.
        """
        out: list[Mutation] = []
        for index, call in enumerate(self.inverse):
            path, body = call.path, call.body
            if CREATED_ID in path or CREATED_ID in _canon(body):
                if not created_id:
                    raise PlanError(
                        f"{self.key}: the undo needs the id the server assigned, and the "
                        "checkpoint does not record it"
                    )
                path = path.replace(CREATED_ID, created_id)
                body = json.loads(_canon(body).replace(CREATED_ID, created_id))
            read = call.read or self.read
            if read is not None and created_id:
                read = read.replace(CREATED_ID, created_id)
            suffix = f":{index}" if len(self.inverse) > 1 else ""
            inverse_of_undo = InverseCall(
                method=self.method,
                path=self.path,
                body=self.body,
                read=self.read,
                idempotent=self.idempotent,
                quota_class=self.quota_class,
                action=self.action,
            )
            out.append(
                Mutation(
                    key=f"undo:{self.key}{suffix}",
                    project=self.project,
                    action=call.action or f"undo-{self.action}",
                    object=self.object,
                    method=call.method,
                    path=path,
                    body=body,
                    read=read,
                    before=call.before if call.before is not None else self.after,
                    after=call.after if call.after is not None else self.before,
                    before_image=None,
                    display=tuple((w, a, b) for w, b, a in self.display)
                    if len(self.inverse) == 1
                    else (),
                    inverse=(inverse_of_undo,) if len(self.inverse) == 1 else (),
                    quota_class=call.quota_class or self.quota_class,
                    idempotent=call.idempotent,
                )
            )
        return out


@dataclass(frozen=True)
class JobContext:
    """What a job's ``plan()`` gets: a client for reads and the target project.

    Attributes:
        client: A client on the target project. Jobs only read through it.
        project_id: The target project's id (``GET /project``).
        project_name: Its name (``GET /settings/project``), or the id.
        settings: The connection settings (the key is a SecretStr).
        log: A structlog logger.
        plan_id: A unique id of this plan, e.g. for an archive reason naming the run.
        open_client: ``open_client(env_var)`` gives a read client for another project
            whose key is in that environment variable (copy jobs); closed by the engine.
        notes: Lines the job adds with :meth:`note` (what it selected, skipped or
            refused and why); the engine prints them with the plan. Not part of the plan.
        tables: Tables the job adds with :meth:`note_table`, printed like the notes.
        key_guard: Finds API keys (key-shaped strings and the keys the run read): a
            job may refuse an input line holding one with its line number, before the
            engine refuses the plan (which names only the mutation and field).
    """

    client: ConsoleClient
    project_id: str
    project_name: str
    settings: Settings
    log: Any
    plan_id: str
    open_client: Callable[[str], ConsoleClient] = field(
        repr=False, default=lambda env: _no_client(env)
    )
    notes: list[str] = field(default_factory=list, repr=False)
    key_guard: KeyGuard = field(default_factory=KeyGuard, repr=False)
    tables: list[dict[str, Any]] = field(default_factory=list, repr=False)

    def note(self, line: str) -> None:
        """Add one line to the plan's report (e.g. an object left alone and why)."""
        self.notes.append(line)

    def note_table(self, title: str, columns: Sequence[str], rows: Iterable[Sequence[Any]]) -> None:
        """Add a table to the plan's report (one row per object the job looked at, say):
        shown fitted to the terminal and bounded by ``--show``, and whole in ``--json``."""
        self.tables.append(
            {
                "title": title,
                "columns": list(columns),
                "rows": [["" if c is None else str(c) for c in row] for row in rows],
            }
        )


def _no_client(env: str) -> ConsoleClient:
    raise PlanError(f"this context cannot open a client for {env}")


class JobModule(Protocol):
    """The contract of a job module (built in, or a file given to ``bulkops run``)."""

    Params: type[BaseModel]

    def plan(self, ctx: JobContext, params: Any) -> AsyncIterator[Mutation]: ...


def keys_of(mutations: Iterable[Mutation]) -> list[str]:
    """The keys of ``mutations`` in order."""
    return [m.key for m in mutations]
