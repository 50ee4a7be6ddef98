"""Settings, built once (from the environment plus flags) and passed explicitly.

API keys come from the environment only, and are read in one place: :meth:`ApiKeys.read`.
Which variables a command reads is decided before it starts (:func:`key_env_names`):
``STATSIG_CONSOLE_API_KEY``, plus every variable a job's options name. The convention
for job authors: a ``Params`` field whose name ends in ``_key_env`` holds the *name* of
an environment variable that holds a key (copy-project's ``source_key_env`` and
``target_key_env``), and ``target_key_env``, where present, names the key of the project
the plan writes to. The CLI reads those variables once, gives every value to the log
redactor before anything runs, and builds every :class:`Settings` from the values read,
so a key in any variable a job names is redacted like the default one.

The API URL is checked when settings are built (:func:`api_base_url`), before any
request: the key goes over https, or over plain http only to this machine (the
emulator) unless ``allow_insecure_http`` says otherwise; a bare host gets the API's
base path ``/console/v1``. A key of the wrong type (a server secret or a client key)
is refused before it is sent anywhere.
"""

from __future__ import annotations

import ipaddress
import os
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

from pydantic import BaseModel, ConfigDict, Field, SecretStr, model_validator

from .errors import ApiAccessError, PlanError, UsageError
from .keyguard import KeyGuard

__all__ = [
    "API_KEY_ENV",
    "API_URL_ENV",
    "API_VERSION",
    "DEFAULT_BASE_URL",
    "DEFAULT_PAGE_LIMIT",
    "KEY_ENV_SUFFIX",
    "TARGET_KEY_ENV_OPTION",
    "API_PREFIX",
    "ApiKeys",
    "Settings",
    "api_base_url",
    "is_loopback",
    "key_env_names",
    "target_key_env",
]

API_KEY_ENV = "STATSIG_CONSOLE_API_KEY"
API_URL_ENV = "STATSIG_API_URL"
DEFAULT_BASE_URL = "https://statsigapi.net/console/v1"
API_PREFIX = "/console/v1"  # where the Console API lives on its host
API_VERSION = "20240601"
DEFAULT_PAGE_LIMIT = 100
DEFAULT_TIMEOUT = 30.0
DEFAULT_READ_RETRIES = 4
# A job option whose name ends so holds the name of a variable holding a key.
KEY_ENV_SUFFIX = "_key_env"
# The job option naming the key of the project a plan writes to (default: API_KEY_ENV).
TARGET_KEY_ENV_OPTION = "target_key_env"
# The Console API accepts Console keys only; these are the other key types' prefixes.
_OTHER_KEY_TYPES = {"secret-": "a server secret key", "client-": "a client SDK key"}
_URL_SETTING = f"{API_URL_ENV} or --api-url"


def is_loopback(host: str) -> bool:
    """Whether ``host`` names this machine: ``localhost``, ``127.0.0.0/8`` or ``::1``.

    Decided on the name as written, never by resolving it (a name that resolves to a
    loopback address today may not tomorrow).
    """
    host = host.lower().rstrip(".")
    if host == "localhost":
        return True
    try:
        ip = ipaddress.ip_address(host.strip("[]"))
    except ValueError:
        return False
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
        ip = ip.ipv4_mapped
    return ip.is_loopback


def api_base_url(url: str, *, allow_insecure_http: bool = False) -> str:
    """The Console API base URL ``url`` names, checked before any request is made.

    ``https://HOST`` and ``https://HOST/`` become ``https://HOST/console/v1`` (the API's
    base path); any other path is kept as given (a proxy may mount the API elsewhere),
    without a trailing slash.

    Raises:
        UsageError: not an ``http(s)://`` URL with a host, a URL holding a user name,
            password, query or fragment, or plain ``http://`` to a host that is not
            this machine without ``allow_insecure_http`` (the key would cross the
            network in clear text).
    """
    text = url.strip()
    parts = urlsplit(text)
    if parts.scheme.lower() not in ("http", "https") or not parts.hostname:
        raise UsageError(
            f"the API URL {text!r} is not an https:// URL with a host",
            hint=f"set {_URL_SETTING} to https://statsigapi.net/console/v1 "
            "(or the emulator's http://127.0.0.1:PORT/console/v1)",
        )
    if parts.username or parts.password or parts.query or parts.fragment:
        raise UsageError(
            f"the API URL must be a plain base URL, without a user name, password, query "
            f"or fragment ({_URL_SETTING})",
            hint="set it to https://HOST/console/v1",
        )
    if parts.scheme.lower() == "http" and not allow_insecure_http:
        if not is_loopback(parts.hostname):
            raise UsageError(
                f"refusing to send the key in clear text to http://{parts.netloc}: plain "
                f"http is only for this machine (the emulator); {_URL_SETTING} must use "
                "https:// for any other host; nothing was sent",
                hint=f"use https://{parts.netloc}{parts.path}, or add --allow-insecure-http "
                "if every network between here and that host is yours",
            )
    path = parts.path.rstrip("/") or API_PREFIX
    return f"{parts.scheme.lower()}://{parts.netloc}{path}"


