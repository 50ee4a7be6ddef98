"""How a raw call's effect is observed: derive a checkable :class:`Mutation` from a call.

``apply-calls`` gets bare ``(method, path, body)`` lines. For the endpoint shapes the
Console API documents, :class:`CallPlanner` reads the object at plan time and fills in
what the engine needs to run the call safely: the GET that observes the object, the
before- and after-state, whether resending is safe by value, the undo, and the quota
class. Shapes it knows:

* create (``POST /gates|/dynamic_configs|/segments|/experiments|/layers``): exists;
* ``PUT …/{id}/archive|unarchive|enable|disable|launch``: status fields;
* full (``POST /{kind}/{id}``) and partial (``PATCH``) updates: the fields sent;
* ``DELETE /{kind}/{id}``: gone;
* any of these on an object the plan-time read finds absent (and no earlier call of
  the file creates): "absent: nothing to do", shown, counted and never sent;
* overrides of gates, holdouts and experiments (POST replace, PATCH add, DELETE
  remove): the ids each list holds or lacks;
* segment id lists (PATCH add, DELETE remove, POST reset);
* tags (create, update, delete).

Anything else gets ``read=None``: it runs, but an ambiguous outcome (timeout, reset,
5xx) cannot be verified and is reported as a conflict to check by hand, never resent.

Several calls on one object in one file are planned in sequence: each is planned from
the state the previous one is expected to leave (:meth:`Expect.predict`).
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any
from urllib.parse import unquote

from bulkops.api.client import ConsoleClient, read_object
from bulkops.api.paths import id_from_name, normalize_path
from bulkops.engine.mutations import resolve_path
from bulkops.engine.quota import quota_class_for
from bulkops.job import (
    CREATED_ID,
    ID_LIST_CLASS,
    OVERRIDE_LISTS,
    ROUTES,
    TAGS,
    Expect,
    InverseCall,
    Mutation,
    delete_created,
)

__all__ = ["CallPlanner", "RawCall"]

_KINDS = {
    "gates": "gate",
    "dynamic_configs": "dynamic_config",
    "segments": "segment",
    "experiments": "experiment",
    "layers": "layer",
    "holdouts": "holdout",
    "tags": "tag",
}
_CREATABLE = {"gates", "dynamic_configs", "segments", "experiments", "layers"}
_UPDATABLE = {"gates", "dynamic_configs", "experiments", "layers", "holdouts"}
_ARCHIVED = {"gates": "Archived", "dynamic_configs": "Archived", "experiments": "archived"}
_ENABLEABLE = {"gates", "dynamic_configs"}
# Fields the server owns inside rules: never sent back, never compared.
_RULE_SERVER_FIELDS = ("id", "baseID", "completedAutomatedRollouts", "pendingAutomatedRollouts")

Reader = Callable[[str], Any]


@dataclass(frozen=True)
class RawCall:
    """One raw call: ``method path`` with an optional JSON body."""

    method: str
    path: str
    body: Any = None


def _strip_rules(value: Any) -> Any:
    if isinstance(value, list):
        return [_strip_rule(r) for r in value]
    return value


def _strip_rule(rule: Any) -> Any:
    if not isinstance(rule, dict):
        return rule
    return {k: v for k, v in rule.items() if k not in _RULE_SERVER_FIELDS}


def _project(image: Any, keys: list[str]) -> dict[str, Any]:
    src = image if isinstance(image, dict) else {}
    out = {k: src.get(k) for k in keys}
    if "rules" in out:
        out["rules"] = _strip_rules(out["rules"])
    return out


def _copy(value: Any) -> Any:
    return json.loads(json.dumps(value))


class CallPlanner:
    """Turns raw calls into mutations, reading each object once and predicting the rest.

    Args:
        client: A client on the target project (reads only).
        project_id: The target project's id, stamped on every mutation.
    """

    def __init__(self, client: ConsoleClient, project_id: str) -> None:
        self._client = client
        self._project = project_id
        self._images: dict[str, Any] = {}
        self._created: dict[str, str] = {}

    async def _image(self, read: str) -> Any:
        if read not in self._images:
            self._images[read] = await read_object(self._client, read)
        return _copy(self._images[read])

    async def plan(self, call: RawCall, *, key: str) -> Mutation:
        """The mutation for ``call``, keyed ``key``."""
        method = call.method.upper()
        path = normalize_path(call.path)
        bare, _, _query = path.partition("?")
        parts = [p for p in bare.split("/") if p]
        body = call.body
        mutation: Mutation | None = None
        if parts and parts[0] in _KINDS:
            # The object as the plan-time read (or an earlier call of the file) leaves it.
            absent = len(parts) >= 2 and await self._image(f"/{parts[0]}/{parts[1]}") is None
            mutation = await self._known(method, path, parts, body, key)
            if mutation is not None and absent and mutation.after.exists is not True:
                mutation = mutation.on_absent_object()
        if mutation is None:
            mutation = Mutation(
                key=key,
                project=self._project,
                action=method.lower(),
                object=bare,
                method=method,
                path=path,
                body=body,
                quota_class=quota_class_for(method, path),
            )
        created_by = self._created.get(mutation.object)
        if created_by is not None and created_by != key and created_by not in mutation.depends_on:
            mutation = mutation.model_copy(
                update={"depends_on": (*mutation.depends_on, created_by)}
            )
        return mutation

    def _remember(self, read: str | None, image: Any) -> None:
        if read is not None:
            self._images[read] = image

    def _base(self, key: str, action: str, obj: str, method: str, path: str, body: Any) -> Any:
        return {
            "key": key,
            "project": self._project,
            "action": action,
            "object": obj,
            "method": method,
            "path": path,
            "body": body,
            "quota_class": quota_class_for(method, path),
        }

    async def _known(
        self, method: str, path: str, parts: list[str], body: Any, key: str
    ) -> Mutation | None:
        collection = parts[0]
        kind = _KINDS[collection]
        if len(parts) == 1:
            if method == "POST" and collection in _CREATABLE:
                return await self._create(collection, kind, path, body, key)
            if method == "POST" and collection == "tags":
                return await self._tag_create(path, body, key)
            return None
        seg = parts[1]
        obj_id = unquote(seg)
        obj = f"{kind}/{obj_id}"
        read = f"/{collection}/{seg}"  # the object as the call names it (its own encoding)
        if len(parts) == 2:
            if method == "DELETE":
                return await self._delete(key, obj, path, body, read)
            if collection in _UPDATABLE or collection == "tags":
                if method in ("POST", "PATCH") and isinstance(body, dict) and body:
                    if collection == "tags" and method == "POST":
                        return None
                    return await self._update(key, obj, method, path, body, read)
            return None
        tail = "/".join(parts[2:])
        if method == "PUT" and tail in ("archive", "unarchive") and collection in _ARCHIVED:
            return await self._archive(key, obj, collection, tail, path, body, read)
        if method == "PUT" and tail in ("enable", "disable") and collection in _ENABLEABLE:
            return await self._enable(key, obj, collection, tail, path, body, read)
        if method == "PUT" and tail == "launch" and collection == "gates":
            image = await self._image(read)
            status = image.get("status") if isinstance(image, dict) else None
            before = (
                Expect(fields={"status": status})
                if status is not None
                else Expect(exists=True, differs={"status": "Launched"})
            )
            after = Expect(fields={"status": "Launched"})
            return self._state(key, "launch", obj, path, body, read, image, "status", before, after)
        if tail == "overrides" and collection in ("gates", "holdouts", "experiments"):
            overrides = f"{read}/overrides"
            return await self._overrides(key, obj, collection, method, path, body, overrides)
        if collection == "segments" and tail in ("id_list", "id_list/reset"):
            return await self._id_list(key, obj, method, tail, path, body, f"{read}/id_list")
        return None

    async def _create(
        self, collection: str, kind: str, path: str, body: Any, key: str
    ) -> Mutation | None:
        if not isinstance(body, dict):
            return None
        raw_id = body.get("id") or (
            id_from_name(body["name"]) if isinstance(body.get("name"), str) else None
        )
        if not isinstance(raw_id, str) or not raw_id:
            return None
        route = ROUTES[collection]
        read = route.path(raw_id)
        obj = f"{kind}/{raw_id}"
        await self._image(read)  # a plan-time look, so an existing object shows as skipped
        created = {**_copy(body), "id": raw_id}
        self._remember(read, created)
        empty: dict[str, Any] | None = None
        if collection == "gates":
            empty = {"passingUserIDs": [], "failingUserIDs": [], "environmentOverrides": []}
        elif collection == "experiments":
            empty = {"overrides": [], "userIDOverrides": []}
        if empty is not None:
            self._remember(route.path(raw_id, "overrides"), empty)
        if collection == "segments":
            self._remember(route.path(raw_id, "id_list"), {"ids": [], "count": 0})
        self._created[obj] = key
        after = Expect(exists=True)
        if isinstance(body.get("name"), str):
            after = Expect(exists=True, fields={"name": body["name"]})
        return Mutation(
            **self._base(key, "create", obj, "POST", path, body),
            read=read,
            before=Expect(exists=False),
            after=after,
            inverse=(delete_created(read),),
        )

    async def _tag_create(self, path: str, body: Any, key: str) -> Mutation | None:
        if not isinstance(body, dict) or not isinstance(body.get("name"), str):
            return None
        name = body["name"]
        read = TAGS.path()
        image = await self._image(read)
        self._remember(read, [*(image or []), dict(body)])
        self._created[f"tag/{name}"] = key
        return Mutation(
            **self._base(key, "create", f"tag/{name}", "POST", path, body),
            read=read,
            before=Expect(excludes={"*.name": [name]}),
            after=Expect(contains={"*.name": [name]}),
            inverse=(
                InverseCall(
                    method="DELETE",
                    path=f"{read}/{CREATED_ID}",  # the id the create is given
                    read=read,
                    idempotent=True,
                    action="delete",
                ),
            ),
        )

    async def _delete(self, key: str, obj: str, path: str, body: Any, read: str) -> Mutation:
        image = await self._image(read)
        self._remember(read, None)
        for sub in ("overrides", "id_list"):
            self._images.pop(f"{read}/{sub}", None)
        return Mutation(
            **self._base(key, "delete", obj, "DELETE", path, body),
            read=read,
            before=Expect(exists=True),
            after=Expect(exists=False),
            before_image=image,
            idempotent=True,
        )

    async def _update(
        self, key: str, obj: str, method: str, path: str, body: dict[str, Any], read: str
    ) -> Mutation:
        image = await self._image(read)
        fields = list(body)
        sent = _project(body, fields)
        # Only fields the object shows: a field a create did not set is unknown until read.
        known = [k for k in fields if isinstance(image, dict) and k in image]
        previous = _project(image, known)
        after = Expect(fields=sent)
        self._remember(read, after.predict(image) if image is not None else None)
        full = method == "POST"
        return Mutation(
            **self._base(key, "update" if full else "patch", obj, method, path, body),
            read=read,
            before=Expect(exists=True, fields=previous),
            after=after,
            before_image=previous if image is not None else None,
            inverse=(
                (InverseCall(method=method, path=path, body=previous, idempotent=full),)
                if image is not None and known == fields
                else ()
            ),
            idempotent=full,
        )

    async def _archive(
        self, key: str, obj: str, collection: str, tail: str, path: str, body: Any, read: str
    ) -> Mutation:
        image = await self._image(read)
        status = image.get("status") if isinstance(image, dict) else None
        archived = _ARCHIVED[collection]
        base = read
        if tail == "archive":
            after = Expect(fields={"status": archived})
            before = (
                Expect(fields={"status": status})
                if status is not None and status != archived
                else Expect(exists=True, differs={"status": archived})
            )
            inverse = InverseCall(
                method="PUT",
                path=f"{base}/unarchive",
                body={},
                after=Expect(differs={"status": archived}),
                idempotent=True,
                action="unarchive",
            )
        else:
            after = Expect(exists=True, differs={"status": archived})
            before = Expect(fields={"status": archived})
            inverse = InverseCall(
                method="PUT",
                path=f"{base}/archive",
                body={},
                idempotent=True,
                action="archive",
            )
        predicted = after.predict(image)
        if tail == "unarchive" and isinstance(predicted, dict):
            predicted.pop("status", None)
        return self._state(
            key, tail, obj, path, body, read, image, "status", before, after, (inverse,), predicted
        )

    async def _enable(
        self, key: str, obj: str, collection: str, tail: str, path: str, body: Any, read: str
    ) -> Mutation:
        image = await self._image(read)
        enabled = image.get("isEnabled") if isinstance(image, dict) else None
        target = tail == "enable"
        before = (
            Expect(fields={"isEnabled": enabled})
            if enabled is not None
            else Expect(exists=True, differs={"isEnabled": target})
        )
        opposite = "disable" if target else "enable"
        undo = InverseCall(
            method="PUT", path=f"{read}/{opposite}", idempotent=True, action=opposite
        )
        inverse = (undo,) if enabled is not None and enabled != target else ()
        after = Expect(fields={"isEnabled": target})
        return self._state(
            key, tail, obj, path, body, read, image, "isEnabled", before, after, inverse
        )

    def _state(
        self,
        key: str,
        action: str,
        obj: str,
        path: str,
        body: Any,
        read: str,
        image: Any,
        field: str,
        before: Expect,
        after: Expect,
        inverse: tuple[InverseCall, ...] = (),
        predicted: Any = None,
    ) -> Mutation:
        """A ``PUT`` that sets one state ``field`` (status, isEnabled): idempotent by value."""
        self._remember(read, after.predict(image) if predicted is None else predicted)
        return Mutation(
            **self._base(key, action, obj, "PUT", path, body),
            read=read,
            before=before,
            after=after,
            before_image={field: image.get(field) if isinstance(image, dict) else None},
            inverse=inverse,
            idempotent=True,
        )

    async def _overrides(
        self, key: str, obj: str, collection: str, method: str, path: str, body: Any, read: str
    ) -> Mutation | None:
        """POST replaces the lists it carries, PATCH adds ids or entries, DELETE removes them."""
        if not isinstance(body, dict):
            return None
        image = await self._image(read)
        current = image if isinstance(image, dict) else {}
        experiment = collection == "experiments"
        if method == "POST":
            if experiment:
                fields = [k for k in ("overrides", "userIDOverrides") if k in body]
            else:
                fields = [k for k in body if k in (*OVERRIDE_LISTS, "environmentOverrides")]
            return self._override_replace(key, obj, path, body, read, image, fields)
        if method not in ("PATCH", "DELETE"):
            return None
        adding = method == "PATCH"
        delta = _experiment_delta if experiment else _gate_delta
        want, change, undo = delta(body, current, adding)
        if not want:
            return None
        mutation = self._override_change(
            key, obj, method, path, body, read, adding=adding, want=want, change=change, undo=undo
        )
        if experiment:
            self._images.pop(read, None)  # group entries merge server-side: read again, not guess
        else:
            self._remember(read, mutation.after.predict(image))
        return mutation

    def _override_replace(
        self, key: str, obj: str, path: str, body: Any, read: str, image: Any, fields: list[str]
    ) -> Mutation:
        """An override replace (POST): ``fields`` of ``body`` become the object's lists;
        the undo POSTs back what they were (a list the object lacked comes back empty)."""
        current = image if isinstance(image, dict) else {}
        previous = {k: current.get(k) or [] for k in fields}
        after = Expect(fields=_project(body, fields))
        self._remember(read, after.predict(image))
        return Mutation(
            **self._base(key, "override-replace", obj, "POST", path, body),
            read=read,
            before=Expect(fields=previous),
            after=after,
            before_image=previous,
            inverse=(InverseCall(method="POST", path=path, body=previous, idempotent=True),),
            idempotent=True,
        )

    def _override_change(
        self,
        key: str,
        obj: str,
        method: str,
        path: str,
        body: Any,
        read: str,
        *,
        adding: bool,
        want: dict[str, Any],
        change: dict[str, Any],
        undo: Any,
    ) -> Mutation:
        """An override add (PATCH) or remove (DELETE): ``want`` ends up present or absent;
        ``change`` is what is not so yet, and ``undo`` takes exactly that back."""
        if adding:
            after, before = Expect(contains=want), Expect(excludes=change)
        else:
            after, before = Expect(excludes=want), Expect(contains=change)
        inverse = InverseCall(
            method="DELETE" if adding else "PATCH",
            path=path,
            body=undo,
            action="override-remove" if adding else "override-add",
        )
        return Mutation(
            **self._base(
                key, "override-add" if adding else "override-remove", obj, method, path, body
            ),
            read=read,
            before=before,
            after=after,
            before_image={"changed": change},
            inverse=(inverse,) if change else (),
        )

    async def _id_list(
        self, key: str, obj: str, method: str, tail: str, path: str, body: Any, read: str
    ) -> Mutation | None:
        if not isinstance(body, dict) or not isinstance(body.get("ids"), list):
            return None
        ids = list(body["ids"])
        image = await self._image(read)
        have = (
            {str(i) for i in (image or {}).get("ids") or []} if isinstance(image, dict) else set()
        )
        base = self._base(key, "", obj, method, path, body)
        base["quota_class"] = ID_LIST_CLASS
        if tail == "id_list/reset" and method == "POST":
            previous = sorted(have)
            after = Expect(fields={"ids": ids})
            self._remember(read, after.predict(image))
            base["action"] = "id-list-reset"
            return Mutation(
                **base,
                read=read,
                before=Expect(fields={"ids": previous}),
                after=after,
                before_image={"ids": previous},
                inverse=(
                    InverseCall(method="POST", path=path, body={"ids": previous}, idempotent=True),
                ),
                idempotent=True,
            )
        if tail != "id_list" or method not in ("PATCH", "DELETE"):
            return None
        adding = method == "PATCH"
        delta = [i for i in ids if (str(i) not in have) == adding]
        after = Expect(contains={"ids": ids}) if adding else Expect(excludes={"ids": ids})
        before = Expect(excludes={"ids": delta}) if adding else Expect(contains={"ids": delta})
        self._remember(read, after.predict(image))
        base["action"] = "id-list-add" if adding else "id-list-remove"
        return Mutation(
            **base,
            read=read,
            before=before,
            after=after,
            before_image={"changed": delta, "count": len(have)},
            inverse=(
                (
                    InverseCall(
                        method="DELETE" if adding else "PATCH",
                        path=path,
                        body={"ids": delta},
                        action="id-list-remove" if adding else "id-list-add",
                    ),
                )
                if delta
                else ()
            ),
        )


_Delta = tuple[dict[str, list[Any]], dict[str, list[Any]], dict[str, Any]]


def _gate_delta(body: dict[str, Any], current: dict[str, Any], adding: bool) -> _Delta:
    """A gate or holdout overrides add/remove: the ids wanted present (or absent) by
    selector, those not so yet, and the body that takes exactly those back."""
    want: dict[str, list[Any]] = {}
    change: dict[str, list[Any]] = {}
    undo_body: dict[str, Any] = {}
    for name in OVERRIDE_LISTS:
        ids = body.get(name)
        if isinstance(ids, list) and ids:
            have = set(map(str, current.get(name) or []))
            want[name] = list(ids)
            delta = [i for i in ids if (str(i) not in have) == adding]
            if delta:
                change[name] = delta
            undo_body[name] = delta
    undo_envs: list[dict[str, Any]] = []
    for entry in body.get("environmentOverrides") or []:
        if not isinstance(entry, dict):
            continue
        env, unit = entry.get("environment"), entry.get("unitID")
        stored = [
            e
            for e in current.get("environmentOverrides") or []
            if isinstance(e, dict) and e.get("environment") == env and e.get("unitID") == unit
        ]
        undo_entry: dict[str, Any] = {"environment": env, "unitID": unit}
        for name in ("passingIDs", "failingIDs"):
            ids = entry.get(name) or []
            have = {str(i) for e in stored for i in e.get(name) or []}
            sel = f"environmentOverrides[environment={_sel(env)},unitID={_sel(unit)}].{name}"
            if ids:
                want[sel] = list(ids)
            delta = [i for i in ids if (str(i) not in have) == adding]
            if delta:
                change[sel] = delta
            undo_entry[name] = delta
        undo_envs.append(undo_entry)
    if undo_envs:
        undo_body = {"environmentOverrides": undo_envs}
    elif undo_body:
        undo_body = {
            "passingUserIDs": undo_body.get("passingUserIDs", []),
            "failingUserIDs": undo_body.get("failingUserIDs", []),
            **{k: v for k, v in undo_body.items() if k not in ("passingUserIDs", "failingUserIDs")},
        }
    return want, change, undo_body


def _experiment_delta(body: dict[str, Any], current: dict[str, Any], adding: bool) -> _Delta:
    """An experiment overrides add/remove: group ids by selector and whole entries."""
    want: dict[str, list[Any]] = {}
    change: dict[str, list[Any]] = {}
    undo_users: list[dict[str, Any]] = []
    for entry in body.get("userIDOverrides") or []:
        if not isinstance(entry, dict) or not entry.get("ids"):
            continue
        filters = [f"groupID={_sel(entry.get('groupID'))}"]
        if entry.get("environment") is not None:
            filters.append(f"environment={_sel(entry['environment'])}")
        sel = f"userIDOverrides[{','.join(filters)}].ids"
        have = {str(i) for ids in resolve_path(current, sel) for i in ids or []}
        ids = list(entry["ids"])
        want[sel] = ids
        delta = [i for i in ids if (str(i) not in have) == adding]
        if delta:
            change[sel] = delta
            undo_users.append({**entry, "ids": delta})
    undo_overrides: list[dict[str, Any]] = []
    stored = current.get("overrides") or []
    for entry in body.get("overrides") or []:
        if not isinstance(entry, dict):
            continue
        present = any(
            isinstance(s, dict) and all(s.get(k) == v for k, v in entry.items()) for s in stored
        )
        want.setdefault("overrides", []).append(entry)
        if present != adding:
            change.setdefault("overrides", []).append(entry)
            undo_overrides.append(entry)
    return want, change, {"overrides": undo_overrides, "userIDOverrides": undo_users}


def _sel(value: Any) -> str:
    if value is None:
        return "null"
    return str(value)
