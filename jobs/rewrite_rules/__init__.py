"""rewrite-rules: rewrite the targeting rules of many gates and dynamic configs, one write each.

``bulkops run rewrite-rules --file REWRITE.toml`` applies a rewrite file (TOML, or
JSON of the same structure; see :mod:`bulkops.rewrite`): its ``[select]`` table picks
the objects (``kinds``; ``tags``, any of, filtered by the server; ``ids``, shell-style
patterns, filtered while paging; archived objects are left alone) and its
``[[rewrite]]`` operations run in order over every rule of every selected object.

``--python FILE.py:function`` is the escape hatch for what a file cannot say:
``function(rule, obj)`` gets a copy of each rule and its object and returns the new
rule, or None to drop it. ``--kind``, ``--tag`` and ``--id`` select the objects.

Each changed object gets exactly one write: ``PATCH /gates/{id}`` or
``PATCH /dynamic_configs/{id}`` with the whole new rule list, so every other field,
the rule order and the rules' ``baseID`` stay (a rule's ``id`` suffix follows its
pass percentage, as the API assigns it). Unchanged objects get none, so a finished
rewrite plans to nothing. The undo writes the previous rule list back (a dropped rule
comes back with a new server-assigned id).

Everything is checked before anything is sent, and every problem is listed with
the operation's position: bad files (unknown op or field, a percentage outside
0–100 or not a multiple of 0.01, ``set-return-value`` with only gates selected), a
``to`` segment or gate missing from the project, and a rename (or a ``--python``
result) that would give an object two rules with one name.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Callable, Sequence
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, PrivateAttr, model_validator

from bulkops.errors import InputError, PlanError
from bulkops.job import ROUTES, Expect, InverseCall, JobContext, Mutation, listing, unknown_tags

from .diff import rule_rows
from .language import (
    KindName,
    RewriteSpec,
    RuleChange,
    RuleFunction,
    Select,
    load_rewrite_file,
    load_rule_function,
)

__all__ = ["Params", "plan"]

EVENT_SELECTED = "rewrite.selected"
EVENT_PLANNED = "rewrite.planned"

ACTION = "rewrite-rules"
_SINGULAR = {"gates": "gate", "dynamic_configs": "dynamic_config"}
# The collections a condition's ``passes_``/``fails_`` suffix names.
_REFERENCED = {"segment": "segments", "gate": "gates"}
# What a read of the object shows of a rule, for the before/after predicates. The
# server owns ``id``/``baseID`` and the automated-rollout lists, and a changed pass
# percentage changes the ``id``; none of them tells a rewritten list from the old one.
_PROJECTED = ("name", "passPercentage", "environments", "returnValue", "variants")
_CONDITION_KEYS = ("type", "operator", "targetValue", "field", "customID")

# What becomes of every rule of one object, in rule order.
Pairs = list[RuleChange]


class Params(BaseModel):
    """Options of rewrite-rules; the file or function is loaded and checked here, so a
    bad one stops the run before any request."""

    model_config = ConfigDict(extra="forbid")

    file: Path | None = Field(
        default=None, description="rewrite file: [select] and [[rewrite]] (TOML or JSON)"
    )
    python: str | None = Field(
        default=None, description="FILE.py:function, called as function(rule, obj) -> rule | None"
    )
    kind: list[KindName] = Field(
        default_factory=list, description="with --python: object kinds (default both)"
    )
    tag: list[str] = Field(
        default_factory=list, description="with --python: objects carrying any of these tags"
    )
    id: list[str] = Field(
        default_factory=list, description="with --python: shell-style id patterns"
    )

    _spec: RewriteSpec | None = PrivateAttr(default=None)
    _function: RuleFunction | None = PrivateAttr(default=None)

    @model_validator(mode="after")
    def _load(self) -> Params:
        if (self.file is None) == (self.python is None):
            raise ValueError("give exactly one of --file and --python")
        if self.file is not None:
            if self.kind or self.tag or self.id:
                raise ValueError(
                    "--kind, --tag and --id go with --python; a rewrite file selects "
                    "with its [select] table"
                )
            self._spec = load_rewrite_file(self.file)
        else:
            assert self.python is not None
            self._function = load_rule_function(self.python)
        return self

    @property
    def spec(self) -> RewriteSpec | None:
        """The loaded rewrite file (None with ``--python``)."""
        return self._spec

    @property
    def function(self) -> RuleFunction | None:
        """The loaded ``--python`` function (None with ``--file``)."""
        return self._function

    def select(self) -> Select:
        """Which objects to rewrite."""
        if self._spec is not None:
            return self._spec.select
        kinds: list[KindName] = self.kind or ["gates", "dynamic_configs"]
        return Select(kinds=kinds, tags=self.tag, ids=self.id)


# -- planning --------------------------------------------------------------------------


async def plan(ctx: JobContext, params: Params) -> AsyncIterator[Mutation]:
    """Yield one rule-list write per object the rewrite changes.

    Every object is read and rewritten before the first mutation is yielded, so a
    problem anywhere stops the plan with all problems listed and nothing sent.

    Raises:
        InputError: a ``to`` reference is missing, a rename or ``--python`` result
            duplicates a rule name, or the ``--python`` function fails, returns
            something that is not a rule, a bad percentage, or a reference to a
            segment or gate the project does not have.
    """
    select = params.select()
    for line in await unknown_tags(ctx.client, select.tags, f"project {ctx.project_name}"):
        ctx.note(line)
    rewrite = _rewriter(params)
    problems = await _missing_references(ctx, params)
    changed: list[tuple[str, dict[str, Any], Pairs]] = []
    seen = 0
    for kind, obj in [item async for item in _objects(ctx, select)]:
        seen += 1
        try:
            pairs = rewrite(kind, obj)
        except InputError as exc:
            problems.append(exc.message)
            continue
        if any(c.new is None or c.new != c.old for c in pairs):
            changed.append((kind, obj, pairs))
    ctx.log.info(EVENT_SELECTED, objects=seen, changed=len(changed))
    if params.function is not None:
        problems += await _missing_new_references(ctx, params, changed)
    if problems:
        raise InputError(
            listing(f"{len(problems)} problem(s) in the rewrite; nothing was sent", problems)
        )
    for kind, obj, pairs in changed:
        yield _mutation(ctx, kind, obj, pairs)
    ctx.log.info(EVENT_PLANNED, mutations=len(changed))


def _rewriter(params: Params) -> Callable[[str, dict[str, Any]], Pairs]:
    spec, function = params.spec, params.function
    if spec is not None:
        where = str(params.file)

        def by_file(kind: str, obj: dict[str, Any]) -> Pairs:
            try:
                pairs = spec.pairs(kind, obj)
            except InputError as exc:
                raise InputError(
                    f"{where}: {_SINGULAR[kind]}/{obj.get('id')}: {exc.message}"
                ) from exc
            return [c._replace(new=_sync_json5(c.old, c.new)) for c in pairs]

        return by_file
    assert function is not None
    return lambda kind, obj: _by_function(function, str(params.python), kind, obj)


def _by_function(function: RuleFunction, where: str, kind: str, obj: dict[str, Any]) -> Pairs:
    label = f"{_SINGULAR[kind]}/{obj.get('id')}"
    pairs: Pairs = []
    for index, old in enumerate(obj.get("rules") or [], 1):
        try:
            new = function(json.loads(json.dumps(old)), json.loads(json.dumps(obj)))
        except Exception as exc:  # the user's code: any failure is a bad input, reported
            raise InputError(
                f"--python {where}: failed on {label} rule {index} ({old.get('name')!r}): "
                f"{type(exc).__name__}: {exc}"
            ) from exc
        if new is not None and not (isinstance(new, dict) and isinstance(new.get("name"), str)):
            raise InputError(
                f"--python {where}: on {label} rule {index} ({old.get('name')!r}) returned "
                f"{type(new).__name__}, expected a rule (a dict with a name) or None"
            )
        pct = new.get("passPercentage", 100) if new is not None else 100
        if isinstance(pct, bool) or not isinstance(pct, int | float) or not _percentage_ok(pct):
            raise InputError(
                f"--python {where}: on {label} rule {index} ({old.get('name')!r}) returned "
                f"passPercentage {pct!r}; it must be 0–100 in steps of 0.01"
            )
        pairs.append(RuleChange(old, _sync_json5(old, new)))
    names = [c.new["name"] for c in pairs if c.new is not None]
    duplicates = sorted({n for n in names if names.count(n) > 1})
    if duplicates:
        raise InputError(f"--python {where}: would give {label} two rules named {duplicates[0]!r}")
    return pairs


def _percentage_ok(value: float) -> bool:
    return 0 <= value <= 100 and abs(round(value * 100) - value * 100) <= 1e-6


def _sync_json5(old: dict[str, Any], new: dict[str, Any] | None) -> dict[str, Any] | None:
    """Keep a config rule's ``returnValueJson5`` saying what its changed ``returnValue`` says."""
    if (
        new is not None
        and new.get("returnValue") != old.get("returnValue")
        and "returnValueJson5" in new
        and new["returnValueJson5"] == old.get("returnValueJson5")
    ):
        return {**new, "returnValueJson5": json.dumps(new.get("returnValue"))}
    return new


