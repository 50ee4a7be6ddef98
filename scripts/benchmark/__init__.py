"""The benchmark's sections (``scripts/bench`` runs them; see ``scripts/bench.py``).

:mod:`.common` holds what they share (sizes, the :class:`~.common.Section` contract,
forked emulators, states); each other module is one section of ``bench/results.json``.
A development program, not part of the wheel.
"""

__all__: list[str] = []
