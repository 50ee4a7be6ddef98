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
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, SecretStr

from .errors import PlanError, UsageError

__all__ = [
    "API_KEY_ENV",
    "API_URL_ENV",
    "API_VERSION",
    "DEFAULT_BASE_URL",
    "DEFAULT_PAGE_LIMIT",
    "KEY_ENV_SUFFIX",
    "TARGET_KEY_ENV_OPTION",
    "ApiKeys",
    "Settings",
    "key_env_names",
    "target_key_env",
]

API_KEY_ENV = "STATSIG_CONSOLE_API_KEY"
API_URL_ENV = "STATSIG_API_URL"
DEFAULT_BASE_URL = "https://statsigapi.net/console/v1"
API_VERSION = "20240601"
DEFAULT_PAGE_LIMIT = 100
DEFAULT_TIMEOUT = 30.0
DEFAULT_READ_RETRIES = 4
# A job option whose name ends so holds the name of a variable holding a key.
KEY_ENV_SUFFIX = "_key_env"
# The job option naming the key of the project a plan writes to (default: API_KEY_ENV).
TARGET_KEY_ENV_OPTION = "target_key_env"


class Settings(BaseModel):
    """Connection settings for one Console API project (one key).

    The key is a ``SecretStr``: its repr and str show ``**********``.
    """

    model_config = ConfigDict(frozen=True, extra="forbid")

    api_key: SecretStr
    base_url: str = DEFAULT_BASE_URL
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

    def settings(
        self, key_env: str = API_KEY_ENV, *, base_url: str | None = None, **overrides: object
    ) -> Settings:
        """Settings for the project whose key is in the variable ``key_env``.

        Args:
            key_env: One of the variables read.
            base_url: The API URL (default: ``$STATSIG_API_URL``, else Statsig's).
            overrides: Other :class:`Settings` fields (timeout, respect_reviews…).

        Raises:
            UsageError: the variable is unset or empty.
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
        url = base_url or self.api_url or DEFAULT_BASE_URL
        return Settings(api_key=key, base_url=url.rstrip("/"), **overrides)
