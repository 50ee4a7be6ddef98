"""Emulator handlers: analytics of gates, experiments and holdouts (pulse and alerts).

Nothing is measured: every number is derived from the object's ids by a hash
(:func:`stable_fraction`), so tests and demos see stable data shaped like the spec's
schemas. An experiment's ``load_pulse`` is recorded in ``store("pulse_load_history")``
and its alert resolutions in the audit log; a gate's pulse history is made up from
its creation time and its alert resolutions are not recorded.
"""

from __future__ import annotations

import hashlib
import math
import time
from typing import Any

from aiohttp import web

from ..checks import (
    boolean,
    check_types,
    field_error,
    json_object,
    multi_query,
    optional_body,
    query_flag,
    require_fields,
    string,
    string_list,
    validate_fields,
)
from ..common import find_rule, get_or_404
from ..http import PREFIX, api_error, clone, now_ms, ok, ok_page, project, read_body, record_change
from .experiment_checks import find_group
from .experiments import experiment_or_404
from .gates import GATES, RULE_NOT_FOUND

__all__ = ["confidence_query", "date_of", "metric_result", "routes", "stable_fraction"]

_STR = string()
_BOOL = boolean()
_GATE = f"{PREFIX}/gates/{{id}}"
_RULE = f"{_GATE}/rules/{{ruleID}}"
_EXPERIMENT = f"{PREFIX}/experiments/{{id}}"


def stable_fraction(*parts: object, sep: str = "\x1f") -> float:
    """A deterministic number in [0, 1) derived from ``parts`` (stable across runs)."""
    digest = hashlib.sha256(sep.join(map(str, parts)).encode()).digest()
    return int.from_bytes(digest[:8], "big") / 2**64


def date_of(ms: float) -> str:
    """``YYYY-MM-DD`` (UTC) of a millisecond timestamp."""
    return time.strftime("%Y-%m-%d", time.gmtime(ms / 1000))


_Z = {"80": 1.2816, "90": 1.6449, "95": 1.96, "98": 2.3263, "99": 2.5758}


def metric_result(
    metric: dict[str, Any], *seed: object, confidence: str = "95", cuped: bool = True
) -> dict[str, Any]:
    """A deterministic pulse row for ``metric`` (``{name, type, direction?}``)."""
    metric_id = f"{metric.get('name')}::{metric.get('type')}"
    f = [stable_fraction(metric_id, *seed, i) for i in range(5)]
    control_mean = round(1 + 99 * f[0], 4)
    lift = (f[1] - 0.5) * 0.1
    test_mean = round(control_mean * (1 + lift), 4)
    control_units = 1000 + int(9000 * f[2])
    test_units = 1000 + int(9000 * f[3])
    std = control_mean * (0.2 + 0.3 * f[4]) * (0.8 if cuped else 1.0)
    stderr = std * math.sqrt(1 / control_units + 1 / test_units)
    delta = test_mean - control_mean
    ci = _Z.get(confidence, 1.96) * stderr
    z = abs(delta) / stderr if stderr else 0.0
    return {
        "metricID": metric_id,
        "metricName": str(metric.get("name")),
        "directionality": "decrease" if metric.get("direction") == "decrease" else "increase",
        "absoluteChange": round(delta, 6),
        "confidenceIntervalDelta": round(ci, 6),
        "percentChange": round(100 * delta / control_mean, 6),
        "percentConfidenceIntervalDelta": round(100 * ci / control_mean, 6),
        "testMean": test_mean,
        "controlMean": control_mean,
        "testStd": round(std / math.sqrt(test_units), 6),
        "controlStd": round(std / math.sqrt(control_units), 6),
        "testUnits": test_units,
        "controlUnits": control_units,
        "pValue": round(math.erfc(z / math.sqrt(2)), 6),
    }


def confidence_query(request: web.Request) -> str:
    """The ``confidence`` query parameter (80, 90, 95 (default), 98 or 99)."""
    value = request.rel_url.query.get("confidence", "95")
    if value not in _Z:
        field_error(
            "confidence", f"Invalid confidence {value!r}; expected one of 80, 90, 95, 98, 99"
        )
    return value


