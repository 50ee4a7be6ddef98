"""The built wheel: `bulkops` is its only top-level package, and its jobs are bulkops.jobs."""

from __future__ import annotations

import os
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture(name="wheel", scope="module")
def _wheel(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("wheel")
    done = subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "--no-deps", "-q", "-w", str(out), str(ROOT)],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    (wheel,) = out.glob("bulkops-*.whl")
    return wheel


def test_the_wheel_holds_only_the_bulkops_package(wheel: Path) -> None:
    """No top-level `jobs` (a name any distribution can claim): only bulkops/ and its metadata."""
    names = zipfile.ZipFile(wheel).namelist()
    top = {name.split("/", 1)[0] for name in names}
    assert top == {"bulkops", wheel.name.split("-py3")[0] + ".dist-info"}, top
    assert "bulkops/jobs/__init__.py" in names
    assert "bulkops/jobs/copy_project/canonical.py" in names
    schemas = {n.rsplit("/", 1)[1] for n in names if n.startswith("bulkops/cli/schemas/")}
    assert schemas >= {"plan-1.json", "run-1.json", "status-1.json", "jobs-1.json"}, schemas
    assert not [n for n in names if n.startswith(("bulkops/bench", "scripts/", "tests/"))]


def test_an_installed_wheel_lists_every_job(wheel: Path, tmp_path: Path) -> None:
    """Installed from the wheel (not the checkout), `bulkops jobs` lists every built-in job."""
    from bulkops.jobs import JOBS

    target = tmp_path / "site"
    subprocess.run(
        [sys.executable, "-m", "pip", "install", "--no-deps", "-q", "--target", str(target), wheel],
        check=True,
        capture_output=True,
        timeout=300,
    )
    env = {**os.environ, "PYTHONPATH": str(target)}  # ahead of the checkout's editable path
    probe = subprocess.run(
        [sys.executable, "-c", "import bulkops, bulkops.jobs; print(bulkops.__file__)"],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        check=True,
    )
    assert probe.stdout.strip().startswith(str(target))
    listed = subprocess.run(
        [sys.executable, "-m", "bulkops", "jobs"],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert listed.returncode == 0, listed.stderr
    for name in JOBS:
        assert name in listed.stdout
