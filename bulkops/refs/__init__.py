"""Code references: where application code still names a gate, config, experiment or layer.

Archiving a gate that code still checks switches a launched feature off (the SDKs serve
the default, ``false``, for an archived gate), and the Console API cannot see code. This
package reads source trees for the project's object ids, as engineers would want it read:

* :mod:`.listing`: which files (git's list in a checkout, nested ``.gitignore`` files and
  ``.bulkopsignore`` honoured; symlinks never followed; everything left out counted);
* :mod:`.config`: a repository's ``.bulkops/coderefs.toml`` (delimiters, aliases, case
  variants, wrappers, ignores);
* :mod:`.names`: what is looked for (ids, aliases, SDK call names);
* :mod:`.scan`: one Aho-Corasick automaton over each file's bytes, in worker processes;
* :mod:`.classify`: what each hit is (SDK call, test override, constant, comment,
  string, identifier), names built at run time beside SDK calls;
* :mod:`.report`: per-object references, objects found nowhere, and the table, JSON,
  CSV and SARIF renderings.

It imports neither the engine nor any job (both use it), nor aiohttp, pydantic or rich:
``bulkops refs --snapshot`` starts in a few tens of milliseconds.
"""

from __future__ import annotations

from .config import CONFIG_PATH, RefsConfig, load_config
from .objects import KINDS, FlagObject, objects_from_collections, read_snapshot
from .report import ObjectRefs, RefsReport, build_report
from .scan import Hit, Scan, Warning, scan

__all__ = [
    "CONFIG_PATH",
    "KINDS",
    "FlagObject",
    "Hit",
    "ObjectRefs",
    "RefsConfig",
    "RefsReport",
    "Scan",
    "Warning",
    "build_report",
    "load_config",
    "objects_from_collections",
    "read_snapshot",
    "scan",
]
