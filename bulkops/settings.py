"""Settings, built once (from the environment plus flags) and passed explicitly."""

from __future__ import annotations

import os
from collections.abc import Mapping

from pydantic import BaseModel, ConfigDict, Field, SecretStr

from .errors import UsageError

__all__ = [
    "API_KEY_ENV",
    "API_URL_ENV",
    "API_VERSION",
    "DEFAULT_BASE_URL",
    "DEFAULT_PAGE_LIMIT",
    "Settings",
]

API_KEY_ENV = "STATSIG_CONSOLE_API_KEY"
API_URL_ENV = "STATSIG_API_URL"
DEFAULT_BASE_URL = "https://statsigapi.net/console/v1"
API_VERSION = "20240601"
DEFAULT_PAGE_LIMIT = 100
DEFAULT_TIMEOUT = 30.0
DEFAULT_READ_RETRIES = 4


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
        env = os.environ if environ is None else environ
        key = env.get(key_env, "")
        if not key:
            raise UsageError(
                f"no API key: the environment variable {key_env} is not set",
                hint=f"export {key_env}=console-… (keys are read from the environment only)",
            )
        url = base_url or env.get(API_URL_ENV) or DEFAULT_BASE_URL
        return cls(api_key=SecretStr(key), base_url=url.rstrip("/"), **overrides)
