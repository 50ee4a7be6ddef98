"""Reviews as the Console API has them: what can be reviewed, when a change needs one.

One place for the service's rules, shared by the emulator (which enforces them) and the
engine (which predicts them when it plans, and follows reviews when it runs). From
docs.statsig.com ("Experiment Reviews", "Setting up Reviews") and the Console API
reference (Get/Update Reviews Settings, Commit/Get/List Gate Review):

* A change **needs review** when its object requires review *and* the change touches an
  environment that requires review. An object requires review when the project does
  (``/settings/reviews`` ``is_config_review_required``), its team does
  (``requireReviews``) or the object itself does (``reviewSettings.requiredReview``);
  any one is enough. An environment requires review when it says so
  (``requiresReview``); production always does.
* With ``x-respect-review-settings: true`` such a mutation is not applied: it opens a
  **review** (``activeReview {reviewID, reviewStatus, description}`` on the object;
  ``GET /{kind}/{id}/reviews`` lists it), which people approve in the console and
  ``PUT /{kind}/{id}/reviews/{reviewID}/commit`` then applies, once. Without the header
  a Console key's mutation applies directly.
* Reviews exist for gates, dynamic configs, experiments and segments (the kinds with a
  commit endpoint).

Which environments a change *touches* is not documented; our reading
(:func:`rule_environments`, :func:`override_environments`): a change of rules touches
the environments of the rules it adds, removes, changes or moves (a rule for every
environment touches them all); an override change touches the environments its
entries name (an entry for every environment, or an id list without one, touches them
all); any other change (archive, enable, metadata…) touches every environment.
"""

from __future__ import annotations

import enum
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any
from urllib.parse import quote, unquote

from .paths import encode_id

__all__ = [
    "DESCRIPTION_HEADER",
    "RESPECT_HEADER",
    "REVIEWABLE_KINDS",
    "ReviewStatus",
    "ReviewTarget",
    "decode_description",
    "encode_description",
    "environments_requiring_review",
    "needs_review",
    "object_requires_review",
    "override_environments",
    "review_target",
    "rule_environments",
]

RESPECT_HEADER = "x-respect-review-settings"
# Our choice (the API documents no way to name the review a mutation opens): the
# description of that review, percent-encoded where a header cannot carry a character.
DESCRIPTION_HEADER = "x-review-description"
REVIEWABLE_KINDS = ("gates", "dynamic_configs", "experiments", "segments")

# Characters a header value carries as they are (printable ASCII but "%").
_HEADER_SAFE = "".join(chr(c) for c in range(0x20, 0x7F) if chr(c) != "%")


class ReviewStatus(enum.StrEnum):
    """A review's ``status`` (the values the API reference lists)."""

    PENDING = "pending"
    ACCEPTED = "accepted"
    REJECTED = "rejected"
    COMMITTED = "committed"
    CHANGES_REQUESTED = "changes_requested"
    PENDING_WEBHOOK_VALIDATION = "pending_webhook_validation"
    FAILED_WEBHOOK_VALIDATION = "failed_webhook_validation"
    APPROVED_WEBHOOK_VALIDATION = "approved_webhook_validation"

    @classmethod
    def is_open(cls, status: Any) -> bool:
        """Whether a review in ``status`` still holds its change (not rejected or
        committed); a status this tool does not know counts as open."""
        return status not in (cls.REJECTED, cls.COMMITTED)

    @classmethod
    def committable(cls, status: Any) -> bool:
        """Whether a review in ``status`` is approved and may be committed."""
        return status in (cls.ACCEPTED, cls.APPROVED_WEBHOOK_VALIDATION)


@dataclass(frozen=True)
class ReviewTarget:
    """The reviewable object a request changes: ``/{kind}/{id}``.

    Attributes:
        kind: One of :data:`REVIEWABLE_KINDS`.
        object_id: The object's id (decoded).
    """

    kind: str
    object_id: str

    @property
    def path(self) -> str:
        """The object's path (``GET`` shows its ``activeReview``)."""
        return f"/{self.kind}/{encode_id(self.object_id)}"

    def reviews_path(self, review_id: str | None = None) -> str:
        """``/{kind}/{id}/reviews`` (the list), or one review's path."""
        base = f"{self.path}/reviews"
        return base if review_id is None else f"{base}/{encode_id(review_id)}"

    def commit_path(self, review_id: str) -> str:
        """``PUT`` here commits the approved review ``review_id``."""
        return f"{self.reviews_path(review_id)}/commit"


