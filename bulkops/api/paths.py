"""Ids and paths as the Console API spells them: one place for the service's rules.

Every path the tool builds goes through :func:`encode_id` (ids may hold spaces or
``:``), most of them through a :class:`Route`, which knows where one collection lives;
every path a user gives is taken relative to the API root by :func:`normalize_path`;
:func:`id_from_name` is the service's own id derivation.

Routes build paths without I/O, so a plan can name every request it will make, and
its undo, before anything is sent::

    GATES.path()                      # "/gates"
    GATES.path("a b", "archive")      # "/gates/a%20b/archive"
    SEGMENTS.path(s, "id_list", "reset")
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from urllib.parse import quote

from ..settings import API_PREFIX  # where the Console API lives on its host

__all__ = [
    "API_PREFIX",
    "DYNAMIC_CONFIGS",
    "EXPERIMENTS",
    "GATES",
    "HOLDOUTS",
    "LAYERS",
    "ROUTES",
    "SEGMENTS",
    "TAGS",
    "TARGET_APPS",
    "TEAMS",
    "UNIT_ID_TYPES",
    "WRITE_METHODS",
    "Route",
    "encode_id",
    "id_from_name",
    "normalize_path",
]

# The methods that change something (and spend the mutation quota); GET reads.
WRITE_METHODS = frozenset({"POST", "PUT", "PATCH", "DELETE"})


def encode_id(value: str) -> str:
    """Percent-encode an id for use as one path segment (ids may hold spaces or ``:``)."""
    return quote(str(value), safe="")


def normalize_path(path: str) -> str:
    """``path`` relative to the API root (a leading ``/console/v1`` is dropped)."""
    if path.startswith(API_PREFIX + "/") or path == API_PREFIX:
        path = path[len(API_PREFIX) :] or "/"
    return path


def id_from_name(name: str) -> str:
    """The service's id derivation from a display name ("A Gate" → ``a_gate``)."""
    return name.strip().lower().replace(" ", "_")


@dataclass(frozen=True)
class Route:
    """Where one collection lives in the API.

    Attributes:
        root: The collection's path (list and create), e.g. ``/gates``.
        item: Where its objects live when that differs from ``root`` (the service
            lists assignment sources at ``…/assignment_sources`` but addresses one at
            ``…/assignment_source/{name}``).
    """

    root: str
    item: str = ""

    def path(self, *parts: str) -> str:
        """The collection's path, or with ``parts`` an object's (``parts[0]`` is its id)
        and what lies under it; every part is percent-encoded."""
        if not parts:
            return self.root
        return "/".join([self.item or self.root, *(encode_id(p) for p in parts)])


GATES = Route("/gates")
DYNAMIC_CONFIGS = Route("/dynamic_configs")
SEGMENTS = Route("/segments")
EXPERIMENTS = Route("/experiments")
LAYERS = Route("/layers")
HOLDOUTS = Route("/holdouts")
TAGS = Route("/tags")
TARGET_APPS = Route("/target_app")
UNIT_ID_TYPES = Route("/unit_id_types")
TEAMS = Route("/users/teams")

ROUTES: Mapping[str, Route] = {
    "gates": GATES,
    "dynamic_configs": DYNAMIC_CONFIGS,
    "segments": SEGMENTS,
    "experiments": EXPERIMENTS,
    "layers": LAYERS,
    "holdouts": HOLDOUTS,
    "tags": TAGS,
    "target_apps": TARGET_APPS,
    "unit_id_types": UNIT_ID_TYPES,
    "teams": TEAMS,
}
"""The routes of the collections jobs work on, by the client attribute that reads them
(``ROUTES["gates"]`` is where ``client.gates`` reads)."""
