"""Users and teams: the spec's "Users" group (``/users``, ``/users/invite``, ``/users/teams``)."""

from __future__ import annotations

from collections.abc import AsyncIterator, Sequence
from typing import Any

from ..models import Team, User
from ._base import Body, Resource, dump, encode_id

__all__ = ["Teams", "Users"]


class Users(Resource):
    """``/users``: the project's members."""

    async def list(self, *, limit: int | None = None) -> AsyncIterator[User]:
        """Yield every member, page by page."""
        async for item in self._client.paginate("/users", limit=limit):
            yield User.model_validate(item)

    async def get(self, email: str) -> User:
        """Read one member by e-mail (404 if not a member)."""
        return User.model_validate(await self._client.data("GET", f"/users/{encode_id(email)}"))

    async def update(
        self,
        email: str,
        *,
        role: str | None = None,
        first_name: str | None = None,
        last_name: str | None = None,
    ) -> User:
        """``POST /users/{email}``: change a member's role and/or names.

        ``role`` is ``admin``, ``member`` or ``read_only``; fields left as None are
        not sent.
        """
        body = {
            k: v
            for k, v in (("role", role), ("firstName", first_name), ("lastName", last_name))
            if v is not None
        }
        data = await self._client.data("POST", f"/users/{encode_id(email)}", json=body)
        return User.model_validate(data)

    async def invite(
        self, emails: Sequence[str], role: str, *, teams: Sequence[str] | None = None
    ) -> str:
        """``POST /users/invite``: invite people with ``role`` (no e-mail is sent).

        Returns:
            The server's message.
        """
        body: dict[str, Any] = {"role": role, "emails": list(emails)}
        if teams is not None:
            body["teams"] = list(teams)
        envelope = await self._client.request("POST", "/users/invite", json=body)
        return str((envelope or {}).get("message", ""))


class Teams(Resource):
    """``/users/teams``."""

    def _path(self, team_id: str) -> str:
        return f"/users/teams/{encode_id(team_id)}"

    async def list(self, *, limit: int | None = None) -> AsyncIterator[Team]:
        """Yield every team, page by page."""
        async for item in self._client.paginate("/users/teams", limit=limit):
            yield Team.model_validate(item)

    async def get(self, team_id: str) -> Team:
        """Read one team."""
        return Team.model_validate(await self._client.data("GET", self._path(team_id)))

    async def create(
        self,
        name: str,
        *,
        members: Sequence[str] = (),
        admins: Sequence[str] = (),
        description: str | None = None,
        change_team_configs: str = "anyone",
        review_approval: str = "anyone",
        **fields: Any,
    ) -> Team:
        """``POST /users/teams``: create a team of existing members (by e-mail).

        The spec requires every setting on create; the ones not given get the
        console's defaults (no default metrics or target apps, anyone may change
        the team's configs and approve reviews). ``fields`` adds any other body
        field (``defaultGateMetrics``, ``requireReviews``, …).
        """
        body: dict[str, Any] = {
            "name": name,
            "members": list(members),
            "admins": list(admins),
            "defaultGateMetrics": [],
            "defaultExperimentPrimaryMetrics": [],
            "defaultExperimentSecondaryMetrics": [],
            "defaultHoldoutMetrics": [],
            "changeTeamConfigs": change_team_configs,
            "reviewApproval": review_approval,
            "defaultTargetApplications": [],
        }
        if description is not None:
            body["description"] = description
        body.update(fields)
        return Team.model_validate(await self._client.data("POST", "/users/teams", json=body))

    async def update(self, team_id: str, body: Body) -> Team:
        """``PATCH /users/teams/{id}``: each given field *replaces* the current one.

        ``members``/``admins`` are lists of e-mails; to add someone, read the team
        first and send the whole list.
        """
        data = await self._client.data("PATCH", self._path(team_id), json=dump(body))
        return Team.model_validate(data)

    async def delete(self, team_id: str) -> None:
        """Delete a team."""
        await self._client.request("DELETE", self._path(team_id))
