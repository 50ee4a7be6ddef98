"""Fixtures of the process-level CLI tests: an emulator process serving the module's
``seed`` fixture, and the environment of a CLI run against it."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from bulkops.emulator import EmulatorState
from bulkops.emulator.seed import EMPTY_KEY
from bulkops.testing import Emulator, cli_env, serve_forked


@pytest.fixture(name="emulator")
def _emulator(seed: EmulatorState, tmp_path: Path) -> Iterator[Emulator]:
    """A fresh emulator process serving a copy of the module's seed (time scale 60)."""
    with serve_forked(seed, tmp_path / "requests.log") as emulator:
        yield emulator


@pytest.fixture(name="env")
def _env(emulator: Emulator, tmp_path: Path) -> dict[str, str]:
    """The environment of a CLI run: the empty project's key, the URL and a private
    state directory."""
    return cli_env(EMPTY_KEY, emulator.url, tmp_path / "state")
