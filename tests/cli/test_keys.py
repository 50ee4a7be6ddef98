"""Keys: read from the environment once, for every variable a job names, and redacted.

A job names the variables of its keys in options ending in ``_key_env``
(copy-project's ``--source-key-env``); each of those keys is given to the log redactor
before the command runs, so it reaches no output and no log line, even when a message
echoes it. The canaries here do not look like keys (no ``console-`` prefix), so only
the registered secrets can hide them.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from bulkops.emulator import EmulatorState
from bulkops.emulator.demo import DEMO_SOURCE_ID, DEMO_TARGET_KEY
from bulkops.emulator.seed import apply_seed
from bulkops.emulator.state import KeyInfo
from bulkops.errors import PlanError, UsageError
from bulkops.settings import API_KEY_ENV, ApiKeys, key_env_names, target_key_env
from bulkops.testing import CliRun, Emulator, cli_env, run_cli, serve_forked

CANARY = "plainsourcekey" + uuid.uuid4().hex

# A job file with copy-project's key options that echoes its source key in a log
# event and in the error it ends with, after reading through the source project.
ECHO_JOB = '''
"""Echo the source key (a test job)."""

from pydantic import BaseModel, ConfigDict

from bulkops.errors import PlanError


class Params(BaseModel):
    model_config = ConfigDict(extra="forbid")

    source_key_env: str
    target_key_env: str


async def plan(ctx, params):
    source = ctx.open_client(params.source_key_env)
    await source.data("GET", "/gates")
    key = source.settings.api_key.get_secret_value()
    ctx.log.warning("job.source_key", key=key, note=f"the source key is {key}")
    raise PlanError(f"the source key {key} is refused", hint=f"not {key}")
    yield
'''


@pytest.fixture(scope="module", name="demo")
def _demo() -> EmulatorState:
    """The demo seed, whose source project also answers to the canary key."""
    state = EmulatorState()
    apply_seed(state, "demo")
    state.keys[CANARY] = KeyInfo(DEMO_SOURCE_ID)
    return state


@pytest.fixture(name="emulator")
def _emulator(demo: EmulatorState, tmp_path: Path) -> Iterator[Emulator]:
    """A fresh emulator process serving the demo seed, quotas off."""
    with serve_forked(demo, tmp_path / "requests.log", quotas_enabled=False) as emulator:
        yield emulator


def _run(emulator: Emulator, tmp_path: Path, argv: list[str]) -> CliRun:
    """``bulkops argv --log-file log.jsonl -v`` with the source key in $SRC, the target's
    in $DST and the default variable."""
    env = cli_env(
        DEMO_TARGET_KEY, emulator.url, tmp_path / "state", SRC=CANARY, DST=DEMO_TARGET_KEY
    )
    return run_cli([*argv, "--log-file", str(tmp_path / "log.jsonl"), "-v"], env, tmp_path, "run")


def _leaks(tmp_path: Path) -> list[Path]:
    files = [p for p in tmp_path.rglob("*") if p.is_file() and p.name != "requests.log"]
    return [p for p in files if CANARY in p.read_bytes().decode("utf-8", "replace")]


def test_the_variables_a_job_names_are_read_and_only_they() -> None:
    """The default key variable and every *_key_env option's value are read; a variable
    no option names is refused, an unset one named is a usage error."""
    params = {"source_key_env": "SRC", "target_key_env": "DST", "tag": ["x"]}
    assert key_env_names(params) == (API_KEY_ENV, "SRC", "DST")
    assert key_env_names({"target_key_env": API_KEY_ENV}) == (API_KEY_ENV,)
    assert target_key_env(params) == "DST" and target_key_env({}) == API_KEY_ENV
    keys = ApiKeys.read(key_env_names(params), environ={"SRC": "a", "OTHER": "b", "DST": ""})
    assert keys.secrets() == ("a",)
    assert keys.settings("SRC").api_key.get_secret_value() == "a"
    with pytest.raises(UsageError, match="DST is not set"):
        keys.settings("DST")
    with pytest.raises(PlanError, match="OTHER was not read"):
        keys.settings("OTHER")


def test_copy_projects_source_key_reaches_no_output_or_log(
    emulator: Emulator, tmp_path: Path
) -> None:
    """copy-project plans with the source key from its variable: it is in no output, log
    line or plan file."""
    argv = ["plan", "copy-project", "--source-key-env", "SRC", "--target-key-env", "DST"]
    argv += ["--tag", "payments", "--accept-loss", "-o", str(tmp_path / "copy.plan")]
    run = _run(emulator, tmp_path, argv)
    assert run.code == 0, run.stderr()
    assert any(e["project"] == DEMO_SOURCE_ID for e in emulator.log()), "no source read"
    assert (tmp_path / "log.jsonl").read_text()
    assert _leaks(tmp_path) == []


def test_a_job_named_key_echoed_by_a_log_line_and_an_error_is_redacted(
    emulator: Emulator, tmp_path: Path
) -> None:
    """A job echoing its source key in a log event and in its error message: the log
    file, the console and the FAILED/HINT lines show <redacted> instead (exit 2)."""
    job = tmp_path / "echo_job.py"
    job.write_text(ECHO_JOB)
    argv = ["plan", str(job), "--source-key-env", "SRC", "--target-key-env", "DST"]
    run = _run(emulator, tmp_path, argv)
    assert run.code == 2, run.stderr()
    assert "FAILED: the source key <redacted> is refused" in run.stderr()
    assert "HINT: not <redacted>" in run.stderr()
    assert "the source key is <redacted>" in (tmp_path / "log.jsonl").read_text()
    assert _leaks(tmp_path) == []
