"""Users and teams: the spec's "Users" group (``/users``, ``/users/invite``, ``/users/teams``)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, TypedDict, Unpack

from ..models import Team, User
from ..paths import TEAMS, Route
from ._base import Body, Collection, Listing, compact, dump, strings, wire

__all__ = ["Teams", "UserFields", "Users"]


class UserFields(TypedDict, total=False):
    """What a member update may change."""

    role: str | None
    first_name: str | None
    last_name: str | None


class Users(Listing[User]):
    """``/users``: the project's members, addressed by e-mail."""

    route = Route("/users")
    model = User

    async def get(self, email: str) -> User:
        """Read one member by e-mail (404 if not a member)."""
        return User.model_validate(await self.fetch(email))

    async def update(self, email: str, **fields: Unpack[UserFields]) -> User:
        """``POST /users/{email}``: change a member's ``role`` (``admin``, ``member`` or
        ``read_only``) and/or names; fields left as None are not sent."""
        return await self._model(User, "POST", self.path(email), compact(**wire(fields)))

    async def invite(
        self, emails: Sequence[str], role: str, *, teams: Sequence[str] | None = None
    ) -> str:
        """``POST /users/invite``: invite people with ``role`` (no e-mail is sent).

        Returns:
            The server's message.
        """
        body = {"role": role, "emails": strings(emails), **compact(teams=strings(teams))}
        envelope = await self._client.request("POST", self.path("invite"), json=body)
        return str((envelope or {}).get("message", ""))


class Teams(Collection[Team]):
    """``/users/teams``."""

    route = TEAMS
    model = Team

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
            "members": strings(members),
            "admins": strings(admins),
            "defaultGateMetrics": [],
            "defaultExperimentPrimaryMetrics": [],
            "defaultExperimentSecondaryMetrics": [],
            "defaultHoldoutMetrics": [],
            "changeTeamConfigs": change_team_configs,
            "reviewApproval": review_approval,
            "defaultTargetApplications": [],
            **compact(description=description),
            **fields,
        }
        return await self._model(Team, "POST", self.path(), body)

    async def update(self, team_id: str, body: Body) -> Team:
        """``PATCH /users/teams/{id}``: each given field *replaces* the current one.

        ``members``/``admins`` are lists of e-mails; to add someone, read the team
        first and send the whole list.
        """
        return await self._model(Team, "PATCH", self.path(team_id), dump(body))
