"""Reviews on the engine's side: which planned writes will open one, what the reviews
a run opens say, and how a run finds them again.

The rule itself (when a change needs review) is the API's, in
:mod:`bulkops.api.reviews`. Here:

* :func:`forecast` is the plan step every job goes through: it reads the project's
  review settings, environments and teams, and the review requirement of each object
  the plan writes, and marks the mutations that will open a review
  (:attr:`~bulkops.engine.mutations.Mutation.review`), so the plan can say "162
  archives, 12 of them will need review".
* :class:`ReviewNotes` writes the description of every review a run opens: the job,
  the run id, the checkpoint, the user's ``--review-description`` words and a
  **marker** naming the mutation's key, the change (a digest of its request and its
  after-state) and the plan. The marker is how a review is found again when the answer
  that named it was lost (a crash, a 5xx): a resume, or another run of the same change,
  never submits a change already under review.
* :class:`ReviewLookup` reads an object's reviews (``GET /{kind}/{id}/reviews``, and
  the object's ``activeReview`` where a service has no list).
"""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, NamedTuple

import anyio

from ..api.client import ConsoleClient
from ..api.paths import id_from_name
from ..api.reviews import (
    REVIEWABLE_KINDS,
    ReviewStatus,
    ReviewTarget,
    environments_requiring_review,
    needs_review,
    object_requires_review,
    override_environments,
    review_target,
    rule_environments,
)
from ..errors import ApiError, NotFound
from .mutations import Mutation

__all__ = [
    "Forecast",
    "Review",
    "ReviewLookup",
    "ReviewNotes",
    "forecast",
    "marker",
    "review_of",
    "touched_environments",
]

# Objects of one kind read one by one up to this many; more are read as a list.
_ONE_BY_ONE = 32

_READS_AT_ONCE = 8
_MARKER = re.compile(r"\[bulkops (?P<key>.+?) change=(?P<change>[0-9a-f]+) plan=(?P<plan>\w+)\]")


def _digest(m: Mutation) -> str:
    text = json.dumps(
        [m.method, m.path, m.after.model_dump(mode="json")], sort_keys=True, default=str
    )
    return hashlib.sha256(text.encode()).hexdigest()[:12]


def marker(m: Mutation, plan_id: str) -> str:
    """What the description of a review ``m`` opens carries to be found again."""
    return f"[bulkops {m.key} change={_digest(m)} plan={plan_id[:12]}]"


@dataclass(frozen=True)
class Review:
    """A review as a run sees it.

    Attributes:
        id: Its ``review_id``.
        status: Its ``status`` (:class:`~bulkops.api.reviews.ReviewStatus`).
        description: What it says.
        reason: Why it was rejected (or approved), when the service says.
    """

    id: str
    status: str
    description: str = ""
    reason: str | None = None

    @property
    def open(self) -> bool:
        """Still holding its change (pending or approved)."""
        return ReviewStatus.is_open(self.status)

    @classmethod
    def parse(cls, data: Any) -> Review | None:
        """From a review object (``review_id``…) or an ``activeReview`` (``reviewID``…)."""
        if not isinstance(data, Mapping):
            return None
        review_id = data.get("review_id") or data.get("reviewID")
        if not review_id:
            return None
        reason = data.get("reason")
        return cls(
            id=str(review_id),
            status=str(data.get("status") or data.get("reviewStatus") or ""),
            description=str(data.get("description") or ""),
            reason=str(reason) if reason else None,
        )

    def matches(self, m: Mutation) -> bool:
        """Whether this review holds the same change as ``m`` (whoever's run opened it)."""
        found = _MARKER.search(self.description)
        return found is not None and found["key"] == m.key and found["change"] == _digest(m)

    def from_plan(self, plan_id: str) -> bool:
        """Whether a run of the plan ``plan_id`` opened it."""
        found = _MARKER.search(self.description)
        return found is not None and found["plan"] == plan_id[:12]


def review_of(data: Any) -> Review | None:
    """The review an answer's ``data`` shows as ``activeReview`` (an object answer)."""
    if isinstance(data, Mapping):
        return Review.parse(data.get("activeReview"))
    return None


