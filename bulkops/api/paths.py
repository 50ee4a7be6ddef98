"""Ids and paths as the Console API spells them: one place for the service's rules.

Every path the tool builds goes through :func:`encode_id` (ids may hold spaces or
``:``); every path a user gives is taken relative to the API root by
:func:`normalize_path`; :func:`id_from_name` is the service's own id derivation.
"""

from __future__ import annotations

from urllib.parse import quote

__all__ = ["API_PREFIX", "WRITE_METHODS", "encode_id", "id_from_name", "normalize_path"]

API_PREFIX = "/console/v1"
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
