"""What is looked for: every object's id, its aliases, and the Statsig SDK's call names.

:func:`build_names` turns the objects and a repository's :class:`~.config.RefsConfig`
into a :class:`NameTable`: one entry per distinct byte string, saying which objects it
names and how it must be bounded (an id between delimiters; an alias, a constant or an
SDK call name as a whole word). :data:`SDK_CALLS` lists the SDKs' calls per language
(from the Statsig SDK repositories): a hit inside one is an SDK call, a hit inside an
override helper a test override.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass

from .config import RefsConfig
from .objects import FlagObject

__all__ = [
    "OVERRIDE_CALLS",
    "SDK_CALLS",
    "Name",
    "NameTable",
    "build_names",
    "case_variants",
]


def _with_variants(*names: str) -> tuple[str, ...]:
    """Each name with the SDKs' Sync/Async and exposure-logging-disabled variants."""
    out: list[str] = []
    for name in names:
        snake = "_" in name or name.islower()
        out.append(name)
        if snake:
            out.append(f"{name}_with_exposure_logging_disabled")
            out.append(f"{name}_async")
        else:
            out += [f"{name}Sync", f"{name}Async", f"{name}WithExposureLoggingDisabled"]
    return tuple(out)


# The Statsig SDKs' calls that take an object id, in every language's spelling (JS,
# React, Python, Ruby, Go, Java/Kotlin, .NET, Swift), from the Statsig SDK repositories.
SDK_CALLS: tuple[str, ...] = _with_variants(
    "checkGate", "getFeatureGate", "useGate", "useGateValue", "useFeatureGate",
    "getDynamicConfig", "getConfig", "useConfig", "useDynamicConfig",
    "getExperiment", "useExperiment", "getLayer", "useLayer", "getParameterStore",
    "check_gate", "get_feature_gate", "get_gate", "get_config", "get_dynamic_config",
    "get_experiment", "get_layer",
    "CheckGate", "GetGate", "GetFeatureGate", "GetConfig", "GetDynamicConfig",
    "GetExperiment", "GetLayer",
    "manuallyLogGateExposure", "manuallyLogConfigExposure",
    "manuallyLogExperimentExposure", "manuallyLogLayerParameterExposure",
    "manually_log_gate_exposure", "manually_log_config_exposure",
    "manually_log_experiment_exposure", "manually_log_layer_parameter_exposure",
)  # fmt: skip
# Test helpers that force a value: a hit inside one is a test override.
OVERRIDE_CALLS: tuple[str, ...] = (
    "overrideGate", "overrideConfig", "overrideExperiment", "overrideLayer",
    "override_gate", "override_config", "override_experiment", "override_layer",
    "OverrideGate", "OverrideConfig", "OverrideExperiment", "OverrideLayer",
)  # fmt: skip

_WORDS = re.compile(r"[A-Z]+(?=[A-Z][a-z0-9])|[A-Z]?[a-z0-9]+|[A-Z]+")

ID, ALIAS, VARIANT, CONSTANT, CALL = "id", "alias", "variant", "constant", "call"


def case_variants(object_id: str) -> set[str]:
    """camelCase, PascalCase, SCREAMING_SNAKE, snake_case and kebab-case spellings of an
    id (``checkout_one_click`` → ``checkoutOneClick``, ``CheckoutOneClick``,
    ``CHECKOUT_ONE_CLICK``, ``checkout-one-click``), without the id itself."""
    words = [w.lower() for w in _WORDS.findall(object_id)]
    if len(words) < 2:
        return set()
    found = {
        words[0] + "".join(w.capitalize() for w in words[1:]),
        "".join(w.capitalize() for w in words),
        "_".join(words).upper(),
        "_".join(words),
        "-".join(words),
    }
    found.discard(object_id)
    return found


@dataclass(slots=True)
class Name:
    """One distinct string looked for.

    Attributes:
        text: The bytes matched.
        role: ``id`` (between delimiters), ``alias``, ``variant`` (a case variant),
            ``constant`` (a name assigned an id in code), or ``call`` (an SDK or
            override call name); all but ids match as whole words.
        targets: Indexes of the objects it names (several when ids collide across kinds).
    """

    text: bytes
    role: str
    targets: tuple[int, ...] = ()


@dataclass
class NameTable:
    """Every :class:`Name`, indexed as the automaton's patterns are."""

    names: list[Name]

    @property
    def patterns(self) -> list[bytes]:
        return [n.text for n in self.names]

    def lookup(self) -> dict[bytes, Name]:
        """Object-naming entries by text (what a regex alias's capture is looked up in)."""
        return {n.text: n for n in self.names if n.role != CALL}


def build_names(
    objects: Sequence[FlagObject],
    config: RefsConfig,
    *,
    constants: Mapping[str, Iterable[int]] | None = None,
    calls: bool = True,
) -> NameTable:
    """The names to look for: ids, aliases (literal, and case variants when enabled),
    ``constants`` (name → objects, found in a first pass) and, with ``calls``, the SDK's
    and the config's call names. Where one string has several roles, the id wins (it is
    the stricter match), then aliases, then constants."""
    entries: dict[bytes, Name] = {}
    order = {ID: 0, ALIAS: 1, VARIANT: 2, CONSTANT: 3, CALL: 4}

    def add(text: str, role: str, target: int | None) -> None:
        key = text.encode()
        if not key:
            return
        name = entries.get(key)
        if name is None:
            name = entries[key] = Name(key, role)
        elif order[role] < order[name.role]:
            name.role = role
        if target is not None and target not in name.targets:
            name.targets = (*name.targets, target)

    by_id: dict[str, list[int]] = {}
    for index, obj in enumerate(objects):
        same = by_id.get(obj.id)
        if same is None:  # the usual case, without add()'s checks: 10,000 ids in 10 ms
            by_id[obj.id] = [index]
            key = obj.id.encode()
            if key:
                entries[key] = Name(key, ID, (index,))
        else:  # one id in several kinds
            same.append(index)
            add(obj.id, ID, index)
    for object_id, aliases in config.aliases.items():
        for index in by_id.get(object_id, ()):
            for alias in aliases:
                add(alias, ALIAS, index)
    if config.case_variants:
        for index, obj in enumerate(objects):
            for variant in sorted(case_variants(obj.id)):
                add(variant, VARIANT, index)
    for constant, targets in (constants or {}).items():
        for index in targets:
            add(constant, CONSTANT, index)
    if calls:
        for call in (*SDK_CALLS, *OVERRIDE_CALLS, *config.sdk_calls):
            add(call.rsplit(".", 1)[-1], CALL, None)
    return NameTable(list(entries.values()))