@dataclass(frozen=True)
class ReviewNotes:
    """What the reviews of one run say (the description is the reviewer's only context).

    Attributes:
        job: The plan's job.
        plan_id: The plan's id (in the marker).
        run_id: This run's id.
        checkpoint: The checkpoint's path.
        note: The user's words (``--review-description``).
    """

    job: str
    plan_id: str
    run_id: str
    checkpoint: str = ""
    note: str = ""

    def description(self, m: Mutation) -> str:
        """The description of the review ``m`` may open."""
        where = f"run {self.run_id}" + (
            f", checkpoint {self.checkpoint}" if self.checkpoint else ""
        )
        text = f"bulkops {self.job}: {m.action} {m.object} ({where}) {marker(m, self.plan_id)}"
        return f"{self.note.strip()} — {text}" if self.note.strip() else text


class ReviewLookup:
    """Reads the reviews of the objects a run writes."""

    def __init__(self, client: ConsoleClient) -> None:
        self.client = client

    async def find(self, target: ReviewTarget, m: Mutation) -> tuple[Review | None, Review | None]:
        """The newest review holding ``m``'s change, and the open review of the object
        (ours or not), either None.

        Raises:
            ApiError: the reviews could not be read.
        """
        reviews = await self.reviews(target)
        mine = next((r for r in reviews if r.matches(m)), None)
        held = next((r for r in reviews if r.open), None)
        return mine, held

    async def reviews(self, target: ReviewTarget) -> list[Review]:
        """The object's reviews, newest first (its ``activeReview`` alone where the
        service lists none); empty when the object is gone."""
        try:
            items = [item async for item in self.client.paginate(target.reviews_path())]
        except NotFound:
            try:
                data = await self.client.data("GET", target.path)
            except NotFound:
                return []
            active = review_of(data)
            return [active] if active is not None else []
        return [r for r in map(Review.parse, items) if r is not None]

    async def get(self, target: ReviewTarget, review_id: str) -> Review | None:
        """One review, None when it no longer exists.

        Raises:
            ApiError: it could not be read.
        """
        try:
            return Review.parse(await self.client.data("GET", target.reviews_path(review_id)))
        except NotFound:
            for review in await self.reviews(target):
                if review.id == review_id:
                    return review
            return None


# -- the plan step --------------------------------------------------------------------------


def touched_environments(m: Mutation) -> frozenset[str] | None:
    """The environments ``m``'s change touches (None: all): see :mod:`bulkops.api.reviews`."""
    if m.path.rstrip("/").endswith("/overrides"):
        return override_environments(m.body)
    new = m.body.get("rules") if isinstance(m.body, Mapping) else None
    old = m.before_image.get("rules") if isinstance(m.before_image, Mapping) else None
    if isinstance(new, list) and isinstance(old, list) and set(m.body) == {"rules"}:
        return rule_environments(old, new)
    return None


@dataclass
class Forecast:
    """What the plan step learned about reviews.

    Attributes:
        mutations: The plan's mutations, those that will open a review marked.
        notes: Lines for the plan's report (settings that could not be read, objects
            with a review already in progress).
    """

    mutations: list[Mutation]
    notes: list[str] = field(default_factory=list)

    @property
    def reviewed(self) -> int:
        """How many mutations will open a review."""
        return sum(1 for m in self.mutations if m.review)


async def _data(client: ConsoleClient, path: str) -> Any:
    return await client.data("GET", path)


class _Facts(NamedTuple):
    """What the plan step keeps of an object (50,000 of them stay small)."""

    required: bool  # the object itself requires review
    teams: tuple[str, ...]  # its team's id and name
    active: Review | None  # its activeReview

    @classmethod
    def of(cls, obj: Any) -> _Facts | None:
        if not isinstance(obj, Mapping):
            return None
        return cls(
            object_requires_review(obj, project=False),
            tuple(str(v) for v in (obj.get("teamID"), obj.get("team")) if v),
            review_of(obj),
        )

    def requires_review(self, *, teams: set[str]) -> bool:
        """Whether changes need review because the object or its team (one of ``teams``,
        the ids and names of the teams with ``requireReviews``) requires it."""
        return self.required or not teams.isdisjoint(self.teams)


