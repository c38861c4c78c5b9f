"""The HTTP API on the embedded store, as a sales tool or a channel system calls it: the
stories' journeys, lists and aggregates, outcomes, ingest with its validation, and tokens."""

from __future__ import annotations

import json
import logging
import re
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient

from engine.settings import Settings
from engine.touchpoints import EARLIEST_MS
from journey import api
from journey.api import create_app
from tests.openapi import PROBLEM_JSON, answer_schema, mismatches, untyped
from tests.stories import kathrines_morning, recorded_stories

TOKEN = "s3cret"
INGEST_TOKEN = "channel-systems-only"
AVRO_TOUCHPOINT = Path(__file__).parents[2] / "schemas" / "journey.Touchpoint.avsc"


@pytest.fixture(scope="module")
def data_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return recorded_stories(tmp_path_factory.mktemp("api"))


@pytest.fixture
def client(data_dir: Path) -> Iterator[TestClient]:
    with TestClient(create_app(Settings(data_dir=data_dir))) as made:
        yield made


def refused(response: Any) -> tuple[int, str]:
    """An error's status and its one line, once it is checked to be problem details."""
    assert response.headers["content-type"] == "application/problem+json"
    problem = response.json()
    assert problem["status"] == response.status_code
    assert problem["type"].startswith("/problems/")
    assert problem["title"]
    return response.status_code, problem["detail"]


def items(response: Any) -> list[dict[str, Any]]:
    assert response.status_code == 200, response.text
    found: list[dict[str, Any]] = response.json()["items"]
    return found


def test_a_customers_journey_has_stages_timeline_frictions_moments_and_actions(
    client: TestClient,
) -> None:
    anna = client.get("/api/customers/S1-ANNA").json()

    assert anna["stage"] == "evaluating"
    assert [s["id"] for s in anna["stages"]][:4] == [
        "aware",
        "engaged",
        "considering",
        "evaluating",
    ]
    assert [t["event_id"] for t in anna["timeline"]] == [f"s1-{i}" for i in range(1, 7)]
    assert [(t["what"], t["detail"]) for t in anna["timeline"]][2:] == [
        ("page view", "amenities"),
        ("page view", "programmes"),
        ("page view", "amenities"),
        ("tour", "at B"),
    ]
    assert {f["kind"] for f in anna["frictions"] if f["open"]} >= {"no_follow_up", "hand_off"}
    assert {m["kind"] for m in anna["moments_of_truth"]} == {"first_human_contact", "first_visit"}
    follow_up = next(a for a in anna["next_actions"] if a["action_type"] == "follow_up")
    assert follow_up["owner"] == "kathrine"
    assert "their tour at B with peter on Mon 9 Mar" in follow_up["reason"]


def test_an_unknown_customer_is_a_404_naming_them(client: TestClient) -> None:
    response = client.get("/api/customers/NOBODY")

    assert refused(response) == (404, "no touchpoints recorded for customer 'NOBODY'")
    assert response.json()["instance"] == "/api/customers/NOBODY"


def test_customers_are_listed_by_stage_rep_friction_and_id(client: TestClient) -> None:
    def ids(**query: Any) -> list[str]:
        found = client.get("/api/customers", params=query).json()
        assert found["total"] == len(found["items"])
        return sorted(c["customer_id"] for c in found["items"])

    assert ids(stage="considering") == ["S2-BEN", "S4-DAN"]
    assert ids(rep="kathrine") == ["S1-ANNA"]
    assert ids(friction="loop") == ["S4-DAN"]
    assert ids(q="S3") == ["S3-CARLA"]
    page = client.get("/api/customers", params={"limit": 2, "offset": 2}).json()
    assert (page["total"], len(page["items"])) == (6, 2)


