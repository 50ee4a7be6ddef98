"""The emulator's in-memory state: projects, keys, quotas, faults, logs.

Objects are stored as plain JSON dicts, exactly as the API returns them, keyed by
id in insertion order. A project snapshot (the ``--seed FILE.json`` format, and
what ``bulkops snapshot`` writes) is :meth:`Project.to_snapshot` /
:meth:`Project.from_snapshot`::

    {
      "format": "bulkops-snapshot/1",
      "project": {"id": "...", "name": "..."},
      "keys": [{"key": "console-…", "scopes": ["omni_read_write"], "description": "…"}],
      "collections": {"gates": {"<id>": {…}}, "dynamic_configs": {…}, …},
      "overrides": {"gates": {"<id>": {…}}, "experiments": {…}, "layers": {…}, "holdouts": {…}},
      "id_lists": {"<segment id>": ["id1", "id2", …]},
      "environments": [{"name": "production", …}],
      "settings": {…}
    }
"""

from __future__ import annotations

import copy
import itertools
import json
import random
import secrets
import string
import time
from collections import deque
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any

from ..engine.quota import DEFAULT_ID_LIST_QUOTA, DEFAULT_QUOTA, ID_LIST_CLASS, QuotaWindow
from ..inputs import FileKind, read_text, require_kind

__all__ = [
    "COLLECTIONS",
    "SNAPSHOT_FORMAT",
    "DEFAULT_ENVIRONMENTS",
    "EmulatorState",
    "Faults",
    "KeyInfo",
    "Project",
    "Quota",
    "QuotaWindow",
    "Review",
    "new_base_id",
]

SNAPSHOT_FORMAT = "bulkops-snapshot/1"

# Every collection a project holds; handler modules own their entries.
COLLECTIONS = (
    "gates",
    "dynamic_configs",
    "segments",
    "experiments",
    "layers",
    "holdouts",
    "tags",
    "target_apps",
    "unit_id_types",
    "keys",
    "users",
    "teams",
    "alerts",
    "assignment_sources",
    "entity_properties",
    "ingestions",
    "ingestion_runs",
)

DEFAULT_ENVIRONMENTS: list[dict[str, Any]] = [
    {
        "name": "development",
        "id": "0.1",
        "isProduction": False,
        "requiresReview": False,
        "requiresReleasePipeline": False,
    },
    {
        "name": "staging",
        "id": "0.2",
        "isProduction": False,
        "requiresReview": False,
        "requiresReleasePipeline": False,
    },
    {
        "name": "production",
        "id": "0.3",
        "isProduction": True,
        "requiresReview": False,
        "requiresReleasePipeline": False,
    },
]

_BASE62 = string.ascii_letters + string.digits


def new_base_id(rng: random.Random | None = None) -> str:
    """A 22-character base62 rule id, like the service's ``baseID`` (seeded when ``rng`` is given)."""
    if rng is not None:
        return "".join(rng.choice(_BASE62) for _ in range(22))
    return "".join(secrets.choice(_BASE62) for _ in range(22))


class Quota:
    """Sliding-window attempt logs for one (project, quota class); rejected attempts count."""

    def __init__(self, windows: Iterable[QuotaWindow], time_scale: float) -> None:
        self.windows = tuple(windows)
        self.time_scale = time_scale
        self._log: deque[float] = deque()
        self._longest = max((w.seconds for w in self.windows), default=0) / time_scale

    def attempt(self, now: float) -> float | None:
        """Count one attempt at ``now``; return None if admitted, else seconds until one would be."""
        log = self._log
        while log and log[0] <= now - self._longest:
            log.popleft()
        wait: float | None = None
        for window in self.windows:
            span = window.seconds / self.time_scale
            # The log is sorted: if the limit-th most recent attempt is inside the
            # window, the window already holds `limit` attempts.
            if len(log) >= window.limit:
                oldest = log[len(log) - window.limit]
                if oldest > now - span:
                    wait = max(wait or 0.0, oldest + span - now)
        log.append(now)  # every attempt counts, the rejected one too
        return wait