async def _exists(ctx: JobContext, kind: str, target: str) -> bool:
    return await ctx.client.collection(_REFERENCED[kind]).read(target) is not None


async def _missing_references(ctx: JobContext, params: Params) -> list[str]:
    """One problem per ``to`` segment or gate the project does not have."""
    if params.spec is None:
        return []
    return [
        f'{params.file}: rewrite[{position}] (op = "replace-reference"): to: '
        f"{kind} {target!r} does not exist in project {ctx.project_name}"
        for position, kind, target in params.spec.references()
        if not await _exists(ctx, kind, target)
    ]


async def _missing_new_references(
    ctx: JobContext, params: Params, changed: Sequence[tuple[str, dict[str, Any], Pairs]]
) -> list[str]:
    """With ``--python``: one problem per segment or gate a new rule names that is missing."""
    wanted: dict[tuple[str, str], str] = {}
    for kind, obj, pairs in changed:
        for change in pairs:
            if change.new is None:
                continue
            old = set(_references(change.old))
            for ref in _references(change.new):
                if ref not in old:
                    wanted.setdefault(ref, f"{_SINGULAR[kind]}/{obj.get('id')}")
    return [
        f"--python {params.python}: {where} would reference {kind} {target!r}, which does "
        f"not exist in project {ctx.project_name}"
        for (kind, target), where in wanted.items()
        if not await _exists(ctx, kind, target)
    ]


