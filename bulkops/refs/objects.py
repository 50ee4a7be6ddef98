"""The objects whose ids are looked for in code: gates, dynamic configs, experiments, layers.

A :class:`FlagObject` holds what a reference report needs about one object: its kind,
id, status and (for gates) the API's stale reason, which decides the clean-up hint. The
objects come from the Console API (the ``refs`` command reads them) or, offline, from a
snapshot file (:func:`read_snapshot`, ``bulkops snapshot``'s format), so CI can scan
without a key. Reading a snapshot imports nothing but :mod:`json` and
:mod:`bulkops.inputs` (which decodes every file a user gives).
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any, NamedTuple

from ..errors import InputError
from ..inputs import read_text

__all__ = ["KINDS", "KIND_LABELS", "FlagObject", "objects_from_collections", "read_snapshot"]

# The collections scanned for, in report order, and what one object of each is called.
KINDS = ("gates", "dynamic_configs", "experiments", "layers")
KIND_LABELS = {
    "gates": "gate",
    "dynamic_configs": "dynamic config",
    "experiments": "experiment",
    "layers": "layer",
}
# Stale reasons under which a gate's checks pass for everyone: once the gate is gone
# the check should become `true` (every other gate's becomes `false`).
_PASSING_REASONS = frozenset({"STALE_PROBABLY_LAUNCHED", "STALE_ALL_TRUE"})


class FlagObject(NamedTuple):
    """One gate, dynamic config, experiment or layer of the project (a tuple: a snapshot
    of 10,000 objects builds ten times faster than with a frozen dataclass).

    Attributes:
        kind: Its collection (``gates``, ``dynamic_configs``, ``experiments``, ``layers``).
        id: The id code passes to the SDK.
        status: The API's status (``Launched``, ``Archived``, ``active``, …; "" if none).
        type_reason: A gate's stale reason (``STALE_PROBABLY_LAUNCHED``, …; "" if none).
    """

    kind: str
    id: str
    status: str = ""
    type_reason: str = ""

    @property
    def label(self) -> str:
        """``gate checkout_one_click``."""
        return f"{KIND_LABELS[self.kind]} {self.id}"

    @property
    def archived(self) -> bool:
        """Archived: the SDKs no longer serve it, so its checks return the default."""
        return self.status.lower() == "archived"

    @property
    def hint(self) -> str:
        """What a check of it should become once it is gone (a hint; code is never rewritten).

        A gate the API classifies as probably launched (or one that is launched) passes
        everyone: its checks become ``true``; any other gate's become ``false``. A config,
        experiment or layer is read for values: the code's defaults.
        """
        if self.kind != "gates":
            return "default values"
        if self.type_reason in _PASSING_REASONS or (
            not self.type_reason and self.status == "Launched"
        ):
            return "true"
        return "false"


def objects_from_collections(
    collections: Mapping[str, Any], kinds: Iterable[str] = KINDS
) -> list[FlagObject]:
    """The objects of ``kinds`` in a snapshot's ``collections`` (``{kind: {id: object}}``)."""
    out: list[FlagObject] = []
    for kind in kinds:
        objects = collections.get(kind) or {}
        items = objects.values() if isinstance(objects, Mapping) else objects
        for obj in items:  # JSON objects: plain dicts (checked by type: 10,000 of them)
            object_id = obj.get("id") if type(obj) is dict else None
            if type(object_id) is not str:
                continue
            status = obj.get("status")
            if type(status) is not str:
                status = "Archived" if obj.get("isArchived") else ""
            reason = obj.get("typeReason")
            out.append(FlagObject(kind, object_id, status, reason if type(reason) is str else ""))
    return out


def read_snapshot(path: Path, kinds: Iterable[str] = KINDS) -> list[FlagObject]:
    """The objects of ``kinds`` in a ``bulkops snapshot`` file.

    Raises:
        InputError: the file is missing, not UTF-8 (naming the line and byte offset), not
            JSON, or not a snapshot (names the file).
    """
    try:
        document = json.loads(read_text(path, what="snapshot"))
    except ValueError as exc:
        raise InputError(f"snapshot {path}: not JSON ({exc})") from exc
    collections = document.get("collections") if isinstance(document, dict) else None
    if not isinstance(collections, dict):
        raise InputError(
            f"snapshot {path}: no 'collections' object; is it a `bulkops snapshot` file?"
        )
    return objects_from_collections(collections, kinds)