@dataclass
class Faults:
    """Fault rates (0..1) injected on mutations; drawn from a seeded RNG.

    ``500`` and ``reset`` split evenly into "before the change is applied" and
    "after it" (the client sees an error but the change happened).
    """

    rate_429: float = 0.0
    rate_500: float = 0.0
    rate_reset: float = 0.0
    rate_hang: float = 0.0
    retry_after_share: float = 0.5
    hang_seconds: float = 60.0
    on_reads: bool = False

    @classmethod
    def parse(cls, text: str) -> Faults:
        """Parse ``429=0.2,500=0.05,reset=0.02,hang=0.01``."""
        faults = cls()
        names = {"429": "rate_429", "500": "rate_500", "reset": "rate_reset", "hang": "rate_hang"}
        for part in filter(None, (p.strip() for p in text.split(","))):
            name, sep, value = (s.strip() for s in part.partition("="))
            if name not in names:
                raise ValueError(
                    f"unknown fault {name!r} in {text!r}: expected NAME=RATE with NAME one of "
                    f"{', '.join(names)}"
                )
            try:
                rate = float(value) if sep else None
            except ValueError:
                rate = None
            # ``not 0 <= rate <= 1`` also rejects NaN.
            if rate is None or not 0 <= rate <= 1:
                raise ValueError(
                    f"fault rate for {name} must be a number between 0 and 1, got {value!r}"
                )
            setattr(faults, names[name], rate)
        if faults.rate_429 + faults.rate_500 + faults.rate_reset + faults.rate_hang > 1:
            raise ValueError("fault rates add up to more than 1")
        return faults

    @property
    def any(self) -> bool:
        return bool(self.rate_429 or self.rate_500 or self.rate_reset or self.rate_hang)


@dataclass
class Review:
    """A review a mutation opened (:mod:`~bulkops.emulator.handlers.reviews`).

    Attributes:
        id: The ``review_id``.
        kind, object_id: The object it changes.
        type: The kind of change (``archive``, ``update_rules``, …).
        description: What the author wrote (the mutation's ``x-review-description``).
        status: ``pending``, ``accepted``, ``rejected`` or ``committed``.
        created_ms: When it was opened.
        base: The object's scope (object, overrides, id list) when it was opened; a
            commit is refused once the object no longer shows it.
        proposal: The scope once the change is applied.
        entries: The audit-log entries of the change (logged again when committed).
        reason: Why it was approved or rejected, if anyone said.
    """

    id: str
    kind: str
    object_id: str
    type: str
    description: str
    created_ms: int
    base: dict[str, Any]
    proposal: dict[str, Any]
    entries: list[dict[str, Any]]
    status: str = "pending"
    reason: str | None = None

    def public(self) -> dict[str, Any]:
        """The review as the API shows it (snake_case; ``reason`` is our addition)."""
        stamp = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(self.created_ms / 1000))
        return {
            "review_id": self.id,
            "status": self.status,
            "type": self.type,
            "author": {"id": "console_api", "email": None},
            "reviewers": [],
            "description": self.description,
            "created_at": f"{stamp}.{self.created_ms % 1000:03d}Z",
            "reason": self.reason,
        }


@dataclass
class KeyInfo:
    """A console key: which project it opens, and whether it may write."""

    project_id: str
    read_only: bool = False


