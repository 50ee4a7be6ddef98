"""The steps every copied object is written with: mutations with their dependencies,
before/after expectations and undo (creates, updates, state actions)."""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from bulkops.job import ROUTES, Expect, InverseCall, Mutation, delete_created

from .canonical import SINGULAR, diff
from .references import Ref
from .selection import Entry, Work

__all__ = ["Steps"]


def _rows(e: Entry, names: Iterable[str]) -> tuple[tuple[str, str, str], ...]:
    """Dry-run rows for an overwrite: each differing field, target value → source value."""
    wanted = {n: e.desired[n] for n in names if n in e.desired}
    return tuple(
        (d.path, _text(d.found), _text(d.wanted)) for d in diff(wanted, e.current or {}, limit=10)
    )


def _text(value: Any, limit: int = 60) -> str:
    text = value if isinstance(value, str) else json.dumps(value, default=str)
    return text if len(text) <= limit else text[: limit - 1] + "…"


class Steps:
    """Mutations in the order they are added, each depending on what it needs."""

    def __init__(self, project: str, work: Work) -> None:
        self.project = project
        self.work = work
        self.params = work.params
        self.out: list[Mutation] = []
        self.last: dict[tuple[str, str], str] = {}
        self.created: set[tuple[str, str]] = set()

    def add(self, **fields: Any) -> Mutation:
        m = Mutation(project=self.project, **fields)
        self.out.append(m)
        return m

    def deps(self, refs: Iterable[Ref], *also: str | None) -> tuple[str, ...]:
        keys: list[str] = [k for k in also if k]
        for ref in refs:
            key = self.last.get((ref.kind, ref.id))
            if key is not None and key not in keys:
                keys.append(key)
        return tuple(keys)

    def structural(self, e: Entry, key: str) -> None:
        self.last[(e.kind, e.target_id)] = key

    def delete_inverse(self, e: Entry) -> InverseCall:
        """The undo of a step on an object this copy creates: delete the object."""
        return InverseCall(
            method="DELETE",
            path=ROUTES[e.kind].path(e.target_id),
            read=ROUTES[e.kind].path(e.target_id),
            after=Expect(exists=False),
            idempotent=True,
            action="delete",
        )

    def create(
        self,
        e: Entry,
        body: Any,
        *,
        refs: Iterable[Ref],
        path: str | None = None,
    ) -> str:
        read = ROUTES[e.kind].path(e.target_id)
        m = self.add(
            key=f"create:{SINGULAR[e.kind]}:{e.target_id}",
            action="create",
            object=e.object,
            method="POST",
            path=path or ROUTES[e.kind].path(),
            body=body,
            read=read,
            before=Expect(exists=False),
            after=Expect(exists=True, fields={"name": e.desired["name"]}),
            inverse=(delete_created(read),),
            depends_on=self.deps(refs),
        )
        self.created.add((e.kind, e.target_id))
        self.structural(e, m.key)
        return m.key

    def full_update(
        self,
        e: Entry,
        label: str,
        fields: Sequence[str],
        body: Any,
        previous: Any,
        refs: Iterable[Ref],
    ) -> None:
        """Overwrite an existing object with a full update (``POST /{kind}/{id}``) of
        ``fields``; later steps on the object wait for it."""
        key = self.update(
            e,
            key=f"update:{label}:{e.target_id}",
            fields=fields,
            action="update",
            method="POST",
            path=ROUTES[e.kind].path(e.target_id),
            body=body,
            previous=previous,
            refs=refs,
        )
        self.structural(e, key)

    def update(
        self,
        e: Entry,
        *,
        key: str,
        action: str,
        method: str,
        path: str,
        body: Any,
        previous: Any,
        read: str | None = None,
        after: Mapping[str, Any] | None = None,
        before: Mapping[str, Any] | None = None,
        refs: Iterable[Ref] = (),
        idempotent: bool = True,
        inverse: bool = True,
        fields: Sequence[str] = (),
    ) -> str:
        """An overwrite (or a follow-up) that sets fields; its undo sets the previous values.

        ``fields`` name the canonical fields it changes: the dry run shows their
        differences (``rules[1].passPercentage: 10.0 → 20.0``).
        """
        after_fields = dict(after if after is not None else body)
        before_fields = dict(before if before is not None else previous)
        m = self.add(
            key=key,
            action=action,
            object=e.object,
            method=method,
            path=path,
            body=body,
            read=read or ROUTES[e.kind].path(e.target_id),
            before=Expect(exists=True, fields=before_fields),
            after=Expect(exists=True, fields=after_fields),
            before_image=before_fields,
            inverse=(
                (InverseCall(method=method, path=path, body=previous, idempotent=idempotent),)
                if inverse
                else ()
            ),
            depends_on=self.deps(refs, self.last.get((e.kind, e.target_id))),
            idempotent=idempotent,
            display=_rows(e, fields),
        )
        return m.key

    def status(self, e: Entry, action: str, *, before: Expect) -> None:
        """A state action (launch, archive, unarchive) on a gate, config or segment."""
        archived = {"archive": True, "unarchive": False}.get(action)
        if action == "launch":
            after = Expect(fields={"status": "Launched"})
        elif archived:
            after = Expect(fields={"status": "Archived"})
        else:
            after = Expect(exists=True, differs={"status": "Archived"})
        body: Any = None
        if e.kind in ("gates", "dynamic_configs") and action == "archive":
            body = {"archiveReason": "copy-project: archived in the source project"}
            if e.kind == "gates":
                body["forceArchive"] = True  # references are copied too
        elif action == "unarchive":
            body = {}
        inverse: tuple[InverseCall, ...]
        if (e.kind, e.target_id) in self.created:
            inverse = (self.delete_inverse(e),)
        elif action == "archive" and e.kind != "segments":
            inverse = (
                InverseCall(
                    method="PUT",
                    path=ROUTES[e.kind].path(e.target_id, "unarchive"),
                    body={},
                    idempotent=True,
                    action="unarchive",
                ),
            )
        elif action == "unarchive":
            archive_body: dict[str, Any] = {"archiveReason": "bulkops undo"}
            if e.kind == "gates":
                archive_body["forceArchive"] = True
            inverse = (
                InverseCall(
                    method="PUT",
                    path=ROUTES[e.kind].path(e.target_id, "archive"),
                    body=archive_body,
                    idempotent=True,
                    action="archive",
                ),
            )
        else:
            inverse = ()  # no endpoint un-launches a gate or unarchives a segment
        m = self.add(
            key=f"{action}:{SINGULAR[e.kind]}:{e.target_id}",
            action=action,
            object=e.object,
            method="PUT",
            path=ROUTES[e.kind].path(e.target_id, f"{action}"),
            body=body,
            read=ROUTES[e.kind].path(e.target_id),
            before=before,
            after=after,
            inverse=inverse,
            depends_on=self.deps((), self.last.get((e.kind, e.target_id))),
            idempotent=True,
        )
        self.structural(e, m.key)