def test_funnel_and_friction_aggregates(client: TestClient) -> None:
    funnel = {row["stage"]: row for row in client.get("/api/funnel").json()}
    by_kind = items(client.get("/api/frictions/counts", params={"by": "kind"}))
    matrix = items(client.get("/api/frictions/counts", params={"by": "owner", "then": "kind"}))

    assert funnel["evaluating"]["current"] == 2
    assert {"kind": "loop", "frictions": 1} in by_kind
    assert {"owner": "kathrine", "kind": "hand_off", "frictions": 1} in matrix
    assert client.get("/api/frictions/counts", params={"by": "colour"}).status_code == 422


def test_what_each_rule_achieved_counts_what_reps_did_with_its_actions(
    tmp_path: Path,
) -> None:
    with TestClient(create_app(Settings(data_dir=recorded_stories(tmp_path)))) as client:
        before = {g["key"]: g for g in client.get("/api/effectiveness").json()["items"]}
        (call_back,) = items(client.get("/api/actions", params={"customer": "S2-BEN"}))
        reported = client.post(
            f"/api/actions/{call_back['action_id']}/outcome",
            json={"status": "dismissed", "reason": "he bought elsewhere", "rep_id": "kim"},
        ).json()

        found = client.get(
            "/api/effectiveness", params={"after": reported["position"], "within_days": 7}
        ).json()
        by_owner = client.get("/api/effectiveness", params={"by": "owner"}).json()
        later = client.get("/api/effectiveness", params={"from": "2027-01-01T00:00:00Z"})
        backwards = client.get(
            "/api/effectiveness", params={"from": "2026-05-01", "to": "2026-04-01"}
        )

    rule = call_back["rule"]
    groups = {g["key"]: g for g in found["items"]}
    assert sum(g["proposed"] for g in groups.values()) == sum(
        g["proposed"] for g in before.values()
    )
    assert before[rule]["dismissed"] == 0
    assert groups[rule]["dismissed"] == 1
    assert groups[rule]["dismissed_because"] == [{"reason": "he bought elsewhere", "actions": 1}]
    assert groups[rule]["label"] != rule  # the rule's name for people
    assert (found["by"], found["within_days"]) == ("rule", 7)
    assert call_back["owner"] in {g["key"] for g in by_owner["items"]}
    assert later.json()["items"] == []
    assert backwards.status_code == 422
    assert "to: must be after from" in backwards.json()["detail"]


def test_an_outcome_closes_the_action_and_shows_in_the_journey(client: TestClient) -> None:
    (call_back,) = items(client.get("/api/actions", params={"customer": "S2-BEN"}))

    response = client.post(
        f"/api/actions/{call_back['action_id']}/outcome",
        json={"status": "dismissed", "reason": "he bought elsewhere", "rep_id": "kim"},
    )

    assert response.status_code == 201, response.text
    assert response.json()["status"] == "dismissed"
    assert (
        items(
            client.get(
                "/api/actions", params={"customer": "S2-BEN", "after": response.json()["position"]}
            )
        )
        == []
    )
    ben = client.get("/api/customers/S2-BEN").json()
    assert [(a["status"], a["status_reason"]) for a in ben["next_actions"]] == [
        ("dismissed", "he bought elsewhere")
    ]
    explained = client.get(f"/api/actions/{call_back['action_id']}").json()
    assert explained["explanation"]["events"] == ["s2-4", "s2-5"]


@pytest.mark.parametrize(
    ("body", "status", "detail"),
    [
        ({"status": "finished"}, 422, "status: 'finished' is not one of"),
        ({"status": "snoozed"}, 422, "snoozed_until: a snoozed action needs"),
    ],
)
def test_a_bad_outcome_is_refused_naming_the_field(
    client: TestClient, body: dict[str, Any], status: int, detail: str
) -> None:
    (action,) = items(client.get("/api/actions", params={"customer": "S4-DAN"}))

    response = client.post(f"/api/actions/{action['action_id']}/outcome", json=body)

    shown_status, shown = refused(response)
    assert shown_status == status
    assert shown.startswith(detail)


def test_an_outcome_for_an_unknown_action_is_a_404(client: TestClient) -> None:
    response = client.post("/api/actions/nope/outcome", json={"status": "done"})

    assert refused(response) == (404, "no action 'nope' was decided")


