"""States for the process-level tests: the empty project seeded through the API.

The processes themselves (``bulkops`` and the emulator, forked) and the request log
are :mod:`bulkops.testing`.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from bulkops.emulator import EmulatorState
from bulkops.emulator.seed import EMPTY_KEY, apply_seed
from bulkops.emulator.state import KeyInfo
from bulkops.testing import Call, seed_over_api

__all__ = ["seeded_state"]


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
