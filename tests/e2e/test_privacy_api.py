"""A person's rights in the HTTP API, on a store that seals personal data: Greta's data
exported whole, then Greta forgotten, her journey kept without it, and her data keys gone."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from fastapi.testclient import TestClient

from engine.settings import Settings
from engine.vault import MasterKeys
from journey.api import create_app
from tests.stories import anonymous_reader_turns_caller

GRETA = {
    *("ck-7f3a", "Greta.Holm@example.com", "greta.holm@example.com"),
    *("+45 31 41 59 26", "0045 31415926"),
}  # each as a channel sent it


@pytest.fixture
def client(tmp_path_factory: pytest.TempPathFactory) -> Iterator[TestClient]:
    settings = Settings(
        data_dir=tmp_path_factory.mktemp("privacy-api"), master_key=MasterKeys.new_line("k")
    )
    with TestClient(create_app(settings)) as made:
        posted = made.post("/api/touchpoints", json=anonymous_reader_turns_caller())
        assert posted.status_code == 202, posted.text
        made.get("/api/funnel", params={"after": posted.json()["position"]})
        yield made


def test_a_person_exported_then_forgotten_keeps_their_journey_without_their_data(
    client: TestClient,
) -> None:
    exported = client.get("/api/people/phone:+4531415926/export")
    assert exported.status_code == 200, exported.text
    greta = exported.json()
    assert greta["person"] == "S7-GRETA"
    sent = {v for tp in greta["touchpoints"] for v in tp["identifiers"].values()}
    assert sent == GRETA
    stages = [entry["stage"] for entry in greta["journey"]["stage_history"]]

    forgotten = client.post(
        "/api/people/cookie_id:ck-7f3a/forget", json={"reason": "request 7", "by": "dpo"}
    )
    assert forgotten.status_code == 200, forgotten.text
    receipt = forgotten.json()
    assert receipt["person"] == "S7-GRETA"
    assert receipt["data_keys"] == len(receipt["keys"]) == len(greta["keys"])

    after = client.get("/api/people/S7-GRETA/export").json()
    assert {v for tp in after["touchpoints"] for v in tp["identifiers"].values()} == {"(erased)"}
    assert [entry["stage"] for entry in after["journey"]["stage_history"]] == stages
    assert [r["reason"] for r in after["erasures"]] == ["request 7"]
    shown = client.get("/api/identity/S7-GRETA").json()
    assert {i["value"] for i in shown["identifiers"] if i["kind"] != "customer_id"} == {"(erased)"}
    again = client.post("/api/people/S7-GRETA/forget", json={"reason": "request 7", "by": "dpo"})
    assert again.json()["position"] is None


def test_forgetting_needs_a_reason_and_someone_who_asks(client: TestClient) -> None:
    refused = client.post("/api/people/S7-GRETA/forget", json={"reason": "", "by": "dpo"})
    assert refused.status_code == 422
    assert refused.json()["detail"].startswith("reason:")
