"""Reading a project for copy-project: its objects by kind, environments, target apps,
teams, overrides and id lists, a few reads at a time."""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

import anyio

from bulkops.api.client import ConsoleClient

from .bodies import ID_LIST_CHUNK

__all__ = ["READ_CONCURRENCY", "Project", "run_all"]

READ_CONCURRENCY = 8
BY_NAME = ("tags", "unit_id_types")  # kinds addressed by name, not id


async def run_all(calls: Sequence[Callable[[], Awaitable[None]]]) -> None:
    """Run ``calls`` with at most READ_CONCURRENCY at a time; the first error is raised."""
    pending = iter(calls)
    errors: list[BaseException] = []

    async def worker() -> None:
        for call in pending:
            if errors:
                return
            try:
                await call()
            except Exception as exc:  # re-raised below, outside the task group
                errors.append(exc)
                return

    async with anyio.create_task_group() as tg:
        for _ in range(min(READ_CONCURRENCY, len(calls))):
            tg.start_soon(worker)
    if errors:
        raise errors[0]


@dataclass
class Project:
    """What was read of one project."""

    client: ConsoleClient
    objects: dict[str, dict[str, dict[str, Any]]] = field(default_factory=dict)
    environments: list[str] = field(default_factory=list)
    target_apps: set[str] = field(default_factory=set)
    teams: dict[str, str] | None = None
    overrides: dict[tuple[str, str], dict[str, Any]] = field(default_factory=dict)
    id_lists: dict[str, list[str]] = field(default_factory=dict)

    def get(self, kind: str, key: str) -> dict[str, Any] | None:
        return self.objects.get(kind, {}).get(key)

    async def read(self, kinds: Iterable[str], *, target_apps: bool = False) -> None:
        async def load(kind: str) -> None:
            archived = True if kind in ("gates", "dynamic_configs") else None
            key = "name" if kind in BY_NAME else "id"
            items = self.client.collection(kind).items(includeArchived=archived)
            self.objects[kind] = {
                str(i[key]): i
                async for i in items
                if isinstance(i, dict) and i.get(key) is not None
            }

        async def environments() -> None:
            self.environments = await self.client.environments.names()

        async def apps() -> None:
            async for app in self.client.target_apps.items():
                self.target_apps.update(str(app[k]) for k in ("id", "name") if app.get(k))

        calls: list[Callable[[], Awaitable[None]]] = [
            *(lambda k=k: load(k) for k in kinds),
            environments,
        ]
        if target_apps:
            calls.append(apps)
        await run_all(calls)

    async def read_teams(self) -> None:
        if self.teams is None:
            self.teams = {
                str(t["name"]): str(t.get("id"))
                async for t in self.client.teams.items()
                if t.get("name")
            }

    async def read_overrides(self, items: Iterable[tuple[str, str]]) -> None:
        todo = list(dict.fromkeys(i for i in items if i not in self.overrides))

        async def one(kind: str, object_id: str) -> None:
            data = await self.client.collection(kind).fetch(object_id, "overrides")
            self.overrides[(kind, object_id)] = data if isinstance(data, dict) else {}

        await run_all([lambda k=k, i=i: one(k, i) for k, i in todo])  # type: ignore[misc]

    async def read_id_lists(self, segment_ids: Iterable[str]) -> None:
        todo = [s for s in dict.fromkeys(segment_ids) if s not in self.id_lists]

        async def one(segment_id: str) -> None:
            ids = self.client.segments.get_id_list(segment_id, limit=ID_LIST_CHUNK)
            self.id_lists[segment_id] = [i async for i in ids]

        await run_all([lambda s=s: one(s) for s in todo])  # type: ignore[misc]
