"""Quota windows: "at most N attempts in any window of S seconds", shared by the tool and the emulator."""

from __future__ import annotations

import re
from dataclasses import dataclass

from ..api.paths import normalize_path

__all__ = [
    "DEFAULT_ID_LIST_QUOTA",
    "DEFAULT_QUOTA",
    "ID_LIST_CLASS",
    "MUTATION_CLASS",
    "QuotaWindow",
    "quota_class_for",
]

MUTATION_CLASS = "mutation"
ID_LIST_CLASS = "id_list"

# Segment id-list writes spend their own quota class.
_ID_LIST_PATH = re.compile(r"^/segments/[^/]+/(id_list(/reset)?|add_ids|remove_ids)$")


@dataclass(frozen=True)
class QuotaWindow:
    """At most ``limit`` attempts in any ``seconds``-long window (before time scaling)."""

    limit: int
    seconds: float

    @classmethod
    def parse(cls, text: str) -> QuotaWindow:
        """Parse ``100/10s``, ``900/15m`` or ``5000/1h``."""
        try:
            count, span = text.strip().split("/")
            unit = span[-1]
            mult = {"s": 1, "m": 60, "h": 3600}[unit] if unit in "smh" else 1
            number = float(span[:-1] if unit in "smh" else span)
            window = cls(int(count), number * mult)
        except (ValueError, KeyError, IndexError) as exc:
            raise ValueError(
                f"bad quota {text!r}: expected COUNT/SPAN like 100/10s or 900/15m"
            ) from exc
        if window.limit < 1 or window.seconds <= 0:
            raise ValueError(f"bad quota {text!r}: count and span must be positive")
        return window

    def __str__(self) -> str:
        return f"{self.limit}/{self.seconds:g}s"

    def scaled(self, time_scale: float) -> QuotaWindow:
        """The same window shrunk ``time_scale`` times (for rehearsals and tests)."""
        return QuotaWindow(self.limit, self.seconds / time_scale)


# The Console API's documented per-project mutation quota, and the segment id-list quota.
DEFAULT_QUOTA = (QuotaWindow(100, 10), QuotaWindow(900, 900))
DEFAULT_ID_LIST_QUOTA = (QuotaWindow(12, 10), QuotaWindow(900, 900))


def quota_class_for(method: str, path: str) -> str:
    """The quota class a write spends: ``id_list`` for segment id lists, else ``mutation``."""
    bare = normalize_path(path).split("?", 1)[0]
    return ID_LIST_CLASS if _ID_LIST_PATH.match(bare) else MUTATION_CLASS
