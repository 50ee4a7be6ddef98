"""Building a run: what the writing commands assemble before the runner starts.

The commands (:mod:`bulkops.cli.commands`) compose these; nothing here talks to the
user or decides whether a run may go ahead (that is :mod:`bulkops.cli.safety`).

* **Connection**: :class:`EngineOptions` (the knobs from the command line),
  :func:`target_settings` (the plan's target project, from the keys read for the
  command) and :class:`OtherClients` (read clients on the other projects a job names,
  each key tried before anything is sent).
* **The key's project**: :func:`key_project` (``GET /project``), the first call of every
  command: what it meets (no such host, refused, TLS, 404, a redirect, 401/403) becomes
  an :class:`~bulkops.errors.ApiAccessError` naming the URL and the setting or key
  variable to change (:func:`access_error`; exit 4).
* **Run knobs**, recorded in the checkpoint so a resume keeps them: :func:`run_knobs`
  (quota windows, time scale, writes in flight, retry budget, the words for the reviews
  a run opens), the quota limiter built
  from them (:func:`quota_limiter`, :func:`estimate`) and the project's send log
  (:func:`send_log`); a :class:`PlanRun` bundles what the runner is then given.
* **The checkpoint**: its name (:func:`default_checkpoint`, :func:`undo_checkpoint`),
  its creation whole or not at all (:func:`create_checkpoint`, first record
  :func:`plan_record`), and the plan it starts with (:func:`checkpoint_plan`,
  :func:`checkpoint_params`).
"""

from __future__ import annotations

import datetime as dt
import json
import os
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .. import __version__
from ..api.client import ConsoleClient
from ..engine.journal import Journal
from ..engine.locks import default_state_dir, project_state_name
from ..engine.plans import Plan, ProjectRef
from ..engine.quota import (
    DEFAULT_ID_LIST_QUOTA,
    DEFAULT_QUOTA,
    ID_LIST_CLASS,
    MUTATION_CLASS,
    QuotaWindow,
)
from ..engine.ratelimit import QuotaLimiter, SendLog
from ..errors import (
    ApiAccessError,
    ApiError,
    ApiStatusError,
    Forbidden,
    NotFound,
    Redirected,
    RefusedError,
    TransportError,
    Unauthorized,
    UsageError,
)
from ..files import fsync_directory
from ..inputs import FileKind, require_kind
from ..keyguard import PATTERN_ONLY, KeyGuard
from ..settings import (
    API_URL_ENV,
    DEFAULT_BASE_URL,
    KEY_ENV_SUFFIX,
    ApiKeys,
    Settings,
    target_key_env,
)

__all__ = [
    "EngineOptions",
    "OtherClients",
    "access_error",
    "PlanRun",
    "checkpoint_params",
    "checkpoint_plan",
    "create_checkpoint",
    "default_checkpoint",
    "estimate",
    "key_project",
    "merge_histories",
    "plan_record",
    "quota_limiter",
    "require_checkpoint",
    "run_knobs",
    "send_log",
    "target_settings",
    "undo_checkpoint",
]

DEFAULT_MAX_IN_FLIGHT = 4
DEFAULT_RETRY_BUDGET = 0.2


@dataclass(frozen=True)
class EngineOptions:
    """Engine knobs from the command line; None means "not given" (a resume then uses
    what the checkpoint recorded, else the default)."""

    api_url: str | None = None
    allow_insecure_http: bool = False
    timeout: float | None = None
    no_review_header: bool = False
    quotas: tuple[QuotaWindow, ...] | None = None
    id_list_quotas: tuple[QuotaWindow, ...] | None = None
    time_scale: float | None = None
    max_in_flight: int | None = None
    retry_budget: float | None = None
    yes: bool = False
    max_mutations: int | None = None
    checkpoint: Path | None = None
    report: Path | None = None
    review_description: str | None = None
    output: Path | None = None
    show: int = 50
    apply: bool = False
    from_damaged: bool = False


# -- connection --------------------------------------------------------------------------


def target_settings(
    keys: ApiKeys, opts: EngineOptions, params: Mapping[str, Any], *, respect_reviews: bool
) -> Settings:
    """Settings for the project a plan with these job options writes to.

    Raises:
        UsageError: its key variable is not set.
    """
    overrides: dict[str, Any] = {
        "respect_reviews": respect_reviews,
        "allow_insecure_http": opts.allow_insecure_http,
    }
    if opts.timeout is not None:
        overrides["timeout"] = opts.timeout
    return keys.settings(target_key_env(params), base_url=opts.api_url, **overrides)


