"""The emulator against the official Console API spec: routes, and the conformance checker."""

from __future__ import annotations

import textwrap
from collections import defaultdict
from pathlib import Path
from typing import Any

import pytest
from conformance import (
    REQUIRED_GROUPS,
    SCHEMA_MISTAKES,
    SPEC_GAPS,
    SPEC_PATH,
    STATUS_EXCEPTIONS,
    Spec,
    check_exchanges,
    load_spec,
    registered_routes,
)

from bulkops.emulator import EmulatorState, create_app

pytest_plugins = ("pytester",)

TAG = {"id": "a_tag", "name": "a tag", "description": "about it", "isCore": False}
OVERRIDES = {"passingUserIDs": ["u1"], "failingUserIDs": [], "environmentOverrides": []}


@pytest.fixture(name="spec")
def _spec() -> Spec:
    """The official spec, or a skip naming where it was looked for."""
    spec = load_spec()
    if spec is None:
        pytest.skip(
            f"official Console API spec not found at {SPEC_PATH} "
            "(expected ../shared/statsig-openapi/capiopenapi.json beside the project)"
        )
    return spec


@pytest.fixture(name="routes")
def _routes() -> set[tuple[str, str]]:
    """(METHOD, template) of every /console/v1 route the emulator registers."""
    return registered_routes(create_app(EmulatorState()))


def exchange(
    method: str,
    route: str | None,
    status: int,
    response: Any = None,
    request: Any = None,
) -> dict[str, Any]:
    """One exchange as the emulator captures it."""
    return {
        "method": method,
        "path": route,
        "route": route,
        "status": status,
        "request_body": request,
        "response_body": response,
    }


# -- routes ---------------------------------------------------------------------------


def test_every_registered_route_is_in_the_spec_or_a_known_gap(spec, routes):
    """Each /console/v1 route of the emulator is a spec operation or an allow-listed gap."""
    unknown = sorted(r for r in routes if spec.operation(*r) is None and r not in SPEC_GAPS)
    assert not unknown, "routes not in the spec (wrong template or parameter name?):\n" + "\n".join(
        f"  {m} {p}" for m, p in unknown
    )


def test_every_operation_of_the_required_groups_is_served(spec, routes):
    """The emulator has a route for every spec operation of the groups the issue requires."""
    missing: dict[str, list[str]] = defaultdict(list)
    for method, path in spec.operations(REQUIRED_GROUPS):
        if (method, path) not in routes:
            tags = spec.operation(method, path)["tags"]
            group = next(t for t in tags if t in REQUIRED_GROUPS)
            missing[group].append(f"{method} {path}")
    report = "\n".join(
        f"  {group} ({len(ops)}):\n" + "\n".join(f"    {op}" for op in ops)
        for group, ops in sorted(missing.items())
    )
    total = sum(len(ops) for ops in missing.values())
    assert not missing, f"{total} spec operation(s) without an emulator route:\n{report}"


def test_required_groups_exist_in_the_spec(spec):
    """Every required group name is a tag of at least one spec operation (no typo hides one)."""
    for group in REQUIRED_GROUPS:
        assert spec.operations([group]), group


def test_spec_gaps_are_really_missing_from_the_spec(spec):
    """The allow-list of spec gaps names only routes the spec does not have."""
    assert [r for r in SPEC_GAPS if spec.operation(*r) is not None] == []


def test_status_exceptions_name_documented_operations(spec):
    """Each tolerated status difference is for a spec operation that documents another 2xx."""
    for (method, route), codes in STATUS_EXCEPTIONS.items():
        documented, _ = spec.response_schema(method, route, 0)
        assert documented is not None and documented not in codes, (method, route)


# -- the checker ----------------------------------------------------------------------


def test_conforming_exchanges_pass(spec):
    """A response and request body that match their schemas give no problems."""
    problems = check_exchanges(
        spec,
        [
            exchange(
                "POST",
                "/console/v1/tags",
                200,
                {"message": "Tag created successfully", "data": TAG},
                {"name": "a tag", "description": "about it"},
            ),
            exchange("DELETE", "/console/v1/tags/{id}", 200, {"message": "Tag deleted"}),
        ],
    )
    assert problems == []


