"""Shared test helpers: touchpoints made to order, and an engine on a fresh embedded store."""

from __future__ import annotations

import tempfile
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from engine.settings import Settings
from engine.touchpoints import Touchpoint, millis
from journey.bootstrap import Engine, build_engine
from tests import registry, services

T0 = millis(datetime(2026, 3, 2, 9, 0, tzinfo=UTC))  # a Monday
HOUR = 3_600_000
DAY = 24 * HOUR
# Where scripts/compile.py puts the modules it compiles, beside their sources.
COMPILED = ("engine", "projections", "consumers")


def pytest_configure(config: pytest.Config) -> None:
    """Refuses to test a compiled module (of the fold or the decider) older than its source:
    the tests would run the code as it was when it was compiled."""
    root = Path(__file__).resolve().parent.parent
    libraries = [library for folder in COMPILED for library in (root / folder).rglob("*.so")]
    for library in libraries:
        module = library.name.split(".")[0].removesuffix("__mypyc")
        source = library.with_name(f"{module}.py")
        if source.exists() and library.stat().st_mtime < source.stat().st_mtime:
            pytest.exit(
                f"{source.relative_to(root)} changed after it was compiled: run `make test`, "
                "or `.venv/bin/python scripts/compile.py`",
                returncode=4,
            )


def touchpoint(
    event_id: str,
    type: str = "page_view",
    *,
    customer_id: str = "C-1",
    at: int = T0,
    channel: str = "web",
    outcome: str | None = None,
    rep_id: str | None = None,
    **attributes: str,
) -> Touchpoint:
    return Touchpoint(
        event_id=event_id,
        customer_id=customer_id,
        channel=channel,
        type=type,
        occurred_at=at,
        source="test",
        rep_id=rep_id,
        outcome=outcome,
        attributes=attributes,
    )


def record(**overrides: Any) -> dict[str, Any]:
    """A valid touchpoint record as a channel system would send it, with overrides."""
    base: dict[str, Any] = {
        "event_id": "e-1",
        "customer_id": "C-1",
        "channel": "web",
        "type": "page_view",
        "occurred_at": "2026-03-02T09:00:00Z",
        "source": "web-analytics",
        "attributes": {"page": "pricing"},
    }
    base.update(overrides)
    return {key: value for key, value in base.items() if value is not ...}


@pytest.fixture(scope="session")
def postgres_service() -> Iterator[services.Service]:
    """A real PostgreSQL: JOURNEY_TEST_DATABASE_URL if given; else a container when a Docker
    engine answers; else the project's own server (scripts/postgres.sh). Under CI a missing
    PostgreSQL fails the run instead of skipping."""
    yield from services.postgres()


@pytest.fixture(scope="session")
def postgres_url(postgres_service: services.Service) -> str:
    return postgres_service.address


@pytest.fixture(scope="session")
def kafka_service() -> Iterator[services.Service]:
    """A real Kafka broker: JOURNEY_TEST_KAFKA_BOOTSTRAP if given; else a container when a
    Docker engine answers; else the project's own broker (scripts/kafka.sh). Under CI a
    missing broker fails the run instead of skipping."""
    yield from services.kafka()


@pytest.fixture(scope="session")
def schema_registry() -> Iterator[registry.Registry]:
    """A schema registry: JOURNEY_TEST_SCHEMA_REGISTRY_URL if given; else the tests' own
    (tests/registry.py says why)."""
    yield from registry.registry()


@pytest.fixture(params=["sqlite", "postgres"])
def settings(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Settings]:
    """Settings for a fresh, empty store of each kind."""
    env = {"JOURNEY_DATA_DIR": str(tmp_path / "data")}
    if request.param == "sqlite":
        yield Settings.from_env(env)
        return
    url = request.getfixturevalue("postgres_url")
    with services.fresh_schema(url) as schema:
        yield Settings.from_env({**env, "JOURNEY_DATABASE_URL": url, "POSTGRES_SCHEMA": schema})


@pytest.fixture
def engine(settings: Settings) -> Iterator[Engine]:
    built = build_engine(settings)
    yield built
    built.close()


@contextmanager
def engine_on_fresh_store(
    request: pytest.FixtureRequest, store: str, **given: Any
) -> Iterator[Engine]:
    """An engine on a fresh store of the kind named (sqlite or postgres), with settings
    `given`, for one example of a generated test; closed, and its store dropped, after."""
    with ExitStack() as stack:
        data = Path(stack.enter_context(tempfile.TemporaryDirectory()))
        postgres: dict[str, str] = {}
        if store == "postgres":
            url = request.getfixturevalue("postgres_url")
            schema = stack.enter_context(services.fresh_schema(url))
            postgres = Settings.from_env(
                {"JOURNEY_DATABASE_URL": url, "POSTGRES_SCHEMA": schema}
            ).postgres
        engine = build_engine(Settings(data_dir=data, postgres=postgres, **given))
        stack.callback(engine.close)
        yield engine
