"""Request checks for emulator handlers: the service's 400s, each naming the property.

Two families of check live here, because the service answers with two styles:

* the config-object checks (:func:`require_fields`, :func:`check_name`,
  :func:`check_types`) used by gates, dynamic configs, segments and metadata;
* zod-style checks (``"Expected string, received number"``, ``"Required"``), built
  from :data:`Check` functions (:func:`string`, :func:`number`, :func:`object_list`, …)
  and applied with :func:`validate_fields`; experiments, layers, holdouts, the
  warehouse-native sources, ingestions and users answer this way.

Every check raises through :func:`field_error` (400 ``Bad Request Exception`` with one
``errors[]`` entry) or :func:`~.http.api_error`, and returns the checked value.
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import Any, NoReturn

from aiohttp import web

from .http import GENERIC_400, api_error, read_body
from .state import Project

__all__ = [
    "ID_PATTERN",
    "NAME_PATTERN",
    "Check",
    "boolean",
    "check_environment",
    "check_gate",
    "check_name",
    "check_types",
    "enum_field",
    "enum_value",
    "expected",
    "field_error",
    "json_object",
    "json_type",
    "multi_query",
    "number",
    "object_list",
    "object_value",
    "optional_body",
    "optional_object",
    "query_flag",
    "reject_unknown",
    "require_fields",
    "require_keys",
    "string",
    "string_field",
    "string_list",
    "target_apps",
    "validate_fields",
]

NAME_PATTERN = re.compile(r"^[a-zA-Z0-9_\-. ]*$")
ID_PATTERN = re.compile(r"^[a-zA-Z0-9_\-.]*$")

Check = Callable[[Any, str], Any]
"""A check of one value: ``check(value, prop)`` returns the value to keep or raises a 400."""


def field_error(prop: str, message: str, status: int = 400) -> NoReturn:
    """Raise a 400 ``Bad Request Exception`` with one ``errors[]`` entry naming ``prop``."""
    api_error(status, "Bad Request Exception", [{"property": prop, "errorMessage": message}])


def json_type(value: Any) -> str:
    """The JSON type name of a decoded value (``string``, ``number``, ``null``, …)."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, int | float):
        return "number"
    if isinstance(value, str):
        return "string"
    if isinstance(value, list):
        return "array"
    if isinstance(value, dict):
        return "object"
    return type(value).__name__


def expected(prop: str, kind: str, value: Any) -> NoReturn:
    """400 ``"Expected <kind>, received <JSON type of value>"`` naming ``prop``."""
    field_error(prop, f"Expected {kind}, received {json_type(value)}")


def json_object(body: Any) -> dict[str, Any]:
    """``body`` if it is a JSON object, else the service's generic 400."""
    if not isinstance(body, dict):
        api_error(
            400, GENERIC_400, [{"property": "body", "errorMessage": "Expected a JSON object"}]
        )
    return body


# -- config-object checks ---------------------------------------------------------------


def require_fields(body: Any, *names: str) -> dict[str, Any]:
    """Check ``body`` is an object holding ``names``; 400 naming the first missing one."""
    obj = json_object(body)
    for name in names:
        if obj.get(name) is None:
            field_error(name, f"{name} is required")
    return obj


def check_name(value: Any, prop: str = "name", *, pattern: re.Pattern[str] = NAME_PATTERN) -> str:
    """Validate a name or id: a string of 3–100 allowed characters."""
    if not isinstance(value, str):
        field_error(prop, f"Expected string, received {type(value).__name__}")
    if not 3 <= len(value) <= 100:
        field_error(prop, f"{prop} must be between 3 and 100 characters")
    if not pattern.match(value):
        field_error(prop, f"{prop} contains characters that are not allowed")
    return value


def _type_matches(value: Any, wanted: str) -> bool:
    if wanted.endswith("[]"):
        return isinstance(value, list) and all(json_type(v) == wanted[:-2] for v in value)
    return json_type(value) == wanted


