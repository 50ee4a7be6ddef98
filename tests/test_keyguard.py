"""The key guard: what counts as an API key in data the tool writes."""

from __future__ import annotations

import pytest

from bulkops.keyguard import PATTERN_ONLY, KeyGuard


@pytest.mark.parametrize(
    "text",
    [
        "console-abc123def456",
        "/keys/secret-9IWfdzNwExEYHEW4YfOQcFZ4xreZyFkbOXHaNbPsMwW/rotate",
        "client-LAx5juseYG9kxnB2vHLxFluaWDFF1ZdKSX1hxOEZWI",
        'rotated "console-Zx81KqLm0Pw7Rt2Yv5Nb" today',
        "_console-abc123def456",
    ],
)
def test_generated_looking_keys_are_found(text: str) -> None:
    """A key prefix and a token of 10+ letters and digits (both) is a key."""
    assert PATTERN_ONLY.holds_key(text)


@pytest.mark.parametrize(
    "text",
    [
        "client-side_checkout",  # a gate id made from "client-side checkout"
        "console-v2-rollout",
        "client-12345",  # a unit id
        "client-550e8400-e29b-41d4-a716-446655440000",  # client- and a UUID
        "client-relations@example.com",
        "secret-menu",
        "console-redesign",
        "xconsole-abc123def456",  # not at a word start
        "console-abc123def456_v2",  # runs on into an id
        "console-demo-source",  # the emulator's keys are found by value, not by shape
    ],
)
def test_names_people_choose_are_not_keys(text: str) -> None:
    """Ids, names and unit ids that merely start like a key are left alone."""
    assert not PATTERN_ONLY.holds_key(text)


def test_the_keys_a_run_read_are_found_by_value() -> None:
    """Exact values are found anywhere; very short ones are left to the pattern."""
    guard = KeyGuard.of(["plainsourcekey42", "x", "console-demo-source", "plainsourcekey42"])
    assert guard.secrets == ("plainsourcekey42", "console-demo-source")
    assert guard.holds_key("note: plainsourcekey42!")
    assert guard.holds_key("/gates/console-demo-source")
    assert not guard.holds_key("x marks the spot")


def test_find_names_the_field_never_the_value() -> None:
    """The path of the first key in a JSON value; a key used as a field's name is
    reported as such, without building a path from it."""
    guard = KeyGuard.of(["plainsourcekey42"])
    assert guard.find({"a": [1, {"b": "ok"}, {"c": "plainsourcekey42"}]}) == "a.2.c"
    assert guard.find({"rules": [{"id": "console-abc123def456"}]}, "body") == "body.rules.0.id"
    assert guard.find({"ok": {"plainsourcekey42": 1}}, "body") == "body.ok (a field's name)"
    assert guard.find("plainsourcekey42", "path") == "path"
    assert guard.find({"a": "fine", "b": [None, 3, True]}) is None


def test_redact_hides_what_holds_key_finds() -> None:
    """Lines for people (a job's notes) lose the keys found, and keep everything else."""
    guard = KeyGuard.of(["plainsourcekey42"])
    line = "skipped client-side_checkout: plainsourcekey42 and console-abc123def456 in it"
    assert guard.redact(line) == "skipped client-side_checkout: <redacted> and <redacted> in it"
    assert not guard.holds_key(guard.redact(line))