def touchpoint(**overrides: Any) -> dict[str, Any]:
    return {
        "event_id": "api-1",
        "customer_id": "API-1",
        "channel": "web",
        "type": "page_view",
        "occurred_at": "2026-03-10T09:00:00Z",
        "source": "web-analytics",
        "attributes": {"page": "pricing"},
        **overrides,
    }


def test_touchpoints_posted_are_recorded_once(client: TestClient) -> None:
    first = client.post("/api/touchpoints", json=touchpoint())
    again = client.post("/api/touchpoints", json=[touchpoint(), touchpoint(event_id="api-2")])

    assert first.status_code == 202
    assert (first.json()["recorded"], first.json()["duplicates"]) == (1, 0)
    assert (again.json()["recorded"], again.json()["duplicates"]) == (1, 1)
    read = client.get("/api/customers/API-1", params={"after": again.json()["position"]})
    assert read.json()["touchpoints"] == 2


def test_a_journey_read_again_is_the_same_until_something_is_recorded_and_then_new(
    client: TestClient,
) -> None:
    first = client.post("/api/touchpoints", json=touchpoint(event_id="e-1", customer_id="E-1"))
    read = client.get("/api/customers/E-1", params={"after": first.json()["position"]})
    unchanged = client.get("/api/customers/E-1", headers={"If-None-Match": read.headers["ETag"]})
    second = client.post("/api/touchpoints", json=touchpoint(event_id="e-2", customer_id="E-1"))
    changed = client.get(
        "/api/customers/E-1",
        params={"after": second.json()["position"]},
        headers={"If-None-Match": read.headers["ETag"]},
    )

    assert read.json()["touchpoints"] == 1
    assert unchanged.status_code == 304
    assert changed.status_code == 200
    assert changed.json()["touchpoints"] == 2
    assert changed.headers["ETag"] != read.headers["ETag"]


