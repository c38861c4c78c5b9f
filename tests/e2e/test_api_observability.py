"""journey serve's own health, readiness and metrics: outside /api, open to probes and
scrapes, and requests counted by route template rather than by path."""

from __future__ import annotations

import logging
from collections.abc import Iterator
from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from prometheus_client.parser import text_string_to_metric_families

from engine.settings import Settings
from journey.api import create_app


@pytest.fixture
def client(tmp_path: Path) -> Iterator[TestClient]:
    app = create_app(Settings(data_dir=tmp_path / "data"), token="sales-token")
    with TestClient(app) as made:
        yield made


def requests_counted(client: TestClient) -> dict[tuple[str, str, str], float]:
    """(method, route, status) -> requests, as a scrape of /metrics shows them."""
    response = client.get("/metrics")
    assert response.status_code == 200
    counted = {}
    for family in text_string_to_metric_families(response.text):
        for sample in family.samples:
            if sample.name == "journey_http_request_duration_seconds_count":
                labels = sample.labels
                counted[labels["method"], labels["route"], labels["status"]] = sample.value
    return counted


def test_health_and_readiness_need_no_token_and_are_not_in_the_api_document(
    client: TestClient,
) -> None:
    assert client.get("/healthz").json() == {"status": "alive"}
    ready = client.get("/readyz")
    assert (ready.status_code, ready.json()) == (200, {"status": "ready"})
    assert client.get("/api/funnel").status_code == 401
    paths = client.get("/openapi.json", headers={"Authorization": "Bearer sales-token"})
    assert not {"/healthz", "/readyz", "/metrics"} & set(paths.json()["paths"])


def test_requests_are_counted_by_route_template_and_status_not_by_path(
    client: TestClient, caplog: pytest.LogCaptureFixture
) -> None:
    before = requests_counted(client)
    auth = {"Authorization": "Bearer sales-token"}
    with caplog.at_level(logging.INFO, logger="journey.access"):
        for customer in ("C-1", "C-2", "C-3"):
            assert client.get(f"/api/customers/{customer}", headers=auth).status_code == 404
        assert client.get("/api/funnel", headers=auth).status_code == 200
        assert client.get("/no/such/page/C-4").status_code == 404
    after = requests_counted(client)

    def added(key: tuple[str, str, str]) -> float:
        return after.get(key, 0) - before.get(key, 0)

    assert added(("GET", "/api/customers/{customer_id}", "404")) == 3
    assert added(("GET", "/api/funnel", "200")) == 1
    assert added(("GET", "unmatched", "404")) == 1
    assert not any("C-" in route for _, route, _ in after)
    assert "journey_ready 1.0" in client.get("/metrics").text

    logged = [r for r in caplog.records if r.name == "journey.access"]
    assert [(r.method, r.route, r.status) for r in logged][:2] == [  # type: ignore[attr-defined]
        ("GET", "/api/customers/{customer_id}", 404),
        ("GET", "/api/customers/{customer_id}", 404),
    ]
    assert all(r.duration_ms >= 0 for r in logged)  # type: ignore[attr-defined]
    assert "/metrics" not in {r.route for r in logged}  # type: ignore[attr-defined]