def test_a_bad_response_body_names_operation_path_and_error(spec):
    """A response breaking its schema is reported with the operation and the JSON path."""
    bad = {"message": "ok", "data": {**TAG, "isCore": "no"}}
    [problem] = check_exchanges(spec, [exchange("GET", "/console/v1/tags/{id}", 200, bad)])
    assert problem.startswith("GET /console/v1/tags/{id} (200 response) at $.data.isCore:")
    assert "'no' is not of type 'boolean'" in problem


def test_a_missing_required_property_is_reported(spec):
    """A response object lacking a required property fails."""
    data = {k: v for k, v in TAG.items() if k != "description"}
    problems = check_exchanges(
        spec, [exchange("GET", "/console/v1/tags/{id}", 200, {"message": "ok", "data": data})]
    )
    assert problems == [
        "GET /console/v1/tags/{id} (200 response) at $.data: 'description' is a required property"
    ]


def test_long_error_messages_are_cut_to_300_characters(spec):
    """The error excerpt in a problem is at most 300 characters."""
    bad = {"message": "ok", "data": {**TAG, "name": ["x" * 1000]}}
    [problem] = check_exchanges(spec, [exchange("GET", "/console/v1/tags/{id}", 200, bad)])
    excerpt = problem.split(": ", 1)[1]
    assert len(excerpt) == 301 and excerpt.endswith("…")


def test_a_bad_request_body_of_an_accepted_request_is_reported(spec):
    """A request body the emulator accepted but the spec forbids is a problem."""
    ok = {"message": "Tag created successfully", "data": TAG}
    [problem] = check_exchanges(
        spec, [exchange("POST", "/console/v1/tags", 200, ok, {"name": "", "description": "d"})]
    )
    assert problem.startswith("POST /console/v1/tags (request body) at $.name:")


def test_rejected_requests_are_not_checked(spec):
    """Non-2xx exchanges (validation tests send bad bodies on purpose) are skipped."""
    ex = exchange("POST", "/console/v1/tags", 400, {"status": 400}, {"name": 7})
    assert check_exchanges(spec, [ex]) == []


def test_a_status_the_spec_does_not_document_is_reported(spec):
    """200 where the spec documents 201 is a problem; the body is still validated."""
    body = {"message": "created", "data": {"name": "x", "description": "d"}}
    [problem] = check_exchanges(
        spec, [exchange("POST", "/console/v1/unit_id_types", 200, body, {"name": "x"})]
    )
    assert (
        problem == "POST /console/v1/unit_id_types (status) at -: sent 200, the spec documents 201"
    )


def test_gate_overrides_may_answer_200_where_the_spec_says_201(spec):
    """The documented exception: gate overrides may use 200 (the spec's 201 on GET is an artefact)."""
    body = {"message": "ok", "data": OVERRIDES}
    route = "/console/v1/gates/{id}/overrides"
    assert check_exchanges(spec, [exchange("GET", route, 200, body)]) == []
    assert check_exchanges(spec, [exchange("GET", route, 201, body)]) == []


def test_delete_bodies_the_spec_omits_are_not_failed(spec):
    """DELETE overrides / id_list carry bodies the spec does not declare: not a problem."""
    override = {"message": "ok", "data": OVERRIDES}
    problems = check_exchanges(
        spec,
        [
            exchange(
                "DELETE",
                "/console/v1/gates/{id}/overrides",
                201,
                override,
                {"passingUserIDs": ["u1"]},
            ),
            exchange(
                "DELETE",
                "/console/v1/segments/{id}/id_list",
                200,
                {"message": "IDs successfully removed from Segment ID List"},
                {"ids": ["a"]},
            ),
        ],
    )
    assert problems == []