# -- experiments ----------------------------------------------------------------------------


async def cumulative_exposures(request: web.Request) -> web.Response:
    """``GET /experiments/{id}/cumulative_exposures``: one running total per group and day."""
    experiment = experiment_or_404(request)
    start = experiment.get("startTime")
    days: list[str] = []
    if start is not None:
        end = experiment.get("endTime") or now_ms(request)
        day = int(start) // 86_400_000
        last = min(int(end) // 86_400_000, day + 89)
        days = [date_of((day + n) * 86_400_000) for n in range(last - day + 1)]
    data = []
    for group in experiment.get("groups") or []:
        total = 0
        results = []
        for n, ds in enumerate(days):
            if n:
                base = 200 + 800 * stable_fraction(experiment["id"], group["id"], ds)
                total += int(base * float(group.get("size", 0)) / 50)
            results.append({"date": ds, "exposures": total})
        data.append({"groupID": group["id"], "groupName": group["name"], "results": results})
    return ok(data, "Successfully loaded Cumulative Exposures")


async def pulse_results(request: web.Request) -> web.Response:
    """``GET /experiments/{id}/pulse_results?control=…&test=…`` (groups by id or name)."""
    experiment = experiment_or_404(request)
    query = request.rel_url.query
    groups = []
    for key in ("control", "test"):
        if not query.get(key):
            field_error(key, f"{key} is required")
        group = find_group(experiment, query[key])
        if group is None:
            field_error(key, f"Group {query[key]} is not a group of experiment {experiment['id']}")
        groups.append(group["id"])
    if experiment.get("startTime") is None:
        api_error(400, "Experiment has not yet started")
    ds = query.get("date") or date_of(experiment.get("endTime") or now_ms(request))
    cuped = query_flag(request, "cuped", True)
    confidence = confidence_query(request)
    data: dict[str, Any] = {"ds": ds}
    for key in ("primaryMetrics", "secondaryMetrics", "otherMetrics"):
        data[key] = [
            metric_result(m, experiment["id"], *groups, ds, confidence=confidence, cuped=cuped)
            for m in experiment.get(key) or []
        ]
    return ok(data, "Successfully loaded Pulse Results")


async def resolve_alert(request: web.Request) -> web.Response:
    """``POST /experiments/{id}/alerts/{metricId}/resolve`` for one of the experiment's metrics."""
    experiment = experiment_or_404(request)
    body = validate_fields(await optional_body(request), {"reasoning": _STR})
    metric_id = request.match_info["metricId"]
    metrics = [
        m
        for key in ("primaryMetrics", "secondaryMetrics", "otherMetrics")
        for m in experiment.get(key) or []
    ]
    if not any(metric_id in (f"{m['name']}::{m['type']}", m["name"]) for m in metrics):
        api_error(404, "Metric not found")
    ts = now_ms(request)
    record_change(
        request,
        "experiments",
        experiment,
        "resolve_guardrail_metric_alert",
        versioned=False,
        changes={"metricID": metric_id, "reasoning": body.get("reasoning")},
    )
    return ok({"resolvedAt": ts}, "Alert resolved successfully.")


_REFRESH = string(enum=("full", "incremental", "metric"))


async def load_pulse(request: web.Request) -> web.Response:
    """``POST /experiments/{id}/load_pulse`` (WHN): record a finished load in the history."""
    experiment = experiment_or_404(request)
    query = request.rel_url.query
    given: dict[str, Any] = {}
    if "refresh" in query:
        given["refresh"] = query["refresh"]
    if "turboMode" in query:
        given["turboMode"] = query_flag(request, "turboMode", False)
    if metric_ids := multi_query(request, "metricIDs"):
        given["metricIDs"] = metric_ids
    if "ruleId" in query:
        given["ruleId"] = query["ruleId"]
    given.update(await optional_body(request))
    params = validate_fields(
        given,
        {"refresh": _REFRESH, "metricIDs": string_list(), "ruleId": _STR, "turboMode": _BOOL},
    )
    if experiment.get("startTime") is None:
        api_error(400, "Experiment has not yet started")
    ts = now_ms(request)
    entry = {
        "creatorName": "CONSOLE API",
        "createdTime": ts,
        "finishedTime": ts,
        "finishedState": "success",
        "startDs": date_of(experiment["startTime"]),
        "endDs": date_of(experiment.get("endTime") or ts),
        "reloadType": params.get("refresh", "full"),
        "turboMode": bool(params.get("turboMode", False)),
    }
    history = project(request).store("pulse_load_history")
    record = history.setdefault(experiment["id"], {"experimentID": experiment["id"], "loads": []})
    record["loads"].insert(0, entry)
    record_change(
        request, "experiments", experiment, "load_echidna_pulse", versioned=False, changes=params
    )
    return ok(message="Experiment is loading.", with_data=False)


async def pulse_load_history(request: web.Request) -> web.Response:
    """``GET /experiments/{id}/pulse_load_history`` (WHN): newest load first."""
    experiment = experiment_or_404(request)
    record = project(request).store("pulse_load_history").get(experiment["id"]) or {}
    return ok_page(
        request, clone(record.get("loads", [])), "Pulse load history listed successfully."
    )


# -- gates ----------------------------------------------------------------------------------


def _pulse_rule(request: web.Request) -> tuple[dict[str, Any], dict[str, Any]]:
    gate = GATES.get(request)
    rules = gate.get("rules") or []
    index = find_rule(rules, request.match_info["ruleID"])
    if index is None:
        api_error(404, "Rule not found.")
    return gate, rules[index]


_GATE_Z = {80: 1.2816, 90: 1.6449, 95: 1.96, 99: 2.5758}


async def gate_pulse_results(request: web.Request) -> web.Response:
    """``GET /gates/{id}/rules/{ruleID}/pulse_results?cuped&confidence``: one row per monitoring metric."""
    gate, rule = _pulse_rule(request)
    query = request.rel_url.query
    cuped = query.get("cuped", "true")
    if cuped not in ("true", "false"):
        field_error("cuped", 'Allowed values are "true" or "false"')
    try:
        confidence = float(query.get("confidence", "95"))
    except ValueError:
        field_error("confidence", "Expected a number between 0 and 100")
    if not 0 < confidence < 100:
        field_error("confidence", "Expected a number between 0 and 100")
    z = _GATE_Z.get(round(confidence), 1.96) * (0.8 if cuped == "true" else 1.0)
    metrics = gate.get("monitoringMetrics") or [{"name": "dau", "type": "user"}]
    rows = []
    for metric in metrics:
        seed = (str(gate["id"]), str(rule["baseID"]), str(metric["name"]))
        control = round(0.05 + stable_fraction(*seed, "mean", sep="|") * 0.5, 4)
        lift = round((stable_fraction(*seed, "lift", sep="|") - 0.5) * 0.1, 4)
        test = round(control * (1 + lift), 4)
        std = round(control * 0.1, 4)
        units = 1000 + int(stable_fraction(*seed, "units", sep="|") * 9000)
        ci = round(z * std / units**0.5 * 2, 6)
        rows.append(
            {
                "metricID": f"{metric['name']}::{metric.get('type', 'user')}",
                "metricName": str(metric["name"]),
                "directionality": "increase",
                "absoluteChange": round(test - control, 6),
                "confidenceIntervalDelta": ci,
                "percentChange": round(lift * 100, 4),
                "percentConfidenceIntervalDelta": round(ci / control * 100, 4),
                "testMean": test,
                "controlMean": control,
                "testStd": std,
                "controlStd": std,
                "testUnits": units,
                "controlUnits": units,
                "pValue": round(stable_fraction(*seed, "p", sep="|"), 4),
            }
        )
    data = {"ds": date_of(now_ms(request) - 86_400_000), "monitoringMetrics": rows}
    return ok(data, "Successfully loaded Pulse Results")


async def gate_pulse_load_history(request: web.Request) -> web.Response:
    """``GET /gates/{id}/rules/{ruleID}/pulse_load_history``: daily full loads since creation (≤3)."""
    gate, _ = _pulse_rule(request)
    created = float(gate.get("createdTime") or now_ms(request))
    items = []
    for day in range(3):
        started = created + day * 86_400_000
        items.append(
            {
                "creatorName": "CONSOLE API",
                "createdTime": started,
                "finishedTime": started + 60_000,
                "finishedState": "success",
                "startDs": date_of(created),
                "endDs": date_of(started),
                "reloadType": "full" if day == 0 else "incremental",
                "turboMode": False,
            }
        )
    items.reverse()
    return ok_page(request, items, "Pulse load history listed successfully.")


async def load_gate_pulse(request: web.Request) -> web.Response:
    """``POST /gates/{id}/load_pulse`` ``{ruleId, refresh?, metricIDs?, turboMode?}``."""
    gate = GATES.get(request)
    body = require_fields(await read_body(request), "ruleId")
    check_types(
        body,
        {"ruleId": "string", "refresh": "string", "metricIDs": "string[]", "turboMode": "boolean"},
    )
    if body.get("refresh", "full") not in ("full", "incremental", "metric"):
        field_error("refresh", "Invalid enum value. Expected 'full' | 'incremental' | 'metric'")
    if find_rule(gate.get("rules") or [], body["ruleId"]) is None:
        api_error(
            400,
            RULE_NOT_FOUND,
            [{"property": "ruleId", "errorMessage": f"Unknown rule id {body['ruleId']}"}],
        )
    return ok(message="Gate loaded successfully.", with_data=False)


async def resolve_gate_alert(request: web.Request) -> web.Response:
    """``POST /gates/{id}/alerts/{metricId}/resolve`` ``{reasoning?}``: 404 unless a monitoring metric."""
    gate = GATES.get(request)
    body = json_object(await read_body(request, required=False) or {})
    check_types(body, {"reasoning": "string"})
    metric_id = request.match_info["metricId"]
    known = {
        ref
        for m in gate.get("monitoringMetrics") or []
        for ref in (str(m.get("name")), f"{m.get('name')}::{m.get('type')}")
    }
    if metric_id not in known:
        api_error(404, "Metric not found")
    return ok({"resolvedAt": now_ms(request)}, "Metric rollout alert resolved successfully")


# -- holdouts ---------------------------------------------------------------------------------


async def holdout_pulse_results(request: web.Request) -> web.Response:
    """``GET /holdouts/{id}/pulse_results``: one row per monitoring metric."""
    holdout = get_or_404(request, "holdouts", request.match_info["id"], "Holdout")
    cuped = query_flag(request, "cuped", True)
    confidence = confidence_query(request)
    ds = date_of(now_ms(request))
    rows = [
        metric_result(m, holdout["id"], ds, confidence=confidence, cuped=cuped)
        for m in holdout.get("monitoringMetrics") or []
    ]
    return ok({"ds": ds, "monitoringMetrics": rows}, "Successfully loaded Pulse Results")


routes = [
    web.get(f"{_RULE}/pulse_results", gate_pulse_results),
    web.get(f"{_RULE}/pulse_load_history", gate_pulse_load_history),
    web.post(f"{_GATE}/load_pulse", load_gate_pulse),
    web.post(f"{_GATE}/alerts/{{metricId}}/resolve", resolve_gate_alert),
    web.get(f"{_EXPERIMENT}/cumulative_exposures", cumulative_exposures),
    web.get(f"{_EXPERIMENT}/pulse_results", pulse_results),
    web.post(f"{_EXPERIMENT}/alerts/{{metricId}}/resolve", resolve_alert),
    web.post(f"{_EXPERIMENT}/load_pulse", load_pulse),
    web.get(f"{_EXPERIMENT}/pulse_load_history", pulse_load_history),
    web.get(f"{PREFIX}/holdouts/{{id}}/pulse_results", holdout_pulse_results),
]
"""The analytics routes of gates, experiments and holdouts."""
