"""What a benchmark section is, and the sizes of a run.

A section (:class:`Section`) is a module of this package with a ``run(cfg, tmp, say)``
that measures and returns its figures (a JSON-able dict, written under its name in
``bench/results.json``), a ``targets(figures)`` that says which are met, and optionally
a ``render(console, figures)`` for a table of its own. ``scripts/bench.py`` lists the
sections in the order they run; adding one is a module and a line there (and its
sizes in :class:`BenchConfig`).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from rich.console import Console

__all__ = ["FULL", "QUICK", "BenchConfig", "Say", "Section", "Target"]

Say = Callable[[str], None]
"""Prints one progress line of the benchmark."""


@dataclass(frozen=True)
class BenchConfig:
    """Sizes of one benchmark run.

    Attributes:
        quick: The reduced run (``--quick``).
        quota_mutations: Mutations in the quota-efficiency runs.
        time_scale: How much faster the emulator's quota windows run.
        peer_cap: A peer run is stopped after this many times the theoretical minimum.
        overhead_mutations: Mutations in each runner-overhead round (and in its baselines).
        overhead_rounds: Rounds of the overhead figure (its medians are quoted).
        checkpoint_records: Records of the checkpoint whose reading is timed.
        kill_mutations: Mutations of the apply that is killed and resumed.
        memory_gates: Gates of the project the archive plan reads.
        memory_rows: Override rows of the import plan.
        memory_targets: Targets those rows spread over.
        refs_files: Files of the generated source tree (100 lines each).
        refs_ids: Object ids looked for (each appears quoted in the tree).
        refs_rounds: Alternating rounds of bulkops refs and grep (medians quoted).
        in_flight: The runner's in-flight cap (its default).
        profile: cProfile the runner-overhead run (``--profile``).
    """

    quick: bool
    quota_mutations: int
    time_scale: float
    peer_cap: float
    overhead_mutations: int
    overhead_rounds: int
    checkpoint_records: int
    kill_mutations: int
    memory_gates: int
    memory_rows: int
    refs_files: int
    refs_ids: int
    refs_rounds: int
    memory_targets: int = 50
    in_flight: int = 4
    profile: bool = False


# Each size of a run: (the full run, the reduced ``--quick`` one).
_SIZES: dict[str, tuple[Any, Any]] = {
    "quota_mutations": (2000, 1000),
    "time_scale": (60.0, 100.0),
    "peer_cap": (3.0, 0.5),
    "overhead_mutations": (2000, 500),
    "overhead_rounds": (5, 2),
    "checkpoint_records": (100_000, 100_000),
    "kill_mutations": (1000, 200),
    "memory_gates": (50_000, 5_000),
    "memory_rows": (100_000, 10_000),
    "refs_files": (10_000, 500),
    "refs_ids": (5000, 500),
    "refs_rounds": (5, 3),
}
FULL = BenchConfig(quick=False, **{name: full for name, (full, _) in _SIZES.items()})
QUICK = BenchConfig(quick=True, **{name: quick for name, (_, quick) in _SIZES.items()})


@dataclass(frozen=True)
class Target:
    """One figure against its target; ``met`` None: not measured (a job missing)."""

    name: str
    value: Any
    target: str
    met: bool | None


@dataclass(frozen=True)
class Section:
    """One section of the benchmark (see the module docstring)."""

    name: str
    run: Callable[[BenchConfig, Path, Say], dict[str, Any]]
    targets: Callable[[Mapping[str, Any]], list[Target]]
    render: Callable[[Console, Mapping[str, Any]], None] | None = None
