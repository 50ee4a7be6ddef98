"""Seeds: ``empty``, ``demo`` and snapshot files (``--seed FILE.json``)."""

from __future__ import annotations

from pathlib import Path

from .state import EmulatorState, KeyInfo, Project

__all__ = ["EMPTY_KEY", "EMPTY_READ_ONLY_KEY", "apply_seed"]

EMPTY_KEY = "console-emulator-empty"
EMPTY_READ_ONLY_KEY = "console-emulator-empty-readonly"


def empty_project() -> tuple[Project, dict[str, KeyInfo]]:
    """One empty project with a read-write and a read-only key."""
    project = Project(id="empty", name="Empty Project")
    return project, {
        EMPTY_KEY: KeyInfo(project.id),
        EMPTY_READ_ONLY_KEY: KeyInfo(project.id, read_only=True),
    }


def apply_seed(state: EmulatorState, seed: str) -> list[Project]:
    """Add the projects of one ``--seed`` value to ``state`` and return them.

    Raises:
        ValueError: an unknown seed name or an unreadable snapshot file.
    """
    if seed == "empty":
        project, keys = empty_project()
        return [state.add_project(project, keys)]
    if seed == "demo":
        from .demo import demo_projects

        return [state.add_project(p, k) for p, k in demo_projects()]
    path = Path(seed)
    if not path.exists():
        raise ValueError(f"unknown seed {seed!r}: expected 'empty', 'demo' or a snapshot file")
    return [state.load_snapshot_file(path)]
