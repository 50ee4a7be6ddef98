"""Helpers of the emulator's handler tests: expected 400s, audit actions, stored gates."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

import pytest

from bulkops.emulator import Project
from bulkops.errors import BadRequest

__all__ = ["actions", "make_gate", "rejected"]


@contextmanager
def rejected(message: str) -> Iterator[None]:
    """Expect a 400 BadRequest whose server message is exactly ``message``."""
    with pytest.raises(BadRequest) as info:
        yield
    assert info.value.message == message


def actions(project: Project, target: str) -> list[str]:
    """The audit-log action types recorded for ``target``, oldest first."""
    return [e["actionType"] for e in project.audit_log if e["targetID"] == target]


def make_gate(project: Project, name: str = "a_gate") -> str:
    """Store a minimal gate directly (gate handlers are tested in their own suite)."""
    project.store("gates")[name] = {"id": name, "name": name, "holdoutIDs": []}
    return name