async def _objects(
    client: ConsoleClient, targets: Iterable[ReviewTarget]
) -> dict[ReviewTarget, _Facts | None]:
    """What each target object says about reviews (None when it does not exist yet)."""
    by_kind: dict[str, list[ReviewTarget]] = {}
    for target in dict.fromkeys(targets):
        by_kind.setdefault(target.kind, []).append(target)
    found: dict[ReviewTarget, _Facts | None] = {}
    for kind, wanted in by_kind.items():
        if len(wanted) > _ONE_BY_ONE:
            ids = {t.object_id for t in wanted}
            archived = True if kind in ("gates", "dynamic_configs") else None
            async for obj in client.collection(kind).items(includeArchived=archived):
                if isinstance(obj, dict) and obj.get("id") in ids:
                    found[ReviewTarget(kind, str(obj["id"]))] = _Facts.of(obj)
            continue
        limit = anyio.Semaphore(_READS_AT_ONCE)
        async with anyio.create_task_group() as tg:
            for target in wanted:
                tg.start_soon(_read_into, found, client, target, limit)
    return found


async def _read_into(
    found: dict[ReviewTarget, _Facts | None],
    client: ConsoleClient,
    target: ReviewTarget,
    limit: anyio.Semaphore,
) -> None:
    async with limit:
        try:
            found[target] = _Facts.of(await _data(client, target.path))
        except NotFound:
            found[target] = None


def _created(mutations: Sequence[Mutation]) -> dict[ReviewTarget, _Facts]:
    """What the creates of a plan say of the objects they make (a later write to one of
    them, such as a launch after a create, is forecast from its create body)."""
    found: dict[ReviewTarget, _Facts] = {}
    for m in mutations:
        kind = m.path.strip("/")
        if m.method != "POST" or kind not in REVIEWABLE_KINDS or not isinstance(m.body, Mapping):
            continue
        name = m.body.get("id") or (
            id_from_name(str(m.body["name"])) if m.body.get("name") else None
        )
        facts = _Facts.of(m.body)
        if name and facts is not None:
            found[ReviewTarget(kind, str(name))] = facts
    return found


async def forecast(client: ConsoleClient, mutations: Sequence[Mutation]) -> Forecast:
    """Mark the mutations that will open a review, from the settings as they are now.

    Reads ``/settings/reviews``, ``/environments``, the teams (when an object has one)
    and each object written (one by one, or as a list when there are many). A setting
    that cannot be read is assumed off and said so: a review the plan did not foresee
    is still recognised from the answer when the run opens it. Without the review
    header (``client.settings.respect_reviews`` off) nothing opens a review, and
    nothing is read.
    """
    targets = {m.key: review_target(m.path) for m in mutations}
    if not client.settings.respect_reviews or not any(targets.values()):
        return Forecast(list(mutations))
    notes: list[str] = []
    try:
        settings = await _data(client, "/settings/reviews")
        project = bool(isinstance(settings, Mapping) and settings.get("is_config_review_required"))
    except ApiError as exc:
        project = False
        notes.append(f"reviews: the project's review settings could not be read ({exc.message})")
    try:
        envs = await _data(client, "/environments")
        listed = envs.get("environments") if isinstance(envs, Mapping) else None
        requiring = environments_requiring_review(e for e in listed or () if isinstance(e, Mapping))
    except ApiError as exc:
        requiring = frozenset({"production"})
        notes.append(f"reviews: the environments could not be read ({exc.message})")
    objects = await _objects(client, (t for t in targets.values() if t is not None))
    for made, said in _created(mutations).items():
        if objects.get(made) is None:  # made by this plan: its create body says
            objects[made] = said
    teams: set[str] = set()
    if not project and any(o is not None and o.teams for o in objects.values()):
        async for team in client.teams.items():
            if team.get("requireReviews"):
                teams.update(str(v) for v in (team.get("id"), team.get("name")) if v)
    out: list[Mutation] = []
    for m in mutations:
        target = targets[m.key]
        facts = objects.get(target) if target is not None else None
        required = project or (facts is not None and facts.requires_review(teams=teams))
        review = (
            target is not None and required and needs_review(touched_environments(m), requiring)
        )
        out.append(m.model_copy(update={"review": True}) if review and not m.review else m)
    held = sorted(
        f"{t.kind}/{t.object_id} ({f.active.id})"
        for t, f in objects.items()
        if f is not None and f.active is not None and f.active.open
    )
    if held:
        notes.append(
            f"reviews: {len(held)} object(s) already have a review in progress: "
            + ", ".join(held[:10])
            + (" …" if len(held) > 10 else "")
            + "; a change of this plan already under review is picked up, another change "
            "of such an object is reported as a conflict and not sent"
        )
    return Forecast(out, notes)