class OtherClients:
    """The read clients a job opens on other projects (``ctx.open_client(variable)``),
    with the keys read for the command and the main client's URL and timeout; one
    client per variable."""

    def __init__(self, keys: ApiKeys, settings: Settings) -> None:
        self.keys = keys
        self.settings = settings
        self.clients: dict[str, ConsoleClient] = {}

    @property
    def opened(self) -> list[ConsoleClient]:
        """Every client opened, in order."""
        return list(self.clients.values())

    def open(self, key_env: str) -> ConsoleClient:
        """A client on the project whose key is in the variable ``key_env``."""
        if key_env not in self.clients:
            self.clients[key_env] = ConsoleClient(
                self.keys.settings(
                    key_env,
                    base_url=self.settings.base_url,
                    allow_insecure_http=self.settings.allow_insecure_http,
                    timeout=self.settings.timeout,
                    respect_reviews=self.settings.respect_reviews,
                )
            )
        return self.clients[key_env]

    async def connect(self, params: Mapping[str, Any]) -> list[ProjectRef]:
        """Open a client with every key a job's options name besides the target's, and
        read each key's project: a bad key or URL is found before anything is sent.

        Raises:
            ApiAccessError, UsageError: see :func:`key_project` and
                :meth:`~bulkops.settings.ApiKeys.settings`.
        """
        target = target_key_env(params)
        named = [
            value
            for option, value in params.items()
            if option.endswith(KEY_ENV_SUFFIX) and isinstance(value, str) and value
        ]
        return [await key_project(self.open(env)) for env in dict.fromkeys(named) if env != target]

    async def aclose(self) -> None:
        """Close every client opened."""
        for client in self.clients.values():
            await client.aclose()


async def key_project(client: ConsoleClient) -> ProjectRef:
    """The key's project: id from ``GET /project``, name from ``GET /settings/project``.

    The first call of every command, so what it meets is told as what to fix.

    Raises:
        ApiAccessError: the API cannot be reached at the URL, or does not accept the
            key, or the URL is not the Console API (see :func:`access_error`).
    """
    try:
        data = await client.data("GET", "/project")
    except ApiError as exc:
        raise access_error(client.settings, exc) from exc
    except json.JSONDecodeError as exc:  # not JSON: a web page, another service
        raise _not_the_api(client.settings, "answered with something that is not JSON") from exc
    project_id = str(data.get("id")) if isinstance(data, dict) and data.get("id") else ""
    if not project_id:
        raise _not_the_api(client.settings, "did not name the key's project")
    name = project_id
    try:
        settings = await client.data("GET", "/settings/project")
        if isinstance(settings, dict) and settings.get("name"):
            name = str(settings["name"])
    except (ApiError, json.JSONDecodeError):
        pass  # the name is for people; the id is what is checked
    return ProjectRef(id=project_id, name=name)


_URL_SETTING = f"{API_URL_ENV} (or --api-url)"


def _not_the_api(settings: Settings, what: str) -> ApiAccessError:
    return ApiAccessError(
        f"GET {settings.base_url}/project {what}: {settings.base_url} does not look like "
        "the Console API; nothing was sent",
        hint=f"set {_URL_SETTING} to the Console API's base URL, "
        f"{DEFAULT_BASE_URL} (the emulator prints its own)",
    )


def access_error(settings: Settings, exc: ApiError) -> ApiAccessError:
    """The first call of a command failed: say which URL was tried, what went wrong and
    which setting (or key variable) to change. Nothing was sent."""
    url = settings.base_url
    var = settings.key_env or "the key's variable"
    if isinstance(exc, TransportError):
        tls = "TLS" in exc.message
        return ApiAccessError(
            f"cannot reach the Console API at {url}: {exc.message}; nothing was sent",
            hint=(
                "if a proxy inspects TLS here, point SSL_CERT_FILE at its CA bundle; "
                f"otherwise check {_URL_SETTING}"
                if tls
                else f"check {_URL_SETTING} and the network (is the host right, and is "
                "the API, or the emulator, running there?)"
            ),
            detail=exc.detail,
        )
    if isinstance(exc, Unauthorized):
        return ApiAccessError(
            f"the Console API at {url} refused the key in {var} (401: {exc.message}); "
            "nothing was sent",
            hint=f"{var} must hold an active Console API key (console-…) of the project: "
            "Project Settings → Keys & Environments",
        )
    if isinstance(exc, Forbidden):
        return ApiAccessError(
            f"the key in {var} may not read the project at {url} (403: {exc.message}); "
            "nothing was sent",
            hint=f"give {var} a Console API key with read access (omni_read_only or "
            "omni_read_write; writing needs omni_read_write)",
        )
    if isinstance(exc, NotFound):
        return _not_the_api(settings, "answered 404")
    if isinstance(exc, Redirected):
        return ApiAccessError(
            f"GET {url}/project was {exc.message}; nothing was sent",
            hint=f"if {exc.location} is the Console API, set {_URL_SETTING} to its base URL"
            if exc.location
            else f"check {_URL_SETTING}",
        )
    status = exc.status if isinstance(exc, ApiStatusError) else "an error"
    return ApiAccessError(
        f"the Console API at {url} answered {status} to GET /project: {exc.message}; "
        "nothing was sent",
        hint="the service may be having trouble: try again later",
    )


