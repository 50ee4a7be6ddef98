"""Turning the analysis into mutations, in dependency order (console-api.md §20)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from bulkops.job import (
    CREATED_ID,
    EXPERIMENTS,
    GATES,
    ID_LIST_CLASS,
    LAYERS,
    OVERRIDE_LISTS,
    ROUTES,
    SEGMENTS,
    TAGS,
    UNIT_ID_TYPES,
    Expect,
    InverseCall,
    Mutation,
    Route,
)

from .bodies import (
    CONFIG_FULL,
    EXPERIMENT_UPDATE,
    FRESH_IMPLICIT_LAYER,
    GATE_FULL,
    ID_LIST_CHUNK,
    LAYER_UPDATE,
    api_rules,
    config_body,
    experiment_fields,
    gate_body,
    layer_update,
    optional,
)
from .canonical import KINDS, SINGULAR, implicit_layer_id, same
from .references import references, topological
from .selection import OVERRIDE_KINDS, Entry
from .steps import Steps

__all__ = ["Builder"]


class Builder(Steps):
    """Turns the analysis into mutations, in dependency order."""

    def build(self) -> list[Mutation]:
        by_kind: dict[str, list[Entry]] = {k: [] for k in KINDS}
        for e in self.work.entries:
            if e.existing is None or self.params.on_conflict == "overwrite":
                by_kind[e.kind].append(e)
        for e in by_kind["tags"]:
            self.tag(e)
        for e in by_kind["unit_id_types"]:
            self.unit_id_type(e)
        for kind in ("segments", "gates"):
            self.ordered(kind, by_kind[kind])
        for e in by_kind["dynamic_configs"]:
            self.config(e)
        for e in by_kind["layers"]:
            self.layer(e)
        for e in by_kind["experiments"]:
            self.experiment(e)
        if self.params.with_overrides:
            for kind in OVERRIDE_KINDS:
                for e in by_kind[kind]:
                    self.overrides(e)
        if self.params.with_id_lists:
            for e in by_kind["segments"]:
                self.id_list(e)
        return self.out

    def ordered(self, kind: str, entries: list[Entry]) -> None:
        """Segments or gates: referenced ones first; a reference cycle is created in two steps."""
        by_id = {e.target_id: e for e in entries}
        # Only objects still to be created can be in each other's way.
        edges = {
            e.target_id: [r.id for r in references(kind, e.desired) if r.kind == kind]
            for e in entries
            if e.existing is None
        }
        order, cycles = topological(list(by_id), edges)
        cycle_of = {member: tuple(c) for c in cycles for member in c}
        done: set[str] = set()
        for target_id in order:
            e = by_id[target_id]
            cycle = cycle_of.get(target_id)
            if cycle is None:
                self.write(e)
                continue
            self.write(e, without_rules=True)
            done.add(target_id)
            if all(member in done for member in cycle):
                for member in cycle:
                    self.cycle_rules(by_id[member], cycle)

    def write(self, e: Entry, *, without_rules: bool = False) -> None:
        if e.kind == "segments":
            self.segment(e, without_rules=without_rules)
        else:
            self.gate(e, without_rules=without_rules)

    def tag(self, e: Entry) -> None:
        delete = InverseCall(
            method="DELETE",
            path=f"{TAGS.path()}/{CREATED_ID}",  # the id the create is given
            read=TAGS.path(),
            idempotent=True,
            action="delete",
        )
        tag_id = str((e.existing or {}).get("id"))
        self.labeled(e, TAGS, ("description", "isCore"), delete, TAGS.path(tag_id))

    def unit_id_type(self, e: Entry) -> None:
        path = UNIT_ID_TYPES.path(str(e.desired["name"]))
        delete = InverseCall(method="DELETE", path=path, idempotent=True, action="delete")
        self.labeled(e, UNIT_ID_TYPES, ("description",), delete, path)

    def labeled(
        self, e: Entry, route: Route, fields: Sequence[str], delete: InverseCall, path: str
    ) -> None:
        """A tag or unit id type: created by name (seen in the list at ``route``), or its
        ``fields`` updated in place (``PATCH path``)."""
        d = e.desired
        name = str(d["name"])
        if e.existing is None:
            m = self.add(
                key=f"create:{SINGULAR[e.kind]}:{name}",
                action="create",
                object=e.object,
                method="POST",
                path=route.path(),
                body={"name": name, **{k: d[k] for k in fields}},
                read=route.path(),
                before=Expect(excludes={"*.name": [name]}),
                after=Expect(contains={"*.name": [name]}),
                display=(("(object)", "absent", "created"),),
                inverse=(delete,),
            )
            self.structural(e, m.key)
            return
        current = e.current or {}
        changed = [k for k in fields if not same(d[k], current[k])]
        if changed:
            key = self.update(
                e,
                key=f"update:{SINGULAR[e.kind]}:{name}",
                fields=changed,
                action="update",
                method="PATCH",
                path=path,
                read=path,
                body={k: d[k] for k in changed},
                previous={k: current[k] for k in changed},
                idempotent=False,
            )
            self.structural(e, key)

    def segment(self, e: Entry, *, without_rules: bool = False) -> None:
        d = e.desired
        refs = [
            r for r in references("segments", d) if not (without_rules and r.kind == "segments")
        ]
        if e.existing is None:
            body: dict[str, Any] = {
                "id": e.target_id,
                "name": d["name"],
                "type": d["type"],
                "description": d["description"],
                "idType": d["idType"],
                "tags": d["tags"],
            }
            if d["type"] == "rule_based" and not without_rules:
                body["rules"] = api_rules(d.get("rules") or [])
            self.create(e, optional(body, d, "team", "teamID"), refs=refs)
            if d.get("status") == "Archived":
                self.status(
                    e, "archive", before=Expect(exists=True, differs={"status": "Archived"})
                )
            return
        current = e.current or {}
        if d["type"] == "rule_based" and not same(d.get("rules"), current.get("rules")):
            self.structural(
                e,
                self.update(
                    e,
                    key=f"update:segment:{e.target_id}:rules",
                    fields=("rules",),
                    action="update",
                    method="POST",
                    path=SEGMENTS.path(e.target_id, "conditional"),
                    body=api_rules(d["rules"]),
                    previous=api_rules(current.get("rules") or []),
                    after={"rules": api_rules(d["rules"])},
                    before={"rules": api_rules(current.get("rules") or [])},
                    refs=refs,
                ),
            )
        if d.get("status") == "Archived" and current.get("status") != "Archived":
            self.status(e, "archive", before=Expect(exists=True, differs={"status": "Archived"}))

    def cycle_rules(self, e: Entry, cycle: Sequence[str]) -> None:
        """Second step of a reference cycle: set the rules once every member exists."""
        d = e.desired
        rules = api_rules(d.get("rules") or [])
        refs = references(e.kind, d)
        also = [self.last.get((e.kind, member)) for member in cycle]
        body: Any
        if e.kind == "segments":
            method, path, body = "POST", SEGMENTS.path(e.target_id, "conditional"), rules
        else:
            method, path, body = "PATCH", GATES.path(e.target_id), {"rules": rules}
        m = self.add(
            key=f"rules:{SINGULAR[e.kind]}:{e.target_id}",
            action="set-rules",
            object=e.object,
            method=method,
            path=path,
            body=body,
            read=ROUTES[e.kind].path(e.target_id),
            before=Expect(exists=True, fields={"rules": []}),
            after=Expect(exists=True, fields={"rules": rules}),
            inverse=(self.delete_inverse(e),),
            depends_on=self.deps(refs, *also),
            idempotent=True,
        )
        self.structural(e, m.key)
        if e.kind == "gates":
            self.gate_status(e)

    def gate(self, e: Entry, *, without_rules: bool = False) -> None:
        d = e.desired
        refs = [r for r in references("gates", d) if not (without_rules and r.kind == "gates")]
        if e.existing is None:
            body = {"id": e.target_id, **gate_body(d, rules=not without_rules)}
            body["isTemplate"] = d["isTemplate"]
            self.create(e, body, refs=refs)
            if not without_rules:
                self.gate_status(e)
            return
        current = e.current or {}
        if any(k in d and not same(d[k], current.get(k)) for k in GATE_FULL):
            body = gate_body(d)
            previous = gate_body(current)
            self.full_update(e, "gate", GATE_FULL, body, previous, refs)
        self.gate_status(e)

    def gate_status(self, e: Entry) -> None:
        """Launch, archive or unarchive to reach the source's status."""
        wanted = e.desired["status"]
        if e.existing is None:
            status = "In Progress" if e.desired["isEnabled"] else "Disabled"
            if wanted == "Launched":
                self.status(e, "launch", before=Expect(fields={"status": status}))
            elif wanted == "Archived":
                self.status(e, "archive", before=Expect(fields={"status": status}))
            return
        current = (e.current or {}).get("status")
        if current == "Archived" and wanted != "Archived":
            self.status(e, "unarchive", before=Expect(fields={"status": "Archived"}))
        if wanted == "Launched" and current != "Launched":
            self.status(e, "launch", before=Expect(exists=True, differs={"status": "Launched"}))
        if wanted == "Archived" and current != "Archived":
            self.status(e, "archive", before=Expect(exists=True, differs={"status": "Archived"}))

    def config(self, e: Entry) -> None:
        d = e.desired
        refs = references("dynamic_configs", d)
        if e.existing is None:
            body = {"id": e.target_id, **config_body(d), "isTemplate": d["isTemplate"]}
            self.create(e, body, refs=refs)
            if d["status"] == "Archived":
                status = "Enabled" if d["isEnabled"] else "Disabled"
                self.status(e, "archive", before=Expect(fields={"status": status}))
            return
        current = e.current or {}
        if any(k in d and not same(d[k], current.get(k)) for k in CONFIG_FULL):
            body = config_body(d)
            previous = config_body(current)
            for key in ("schema", "schemaJson5"):  # nullable: an update must clear them
                body.setdefault(key, None)
                previous.setdefault(key, None)
            self.full_update(e, "dynamic_config", CONFIG_FULL, body, previous, refs)
        if current.get("status") == "Archived" and d["status"] != "Archived":
            self.status(e, "unarchive", before=Expect(fields={"status": "Archived"}))
        if d["status"] == "Archived" and current.get("status") != "Archived":
            self.status(e, "archive", before=Expect(exists=True, differs={"status": "Archived"}))

    def layer(self, e: Entry) -> None:
        d = e.desired
        refs = references("layers", d)
        if e.existing is None:
            body = optional(
                {
                    "name": d["name"],
                    "idType": d["idType"],
                    "description": d["description"],
                    "targetApps": d["targetApps"],
                },
                d,
                "team",
            )
            self.create(e, body, refs=refs)
            if d["parameters"]:
                m = self.add(
                    key=f"parameters:layer:{e.target_id}",
                    action="set-parameters",
                    object=e.object,
                    method="POST",
                    path=LAYERS.path(e.target_id),
                    body=layer_update(d),
                    read=LAYERS.path(e.target_id),
                    before=Expect(exists=True, fields={"parameters": []}),
                    after=Expect(exists=True, fields={"parameters": d["parameters"]}),
                    inverse=(self.delete_inverse(e),),
                    depends_on=self.deps((), self.last.get(("layers", e.target_id))),
                    idempotent=True,
                )
                self.structural(e, m.key)
            return
        current = e.current or {}
        if any(not same(d[k], current.get(k)) for k in LAYER_UPDATE):
            self.full_update(e, "layer", LAYER_UPDATE, layer_update(d), layer_update(current), refs)

    def experiment(self, e: Entry) -> None:
        d = e.desired
        refs = references("experiments", d)
        if e.existing is None:
            fields = [n for n in EXPERIMENT_UPDATE if n not in ("name",)]
            body = {"id": e.target_id, "name": d["name"], **experiment_fields(d, fields)}
            if not body.get("targetingGateID"):
                body.pop("targetingGateID", None)
            if not body.get("layerID"):
                body.pop("layerID", None)
            self.create(e, body, refs=refs)
            self.implicit_layer(e, FRESH_IMPLICIT_LAYER)
            return
        current = e.current or {}
        changed = [n for n in EXPERIMENT_UPDATE if n in d and not same(d[n], current.get(n))]
        if changed:
            body = experiment_fields(d, changed)
            previous = experiment_fields(current, changed) if current else {}
            # The server stores the control group's id and an implicit layer's id: those
            # are not compared by the read, the rest is.
            after = {k: v for k, v in body.items() if k not in ("controlGroupID", "layerID")}
            before = {k: v for k, v in previous.items() if k not in ("controlGroupID", "layerID")}
            self.structural(
                e,
                self.update(
                    e,
                    key=f"update:experiment:{e.target_id}",
                    fields=changed,
                    action="update",
                    method="PATCH",
                    path=EXPERIMENTS.path(e.target_id),
                    body=body,
                    previous=previous,
                    after=after,
                    before=before,
                    refs=refs,
                    idempotent=False,
                ),
            )
        self.implicit_layer(e, current.get("implicitLayer") or FRESH_IMPLICIT_LAYER)

    def implicit_layer(self, e: Entry, current: Mapping[str, Any]) -> None:
        """An experiment's implicit layer carries parameters: set them after the create."""
        wanted = e.desired.get("implicitLayer")
        if wanted is None or e.desired["layerID"] != implicit_layer_id(e.target_id):
            return
        if all(same(wanted[k], current.get(k)) for k in LAYER_UPDATE):
            return
        layer = implicit_layer_id(e.target_id)
        path = LAYERS.path(layer)
        self.add(
            key=f"parameters:layer:{layer}",
            action="set-parameters",
            object=f"layer/{layer}",
            method="POST",
            path=path,
            body=dict(wanted),
            read=path,
            before=Expect(exists=True, fields=dict(current)),
            after=Expect(exists=True, fields=dict(wanted)),
            before_image=dict(current),
            inverse=(InverseCall(method="POST", path=path, body=dict(current), idempotent=True),),
            depends_on=self.deps((), self.last.get(("experiments", e.target_id))),
            idempotent=True,
        )

    def overrides(self, e: Entry) -> None:
        wanted = e.desired.get("overrides")
        if wanted is None:
            return
        raw = (
            self.work.target.overrides.get((e.kind, e.target_id), {})
            if e.existing is not None
            else {}
        )
        current = (e.current or {}).get("overrides") if e.existing is not None else None
        refs = references(e.kind, {}, wanted)
        read = ROUTES[e.kind].path(e.target_id, "overrides")

        def set_overrides(key: str, body: dict[str, Any], previous: dict[str, Any]) -> None:
            self.update(
                e,
                key=key,
                action="set-overrides",
                method="POST",
                path=read,
                read=read,
                body=body,
                previous=previous,
                refs=refs,
            )

        if e.kind == "gates":
            lists = [
                n
                for n in OVERRIDE_LISTS
                if wanted[n] or (current or {}).get(n) or n in ("passingUserIDs", "failingUserIDs")
            ]
            now = {n: list(raw.get(n) or []) for n in lists}
            if any(not same(sorted(now[n]), wanted[n]) for n in lists) and (
                current is not None or any(wanted[n] for n in lists)
            ):
                set_overrides(
                    f"overrides:gate:{e.target_id}:ids", {n: wanted[n] for n in lists}, now
                )
            env_now = list(raw.get("environmentOverrides") or [])
            env_wanted = wanted["environmentOverrides"]
            if not same(env_wanted, (current or {}).get("environmentOverrides", [])):
                set_overrides(
                    f"overrides:gate:{e.target_id}:environments",
                    {"environmentOverrides": env_wanted},
                    {"environmentOverrides": env_now},
                )
            return
        names = (
            ("overrides", "userIDOverrides")
            if e.kind == "experiments"
            else ("conditionalOverrides", "idOverrides")
        )
        empty: dict[str, list[Any]] = {n: [] for n in names}
        if same(wanted, current if current is not None else empty):
            return
        set_overrides(
            f"overrides:{SINGULAR[e.kind]}:{e.target_id}",
            {n: wanted[n] for n in names},
            {n: list(raw.get(n) or []) for n in names},
        )

    def id_list(self, e: Entry) -> None:
        wanted = e.desired.get("ids")
        if wanted is None:
            return
        current = (e.current or {}).get("ids") if e.existing is not None else []
        if current is None or same(wanted, current):
            return
        chunks = [wanted[i : i + ID_LIST_CHUNK] for i in range(0, len(wanted), ID_LIST_CHUNK)]
        read = SEGMENTS.path(e.target_id, "id_list")
        reset = SEGMENTS.path(e.target_id, "id_list", "reset")
        previous_key = self.last.get(("segments", e.target_id))

        def step(name: str, method: str, path: str, ids: list[str], **fields: Any) -> str:
            return self.add(
                key=f"id-list:segment:{e.target_id}:{name}",
                object=e.object,
                method=method,
                path=path,
                body={"ids": ids},
                read=read,
                depends_on=self.deps((), previous_key),
                quota_class=ID_LIST_CLASS,
                idempotent=True,
                **fields,
            ).key

        count = 0
        if current:  # an existing list: the first chunk replaces it
            raw = self.work.target.id_lists.get(e.target_id, [])
            first = chunks.pop(0) if chunks else []
            undo = InverseCall(method="POST", path=reset, body={"ids": raw}, idempotent=True)
            previous_key = step(
                "reset",
                "POST",
                reset,
                first,
                action="id-list-reset",
                before=Expect(fields={"ids": raw}),
                after=Expect(fields={"ids": first}),
                before_image={"count": len(raw)},
                inverse=(undo,),
            )
            count = len(first)
        for number, chunk in enumerate(chunks, start=1):
            remove = InverseCall(
                method="DELETE",
                path=read,
                body={"ids": chunk},
                idempotent=True,
                action="id-list-remove",
            )
            previous_key = step(
                str(number),
                "PATCH",
                read,
                chunk,
                action="id-list-add",
                before=Expect(fields={"count": count}),
                after=Expect(fields={"count": count + len(chunk)}),
                inverse=(remove,),
            )
            count += len(chunk)
