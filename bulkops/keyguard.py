"""What counts as an API key in data the tool writes, and the guard that keeps keys out.

Two rules, for two uses:

* **Text for people** (log lines, error messages, server messages) is *redacted* by
  :func:`bulkops.errors.redact`, generously: anything starting ``console-``, ``secret-``
  or ``client-`` loses its tail. Hiding too much of a message costs nothing.
* **Data the tool writes and acts on later** (plans, checkpoint records, and so reports
  and the plan's display) cannot be redacted: a plan is applied by another process
  that reads only the plan file, so a redacted path could not be sent. A key in such
  data is *refused* instead, before anything is written or sent, by a
  :class:`KeyGuard`: the mutation and the field are named, never the value.

Refusing costs a user their job, so the guard's rule is narrower than the redactor's:
it refuses the exact value of every key variable the run read (:meth:`KeyGuard.of`,
given :meth:`bulkops.settings.ApiKeys.secrets`), and any *key-shaped* token
(:data:`KEY_SHAPED`): ``console-``, ``secret-`` or ``client-`` followed by a generated
token (at least 10 letters and digits, with both, and no ``_`` or ``-`` after it).
Names people choose (a gate ``client-side_checkout``, an experiment
``console-v2-rollout``, a unit id ``client-12345``, a UUID) are not key-shaped;
Statsig's generated keys (a prefix and a long random token) and test keys such as
``console-abc123def456`` are.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from typing import Any

__all__ = ["KEY_SHAPED", "MIN_SECRET_LENGTH", "PATTERN_ONLY", "KeyGuard"]

KEY_SHAPED = re.compile(
    r"(?<![A-Za-z0-9])(?:console|secret|client)-"
    r"(?=[A-Za-z0-9]*[0-9])(?=[A-Za-z0-9]*[A-Za-z])[A-Za-z0-9]{10,}(?![A-Za-z0-9_-])"
)
"""A key-shaped token: a key prefix and a generated token (see the module docstring)."""

_PREFIXES = ("console-", "secret-", "client-")
# Shorter "keys" (a test's ``x``) would make every plan holding that letter a refusal;
# the API refuses such a key on the first call anyway.
MIN_SECRET_LENGTH = 8


@dataclass(frozen=True)
class KeyGuard:
    """Finds API keys in text and JSON values: key-shaped tokens and the exact keys read.

    Attributes:
        secrets: The exact key values to refuse besides key-shaped tokens.
    """

    secrets: tuple[str, ...] = ()

    @classmethod
    def of(cls, secrets: Iterable[str]) -> KeyGuard:
        """A guard for the keys a run read (values shorter than
        :data:`MIN_SECRET_LENGTH` are left to the pattern)."""
        kept = (s for s in secrets if len(s) >= MIN_SECRET_LENGTH)
        return cls(tuple(dict.fromkeys(kept)))

    def holds_key(self, text: str) -> bool:
        """Whether ``text`` contains a key-shaped token or one of the secrets."""
        if any(s in text for s in self.secrets):
            return True
        # Every journal record passes here: plain substring tests first (a tenth of the
        # regex's cost on a record), the pattern only where a prefix appears.
        return any(p in text for p in _PREFIXES) and KEY_SHAPED.search(text) is not None

    def redact(self, text: str) -> str:
        """``text`` with every key found replaced by ``<redacted>`` (for lines a job
        prints, which are not data the tool acts on)."""
        for secret in self.secrets:
            text = text.replace(secret, "<redacted>")
        return KEY_SHAPED.sub("<redacted>", text)

    def find(self, value: Any, where: str = "") -> str | None:
        """Where the first key in a JSON value is: a dotted field path (``body.rules.0.id``;
        ``""`` for ``value`` itself), or None. Object keys are searched too."""
        for path, text in _strings(value, where):
            if self.holds_key(text):
                return path
        return None


def _strings(value: Any, where: str) -> Iterator[tuple[str, str]]:
    if isinstance(value, str):
        yield where, value
    elif isinstance(value, dict):
        for key, item in value.items():
            # A field's name is checked before its path is built from it, so a path
            # returned never holds a key.
            yield (f"{where} (a field's name)" if where else "(a field's name)"), str(key)
            yield from _strings(item, f"{where}.{key}" if where else str(key))
    elif isinstance(value, list | tuple):
        for index, item in enumerate(value):
            yield from _strings(item, f"{where}.{index}" if where else str(index))


PATTERN_ONLY = KeyGuard()
"""A guard knowing no key values: key-shaped tokens only (the default where no keys
were read)."""