# -- run knobs, limiter, send log ----------------------------------------------------------


def _option(opts_value: Any, recorded: Mapping[str, Any], name: str, default: Any) -> Any:
    if opts_value is not None:
        return opts_value
    if name in recorded and recorded[name] is not None:
        return recorded[name]
    return default


def _windows(value: Any, default: tuple[QuotaWindow, ...]) -> tuple[QuotaWindow, ...]:
    if value is None:
        return default
    return tuple(w if isinstance(w, QuotaWindow) else QuotaWindow.parse(str(w)) for w in value)


def run_knobs(opts: EngineOptions, recorded: Mapping[str, Any] | None = None) -> dict[str, Any]:
    """The effective quota and concurrency knobs, and the user's words for the reviews a
    run opens (recorded in the checkpoint): the command line's, else those ``recorded``
    by the checkpoint, else the defaults."""
    rec = recorded or {}
    quotas = _windows(_option(opts.quotas, rec, "quota", None), DEFAULT_QUOTA)
    id_quotas = _windows(
        _option(opts.id_list_quotas, rec, "id_list_quota", None), DEFAULT_ID_LIST_QUOTA
    )
    return {
        "quota": [str(w) for w in quotas],
        "id_list_quota": [str(w) for w in id_quotas],
        "time_scale": float(_option(opts.time_scale, rec, "time_scale", 1.0)),
        "max_in_flight": int(
            _option(opts.max_in_flight, rec, "max_in_flight", DEFAULT_MAX_IN_FLIGHT)
        ),
        "retry_budget": float(
            _option(opts.retry_budget, rec, "retry_budget", DEFAULT_RETRY_BUDGET)
        ),
        "review_description": str(_option(opts.review_description, rec, "review_description", "")),
    }


def quota_limiter(knobs: Mapping[str, Any], history: Mapping[str, list[float]]) -> QuotaLimiter:
    """The quota limiter of a run, primed with the sends of ``history``."""
    scale = knobs["time_scale"]
    windows = {
        MUTATION_CLASS: tuple(QuotaWindow.parse(w).scaled(scale) for w in knobs["quota"]),
        ID_LIST_CLASS: tuple(QuotaWindow.parse(w).scaled(scale) for w in knobs["id_list_quota"]),
    }
    return QuotaLimiter(windows, max_in_flight=knobs["max_in_flight"], history=history)


def send_log(state_dir: Path, api_url: str, project_id: str) -> SendLog:
    """The project's send log at one API URL: what any run sent to it lately (the quota
    is per project): ``<state>/sends/<id>@<host>-<hash>.json``."""
    return SendLog(state_dir / "sends" / f"{project_state_name(api_url, project_id)}.json")


def estimate(plan: Plan, knobs: Mapping[str, Any], api_url: str, project_id: str) -> float:
    """Seconds ``plan`` takes under the quota, given what the project was sent lately."""
    history = send_log(default_state_dir(), api_url, project_id).load()
    return quota_limiter(knobs, history).eta(plan.quota_counts())


def merge_histories(*histories: Mapping[str, Sequence[float]]) -> dict[str, list[float]]:
    """Send times per quota class from several sources, each time once, in order."""
    out: dict[str, list[float]] = {}
    for history in histories:
        for klass, times in history.items():
            out.setdefault(klass, []).extend(times)
    return {k: sorted(set(v)) for k, v in out.items()}


@dataclass(frozen=True)
class PlanRun:
    """A plan ready to run: its client, checkpoint and journal (with the records read
    back on a resume), its knobs, the project's send log and the quota limiter."""

    plan: Plan
    client: ConsoleClient
    checkpoint: Path
    journal: Journal
    records: Sequence[Mapping[str, Any]]
    knobs: Mapping[str, Any]
    sendlog: SendLog
    limiter: QuotaLimiter