def _references(rule: dict[str, Any]) -> list[tuple[str, str]]:
    """``(kind, id)`` of the segments and gates a rule's conditions pass or fail."""
    out: list[tuple[str, str]] = []
    for cond in rule.get("conditions") or []:
        if not isinstance(cond, dict):
            continue
        prefix, _, kind = str(cond.get("type", "")).partition("_")
        if prefix in ("passes", "fails") and kind in _REFERENCED:
            target = cond.get("targetValue")
            values = target if isinstance(target, list) else [target]
            out.extend((kind, v) for v in values if isinstance(v, str) and v)
    return out


async def _objects(ctx: JobContext, select: Select) -> AsyncIterator[tuple[str, dict[str, Any]]]:
    """The selected live objects: tags filtered by the server, the rest while paging."""
    for kind in select.kinds:
        tags = list(select.tags) if select.tags else None
        async for obj in ctx.client.collection(kind).items(tags=tags):
            if not isinstance(obj, dict) or obj.get("status") == "Archived":
                continue
            if select.matches(kind, obj):
                yield kind, obj


# -- one mutation per object --------------------------------------------------------------


def _mutation(ctx: JobContext, kind: str, obj: dict[str, Any], pairs: Pairs) -> Mutation:
    obj_id = str(obj["id"])
    singular = _SINGULAR[kind]
    path = ROUTES[kind].path(obj_id)
    old_rules = [c.old for c in pairs]
    new_rules = [c.new for c in pairs if c.new is not None]
    before, after = _expects(old_rules, new_rules)
    surviving = {_identity(new) for new in new_rules} - {None}
    return Mutation(
        key=f"{ACTION}:{singular}:{obj_id}",
        project=ctx.project_id,
        action=ACTION,
        object=f"{singular}/{obj_id}",
        method="PATCH",
        path=path,
        body={"rules": [_sendable(rule) for rule in new_rules]},
        read=path,
        before=before,
        after=after,
        before_image={"rules": old_rules},
        inverse=(
            InverseCall(
                method="PATCH",
                path=path,
                body={"rules": [_restorable(rule, surviving) for rule in old_rules]},
            ),
        ),
        # The whole list by value would be safe to resend, but a resend skips the
        # before-check: a lost answer is settled by a read instead, so a change someone
        # made in between is reported as a conflict, never overwritten.
        idempotent=False,
        display=tuple(rule_rows(pairs)),
    )


