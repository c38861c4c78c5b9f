"""POST /api/backtest: the candidate as TOML text or as JSON gives the document `journey
backtest --json` prints, typed as the OpenAPI document says; mistakes are problem details."""

from __future__ import annotations

import json
import tomllib
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient

from engine.settings import Settings
from journey.api import create_app
from tests.e2e.test_api import refused
from tests.e2e.test_backtest_cli import FOLLOW_UP
from tests.e2e.test_cli import at_80_columns
from tests.openapi import answer_schema, mismatches
from tests.stories import recorded_stories

SHIPPED = Path(__file__).parents[2] / "engine" / "default_journey.toml"
CANDIDATE = SHIPPED.read_text().replace(FOLLOW_UP, 'reason = "Follow up their {touchpoint}."')


@pytest.fixture(scope="module")
def data_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return recorded_stories(tmp_path_factory.mktemp("backtest-api"))


@pytest.fixture
def client(data_dir: Path) -> Iterator[TestClient]:
    with TestClient(create_app(Settings(data_dir=data_dir))) as made:
        yield made


def post(client: TestClient, **options: Any) -> Any:
    return client.post(
        "/api/backtest", content=CANDIDATE, headers={"content-type": "application/toml"}, **options
    )


def test_toml_and_json_candidates_give_the_documented_answer(
    client: TestClient, data_dir: Path, tmp_path: Path
) -> None:
    as_toml = post(client)
    as_json = client.post("/api/backtest", json=tomllib.loads(CANDIDATE))
    candidate = tmp_path / "candidate.toml"
    candidate.write_text(CANDIDATE)
    printed = at_80_columns(data_dir, "backtest", str(candidate), "--json").stdout

    assert as_toml.status_code == as_json.status_code == 200, as_toml.text
    answer = as_toml.json()
    document = client.get("/openapi.json").json()
    schema = answer_schema(document, "/api/backtest", "post", 200)
    assert mismatches(answer, schema, document) == []
    rules = {rule["rule"]: rule for rule in answer["rules"]}
    assert rules["follow_up_visit"]["changed"] == rules["follow_up_visit"]["logged"] > 0
    assert answer["totals"]["added"] == answer["totals"]["dropped"] == 0

    def without_timing(shown: dict[str, Any]) -> dict[str, Any]:
        return {**shown, "candidate": None, "replayed": {**shown["replayed"], "seconds": 0}}

    assert without_timing(as_json.json()) == without_timing(answer)
    assert without_timing(answer) == without_timing(json.loads(printed))


def test_the_window_and_the_customer_are_query_options(client: TestClient) -> None:
    everything = post(client).json()
    later = post(client, params={"from": "2030-01-01T00:00:00Z"}).json()
    one = post(client, params={"customer": "S1-ANNA"}).json()

    assert everything["totals"]["logged"] > 0
    assert later["totals"]["logged"] == later["totals"]["proposed"] == 0
    assert later["window"]["from"] == "2030-01-01T00:00:00.000Z"
    assert one["customer"]
    assert {pair["difference"] for pair in one["customer"]} <= {"same", "changed"}


def test_a_bad_candidate_or_an_unknown_customer_is_a_problem(client: TestClient) -> None:
    not_toml = client.post("/api/backtest", content="x = [", headers={"content-type": "text/plain"})
    not_an_object = client.post("/api/backtest", json=[1])
    nobody = post(client, params={"customer": "NOBODY"})

    assert refused(not_toml)[0] == 422
    assert refused(not_toml)[1].startswith("the request body: not valid TOML")
    assert refused(not_an_object) == (
        422,
        "the request body: a journey definition is a JSON object",
    )
    assert refused(nobody)[0] == 404