@dataclass
class Project:
    """One Statsig project: every collection, overrides, id lists, versions and audit log."""

    id: str
    name: str
    collections: dict[str, dict[str, dict[str, Any]]] = field(
        default_factory=lambda: {name: {} for name in COLLECTIONS}
    )
    overrides: dict[str, dict[str, dict[str, Any]]] = field(
        default_factory=lambda: {"gates": {}, "experiments": {}, "layers": {}, "holdouts": {}}
    )
    id_lists: dict[str, dict[str, None]] = field(default_factory=dict)
    versions: dict[str, dict[str, list[dict[str, Any]]]] = field(default_factory=dict)
    environments: list[dict[str, Any]] = field(
        default_factory=lambda: copy.deepcopy(DEFAULT_ENVIRONMENTS)
    )
    settings: dict[str, Any] = field(default_factory=dict)
    audit_log: list[dict[str, Any]] = field(default_factory=list)
    quotas: dict[str, Quota] = field(default_factory=dict)
    reviews: dict[str, Review] = field(default_factory=dict)
    _audit_seq: itertools.count[int] = field(default_factory=lambda: itertools.count(1))

    def store(self, kind: str) -> dict[str, dict[str, Any]]:
        """The collection ``kind`` (``gates``, ``segments``, …)."""
        return self.collections.setdefault(kind, {})

    def snapshot_version(self, kind: str, obj: dict[str, Any]) -> None:
        """Record ``obj`` (already at its new ``version``) in its version history."""
        self.versions.setdefault(kind, {}).setdefault(obj["id"], []).append(copy.deepcopy(obj))

    def audit(
        self,
        action_type: str,
        obj_id: str,
        name: str,
        *,
        changes: dict[str, Any] | None = None,
        now_ms: int | None = None,
        tags: list[str] | None = None,
    ) -> dict[str, Any]:
        """Append one audit-log entry for an applied change."""
        now_ms = now_ms if now_ms is not None else int(time.time() * 1000)
        stamp = time.gmtime(now_ms / 1000)
        entry = {
            "id": f"audit_{next(self._audit_seq)}",
            "name": name,
            "changeLog": f"{action_type} {obj_id}",
            "actionType": action_type,
            "date": time.strftime("%a %b %d %Y", stamp),
            "time": time.strftime("%H:%M:%S GMT+0000 (Coordinated Universal Time)", stamp),
            "timestamp": now_ms,
            "updatedBy": "CONSOLE API",
            "updatedByUserID": "console_api",
            "modifierEmail": None,
            "changes": changes or {},
            "tags": tags or [],
            "targetID": obj_id,
        }
        self.audit_log.append(entry)
        return entry

    def to_snapshot(self, keys: dict[str, KeyInfo]) -> dict[str, Any]:
        """This project in the snapshot/seed format (see the module docstring)."""
        return {
            "format": SNAPSHOT_FORMAT,
            "project": {"id": self.id, "name": self.name},
            "keys": [
                {"key": k, "scopes": ["omni_read_only" if info.read_only else "omni_read_write"]}
                for k, info in keys.items()
                if info.project_id == self.id
            ],
            "collections": {k: v for k, v in self.collections.items() if v},
            "overrides": {k: v for k, v in self.overrides.items() if v},
            "id_lists": {k: list(v) for k, v in self.id_lists.items()},
            "environments": self.environments,
            "settings": self.settings,
        }

    @classmethod
    def from_snapshot(cls, data: dict[str, Any]) -> tuple[Project, dict[str, KeyInfo]]:
        """Rebuild a project (and its keys) from a snapshot dict; raises ValueError if malformed."""
        if data.get("format") != SNAPSHOT_FORMAT:
            raise ValueError(
                f"not a bulkops snapshot: format is {data.get('format')!r}, expected {SNAPSHOT_FORMAT!r}"
            )
        meta = data.get("project") or {}
        if not meta.get("id"):
            raise ValueError("snapshot has no project.id")
        project = cls(id=str(meta["id"]), name=str(meta.get("name") or meta["id"]))
        for kind, objs in (data.get("collections") or {}).items():
            project.store(kind).update(copy.deepcopy(objs))
        for kind, objs in (data.get("overrides") or {}).items():
            project.overrides.setdefault(kind, {}).update(copy.deepcopy(objs))
        for seg, ids in (data.get("id_lists") or {}).items():
            project.id_lists[seg] = dict.fromkeys(ids)
        if data.get("environments"):
            project.environments = copy.deepcopy(data["environments"])
        project.settings = copy.deepcopy(data.get("settings") or {})
        keys = {
            str(k["key"]): KeyInfo(
                project.id, read_only="omni_read_write" not in (k.get("scopes") or [])
            )
            for k in data.get("keys") or []
        }
        return project, keys


@dataclass
class EmulatorState:
    """Everything the emulator knows. Tests build one and pass it to ``create_app``."""

    projects: dict[str, Project] = field(default_factory=dict)
    keys: dict[str, KeyInfo] = field(default_factory=dict)
    quota: tuple[QuotaWindow, ...] = DEFAULT_QUOTA
    id_list_quota: tuple[QuotaWindow, ...] = DEFAULT_ID_LIST_QUOTA
    quotas_enabled: bool = True
    time_scale: float = 1.0
    faults: Faults = field(default_factory=Faults)
    fault_seed: int | None = None
    request_log: IO[str] | None = None
    # Every exchange, kept in memory when a test asks (conformance checks read it).
    capture: list[dict[str, Any]] | None = None
    clock: Callable[[], float] = time.monotonic
    wall_ms: Callable[[], int] = field(default=lambda: int(time.time() * 1000))
    review_seq: itertools.count[int] = field(default_factory=lambda: itertools.count(1))

    def add_project(self, project: Project, keys: dict[str, KeyInfo] | None = None) -> Project:
        """Register a project and its keys."""
        if project.id in self.projects:
            raise ValueError(f"duplicate project id {project.id!r}")
        self.projects[project.id] = project
        for key, info in (keys or {}).items():
            self.keys[key] = info
        return project

    def quota_for(self, project: Project, klass: str) -> Quota:
        """The sliding-window quota for one (project, class)."""
        quota = project.quotas.get(klass)
        if quota is None:
            windows = self.id_list_quota if klass == ID_LIST_CLASS else self.quota
            quota = project.quotas[klass] = Quota(windows, self.time_scale)
        return quota

    def log_request(self, entry: dict[str, Any]) -> None:
        """Write one JSON line to the request log (flushed, so a reader sees it at once)."""
        if self.request_log is not None:
            self.request_log.write(json.dumps(entry, separators=(",", ":")) + "\n")
            self.request_log.flush()

    def load_snapshot_file(self, path: Path) -> Project:
        """Add the project stored in a snapshot file (``--seed FILE.json``)."""
        require_kind(path, FileKind.SNAPSHOT)
        try:
            data = json.loads(read_text(path, what="snapshot"))
        except ValueError as exc:
            raise ValueError(f"{path}: cannot read snapshot: {exc}") from exc
        project, keys = Project.from_snapshot(data)
        return self.add_project(project, keys)