def _identity(rule: dict[str, Any]) -> str | None:
    value = rule.get("baseID") or rule.get("id")
    return str(value) if value else None


def _sendable(rule: dict[str, Any]) -> dict[str, Any]:
    """The rule as sent: named by its lifetime ``baseID`` (the ``id`` changes with the
    pass percentage, so a resend or undo naming it would be refused)."""
    if rule.get("baseID"):
        return {k: v for k, v in rule.items() if k != "id"}
    return dict(rule)


def _restorable(rule: dict[str, Any], surviving: set[str | None]) -> dict[str, Any]:
    """An old rule as the undo sends it; a dropped rule no longer exists, so it goes
    without ids and the server gives it new ones."""
    if _identity(rule) in surviving:
        return _sendable(rule)
    return {k: v for k, v in rule.items() if k not in ("id", "baseID")}


def _projection(rule: dict[str, Any]) -> dict[str, Any]:
    out = {key: rule[key] for key in _PROJECTED if key in rule}
    out["conditions"] = [
        {k: cond[k] for k in _CONDITION_KEYS if cond.get(k) is not None}
        for cond in rule.get("conditions") or []
        if isinstance(cond, dict)
    ]
    return out


def _expects(
    old_rules: Sequence[dict[str, Any]], new_rules: Sequence[dict[str, Any]]
) -> tuple[Expect, Expect]:
    """Predicates over a read of the object that tell the old rule list from the new.

    Dicts match key by key, so a change that only removes keys (from a return value,
    say) would leave the old list matching the new projection: then the after-state
    also requires the old projection to be gone.

    Raises:
        PlanError: the change is invisible to a read (nothing could verify it).
    """
    old_view = [_projection(r) for r in old_rules]
    new_view = [_projection(r) for r in new_rules]
    before = Expect(exists=True, fields={"rules": old_view})
    after = Expect(exists=True, fields={"rules": new_view})
    if after.matches({"rules": list(old_rules)}):
        after = Expect(exists=True, fields={"rules": new_view}, differs={"rules": old_view})
    if after.matches({"rules": list(old_rules)}) or not after.matches({"rules": list(new_rules)}):
        raise PlanError(
            "rewrite-rules: the change only touches fields a read cannot show "
            f"({', '.join(sorted({k for r in new_rules for k in r} - set(_PROJECTED)))})"
        )
    return before, after
