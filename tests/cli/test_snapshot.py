"""bulkops snapshot: the demo project read into a seed file, served again, read again."""

from __future__ import annotations

import json
import os
import select
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from bulkops.cli.snapshot import COLLECTION_SOURCES, rehearsal_key, write_snapshot
from bulkops.emulator import EmulatorState
from bulkops.emulator.demo import (
    DEMO_AUDITOR_KEY,
    DEMO_SOURCE_ID,
    DEMO_SOURCE_KEY,
    DEMO_SOURCE_READ_ONLY_KEY,
)
from bulkops.emulator.seed import apply_seed
from bulkops.errors import RefusedError
from bulkops.testing import run_cli, serve_forked

REAL_KEYS = (DEMO_SOURCE_KEY, DEMO_SOURCE_READ_ONLY_KEY, DEMO_AUDITOR_KEY)


@dataclass
class Taken:
    """A snapshot taken with the CLI, and the state it was taken from."""

    path: Path
    stdout: str
    stderr: str
    state: EmulatorState

    def data(self) -> dict[str, Any]:
        loaded: dict[str, Any] = json.loads(self.path.read_text())
        return loaded


@pytest.fixture(scope="module", name="taken")
def _taken(tmp_path_factory: pytest.TempPathFactory) -> Taken:
    """`bulkops snapshot -o FILE` of the demo source, served by a forked emulator."""
    tmp = tmp_path_factory.mktemp("snapshot")
    state = EmulatorState()
    apply_seed(state, "demo")
    with serve_forked(state, tmp / "requests.log") as emulator:
        env = {"STATSIG_CONSOLE_API_KEY": DEMO_SOURCE_KEY, "STATSIG_API_URL": emulator.url}
        run = run_cli(["snapshot", "-o", str(tmp / "demo.json")], env, tmp, "snap")
    assert run.code == 0, run.stderr()
    return Taken(tmp / "demo.json", run.stdout(), run.stderr(), state)


def test_the_file_is_private_and_holds_no_real_key(taken: Taken) -> None:
    """0600, no key of the project in the file or the output; the rehearsal key is printed."""
    assert os.stat(taken.path).st_mode & 0o777 == 0o600
    text = taken.path.read_text()
    for key in REAL_KEYS:
        assert key not in text and key not in taken.stdout + taken.stderr
    key = rehearsal_key(DEMO_SOURCE_ID)
    assert f"STATSIG_CONSOLE_API_KEY={key}" in taken.stdout
    assert [k["key"] for k in taken.data()["keys"]] == [key]
    assert "1200 gates" in taken.stdout and "22 id lists" in taken.stdout


def test_the_snapshot_holds_the_whole_project(taken: Taken) -> None:
    """Every collection, id list, override, environment and setting of the seed is there."""
    project = taken.state.projects[DEMO_SOURCE_ID]
    data = taken.data()
    assert data["project"] == {"id": DEMO_SOURCE_ID, "name": project.name}
    for kind in COLLECTION_SOURCES:
        assert data["collections"][kind] == project.collections[kind], kind
    assert sum(g["status"] == "Archived" for g in data["collections"]["gates"].values()) > 0
    assert data["id_lists"] == {k: list(v) for k, v in project.id_lists.items()}
    assert data["environments"] == project.environments
    assert data["settings"] == {"visibility": "CLOSED"}  # the API's default, as read
    for kind, stored in project.overrides.items():
        read = data["overrides"][kind]
        assert read.keys() == stored.keys(), kind
        for obj_id, entry in stored.items():  # the API adds its defaults (empty lists)
            assert entry.items() <= read[obj_id].items(), (kind, obj_id)


def _start_emulator(seed: Path) -> tuple[subprocess.Popen[bytes], str, str]:
    """Start `bulkops emulator --seed FILE --port 0`; its URL and the banner it printed."""
    proc = subprocess.Popen(
        [sys.executable, "-m", "bulkops", "emulator", "--seed", str(seed), "--port", "0"],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
    )
    assert proc.stdout is not None
    fd = proc.stdout.fileno()
    banner = b""
    deadline = time.monotonic() + 30
    while b"export STATSIG_API_URL=" not in banner and time.monotonic() < deadline:
        ready, _, _ = select.select([fd], [], [], 1)
        if ready:
            chunk = os.read(fd, 65536)
            if not chunk:
                break
            banner += chunk
    text = banner.decode()
    url = text.split("listening on", 1)[1].split()[0] if "listening on" in text else ""
    return proc, url, text


def test_the_emulator_serves_it_and_a_second_snapshot_is_identical(
    taken: Taken, tmp_path: Path
) -> None:
    """`bulkops emulator --seed FILE` serves it with the printed key; snapshotting it again
    gives the same content."""
    key = rehearsal_key(DEMO_SOURCE_ID)
    proc, url, banner = _start_emulator(taken.path)
    try:
        assert url, banner
        assert f"project {DEMO_SOURCE_ID}" in banner and key in banner
        env = {"STATSIG_CONSOLE_API_KEY": key, "STATSIG_API_URL": url}
        run = run_cli(["snapshot", "-o", str(tmp_path / "again.json")], env, tmp_path, "again")
        assert run.code == 0, run.stderr()
        wrong = run_cli(
            ["snapshot", "-o", str(tmp_path / "no.json")],
            {**env, "STATSIG_CONSOLE_API_KEY": DEMO_SOURCE_KEY},
            tmp_path,
            "wrong",
        )
        assert wrong.code != 0 and not (tmp_path / "no.json").exists()
    finally:
        proc.terminate()
        proc.communicate(timeout=30)
    first, second = taken.data(), json.loads((tmp_path / "again.json").read_text())
    first.pop("keys")
    second.pop("keys")
    assert second == first


def test_without_a_key_nothing_is_read(tmp_path: Path) -> None:
    """No key in the environment: exit 2 and no file."""
    run = run_cli(["snapshot", "-o", str(tmp_path / "s.json")], {}, tmp_path, "nokey")
    assert run.code == 2 and "STATSIG_CONSOLE_API_KEY" in run.stderr()
    assert not (tmp_path / "s.json").exists()


def test_a_snapshot_containing_the_key_is_refused(tmp_path: Path) -> None:
    """If the read content held the key it was read with, nothing is written."""
    snapshot = {"format": "bulkops-snapshot/1", "collections": {"gates": {"g": {"d": "k-123"}}}}
    with pytest.raises(RefusedError, match="contains the API key"):
        write_snapshot(tmp_path / "s.json", snapshot, secrets=("k-123",))
    assert not (tmp_path / "s.json").exists()
    write_snapshot(tmp_path / "s.json", snapshot, secrets=("other",))
    assert json.loads((tmp_path / "s.json").read_text()) == snapshot
