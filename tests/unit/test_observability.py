"""Health and readiness from what a process knows of its services, the metric helpers, the
JSON log format, and the example alert rules and dashboard against the metrics defined."""

from __future__ import annotations

import json
import logging
import re
import sys
from pathlib import Path

import pytest
import yaml
from prometheus_client import REGISTRY

from consumers.metrics import CONSUMER_LAG, ConsumerMetrics, Every, metric_names
from engine.errors import ConfigurationError
from engine.outage import Outage
from engine.settings import Settings
from journey.health import Health, health_body
from journey.logs import JsonFormatter

ROOT = Path(__file__).resolve().parents[2]


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def outage(clock: Clock, service: str = "PostgreSQL") -> Outage:
    return Outage(logging.getLogger("test.health"), service, "waiting", clock=clock)


def test_a_process_is_ready_once_started_and_while_no_service_it_needs_is_away() -> None:
    clock = Clock()
    postgres, kafka = outage(clock), outage(clock, "Kafka at k:9092")
    health = Health(clock=clock)
    health.watch(postgres, kafka)
    assert not health.ready()
    assert health_body(health, "ready") == (503, {"status": "not ready", "waiting_for": ["start"]})

    health.started()
    assert health.ready()
    assert health_body(health, "ready") == (200, {"status": "ready"})

    kafka.failed(ConnectionError("refused"))
    assert not health.ready()
    assert health_body(health, "ready")[1]["waiting_for"] == ["Kafka at k:9092"]
    kafka.succeeded()
    postgres.failed()
    assert health.waiting_for() == ["PostgreSQL"]
    postgres.succeeded()
    assert health.ready()


def test_a_process_is_alive_while_its_loop_tries_its_services_even_in_an_outage() -> None:
    clock = Clock()
    postgres = outage(clock)
    health = Health(stale_after_s=60, clock=clock)
    health.watch(postgres)
    health.started()
    clock.now += 59
    assert health.alive()
    clock.now += 2
    assert not health.alive()
    assert health_body(health, "alive") == (503, {"status": "stuck"})

    postgres.failed()  # a try that failed is the loop running all the same
    assert health.alive()
    clock.now += 61
    health.beat()
    assert health_body(health, "alive") == (200, {"status": "alive"})


def test_a_consumers_lag_is_per_partition_never_negative_and_forgotten_when_revoked() -> None:
    metrics = ConsumerMetrics.of("test-lag")
    metrics.lag("topic-a", 0, 12)
    metrics.lag("topic-a", 1, -3)  # a high watermark older than the offsets recorded
    assert (
        REGISTRY.get_sample_value(
            "journey_consumer_lag_records",
            {"consumer": "test-lag", "topic": "topic-a", "partition": "0"},
        )
        == 12
    )
    assert (
        REGISTRY.get_sample_value(
            "journey_consumer_lag_records",
            {"consumer": "test-lag", "topic": "topic-a", "partition": "1"},
        )
        == 0
    )
    metrics.forget_lag("topic-a", 0)
    metrics.forget_lag("topic-a", 7)  # never held: nothing to forget
    labels = {"consumer": "test-lag", "topic": "topic-a", "partition": "0"}
    assert REGISTRY.get_sample_value("journey_consumer_lag_records", labels) is None
    CONSUMER_LAG.remove("test-lag", "topic-a", "1")


def test_dead_letters_are_counted_by_reason() -> None:
    metrics = ConsumerMetrics.of("test-dead")
    for reason in ("invalid", "invalid", "oversized"):
        metrics.dead_letter(reason)
    labels = {"consumer": "test-dead", "reason": "invalid"}
    assert REGISTRY.get_sample_value("journey_dead_letters_total", labels) == 2


def test_a_costly_measurement_is_due_at_most_once_per_period() -> None:
    clock = Clock()
    every = Every(5.0, clock)
    assert every.due()
    assert not every.due()
    clock.now += 4.9
    assert not every.due()
    clock.now += 0.2
    assert every.due()


def test_every_metric_is_named_for_the_engine_with_its_unit() -> None:
    names = metric_names()
    assert all(name.startswith("journey_") for name in names)
    assert "journey_http_request_duration_seconds_bucket" in names
    assert "journey_records_recorded_total" in names
    for name in names:
        assert not name.endswith("_total_total")


def test_json_log_lines_carry_time_level_logger_message_command_and_extras() -> None:
    formatter = JsonFormatter("consume", "journey-consume-2")
    record = logging.LogRecord(
        "journey.consume", logging.INFO, __file__, 1, "%d recorded", (5,), None
    )
    record.route = "/api/customers/{customer_id}"
    line = json.loads(formatter.format(record))
    assert line["level"] == "INFO"
    assert line["logger"] == "journey.consume"
    assert line["message"] == "5 recorded"
    assert line["command"] == "consume"
    assert line["process"] == "journey-consume-2"
    assert line["route"] == "/api/customers/{customer_id}"
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}\+00:00", line["time"])
    try:
        raise ValueError("boom\nsecond line")
    except ValueError:
        failed = logging.LogRecord("x", logging.ERROR, __file__, 1, "failed", (), sys.exc_info())
    text = formatter.format(failed)
    assert "\n" not in text
    assert "ValueError: boom" in json.loads(text)["exception"]


def test_metrics_and_log_settings_are_read_once_and_checked() -> None:
    settings = Settings.from_env(
        {
            "JOURNEY_METRICS_PORT": "9464",
            "JOURNEY_METRICS_HOST": "0.0.0.0",
            "JOURNEY_LOG_FORMAT": "JSON",
        }
    )
    assert (settings.metrics_port, settings.metrics_host, settings.log_format) == (
        9464,
        "0.0.0.0",
        "json",
    )
    assert Settings.from_env({}).metrics_port is None
    assert Settings.from_env({"JOURNEY_METRICS_PORT": "0"}).metrics_port == 0
    with pytest.raises(ConfigurationError, match="JOURNEY_LOG_FORMAT"):
        Settings.from_env({"JOURNEY_LOG_FORMAT": "xml"})
    with pytest.raises(ConfigurationError, match="JOURNEY_METRICS_PORT"):
        Settings.from_env({"JOURNEY_METRICS_PORT": "70000"})


def _named_in(expression: str) -> set[str]:
    return set(re.findall(r"\bjourney_[a-z_]+\b", expression))


def test_the_example_alert_rules_load_and_name_only_metrics_that_exist() -> None:
    rules = yaml.safe_load((ROOT / "deploy/prometheus/alerts.yml").read_text())
    alerts = [rule for group in rules["groups"] for rule in group["rules"]]
    assert {rule["alert"] for rule in alerts} >= {
        "JourneyConsumerLagGrowing",
        "JourneyDeciderLagging",
        "JourneyDeadLetters",
        "JourneyProcessNotReady",
        "JourneyApiSlow",
    }
    named = set().union(*(_named_in(rule["expr"]) for rule in alerts))
    assert named
    assert named <= metric_names(), named - metric_names()


def test_the_example_dashboard_names_only_metrics_that_exist() -> None:
    dashboard = json.loads((ROOT / "deploy/grafana/journey.json").read_text())
    expressions = [t["expr"] for panel in dashboard["panels"] for t in panel["targets"]]
    named = set().union(*(_named_in(expression) for expression in expressions))
    assert len(named) >= 10
    assert named <= metric_names(), named - metric_names()
