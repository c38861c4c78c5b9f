"""Real services for the tests, found or started, never faked."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import unquote, urlsplit

import psycopg
import pytest

ROOT = Path(__file__).parents[1]
ON_CI = os.environ.get("CI", "").lower() in ("1", "true", "yes")


def unavailable(what: str, why: str) -> None:
    message = f"{what} is not available: {why}"
    if ON_CI:
        pytest.fail(message)
    pytest.skip(message)


def docker_answers() -> bool:
    try:
        import docker

        docker.from_env(timeout=3).ping()
    except Exception:
        return False
    return True


@dataclass(frozen=True)
class Service:
    """A running service: where it answers, and the script that controls it if the tests
    started it themselves (then a test may stop and start it again)."""

    address: str
    script: Path | None = None

    def stop(self) -> None:
        self._run("stop")

    def start(self) -> None:
        self._run("start")

    def _run(self, command: str) -> None:
        if self.script is None:
            pytest.skip("the service was not started by the tests, so they cannot stop it")
        subprocess.run([str(self.script), command], capture_output=True, timeout=300, check=True)


def postgres() -> Iterator[Service]:
    url = os.environ.get("JOURNEY_TEST_DATABASE_URL")
    if url:
        yield Service(url)
        return
    if docker_answers():
        from testcontainers.postgres import PostgresContainer

        with PostgresContainer("postgres:16", driver=None) as container:
            yield Service(container.get_connection_url())
        return
    yield from _scripted("PostgreSQL", "postgres.sh")


def kafka() -> Iterator[Service]:
    bootstrap = os.environ.get("JOURNEY_TEST_KAFKA_BOOTSTRAP")
    if bootstrap:
        yield Service(bootstrap)
        return
    if docker_answers():
        from testcontainers.kafka import KafkaContainer

        with KafkaContainer("confluentinc/cp-kafka:7.6.0").with_kraft() as container:
            yield Service(container.get_bootstrap_server())
        return
    yield from _scripted("Kafka", "kafka.sh")


def _scripted(what: str, name: str) -> Iterator[Service]:
    """The project's own server, started with its script (installing it first if need be);
    stopped afterwards if these tests started it, left running if it already was."""
    script = ROOT / "scripts" / name
    status = subprocess.run([str(script), "status"], capture_output=True, check=False)
    was_running = status.returncode == 0
    try:
        started = subprocess.run(
            [str(script), "start"], capture_output=True, text=True, timeout=900, check=True
        )
    except (OSError, subprocess.SubprocessError) as exc:
        stderr = getattr(exc, "stderr", "") or ""
        unavailable(what, f"scripts/{name} start failed: {exc} {stderr}".strip())
        raise
    yield Service(started.stdout.strip().splitlines()[-1], script)
    if not was_running:
        subprocess.run([str(script), "stop"], capture_output=True, timeout=120, check=False)


def chromium() -> str:
    """Debian's Chromium, installed by the project's script if missing."""
    script = ROOT / "scripts" / "chromium.sh"
    try:
        found = subprocess.run(
            [str(script)], capture_output=True, text=True, timeout=900, check=True
        )
    except (OSError, subprocess.SubprocessError) as exc:
        stderr = getattr(exc, "stderr", "") or ""
        unavailable("Chromium", f"scripts/chromium.sh failed: {exc} {stderr}".strip())
        raise
    return found.stdout.strip().splitlines()[-1]


@contextmanager
def fresh_schema(url: str) -> Iterator[str]:
    """A schema of its own for one test, dropped afterwards."""
    schema = f"t_{uuid.uuid4().hex[:12]}"
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute(f"CREATE SCHEMA {schema}")
    try:
        yield schema
    finally:
        with psycopg.connect(url, autocommit=True) as conn:
            conn.execute(f"DROP SCHEMA {schema} CASCADE")


def dumped(url: str, schema: str) -> bytes:
    """`pg_dump` of a schema, with its binary columns (the events' states) read as they are
    stored rather than as the hex the dump writes them in."""
    pg_dump = shutil.which("pg_dump") or next(
        (str(p) for p in sorted(Path("/usr/lib/postgresql").glob("*/bin/pg_dump"))), None
    )
    if pg_dump is None:
        unavailable("pg_dump", "neither on the PATH nor in /usr/lib/postgresql")
    parts = urlsplit(url)
    done = subprocess.run(
        [
            str(pg_dump),
            *("--host", parts.hostname or "127.0.0.1", "--port", str(parts.port or 5432)),
            *("--username", unquote(parts.username or "postgres"), "--schema", schema),
            parts.path.lstrip("/"),
        ],
        env={**os.environ, "PGPASSWORD": unquote(parts.password or "")},
        capture_output=True,
        check=True,
        timeout=120,
    )
    blobs = re.findall(rb"\\{1,2}x([0-9a-f]{2,})", done.stdout)
    return done.stdout + b"".join(bytes.fromhex(blob.decode()) for blob in blobs)