def review_target(path: str) -> ReviewTarget | None:
    """The reviewable object a write to ``path`` (relative to the API root) changes, or
    None: another kind, a create (``POST /gates``), or a review endpoint itself."""
    parts = path.split("?", 1)[0].strip("/").split("/")
    if len(parts) < 2 or parts[0] not in REVIEWABLE_KINDS or not parts[1]:
        return None
    if len(parts) > 2 and parts[2] == "reviews":
        return None
    return ReviewTarget(parts[0], unquote(parts[1]))


def encode_description(text: str) -> str:
    """``text`` as a header value (percent-encoding what a header cannot carry)."""
    return quote(" ".join(text.split()) if "\n" in text else text, safe=_HEADER_SAFE)


def decode_description(value: str) -> str:
    """The description a :data:`DESCRIPTION_HEADER` value carries."""
    return unquote(value)


def environments_requiring_review(environments: Iterable[Mapping[str, Any]]) -> frozenset[str]:
    """The names of the environments that require review (production always does)."""
    return frozenset(
        str(env.get("name"))
        for env in environments
        if env.get("requiresReview") or env.get("isProduction")
    )


def object_requires_review(
    obj: Mapping[str, Any] | None, *, project: bool, teams: Iterable[str] = ()
) -> bool:
    """Whether changes to ``obj`` need review: the project requires it, the object
    does (``reviewSettings.requiredReview``), or its team is in ``teams`` (the ids and
    names of the teams with ``requireReviews``)."""
    if project:
        return True
    if not isinstance(obj, Mapping):
        return False
    settings = obj.get("reviewSettings")
    if isinstance(settings, Mapping) and settings.get("requiredReview") is True:
        return True
    wanted = set(teams)
    return bool(wanted) and (obj.get("teamID") in wanted or obj.get("team") in wanted)


def needs_review(touched: frozenset[str] | None, requiring: frozenset[str]) -> bool:
    """Whether a change touching ``touched`` (None: every environment) reaches one of
    the environments that require review."""
    if not requiring:
        return False
    return touched is None or bool(touched & requiring)


def _identity(rule: Mapping[str, Any]) -> Any:
    return rule.get("baseID") or rule.get("id") or rule.get("name")


def _environments(rule: Mapping[str, Any]) -> frozenset[str] | None:
    envs = rule.get("environments")
    return None if envs is None else frozenset(str(e) for e in envs)


def _plain(rule: Mapping[str, Any]) -> dict[str, Any]:
    # Fields the server owns change without a change of meaning (a rule's id suffix
    # follows its pass percentage, which is compared itself).
    return {k: v for k, v in rule.items() if k not in ("id", "baseID")}


def rule_environments(
    old: Sequence[Mapping[str, Any]], new: Sequence[Mapping[str, Any]]
) -> frozenset[str] | None:
    """The environments a change of a rule list from ``old`` to ``new`` touches (None:
    all): those of every rule added, removed, changed or moved to another place."""
    before = {_identity(r): r for r in old if isinstance(r, Mapping)}
    after = {_identity(r): r for r in new if isinstance(r, Mapping)}
    order_old = [k for k in before if k in after]
    order_new = [k for k in after if k in before]
    touched: set[str] = set()
    for key in before.keys() | after.keys():
        a, b = before.get(key), after.get(key)
        moved = key in order_old and order_old.index(key) != order_new.index(key)
        if a is not None and b is not None and _plain(a) == _plain(b) and not moved:
            continue
        for rule in (a, b):
            if rule is None:
                continue
            envs = _environments(rule)
            if envs is None:
                return None
            touched |= envs
    return frozenset(touched)


# Top-level id lists of gate and holdout overrides (``UpdateOverridesContractDto``):
# they apply in every environment.
_EVERYWHERE_LISTS = ("passingUserIDs", "failingUserIDs", "passingCustomIDs", "failingCustomIDs")


def override_environments(body: Any) -> frozenset[str] | None:
    """The environments an override change with this body touches (None: all).

    Entries that name an ``environment`` touch it; an entry without one, a top-level
    id list, or anything this cannot read touches every environment.
    """
    if not isinstance(body, Mapping):
        return None
    if any(body.get(name) for name in _EVERYWHERE_LISTS):
        return None
    touched: set[str] = set()
    found = False
    for value in body.values():
        if not isinstance(value, list):
            continue
        for entry in value:
            if not isinstance(entry, Mapping):
                continue
            found = True
            env = entry.get("environment")
            if env is None:
                return None
            touched.add(str(env))
    return frozenset(touched) if found else None