class Settings(BaseModel):
    """Connection settings for one Console API project (one key).

    The key is a ``SecretStr``: its repr and str show ``**********``. ``base_url`` is
    checked and normalised by :func:`api_base_url` (``allow_insecure_http`` permits
    plain http to other hosts); ``key_env`` names the variable the key came from, for
    messages (never the key).
    """

    model_config = ConfigDict(frozen=True, extra="forbid")

    @model_validator(mode="before")
    @classmethod
    def _check_url(cls, data: Any) -> Any:
        if isinstance(data, dict) and isinstance(data.get("base_url"), str):
            allow = bool(data.get("allow_insecure_http", False))
            data = {**data, "base_url": api_base_url(data["base_url"], allow_insecure_http=allow)}
        return data

    api_key: SecretStr
    base_url: str = DEFAULT_BASE_URL
    allow_insecure_http: bool = False
    key_env: str | None = None
    api_version: str = API_VERSION
    respect_reviews: bool = True
    timeout: float = Field(default=DEFAULT_TIMEOUT, gt=0)
    page_limit: int = Field(default=DEFAULT_PAGE_LIMIT, ge=1)
    read_retries: int = Field(default=DEFAULT_READ_RETRIES, ge=0)

    @classmethod
    def from_env(
        cls,
        key_env: str = API_KEY_ENV,
        *,
        environ: Mapping[str, str] | None = None,
        base_url: str | None = None,
        **overrides: object,
    ) -> Settings:
        """Build settings with the key taken from the environment variable ``key_env``.

        Raises:
            UsageError: the variable is unset or empty.
        """
        keys = ApiKeys.read([key_env], environ=environ)
        return keys.settings(key_env, base_url=base_url, **overrides)


def key_env_names(params: Mapping[str, Any] | None = None) -> tuple[str, ...]:
    """The environment variables holding the keys a job with these options may use.

    ``STATSIG_CONSOLE_API_KEY`` first, then the value of every option whose name ends in
    ``_key_env``, in the options' order, each once.

    Args:
        params: A job's options as JSON (``Params.model_dump(mode="json")``, or a plan's
            recorded ``header.params``).
    """
    names = [API_KEY_ENV]
    for option, value in (params or {}).items():
        if option.endswith(KEY_ENV_SUFFIX) and isinstance(value, str) and value:
            names.append(value)
    return tuple(dict.fromkeys(names))


def target_key_env(params: Mapping[str, Any] | None = None) -> str:
    """The variable holding the key of the project a plan with these options writes to.

    The job's ``target_key_env`` option where it has one (copy-project), else
    ``STATSIG_CONSOLE_API_KEY``.
    """
    value = (params or {}).get(TARGET_KEY_ENV_OPTION)
    return value if isinstance(value, str) and value else API_KEY_ENV


@dataclass(frozen=True)
class ApiKeys:
    """The keys a command may use, read from the environment once, and the API URL.

    Attributes:
        names: The variables read.
        keys: Each of them that is set and not empty, and its key.
        api_url: ``$STATSIG_API_URL``, if set.
    """

    names: tuple[str, ...]
    keys: Mapping[str, SecretStr]
    api_url: str | None = None

    @classmethod
    def read(cls, names: Iterable[str], *, environ: Mapping[str, str] | None = None) -> ApiKeys:
        """Read the variables ``names`` (and ``STATSIG_API_URL``): the one place keys are
        taken from the environment."""
        env = os.environ if environ is None else environ
        read = tuple(dict.fromkeys(names))
        keys = {name: SecretStr(env[name]) for name in read if env.get(name)}
        return cls(names=read, keys=keys, api_url=env.get(API_URL_ENV) or None)

    def secrets(self) -> tuple[str, ...]:
        """Every key read, for the redactor."""
        return tuple(key.get_secret_value() for key in self.keys.values())

    def guard(self) -> KeyGuard:
        """The guard that keeps these keys (and key-shaped strings) out of plans and
        checkpoints."""
        return KeyGuard.of(self.secrets())

    def settings(
        self, key_env: str = API_KEY_ENV, *, base_url: str | None = None, **overrides: object
    ) -> Settings:
        """Settings for the project whose key is in the variable ``key_env``.

        Args:
            key_env: One of the variables read.
            base_url: The API URL (default: ``$STATSIG_API_URL``, else Statsig's).
            overrides: Other :class:`Settings` fields (timeout, respect_reviews…).

        Raises:
            UsageError: the variable is unset or empty, or the URL is refused
                (:func:`api_base_url`).
            ApiAccessError: the variable holds a server secret or client key, which
                the Console API does not accept, or a character no key has (a pasted
                line ending); it is never sent.
            PlanError: the variable was not read: a job asked for a key its options do
                not name in a ``*_key_env`` option.
        """
        key = self.keys.get(key_env)
        if key is None:
            if key_env not in self.names:
                raise PlanError(
                    f"the key variable {key_env} was not read: a job names the variables of "
                    f"its keys in options ending in {KEY_ENV_SUFFIX!r}"
                )
            raise UsageError(
                f"no API key: the environment variable {key_env} is not set",
                hint=f"export {key_env}=console-… (keys are read from the environment only)",
            )
        value = key.get_secret_value()
        if not all("!" <= c <= "~" for c in value):
            raise ApiAccessError(
                f"{key_env} holds a space, a line ending or another character no key has "
                "(pasted from a file?); it was not sent",
                hint=f"export {key_env}=console-… with the key alone",
            )
        for prefix, kind in _OTHER_KEY_TYPES.items():
            if value.startswith(prefix):
                raise ApiAccessError(
                    f"{key_env} holds {kind} ({prefix}…), and the Console API accepts only "
                    "Console API keys (console-…); it was not sent",
                    hint=f"export {key_env}=console-… (Project Settings → Keys & "
                    "Environments → Console API Keys)",
                )
        url = base_url or self.api_url or DEFAULT_BASE_URL
        return Settings(api_key=key, base_url=url, key_env=key_env, **overrides)
