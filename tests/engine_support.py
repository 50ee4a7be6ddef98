"""States for the process-level tests: the empty project seeded through the API.

The processes themselves (``bulkops`` and the emulator, forked) and the request log
are :mod:`bulkops.testing`.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from bulkops.api.paths import WRITE_METHODS
from bulkops.emulator import EmulatorState
from bulkops.emulator.seed import EMPTY_KEY, apply_seed
from bulkops.emulator.state import KeyInfo
from bulkops.testing import Call, Emulator, seed_over_api

__all__ = ["archive_calls", "calls_file", "seeded_state", "writes"]


def seeded_state(
    *,
    gates: int = 0,
    experiments: int = 0,
    prefix: str = "seed",
    extra_keys: Mapping[str, str] | None = None,
    calls: Sequence[Call] = (),
) -> EmulatorState:
    """A state with the empty project plus ``gates`` gates (and experiments) made over HTTP."""
    state = EmulatorState()
    apply_seed(state, "empty")
    for key, project in (extra_keys or {}).items():
        state.keys[key] = KeyInfo(project)
    made: list[Call] = [
        *(
            ("POST", "/gates", {"name": f"{prefix}_gate_{i}", "description": "seeded"})
            for i in range(gates)
        ),
        *(
            ("POST", "/experiments", {"name": f"{prefix}_exp_{i}", "description": "seeded"})
            for i in range(experiments)
        ),
        *calls,
    ]
    seed_over_api(state, {EMPTY_KEY: made})
    return state


def calls_file(tmp_path: Path, *calls: Mapping[str, Any], name: str = "calls.jsonl") -> Path:
    """An apply-calls file of ``calls``, one JSON line each."""
    path = tmp_path / name
    path.write_text("".join(json.dumps(c) + "\n" for c in calls))
    return path


def archive_calls(tmp_path: Path, *indexes: int, name: str = "calls.jsonl") -> Path:
    """An apply-calls file archiving ``seed_gate_<i>`` (of :func:`seeded_state`) for each
    index."""
    return calls_file(
        tmp_path,
        *({"method": "PUT", "path": f"/gates/seed_gate_{i}/archive"} for i in indexes),
        name=name,
    )


def writes(emulator: Emulator) -> list[dict[str, Any]]:
    """Every mutation request the emulator received (its request log)."""
    return [e for e in emulator.log() if e["method"] in WRITE_METHODS]
