"""The generic resource base: routes, raw and typed reads, filters, overrides bodies (MockTransport)."""

from __future__ import annotations

import pytest
from api_support import BASE, Server, page, reply

from bulkops.api.models import Gate, dump
from bulkops.api.paths import GATES, ROUTES, SEGMENTS, Route
from bulkops.api.resources import Collection
from bulkops.api.resources._base import compact, wire
from bulkops.errors import NotFound

DATA = reply(200, {"message": "ok", "data": {"id": "x"}})
RULE = {"name": "all", "passPercentage": 100, "conditions": [{"type": "public"}]}


def test_routes_build_paths_without_io():
    """A route is the collection's path, or an object's with its parts percent-encoded."""
    assert GATES.path() == "/gates"
    assert GATES.path("a b:c", "archive") == "/gates/a%20b%3Ac/archive"
    assert SEGMENTS.path("s", "id_list", "reset") == "/segments/s/id_list/reset"
    split = Route("/experiments/assignment_sources", "/experiments/assignment_source")
    assert split.path() == "/experiments/assignment_sources"
    assert split.path("src 1") == "/experiments/assignment_source/src%201"


def test_every_route_is_a_client_collection(make):
    """``ROUTES[name]`` is where ``client.collection(name)`` (the attribute ``name``) reads."""
    client = make(Server())
    for name, route in ROUTES.items():
        collection = client.collection(name)
        assert collection is getattr(client, name)
        assert collection.route is route and collection.path("x") == route.path("x")
    for name in ("users", "environments", "nope", "settings"):
        with pytest.raises(KeyError):
            client.collection(name)


async def test_items_are_the_wire_json_and_list_validates_the_same_data(make):
    """``items`` yields what the API sent (100 stays 100); ``list`` validates it into models."""
    gate = {"id": "g", "rules": [RULE], "unknownField": 1}
    server = Server([page([gate], None), page([gate], None)])
    client = make(server)
    raw = [item async for item in client.gates.items(includeArchived=True, tags=["a", "b"])]
    assert raw == [gate] and raw[0]["rules"][0]["passPercentage"] == 100
    typed = [g async for g in client.gates.list(include_archived=True, tags=["a", "b"])]
    assert typed == [Gate.model_validate(gate)] and dump(typed[0])["unknownField"] == 1
    assert typed[0].rules[0].passPercentage == 100.0
    wanted = {"includeArchived": "true", "tags": ["a", "b"], "limit": "100", "page": "1"}
    assert [dict(r.params) for r in server.requests] == [wanted, wanted]
    assert all(r.url == f"{BASE}/gates" for r in server.requests)


async def test_fetch_raises_for_a_missing_object_and_read_observes_none(make):
    """``fetch`` is the data or NotFound; ``read`` (the observation read) is None on a 404."""
    missing = reply(404, {"message": "Gate not found."})
    found = reply(200, {"message": "ok", "data": {"passingUserIDs": ["u"]}})
    server = Server([missing, missing, found])
    client = make(server)
    with pytest.raises(NotFound):
        await client.gates.fetch("g")
    assert await client.gates.read("g") is None
    assert await client.gates.read("g", "overrides") == {"passingUserIDs": ["u"]}
    assert server.requests[-1].url == f"{BASE}/gates/g/overrides"


@pytest.mark.parametrize(
    ("collection", "method", "body", "sent"),
    [
        ("gates", "add_overrides", {"passingUserIDs": ["u"]}, {"passingUserIDs": ["u"]}),
        (
            "holdouts",
            "set_overrides",
            {"failingUserIDs": ["u"]},
            {"failingUserIDs": ["u"], "passingUserIDs": []},
        ),
        ("holdouts", "remove_overrides", {"failingUserIDs": ["u"]}, {"failingUserIDs": ["u"]}),
        (
            "experiments",
            "remove_overrides",
            {"overrides": []},
            {"overrides": [], "userIDOverrides": []},
        ),
        (
            "layers",
            "add_overrides",
            {"idOverrides": []},
            {"idOverrides": [], "conditionalOverrides": [], "op": "add"},
        ),
        (
            "layers",
            "set_overrides",
            {"idOverrides": []},
            {"idOverrides": [], "conditionalOverrides": []},
        ),
    ],
)
async def test_overrides_bodies_carry_what_each_schema_requires(
    make, collection, method, body, sent
):
    """Each namespace completes an overrides body the way its API schema requires."""
    server = Server([DATA])
    await getattr(make(server).collection(collection), method)("x", body)
    assert server.requests[0].json == sent
    assert server.requests[0].url == f"{BASE}/{collection}/x/overrides"


async def test_removing_every_override_sends_no_body(make):
    """``remove_overrides(id)`` without a body is a bare DELETE."""
    server = Server([DATA])
    await make(server).experiments.remove_overrides("e")
    assert server.requests[0].method == "DELETE" and not server.requests[0].has_body


async def test_state_actions_send_only_the_given_fields(make):
    """archive/unarchive send the reasons given; enable, launch and a segment archive send none."""
    server = Server([DATA] * 5)
    client = make(server)
    await client.gates.archive("g", reason="old", force=True)
    await client.dynamic_configs.unarchive("c")
    await client.gates.enable("g")
    await client.gates.launch("g")
    await client.segments.archive("s")
    assert [(r.method, r.url.removeprefix(BASE), r.json) for r in server.requests] == [
        ("PUT", "/gates/g/archive", {"archiveReason": "old", "forceArchive": True}),
        ("PUT", "/dynamic_configs/c/unarchive", {}),
        ("PUT", "/gates/g/enable", None),
        ("PUT", "/gates/g/launch", None),
        ("PUT", "/segments/s/archive", None),
    ]
    assert [r.has_body for r in server.requests] == [True, True, False, False, False]


async def test_one_rule_is_addressed_under_each_kinds_own_path(make):
    """Gates address one rule under ``rules/``, dynamic configs under ``rule/``."""
    server = Server([DATA] * 2)
    client = make(server)
    await client.gates.update_rule("g", "r 1", {"passPercentage": 5})
    await client.dynamic_configs.delete_rule("c", "r 1")
    assert [r.url.removeprefix(BASE) for r in server.requests] == [
        "/gates/g/rules/r%201",
        "/dynamic_configs/c/rule/r%201",
    ]


def test_wire_names_and_compact_bodies():
    """Keyword names become the API's (``creator_id`` → ``creatorID``); None fields are left out."""
    assert wire({"creator_id": 1, "type_reason": 2, "id": 3, "include_archived": 4}) == {
        "creatorID": 1,
        "typeReason": 2,
        "id": 3,
        "includeArchived": 4,
    }
    assert compact(a=1, b=None, c=[]) == {"a": 1, "c": []}


def test_collections_are_generic_over_their_model(make):
    """Every object namespace is a Collection of its model."""
    client = make(Server())
    assert isinstance(client.gates, Collection) and client.gates.model is Gate
