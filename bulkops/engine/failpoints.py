"""Crash points for the crash tests: ``BULKOPS_FAILPOINT=step:N`` kills the process there.

The steps name the places of the write-ahead protocol (:mod:`bulkops.engine.send`) where
a kill leaves a different journal behind; the crash tests (``tests/engine/test_crash.py``,
``test_model.py``) kill the CLI at each of them and check that a resume loses and doubles
nothing. The process ends with ``os._exit(137)``, as a ``kill -9`` would: no cleanup, no
flush, no ``finally``.
"""

from __future__ import annotations

import os
from collections import Counter
from collections.abc import Mapping

__all__ = ["FAILPOINT_ENV", "FAILPOINT_STEPS", "Failpoints"]

FAILPOINT_ENV = "BULKOPS_FAILPOINT"
FAILPOINT_STEPS = (
    "before-intent",
    "before-read",
    "after-intent",
    "after-send",
    "before-outcome",
    "after-outcome",
)


class Failpoints:
    """``BULKOPS_FAILPOINT=step:N[,step:N]``: ``os._exit(137)`` at ``step`` the N-th time.

    Steps: ``before-intent``, ``before-read`` (the intent appended before the re-read,
    nothing read or sent), ``after-intent`` (durable, not sent), ``after-send`` (the
    response arrived, nothing recorded), ``before-outcome`` (decided, not recorded),
    ``after-outcome`` (recorded). Counting is per process, per step.
    """

    def __init__(self, spec: str | None) -> None:
        self._at: dict[str, int] = {}
        self._seen: Counter[str] = Counter()
        for part in filter(None, (p.strip() for p in (spec or "").split(","))):
            step, _, count = part.partition(":")
            if step not in FAILPOINT_STEPS or not count.isdigit() or int(count) < 1:
                raise ValueError(
                    f"bad failpoint {part!r}: expected STEP:N with STEP one of "
                    f"{', '.join(FAILPOINT_STEPS)}"
                )
            self._at[step] = int(count)

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> Failpoints:
        """The failpoints named in ``$BULKOPS_FAILPOINT``."""
        env = os.environ if environ is None else environ
        return cls(env.get(FAILPOINT_ENV))

    def armed(self, step: str) -> bool:
        """Whether a crash is configured at ``step``."""
        return step in self._at

    def hit(self, step: str) -> None:
        """Count one arrival at ``step``; die at the configured one."""
        if step not in self._at:
            return
        self._seen[step] += 1
        if self._seen[step] == self._at[step]:
            os._exit(137)
