"""The benchmark's sections (``scripts/bench`` runs them; see ``scripts/bench.py``).

:mod:`.section` says what a section is (and the sizes of a run), :mod:`.common` holds
what they share (forked emulators, states, calls); each other module is one section of
``bench/results.json``.
A development program, not part of the wheel.
"""

__all__: list[str] = []
