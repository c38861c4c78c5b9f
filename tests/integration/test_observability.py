"""The long-running commands observed as an operator does: their metrics and health on a
port of their own, and their logs as JSON lines."""

from __future__ import annotations

import json
import re
import socket
import urllib.error
import urllib.request
from typing import Any

import pytest
from prometheus_client.parser import text_string_to_metric_families

from journey.demo import demo_touchpoints
from tests.integration.conftest import Pipeline, Watched, wait_until

LOG_FIELDS = {"time", "level", "logger", "message", "command", "process", "pid"}


def metrics_port(process: Watched) -> int:
    process.wait_for("metrics on http://")
    found = re.search(r"metrics on http://127\.0\.0\.1:(\d+)/metrics", process.output)
    assert found, process.output
    return int(found.group(1))


def get(port: int, path: str) -> tuple[int, str]:
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}{path}", timeout=10) as answer:
            return answer.status, answer.read().decode()
    except urllib.error.HTTPError as refused:
        return refused.code, refused.read().decode()


def samples(port: int, name: str) -> dict[tuple[tuple[str, str], ...], float]:
    """The samples of `name` on the process's /metrics, by their labels."""
    status, text = get(port, "/metrics")
    assert status == 200
    return {
        tuple(sorted(sample.labels.items())): sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
        if sample.name == name
    }


def json_lines(process: Watched) -> list[dict[str, Any]]:
    lines = [json.loads(line) for line in process.output.splitlines() if line.strip()]
    for line in lines:
        assert set(line) >= LOG_FIELDS, line
    return lines


@pytest.mark.parametrize("pipeline", [2], indirect=True)
def test_a_consumer_reports_what_it_recorded_and_its_lag_on_its_metrics_port(
    pipeline: Pipeline,
) -> None:
    produced = list(demo_touchpoints(10, seed=5))[:150]
    pipeline.publish_touchpoints(produced)
    consumer = pipeline.watch(
        "consume", "--batch-size", "40", "--metrics-port", "0", JOURNEY_LOG_FORMAT="json"
    )
    port = metrics_port(consumer)
    assert get(port, "/healthz") == (200, '{"status": "alive"}')

    def recorded() -> float:
        return samples(port, "journey_records_recorded_total").get(
            (("consumer", "touchpoints"),), 0
        )

    wait_until(lambda: recorded() == len(produced), "the metrics to count every touchpoint")
    assert pipeline.recorded_count() == len(produced)
    consumed = samples(port, "journey_records_consumed_total")
    assert consumed[(("consumer", "touchpoints"),)] == len(produced)
    lag = samples(port, "journey_consumer_lag_records")
    assert {dict(labels)["partition"] for labels in lag} == {"0", "1"}
    assert set(lag.values()) == {0}
    commits = samples(port, "journey_batch_commit_duration_seconds_count")
    assert commits[(("consumer", "touchpoints"),)] >= len(produced) / 40
    assert samples(port, "journey_ready") == {(): 1.0}
    assert get(port, "/readyz") == (200, '{"status": "ready"}')
    assert get(port, "/nothing")[0] == 404

    assert consumer.terminate() == 0
    lines = json_lines(consumer)
    assert {line["command"] for line in lines} == {"consume"}
    assert any(line["logger"] == "journey.consume" for line in lines)


def test_every_long_running_process_logs_the_same_json_fields(pipeline: Pipeline) -> None:
    produced = list(demo_touchpoints(5, seed=8))[:40]
    pipeline.publish_touchpoints(produced)
    consumer = pipeline.watch("consume", JOURNEY_LOG_FORMAT="json")
    wait_until(lambda: pipeline.recorded_count() == len(produced), "every touchpoint recorded")
    decider = pipeline.watch("decide", "--follow", "--metrics-port", "0", JOURNEY_LOG_FORMAT="json")
    port = metrics_port(decider)
    decider.wait_for("Deciding as touchpoints arrive")
    assert get(port, "/readyz") == (200, '{"status": "ready"}')
    wait_until(
        lambda: samples(port, "journey_decider_lag_positions").get(()) == 0,
        "the decider to report that it decided on everything recorded",
        timeout=30,
    )
    assert samples(port, "journey_outbox_backlog_actions") == {(): 0.0}
    assert consumer.terminate() == 0
    assert decider.terminate() == 0

    consumed, decided = json_lines(consumer), json_lines(decider)
    assert {line["command"] for line in consumed} == {"consume"}
    assert {line["command"] for line in decided} == {"decide"}
    # What the decider says on stopping goes through the same log.
    assert any(line["message"] == "Decider stopped" for line in decided)
    assert {frozenset(line) & LOG_FIELDS for line in consumed + decided} == {frozenset(LOG_FIELDS)}


def test_the_api_serves_its_health_on_the_metrics_port_too(pipeline: Pipeline) -> None:
    with socket.socket() as free:
        free.bind(("127.0.0.1", 0))
        api_port = free.getsockname()[1]
    server = pipeline.watch("serve", "--port", str(api_port), JOURNEY_METRICS_PORT="0")
    port = metrics_port(server)
    server.wait_for("Serving the journeys")

    assert get(port, "/readyz") == (200, '{"status": "ready"}')
    assert samples(port, "journey_ready") == {(): 1.0}
    assert get(port, "/healthz")[0] == 200
    server.terminate()
