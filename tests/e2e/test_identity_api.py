"""Who is who in the HTTP API, as a sales tool would use it: anonymous touchpoints posted
without a customer id join the known customer's journey; a person found by any identifier;
a conflict merged by a person and the merge undone, each answered in the shape its OpenAPI
document gives."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from fastapi.testclient import TestClient

from engine.settings import Settings
from journey.api import create_app
from tests.conftest import T0
from tests.stories import anonymous_reader_turns_caller


def touchpoint(event_id: str, customer: str, at: int, **identifiers: str) -> dict[str, Any]:
    return {
        "event_id": event_id,
        "customer_id": customer,
        "channel": "email",
        "type": "email_inbound",
        "occurred_at": at,
        "source": "crm",
        **identifiers,
    }


@pytest.fixture(scope="module")
def client(tmp_path_factory: pytest.TempPathFactory) -> Iterator[TestClient]:
    data_dir = tmp_path_factory.mktemp("identity-api")
    with TestClient(create_app(Settings(data_dir=data_dir))) as made:
        posted = made.post(
            "/api/touchpoints",
            json=[
                *anonymous_reader_turns_caller(),
                touchpoint("h-1", "H-1", T0, email="hugo@example.com"),
                # Another customer's touchpoint carrying Hugo's address: a conflict.
                touchpoint("h-2", "H-2", T0 + 3_600_000, email="HUGO@example.com"),
            ],
        )
        assert posted.status_code == 202, posted.text
        made.get("/api/funnel", params={"after": posted.json()["position"]})
        yield made


def test_a_person_is_found_by_any_identifier(client: TestClient) -> None:
    answer = client.get("/api/identity/phone:0045 31 41 59 26")
    assert answer.status_code == 200, answer.text
    greta = answer.json()
    assert greta["person"] == "S7-GRETA"
    assert {"kind": "cookie_id", "value": "ck-7f3a"} in greta["identifiers"]
    journey = client.get("/api/customers/cookie_id:ck-7f3a")
    assert journey.status_code == 200, journey.text
    assert journey.json()["customer_id"] == "S7-GRETA"


def test_an_unknown_identifier_is_a_404_naming_it(client: TestClient) -> None:
    answer = client.get("/api/identity/email:nobody@example.com")
    assert answer.status_code == 404
    assert answer.json()["detail"] == "no touchpoint recorded names email:nobody@example.com"


def test_a_conflict_merged_by_a_person_and_undone(client: TestClient) -> None:
    [conflict] = client.get("/api/identity/conflicts").json()
    assert conflict["people"] == ["H-2", "H-1"]
    merged = client.post(
        "/api/identity/merge",
        json={"a": "H-1", "b": "H-2", "reason": "one person, two CRM records", "by": "eve"},
    )
    assert merged.status_code == 200, merged.text
    assert merged.json()["people"] == ["H-1"]
    hugo = client.get("/api/customers/H-2", params={"after": merged.json()["position"]}).json()
    assert hugo["customer_id"] == "H-1"
    assert [t["event_id"] for t in hugo["timeline"]] == ["h-1", "h-2"]
    assert client.get("/api/identity/conflicts").json() == []
    again = client.post(
        "/api/identity/merge", json={"a": "H-1", "b": "H-2", "reason": "again", "by": "eve"}
    )
    assert again.status_code == 422
    assert "are one person already" in again.json()["detail"]

    undone = client.post(
        "/api/identity/unmerge",
        json={"what": merged.json()["merge_id"], "reason": "they are not", "by": "eve"},
    )
    assert undone.status_code == 200, undone.text
    assert sorted(undone.json()["people"]) == ["H-1", "H-2"]
    after = {"after": undone.json()["position"]}
    assert client.get("/api/customers/H-2", params=after).json()["customer_id"] == "H-2"
    assert len(client.get("/api/identity/conflicts").json()) == 1
