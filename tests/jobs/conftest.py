"""Fixtures of the job tests: the demo seed, built once per module, and a forked emulator
process serving a fresh copy of it."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from bulkops.emulator import EmulatorState
from bulkops.emulator.seed import apply_seed
from bulkops.testing import Emulator, serve_forked


@pytest.fixture(scope="module", name="demo_state")
def _demo_state() -> EmulatorState:
    """The demo projects, built once for the module (tests only read it, or fork copies)."""
    state = EmulatorState()
    apply_seed(state, "demo")
    return state


@pytest.fixture(name="emulator")
def _emulator(demo_state: EmulatorState, tmp_path: Path) -> Iterator[Emulator]:
    """A fresh emulator process serving a copy of the demo (time scale 60)."""
    with serve_forked(demo_state, tmp_path / "requests.log") as emulator:
        yield emulator
