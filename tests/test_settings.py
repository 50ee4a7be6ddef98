"""Settings: the API URL is checked before any request, and keys of the wrong type are refused."""

from __future__ import annotations

import pytest
from pydantic import SecretStr

from bulkops.errors import ApiAccessError, UsageError
from bulkops.settings import API_KEY_ENV, ApiKeys, Settings, api_base_url, is_loopback


@pytest.mark.parametrize(
    ("host", "loopback"),
    [
        ("localhost", True),
        ("LOCALHOST.", True),
        ("127.0.0.1", True),
        ("127.8.9.10", True),
        ("::1", True),
        ("[::1]", True),
        ("::ffff:127.0.0.1", True),
        ("0.0.0.0", False),
        ("192.0.2.2", False),
        ("10.0.0.1", False),
        ("::", False),
        ("statsigapi.net", False),
        ("localhost.example.com", False),
        ("127.0.0.1.nip.io", False),  # resolves to loopback, but names are not resolved
    ],
)
def test_loopback_is_decided_on_the_name_as_written(host: str, loopback: bool) -> None:
    """127.0.0.0/8, ::1 (also IPv4-mapped) and localhost are this machine; nothing is resolved."""
    assert is_loopback(host) is loopback


@pytest.mark.parametrize(
    ("url", "expected"),
    [
        ("https://statsigapi.net", "https://statsigapi.net/console/v1"),
        ("https://statsigapi.net/", "https://statsigapi.net/console/v1"),
        ("HTTPS://statsigapi.net/console/v1/", "https://statsigapi.net/console/v1"),
        ("  https://proxy.corp/statsig/console/v1  ", "https://proxy.corp/statsig/console/v1"),
        ("http://127.0.0.1:8700", "http://127.0.0.1:8700/console/v1"),
        ("http://localhost:8700/console/v1", "http://localhost:8700/console/v1"),
        ("http://[::1]:8700/console/v1", "http://[::1]:8700/console/v1"),
    ],
)
def test_a_good_url_is_normalised(url: str, expected: str) -> None:
    """A bare host gets /console/v1; another path is kept (a proxy), minus a trailing slash."""
    assert api_base_url(url) == expected
    assert Settings(api_key=SecretStr("k"), base_url=url).base_url == expected


@pytest.mark.parametrize(
    ("url", "words"),
    [
        ("http://statsigapi.net/console/v1", "refusing to send the key in clear text"),
        ("http://192.0.2.2:8700", "refusing to send the key in clear text"),
        ("http://0.0.0.0:8700", "refusing to send the key in clear text"),
        ("statsigapi.net/console/v1", "is not an https:// URL with a host"),
        ("ftp://statsigapi.net", "is not an https:// URL with a host"),
        ("https://", "is not an https:// URL with a host"),
        ("https://user:pw@statsigapi.net", "without a user name, password, query"),
        ("https://statsigapi.net/console/v1?x=1", "without a user name, password, query"),
    ],
)
def test_a_bad_url_is_refused_naming_the_setting(url: str, words: str) -> None:
    """Each says what is wrong and names STATSIG_API_URL / --api-url."""
    with pytest.raises(UsageError, match=words) as info:
        Settings(api_key=SecretStr("k"), base_url=url)
    assert "STATSIG_API_URL or --api-url" in f"{info.value.message} {info.value.hint}"
    assert "pw" not in info.value.message


def test_plain_http_elsewhere_needs_the_explicit_flag() -> None:
    """allow_insecure_http lets plain http reach another host (the CLI warns every run)."""
    settings = Settings(
        api_key=SecretStr("k"), base_url="http://192.0.2.2:8700", allow_insecure_http=True
    )
    assert settings.base_url == "http://192.0.2.2:8700/console/v1"


@pytest.mark.parametrize(
    ("key", "kind"),
    [("secret-AbC123", "a server secret key"), ("client-AbC123", "a client SDK key")],
)
def test_a_key_of_another_type_is_refused_before_it_is_sent(key: str, kind: str) -> None:
    """A server secret or client key, or a pasted line ending, in the Console key's
    variable: ApiAccessError (exit 4) naming the variable and what is wrong, never the key."""
    keys = ApiKeys.read([API_KEY_ENV], environ={API_KEY_ENV: key})
    with pytest.raises(ApiAccessError, match=f"{API_KEY_ENV} holds {kind}") as info:
        keys.settings()
    assert key not in info.value.message and key not in str(info.value.hint)


def test_settings_remember_which_variable_held_the_key() -> None:
    """key_env names the variable (for messages); the URL comes from STATSIG_API_URL."""
    env = {"SRC": "console-src", "STATSIG_API_URL": "http://127.0.0.1:9"}
    settings = ApiKeys.read(["SRC"], environ=env).settings("SRC")
    assert settings.key_env == "SRC"
    assert settings.base_url == "http://127.0.0.1:9/console/v1"
