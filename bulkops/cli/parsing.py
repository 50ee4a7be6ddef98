"""bulkops' argument parser (no import beyond argparse: every command starts with it).

A usage error is ``FAILED: …`` and exit 2, and an option that takes one value may be
given once: with two, which one wins is a guess (``--report a.json --report b.json``
used to write only b.json).
"""

from __future__ import annotations

import argparse
import sys
from typing import Any, NoReturn

__all__ = ["Parser"]

_USAGE = 2  # ExitCode.USAGE (bulkops.cli.exit_codes)


class _StoreOnce(argparse._StoreAction):
    """``store``, refusing an option given twice."""

    def __call__(
        self,
        parser: argparse.ArgumentParser,
        namespace: argparse.Namespace,
        values: Any,
        option_string: str | None = None,
    ) -> None:
        given: set[str] = namespace.__dict__.setdefault("_given", set())
        if self.dest in given:
            parser.error(f"{option_string or self.dest} given twice (it takes one value)")
        given.add(self.dest)
        super().__call__(parser, namespace, values, option_string)


class Parser(argparse.ArgumentParser):
    """bulkops' argument parser: a usage error is ``FAILED: …`` and exit 2, and an
    option that takes one value may be given once."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.register("action", None, _StoreOnce)
        self.register("action", "store", _StoreOnce)

    def error(self, message: str) -> NoReturn:
        self.print_usage(sys.stderr)
        print(f"FAILED: {message}", file=sys.stderr)
        raise SystemExit(_USAGE)