def check_types(body: Mapping[str, Any], types: Mapping[str, str], *, prefix: str = "") -> None:
    """Check the JSON type of every field of ``body`` named in ``types``; 400 on the first mismatch.

    A type is ``string``, ``number``, ``boolean``, ``object``, ``array`` or ``<type>[]``;
    ``|`` separates alternatives and a trailing ``?`` also allows null
    (``"string|string[]"``, ``"string?"``). Absent fields are not checked. ``prefix``
    is put before the field name in the error's ``property`` (``"rules[0]."``).
    """
    for name, spec in types.items():
        if name not in body:
            continue
        value = body[name]
        if value is None and spec.endswith("?"):
            continue
        alternatives = spec.rstrip("?").split("|")
        if not any(_type_matches(value, alt) for alt in alternatives):
            field_error(
                prefix + name, f"Expected {' | '.join(alternatives)}, received {json_type(value)}"
            )


# -- zod-style checks -------------------------------------------------------------------


def enum_value(value: Any, prop: str, allowed: Sequence[str]) -> str:
    """``value`` if it is one of ``allowed``; else zod's ``Invalid enum value`` 400."""
    if not isinstance(value, str) or value not in allowed:
        choices = " | ".join(f"'{a}'" for a in allowed)
        shown = f"'{value}'" if isinstance(value, str) else json_type(value)
        field_error(prop, f"Invalid enum value. Expected {choices}, received {shown}")
    return value


def enum_field(
    value: Any, prop: str, allowed: Sequence[str], *, required: bool = True
) -> str | None:
    """An optional :func:`enum_value`: None when ``value`` is null or absent (``Required``
    if ``required``)."""
    if value is None:
        if required:
            field_error(prop, "Required")
        return None
    return enum_value(value, prop, allowed)


def string_field(
    body: Mapping[str, Any], prop: str, *, required: bool = False, nullable: bool = False
) -> str | None:
    """``body[prop]`` as a string, or None when absent (``Required`` if ``required``).

    A null is ``"Expected string, received null"``, or (``nullable``) taken as absent.
    """
    value = body.get(prop)
    if value is None:
        if prop in body and not nullable:
            expected(prop, "string", value)
        if required:
            field_error(prop, "Required")
        return None
    if not isinstance(value, str):
        expected(prop, "string", value)
    return value


def string(
    *, max_len: int | None = None, nullable: bool = False, enum: Iterable[str] | None = None
) -> Check:
    """A string check (optionally bounded, nullable, or one of ``enum``)."""
    allowed = tuple(enum) if enum is not None else None

    def check(value: Any, prop: str) -> Any:
        if value is None and nullable:
            return None
        if not isinstance(value, str):
            expected(prop, "string", value)
        if max_len is not None and len(value) > max_len:
            field_error(prop, f"{prop} must be at most {max_len} characters")
        if allowed is not None:
            enum_value(value, prop, allowed)
        return value

    return check


def boolean(*, nullable: bool = False) -> Check:
    """A boolean check."""

    def check(value: Any, prop: str) -> Any:
        if value is None and nullable:
            return None
        if not isinstance(value, bool):
            expected(prop, "boolean", value)
        return value

    return check


def number(
    lo: float | None = None,
    hi: float | None = None,
    *,
    integer: bool = False,
    above: float | None = None,
    nullable: bool = False,
) -> Check:
    """A number check: ``lo <= value <= hi``, ``value > above``, optionally an integer."""

    def check(value: Any, prop: str) -> Any:
        if value is None and nullable:
            return None
        if isinstance(value, bool) or not isinstance(value, int | float):
            expected(prop, "number", value)
        if not math.isfinite(value):
            field_error(prop, f"{prop} must be a finite number")
        if integer and value != int(value):
            field_error(prop, f"{prop} must be an integer")
        if lo is not None and value < lo:
            field_error(prop, f"{prop} must be greater than or equal to {lo:g}")
        if hi is not None and value > hi:
            field_error(prop, f"{prop} must be less than or equal to {hi:g}")
        if above is not None and value <= above:
            field_error(prop, f"{prop} must be greater than {above:g}")
        return int(value) if integer else value

    return check