def test_unknown_routes_are_reported_and_gaps_skipped(spec):
    """A 2xx on a route the spec lacks is a problem unless the route is an allow-listed gap."""
    gap = next(iter(SPEC_GAPS))
    problems = check_exchanges(
        spec,
        [
            exchange("GET", "/console/v1/not_in_spec", 200, {}),
            exchange(gap[0], gap[1], 200, {"anything": True}),
            exchange("GET", None, 404, None),
            exchange("GET", "/", 200, {"service": "x"}),
        ],
    )
    assert problems == ["GET /console/v1/not_in_spec (route) at -: no such operation in the spec"]


def test_identical_problems_are_counted_once(spec):
    """The same problem from many exchanges is listed once with a count."""
    bad = exchange("GET", "/console/v1/tags/{id}", 200, {"message": "ok", "data": []})
    [problem] = check_exchanges(spec, [bad] * 5)
    assert problem.endswith("[×5]")


# -- the wiring ------------------------------------------------------------------------


async def test_the_state_fixture_captures_exchanges_with_route_templates(state, client):
    """Emulators from the fixtures record each exchange: route template, status and bodies."""
    index = await client.call("GET", client._origin + "/")
    assert index["service"].startswith("bulkops")
    assert state.capture is not None
    [entry] = state.capture
    assert entry["route"] == "/" and entry["status"] == 200
    assert entry["response_body"] == index


async def test_make_emulator_serves_more_captured_emulators(make_emulator, state):
    """Further emulators from ``make_emulator`` are served and captured like ``state``."""
    other, url = await make_emulator("empty", time_scale=10.0)
    assert other is not state and other.time_scale == 10.0
    assert other.capture == [] and list(other.projects) == ["empty"]
    assert url.endswith("/console/v1")


def test_a_test_whose_exchange_breaks_the_spec_fails(pytester, monkeypatch, spec):
    """The conftest fails the test that produced a non-conforming exchange, with the details."""
    here = Path(__file__).resolve().parents[1]  # tests/, where conftest.py lives
    pytester.syspathinsert(here)
    monkeypatch.setenv("PYTHONPATH", str(here))
    pytester.makeconftest((here / "conftest.py").read_text())
    pytester.makepyfile(
        test_inner=textwrap.dedent(
            """
            def test_bad(state):
                state.capture.append({
                    "method": "GET", "path": "/console/v1/tags/x", "route": "/console/v1/tags/{id}",
                    "status": 200, "request_body": None, "response_body": {"message": "ok"},
                })

            def test_fine(state):
                assert state.capture == []
            """
        )
    )
    result = pytester.runpytest_subprocess("-p", "no:cacheprovider", "-q")
    result.assert_outcomes(passed=1, failed=1)
    result.stdout.fnmatch_lines(
        [
            "*do not conform to the Console API spec (1)*",
            "*GET /console/v1/tags/{id} (200 response) at $: 'data' is a required property*",
        ]
    )


def test_schema_mistakes_name_spec_operations(spec):
    """Each allow-listed schema mistake is for an operation the spec has."""
    assert [r for r in SCHEMA_MISTAKES if spec.operation(*r) is None] == []


def test_schema_mistakes_forgive_only_the_wrong_type(spec):
    """The id_list read may return its documented object, but its missing fields still fail."""
    route = "/console/v1/segments/{id}/id_list"
    pagination = {
        "itemsPerPage": 100,
        "pageNumber": 1,
        "nextPage": None,
        "previousPage": None,
        "totalItems": 1,
        "all": "/console/v1/segments/s/id_list",
    }
    data = {"name": "s", "count": 1, "ids": ["a"]}
    good = {"message": "ok", "data": data, "pagination": pagination}
    assert check_exchanges(spec, [exchange("GET", route, 200, good)]) == []
    bad = {"message": "ok", "data": {"name": "s", "ids": [1]}, "pagination": pagination}
    problems = check_exchanges(spec, [exchange("GET", route, 200, bad)])
    assert any("at $.data.ids[0]" in p for p in problems), problems