def test_a_read_whose_write_the_views_do_not_reach_in_time_is_a_503_to_try_again(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(api, "READ_WAIT_S", 0.2)
    # Not started: no follower brings the views up to date.
    client = TestClient(create_app(Settings(data_dir=tmp_path / "data")))
    position = client.post("/api/touchpoints", json=touchpoint()).json()["position"]

    read = client.get("/api/customers/API-1", params={"after": position})

    assert read.status_code == 503
    assert read.headers["Retry-After"] == "1"
    assert read.json()["detail"].startswith(f"the views are at 0, not yet at {position}")


def test_a_read_given_the_position_of_a_write_includes_it_and_one_beyond_the_log_is_refused(
    client: TestClient,
) -> None:
    posted = client.post("/api/touchpoints", json=touchpoint(event_id="w-1", customer_id="W-1"))
    position = posted.json()["position"]

    read = client.get("/api/customers/W-1", params={"after": position})
    beyond = client.get("/api/customers/W-1", params={"after": position + 1_000_000})

    assert read.status_code == 200
    assert read.json()["touchpoints"] == 1
    assert refused(beyond)[0] == 422
    assert beyond.json()["detail"].startswith(f"after: {position + 1_000_000} is beyond the log")


def test_a_touchpoint_whose_event_id_names_another_is_a_409_and_nothing_is_recorded(
    client: TestClient,
) -> None:
    first = touchpoint(event_id="api-9", customer_id="API-9")
    position = client.post("/api/touchpoints", json=first).json()["position"]

    response = client.post(
        "/api/touchpoints",
        json=[
            touchpoint(event_id="api-10", customer_id="API-9"),
            {**first, "attributes": {"page": "contact"}},
        ],
    )

    assert refused(response)[0] == 409
    assert response.json()["detail"].startswith(
        "[1].event_id: conflicts with the touchpoint recorded on "
    )
    assert response.json()["detail"].endswith(": its attributes differ")
    later = client.post("/api/touchpoints", json=touchpoint(event_id="api-11", customer_id="L-1"))
    read = client.get("/api/customers/API-9", params={"after": later.json()["position"]})
    assert position < later.json()["position"]
    assert read.json()["touchpoints"] == 1


@pytest.mark.parametrize(
    ("body", "detail"),
    [
        (touchpoint(customer_id=""), "customer_id: is missing, and no email, phone or cookie_id"),
        (touchpoint(channel="fax"), "channel: 'fax' is not one of web, email, phone, visit"),
        (
            [touchpoint(event_id="ok-1", customer_id="OK-1"), touchpoint(occurred_at="yesterday")],
            "[1].occurred_at",
        ),
    ],
)
def test_a_bad_touchpoint_is_refused_naming_the_field_and_nothing_is_recorded(
    client: TestClient, body: Any, detail: str
) -> None:
    response = client.post("/api/touchpoints", json=body)
    later = client.post(
        "/api/touchpoints", json=touchpoint(event_id=str(uuid.uuid4()), customer_id="OK-2")
    )

    assert refused(response)[0] == 422
    assert response.json()["detail"].startswith(detail)
    # Its good neighbour neither, though what was posted after it is read.
    read = client.get("/api/customers/OK-1", params={"after": later.json()["position"]})
    assert read.status_code == 404


def test_the_openapi_document_describes_every_endpoint(client: TestClient) -> None:
    paths = client.get("/openapi.json").json()["paths"]

    assert {
        "/api/customers",
        "/api/customers/{customer_id}",
        "/api/funnel",
        "/api/frictions",
        "/api/frictions/counts",
        "/api/actions",
        "/api/actions/{action_id}",
        "/api/actions/{action_id}/outcome",
        "/api/owners",
        "/api/worklist",
        "/api/touchpoints",
        "/api/attribution",
        "/api/velocity",
    } <= set(paths)


def test_the_api_documentation_is_served_whole_from_the_engine_without_the_internet(
    client: TestClient,
) -> None:
    for page in ("/docs", "/redoc"):
        html = client.get(page).text
        scripts = re.findall(r'(?:src|href)="([^"]+\.(?:js|css))"', html)

        assert scripts, page
        for script in scripts:
            assert script.startswith("/"), f"{page} loads {script} from elsewhere"
            assert client.get(script).status_code == 200, script


def test_with_a_token_every_endpoint_asks_for_it(data_dir: Path) -> None:
    app = create_app(Settings(data_dir=data_dir), token=TOKEN, ingest_token=INGEST_TOKEN)
    with TestClient(app) as client:
        reader = {"authorization": f"Bearer {TOKEN}"}
        channel = {"authorization": f"Bearer {INGEST_TOKEN}"}

        anonymous = client.get("/api/funnel")
        assert refused(anonymous) == (
            401,
            "a valid token is required: Authorization: Bearer <token>",
        )
        assert anonymous.headers["WWW-Authenticate"] == "Bearer"
        assert (
            client.get("/api/funnel", headers={"authorization": "Bearer wrong"}).status_code == 401
        )
        assert client.get("/api/funnel", headers=reader).status_code == 200
        assert client.post("/api/touchpoints", json=touchpoint(), headers=reader).status_code == 401
        posted = client.post("/api/touchpoints", json=touchpoint(event_id="t-9"), headers=channel)
        assert posted.status_code == 202
        (action,) = items(
            client.get("/api/actions", params={"customer": "S3-CARLA"}, headers=reader)
        )
        outcome = f"/api/actions/{action['action_id']}/outcome"
        assert client.post(outcome, json={"status": "accepted"}, headers=channel).status_code == 401
        assert client.post(outcome, json={"status": "accepted"}, headers=reader).status_code == 201
        odd = {"authorization": "Bearer s3cr\u00e9t".encode()}  # not ASCII
        assert client.get("/api/funnel", headers=odd).status_code == 401


def test_the_openapi_document_names_the_token_each_endpoint_takes(client: TestClient) -> None:
    document = client.get("/openapi.json").json()

    schemes = document["components"]["securitySchemes"]
    taken = {
        (path, method): [name for need in operation["security"] for name in need]
        for path, operations in document["paths"].items()
        for method, operation in operations.items()
    }

    assert {schemes[name]["scheme"] for name in schemes} == {"bearer"}
    assert taken[("/api/touchpoints", "post")] == ["ingestToken"]
    assert taken[("/api/actions/{action_id}/outcome", "post")] == ["salesToken"]
    assert taken[("/api/customers/{customer_id}", "get")] == ["salesToken"]


@pytest.mark.parametrize(
    ("path", "name"),
    [
        ("/api/customers/C\x00-1", "customer_id"),
        ("/api/customers?q=C\x00", "q"),
        ("/api/customers?rep=a\x00b", "rep"),
        ("/api/frictions?rep=a\x00b", "rep"),
        ("/api/frictions?type=\x00", "type"),
        ("/api/actions?owner=\x00", "owner"),
        ("/api/actions?customer=\x00", "customer"),
        ("/api/actions/a\x00", "action_id"),
    ],
)
def test_a_nul_character_in_a_parameter_is_a_422_naming_it(
    client: TestClient, path: str, name: str
) -> None:
    response = client.get(path.replace("\x00", "%00"))

    assert refused(response) == (422, f"{name}: contains a NUL character")


def test_a_nul_character_in_a_body_is_a_422_naming_the_field(client: TestClient) -> None:
    posted = client.post("/api/touchpoints", json=touchpoint(source="web\x00"))
    (action,) = items(client.get("/api/actions", params={"customer": "S5-EVA"}))
    reported = client.post(
        f"/api/actions/{action['action_id']}/outcome", json={"status": "done", "reason": "\x00"}
    )

    assert refused(posted) == (422, "source: contains a NUL character")
    assert refused(reported) == (422, "reason: contains a NUL character")


def test_a_body_larger_than_allowed_is_a_413_whether_its_length_is_declared_or_not(
    data_dir: Path,
) -> None:
    app = create_app(Settings(data_dir=data_dir))
    body = b"[" + b" " * (17 * 1024 * 1024) + b"]"
    with TestClient(app) as client:
        declared = client.post(
            "/api/touchpoints", content=body, headers={"content-type": "application/json"}
        )
        streamed = client.post(
            "/api/touchpoints",
            content=iter([body[i : i + 65536] for i in range(0, len(body), 65536)]),
            headers={"content-type": "application/json"},
        )

    for response in (declared, streamed):
        assert refused(response) == (
            413,
            "the request body is larger than the 16,777,216 bytes allowed",
        )


def test_a_request_that_does_not_fit_its_endpoint_is_refused_in_the_one_error_shape(
    client: TestClient,
) -> None:
    paged = client.get("/api/actions", params={"limit": 0})
    listed = client.post("/api/touchpoints", json=[1, 2])
    elsewhere = client.get("/api/nothing/here")
    method = client.delete("/api/touchpoints")

    assert refused(paged) == (422, "limit: Input should be greater than or equal to 1")
    assert refused(listed) == (422, "body: Input should be a valid dictionary")
    assert refused(elsewhere) == (404, "Not Found")
    assert refused(method) == (405, "Method Not Allowed")


def test_every_answer_of_the_api_is_typed_and_described_in_its_document(
    client: TestClient,
) -> None:
    document = client.get("/openapi.json").json()
    answers = {
        (path, method, status): response["content"]["application/json"]["schema"]
        for path, operations in document["paths"].items()
        for method, operation in operations.items()
        for status, response in operation["responses"].items()
        if status.startswith("2")
    }

    assert {path for path, _, _ in answers} == {
        path for path in document["paths"] if path.startswith("/api/")
    }
    for where, schema in answers.items():
        assert untyped(schema, document) == [], where


def test_every_error_an_endpoint_may_answer_is_documented_as_problem_details(
    client: TestClient,
) -> None:
    document = client.get("/openapi.json").json()
    problem = document["components"]["schemas"]["Problem"]

    assert problem["required"] == ["type", "title", "status", "detail"]
    assert untyped(problem, document) == []
    for path, operations in document["paths"].items():
        for method, operation in operations.items():
            errors = {s: r for s, r in operation["responses"].items() if s[0] in "45"}
            assert {"401", "422", "500", "503"} <= set(errors), (path, method)
            for status, response in errors.items():
                assert response["content"] == {
                    PROBLEM_JSON: {"schema": {"$ref": "#/components/schemas/Problem"}}
                }, (path, method, status)
            assert "Retry-After" in errors["503"]["headers"]


def test_the_touchpoint_body_is_documented_as_the_touchpoint_record(client: TestClient) -> None:
    document = client.get("/openapi.json").json()
    body = document["paths"]["/api/touchpoints"]["post"]["requestBody"]["content"]
    record = document["components"]["schemas"]["Touchpoint"]
    (example,) = record["examples"]

    assert [
        option.get("$ref") or option["items"]["$ref"]
        for option in body["application/json"]["schema"]["anyOf"]
    ] == ["#/components/schemas/Touchpoint"] * 2
    fields = json.loads(AVRO_TOUCHPOINT.read_text())["fields"]
    assert set(record["properties"]) == {field["name"] for field in fields}
    assert set(record["required"]) == {field["name"] for field in fields if "default" not in field}
    assert client.post("/api/touchpoints", json=example).status_code == 202


def every_answer(client: TestClient) -> dict[str, tuple[str, str, int, Any]]:
    """One answer of each endpoint and each customer: (path, method, status, JSON) by name."""
    answered: dict[str, tuple[str, str, int, Any]] = {}
    customers = items(client.get("/api/customers"))
    for listed in customers:
        path = f"/api/customers/{listed['customer_id']}"
        answered[path] = ("/api/customers/{customer_id}", "get", 200, client.get(path).json())
    for path in (
        "/api/customers",
        "/api/frictions",
        "/api/frictions/counts",
        "/api/funnel",
        "/api/attribution",
        "/api/velocity",
    ):
        answered[path] = (path, "get", 200, client.get(path).json())
    answered["actions"] = ("/api/actions", "get", 200, client.get("/api/actions").json())
    answered["owners"] = ("/api/owners", "get", 200, client.get("/api/owners").json())
    day = client.get("/api/worklist", params={"owner": "kathrine", "zone": "Europe/Berlin"})
    answered["worklist"] = ("/api/worklist", "get", 200, day.json())
    matrix = client.get("/api/frictions/counts", params={"by": "stage", "then": "owner"})
    answered["matrix"] = ("/api/frictions/counts", "get", 200, matrix.json())
    action = answered["actions"][3]["items"][0]["action_id"]
    explained = client.get(f"/api/actions/{action}").json()
    answered["explained"] = ("/api/actions/{action_id}", "get", 200, explained)
    snoozed = client.post(
        f"/api/actions/{action}/outcome",
        json={"status": "snoozed", "snoozed_until": 1_775_000_000_000},
    )
    answered["snoozed"] = ("/api/actions/{action_id}/outcome", "post", 201, snoozed.json())
    customer = f"EVERY-{uuid.uuid4()}"
    posted = client.post(
        "/api/touchpoints",
        json=touchpoint(event_id=customer, customer_id=customer, occurred_at=1_773_133_200_123),
    )
    answered["posted"] = ("/api/touchpoints", "post", 202, posted.json())
    read = client.get(f"/api/customers/{customer}", params={"after": posted.json()["position"]})
    answered["read"] = ("/api/customers/{customer_id}", "get", 200, read.json())
    return answered


def test_every_answer_holds_what_the_document_says_and_nothing_else(client: TestClient) -> None:
    document = client.get("/openapi.json").json()

    for name, (path, method, status, body) in every_answer(client).items():
        schema = answer_schema(document, path, method, status)
        assert mismatches(body, schema, document) == [], name


def test_no_answer_holds_a_time_in_milliseconds(client: TestClient) -> None:
    def numbers(value: Any) -> Iterator[int]:
        if isinstance(value, dict):
            for item in value.values():
                yield from numbers(item)
        elif isinstance(value, list):
            for item in value:
                yield from numbers(item)
        elif isinstance(value, int) and not isinstance(value, bool):
            yield value

    answered = every_answer(client)
    read = answered["read"][3]

    for name, (_, _, _, body) in answered.items():
        assert [n for n in numbers(body) if n >= EARLIEST_MS] == [], name
    # Written as given, to the millisecond, as every time is.
    assert read["timeline"][-1]["occurred_at"] == "2026-03-10T09:00:00.123Z"
    assert answered["snoozed"][3]["snoozed_until"] == "2026-03-31T23:33:20.000Z"


LISTS = {
    "/api/customers": lambda item: item["customer_id"],
    "/api/actions?include_closed=true": lambda item: item["action_id"],
    "/api/owners": lambda item: item["owner"],
    "/api/frictions?include_resolved=true": lambda item: (item["customer_id"], item["id"]),
    "/api/frictions/counts?by=owner&then=kind": lambda item: (item["owner"], item["kind"]),
}


@pytest.mark.parametrize("path", LISTS)
def test_every_list_is_paged_the_same_and_its_next_pages_give_each_item_once(
    client: TestClient, path: str
) -> None:
    joined = "&" if "?" in path else "?"
    whole = client.get(f"{path}{joined}limit=1000").json()
    walked, pages, following = [], 0, f"{path}{joined}limit=2"
    while following is not None:
        page = client.get(following).json()
        assert (page["total"], page["limit"], page["offset"]) == (whole["total"], 2, len(walked))
        assert 0 < len(page["items"]) <= 2
        walked += page["items"]
        pages, following = pages + 1, page["next"]

    assert whole["next"] is None
    assert len(whole["items"]) == whole["total"] > 4
    assert walked == whole["items"]
    key = LISTS[path]
    assert len({key(item) for item in walked}) == len(walked)
    assert pages == -(-whole["total"] // 2)


def test_an_unexpected_fault_is_a_500_in_problem_details_naming_its_log_entry(
    data_dir: Path, caplog: pytest.LogCaptureFixture
) -> None:
    app = create_app(Settings(data_dir=data_dir))

    @app.get("/api/faulty")
    def faulty() -> None:
        raise RuntimeError("a fault")

    with (
        TestClient(app, raise_server_exceptions=False) as client,
        caplog.at_level(logging.ERROR, logger="journey.serve"),
    ):
        response = client.get("/api/faulty")

    status, detail = refused(response)
    instance = response.json()["instance"]
    assert status == 500
    assert instance.startswith("urn:uuid:")
    assert detail == f"an unexpected error, logged as {instance}"
    assert "a fault" not in response.text
    assert any(instance in r.getMessage() and r.exc_info for r in caplog.records)


def test_each_problem_type_is_a_page_saying_what_it_means(client: TestClient) -> None:
    described = client.get("/openapi.json").json()["components"]["schemas"]["Problem"]
    types = re.findall(r"`(/problems/[a-z-]+)`", described["properties"]["type"]["description"])

    assert "/problems/views-behind" in types
    for problem in types:
        page = client.get(problem)
        assert page.status_code == 200
        assert "<h1>" in page.text
    assert refused(client.get("/problems/nonsense"))[0] == 404


@pytest.fixture(scope="module")
def morning_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The stories, and Kathrine's morning: actions of hers overdue, due today and later."""
    data_dir = recorded_stories(tmp_path_factory.mktemp("morning"))
    with TestClient(create_app(Settings(data_dir=data_dir))) as made:
        assert made.post("/api/touchpoints", json=kathrines_morning()).status_code == 202
    return data_dir


@pytest.fixture
def morning(morning_dir: Path) -> Iterator[TestClient]:
    with TestClient(create_app(Settings(data_dir=morning_dir))) as made:
        yield made


def worklist(client: TestClient, **query: Any) -> dict[str, Any]:
    response = client.get("/api/worklist", params={"owner": "kathrine", **query})
    assert response.status_code == 200, response.text
    found: dict[str, Any] = response.json()
    return found


def test_a_reps_worklist_is_overdue_first_then_today_then_later_by_the_journeys_clock(
    morning: TestClient,
) -> None:
    day = worklist(morning)

    assert day["as_of"] == "2026-06-14T09:00:00.000Z"  # the latest recorded, not the wall clock
    assert [(a["group"], a["customer_id"], a["due_at"]) for a in day["items"]] == [
        ("overdue", "S1-ANNA", "2026-03-07T09:00:00.000Z"),
        ("overdue", "S1-ANNA", "2026-03-15T09:00:00.000Z"),
        ("today", "S7-GUS", "2026-06-14T12:10:00.000Z"),
        ("later", "S8-HEDDA", "2026-06-17T08:30:00.000Z"),
    ]
    assert [(a["label"], a["priority_level"]) for a in day["items"]] == [
        ("Personal introduction through the referrer", "medium"),
        ("Follow up after the visit", "high"),
        ("Call back with context", "high"),
        ("Thank them for the referral", "low"),
    ]
    assert day["counts"] == {"overdue": 2, "today": 1, "later": 1, "snoozed": 0}
    assert [d["day"] for d in day["days"]] == [
        "2026-03-07",
        "2026-03-15",
        "2026-06-14",
        "2026-06-17",
    ]


def test_owners_are_listed_with_what_they_have_to_do_and_how_much_is_overdue(
    morning: TestClient,
) -> None:
    owners = morning.get("/api/owners").json()

    assert owners["as_of"] == "2026-06-14T09:00:00.000Z"
    assert {o["owner"]: (o["to_do"], o["overdue"]) for o in owners["items"]} == {
        "amira": (1, 1),
        "branch_manager": (1, 1),
        "inside_sales": (2, 2),
        "jonas": (1, 0),
        "kathrine": (4, 2),
    }


def test_the_day_begins_at_midnight_in_the_zone_asked_for(morning: TestClient) -> None:
    # 09:00 UTC is 23:00 on Kiritimati (UTC+14): the call back due at 12:10 UTC is tomorrow.
    day = worklist(morning, zone="Pacific/Kiritimati")

    assert day["counts"] == {"overdue": 2, "today": 0, "later": 2, "snoozed": 0}
    assert day["days"][2] == {"day": "2026-06-15", "actions": 1}


def test_a_snoozed_action_leaves_the_worklist_until_the_journeys_clock_reaches_its_time(
    morning: TestClient,
) -> None:
    (call_back,) = [a for a in worklist(morning)["items"] if a["customer_id"] == "S7-GUS"]
    snoozed = morning.post(
        f"/api/actions/{call_back['action_id']}/outcome",
        json={"status": "snoozed", "snoozed_until": "2026-06-14T10:00:00Z"},
    ).json()

    later = worklist(morning, after=snoozed["position"])
    assert (later["counts"]["today"], later["counts"]["snoozed"]) == (0, 1)
    assert call_back["action_id"] not in [a["action_id"] for a in later["items"]]

    ticked = morning.post(
        "/api/touchpoints",
        json=touchpoint(event_id="morning-1", customer_id="M-1", occurred_at="2026-06-14T10:30Z"),
    ).json()
    back = worklist(morning, after=ticked["position"])
    assert back["as_of"] == "2026-06-14T10:30:00.000Z"
    assert [(a["action_id"], a["status"]) for a in back["items"] if a["group"] == "today"] == [
        (call_back["action_id"], "snoozed")
    ]


@pytest.mark.parametrize(
    ("query", "status", "detail"),
    [
        ({"owner": "kathrin"}, 404, "no actions were ever decided for owner 'kathrin'"),
        ({"owner": "kathrine", "zone": "Mars/Olympus"}, 422, "zone: unknown time zone"),
        ({}, 422, "owner: Field required"),
    ],
)
def test_a_worklist_of_nobody_or_in_no_zone_is_refused_in_one_line(
    client: TestClient, query: dict[str, str], status: int, detail: str
) -> None:
    found, said = refused(client.get("/api/worklist", params=query))

    assert found == status
    assert said.startswith(detail)