# -- the checkpoint ----------------------------------------------------------------------


def default_checkpoint(state_dir: Path, plan: Plan) -> Path:
    """``<state>/checkpoints/<job>-<UTC time>-<plan id>.ckpt``."""
    stamp = dt.datetime.now(dt.UTC).strftime("%Y%m%d-%H%M%S")
    job = re.sub(r"[^A-Za-z0-9_.-]", "_", plan.header.job)[:40]
    return state_dir / "checkpoints" / f"{job}-{stamp}-{plan.header.plan_id[:8]}.ckpt"


def undo_checkpoint(checkpoint: Path) -> Path:
    """The first free ``CKPT.undo``, ``CKPT.undo2``… beside ``checkpoint``."""
    candidate = checkpoint.with_name(checkpoint.name + ".undo")
    n = 2
    while candidate.exists():
        candidate = checkpoint.with_name(f"{checkpoint.name}.undo{n}")
        n += 1
    return candidate


def plan_record(plan: Plan, knobs: Mapping[str, Any], settings: Settings) -> dict[str, Any]:
    """A checkpoint's first record: the plan, and the knobs a resume reuses."""
    return {
        "t": "plan",
        "plan": plan.to_json(),
        "options": {
            **knobs,
            "respect_reviews": settings.respect_reviews,
            "tool_version": __version__,
        },
    }


def create_checkpoint(
    path: Path, first: dict[str, Any], *, guard: KeyGuard = PATTERN_ONLY
) -> Journal:
    """Create the checkpoint so that it appears whole or not at all.

    The journal is written under a temporary name and hard-linked into place once its
    first record is durable, so a kill during creation never leaves a checkpoint
    without its plan (which could neither be resumed nor replaced). ``guard`` refuses
    every record holding an API key, the first one included.

    Raises:
        RefusedError: the checkpoint exists.
        JournalError: it could not be written, or ``first`` holds a key.
    """
    tmp = path.with_name(f".{path.name}.{os.getpid()}.new")
    tmp.unlink(missing_ok=True)
    journal = Journal.create(tmp, first, guard=guard)
    try:
        os.link(tmp, path)
    except FileExistsError:
        journal.close()
        tmp.unlink(missing_ok=True)
        raise RefusedError(f"checkpoint {path} already exists; nothing was sent") from None
    except BaseException:
        journal.close()
        raise
    tmp.unlink()
    fsync_directory(path.parent)
    journal.path = path
    return journal


def require_checkpoint(checkpoint: Path) -> None:
    """Check that ``checkpoint`` exists and is one.

    Raises:
        UsageError: it does not exist.
        InputError: it is another kind of file (a plan, a report…), told as such.
    """
    if not checkpoint.exists():
        raise UsageError(f"checkpoint {checkpoint} does not exist")
    require_kind(checkpoint, FileKind.CHECKPOINT)


def checkpoint_plan(
    records: Sequence[Mapping[str, Any]], source: str, guard: KeyGuard = PATTERN_ONLY
) -> tuple[Plan, dict[str, Any]]:
    """The plan a checkpoint's records start with, and the knobs recorded beside it.

    Raises:
        RefusedError: the first record is not a plan (or the plan was edited).
        PlanError: the plan holds one of ``guard``'s keys (or a key-shaped string).
    """
    if not records or records[0].get("t") != "plan":
        raise RefusedError(f"{source}: not a bulkops checkpoint (no plan record first)")
    plan = Plan.from_json(records[0].get("plan"), source=source, guard=guard)
    options = records[0].get("options")
    return plan, dict(options) if isinstance(options, dict) else {}


def checkpoint_params(checkpoint: Path) -> dict[str, Any]:
    """The job options of a checkpoint's plan, read from its first line unverified.

    Only to learn, before logging starts, which key variables a resume or undo reads;
    the checkpoint is verified when the command opens it. Each line of a checkpoint is
    ``<crc> <JSON record>`` (:mod:`bulkops.engine.journal`); anything unreadable gives
    ``{}``.
    """
    try:
        with checkpoint.open("rb") as f:
            line = f.readline()
        params = json.loads(line.partition(b" ")[2])["plan"]["header"]["params"]
    except (OSError, ValueError, LookupError, TypeError):
        return {}
    return params if isinstance(params, dict) else {}