def string_list(*, max_items: int | None = None, non_empty_items: bool = False) -> Check:
    """An array of strings."""

    def check(value: Any, prop: str) -> Any:
        if not isinstance(value, list):
            expected(prop, "array", value)
        for i, item in enumerate(value):
            if not isinstance(item, str):
                expected(f"{prop}[{i}]", "string", item)
            if non_empty_items and not item:
                field_error(f"{prop}[{i}]", "String must contain at least 1 character(s)")
        if max_items is not None and len(value) > max_items:
            field_error(prop, f"Array must contain at most {max_items} element(s)")
        return list(value)

    return check


def target_apps(value: Any, prop: str) -> Any:
    """``targetApps``: a string or an array of strings (stored as an array)."""
    if isinstance(value, str):
        return [value]
    return string_list()(value, prop)


def object_value(value: Any, prop: str) -> dict[str, Any]:
    """``value`` if it is a JSON object, else ``"Expected object, received …"`` naming ``prop``."""
    if not isinstance(value, dict):
        expected(prop, "object", value)
    return value


def optional_object(value: Any, prop: str) -> Any:
    """A JSON object or null."""
    return None if value is None else object_value(value, prop)


def object_list(fields: dict[str, Check], required: Iterable[str] = ()) -> Check:
    """An array of objects whose listed ``fields`` are checked (unknown keys are kept)."""
    needed = tuple(required)

    def check(value: Any, prop: str) -> Any:
        if not isinstance(value, list):
            expected(prop, "array", value)
        out = []
        for i, item in enumerate(value):
            object_value(item, f"{prop}[{i}]")
            checked = validate_fields(item, fields, required=needed, prefix=f"{prop}[{i}].")
            out.append({**item, **checked})
        return out

    return check


def require_keys(body: Any, names: Iterable[str], prefix: str = "") -> dict[str, Any]:
    """Check ``body`` is an object that has every key in ``names`` (null counts as given)."""
    obj = json_object(body)
    for name in names:
        if name not in obj:
            field_error(f"{prefix}{name}", "Required")
    return obj


async def optional_body(request: web.Request) -> dict[str, Any]:
    """The request's JSON object body, or ``{}`` when there is none."""
    body = await read_body(request, required=False)
    if body is None:
        return {}
    return require_keys(body, ())


def reject_unknown(body: dict[str, Any], allowed: Iterable[str]) -> None:
    """400 (zod's strict-object message) if ``body`` has keys outside ``allowed``."""
    extra = [k for k in body if k not in set(allowed)]
    if extra:
        keys = ", ".join(f"'{k}'" for k in extra)
        field_error("body", f"Unrecognized key(s) in object: {keys}")


def validate_fields(
    body: Any, table: dict[str, Check], *, required: Iterable[str] = (), prefix: str = ""
) -> dict[str, Any]:
    """Check the keys of ``body`` that ``table`` knows; return those (unknown keys are dropped)."""
    require_keys(body, required, prefix)
    return {key: check(body[key], f"{prefix}{key}") for key, check in table.items() if key in body}


# -- query parameters and project references --------------------------------------------


def multi_query(request: web.Request, name: str) -> list[str]:
    """Every value of a repeatable query parameter (``?tags=a&tags=b``)."""
    return [v for v in request.rel_url.query.getall(name, []) if v != ""]


def query_flag(request: web.Request, name: str, default: bool) -> bool:
    """A boolean query parameter (``true``/``false``/``1``/``0``); 400 on anything else."""
    value = request.rel_url.query.get(name)
    if value is None:
        return default
    if value.lower() not in ("true", "false", "1", "0"):
        field_error(name, f"Expected boolean, received '{value}'")
    return value.lower() in ("true", "1")


def check_gate(proj: Project, value: Any, prop: str = "targetingGateID") -> str | None:
    """A targeting gate id: null or ``""`` for none, else an existing gate's id."""
    if value is None:
        return None
    gate_id = string()(value, prop)
    if gate_id and gate_id not in proj.store("gates"):
        field_error(prop, f"Gate {gate_id} not found.")
    return str(gate_id)


def check_environment(proj: Project, value: Any, prop: str) -> str | None:
    """An environment name of the project, or null (all environments)."""
    env = string(nullable=True)(value, prop)
    if env is None:
        return None
    if env not in {e.get("name") for e in proj.environments}:
        field_error(prop, f"Unknown environment: {env}")
    return str(env)
