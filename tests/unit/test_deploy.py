"""The compose file and the image keep what operators are promised, checked without a Docker
engine (none runs where the tests do): every service has a health check, images are pinned,
each engine process's check asks the readiness it serves, and the image runs as nobody's root."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import yaml

ROOT = Path(__file__).parents[2]
# A release, not a line of them: never latest, never a major version alone (PostgreSQL's
# releases are major.minor; Python's and Kafka's major.minor.patch).
PINNED = re.compile(r":\d+\.\d+")
PYTHON_PINNED = re.compile(r"python:\d+\.\d+\.\d+")


def compose() -> dict[str, Any]:
    loaded: dict[str, Any] = yaml.safe_load((ROOT / "docker-compose.yml").read_text())
    return loaded


def test_every_service_has_a_health_check_and_a_pinned_image() -> None:
    services = compose()["services"]

    for name, service in services.items():
        assert "healthcheck" in service, name
        if "image" in service:
            assert PINNED.search(service["image"]), f"{name}: {service['image']} floats"
    assert PYTHON_PINNED.search((ROOT / "Dockerfile").read_text())


def test_each_engine_process_is_checked_on_the_readiness_it_serves() -> None:
    services = compose()["services"]

    engine = {name: service for name, service in services.items() if "build" in service}
    assert {"ingest", "clock", "decide", "outcomes", "serve"} <= set(engine)
    for name, service in engine.items():
        check = " ".join(service["healthcheck"]["test"])
        port = service["environment"].get("JOURNEY_METRICS_PORT") or "8000"
        assert f"127.0.0.1:{port}/readyz" in check, name
        assert service.get("restart") == "unless-stopped", name
        assert all(services[needed]["healthcheck"] for needed in service.get("depends_on", {})), (
            name
        )
    assert "127.0.0.1:8000:8000" in services["serve"]["ports"]


def test_the_image_runs_as_an_unprivileged_user() -> None:
    lines = (ROOT / "Dockerfile").read_text().splitlines()

    users = [line.split()[1] for line in lines if line.startswith("USER ")]
    assert users, "the image runs as root"
    assert users[-1] not in ("root", "0")
