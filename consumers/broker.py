"""What every process that talks to Kafka shares: the outage it says once, and whether the
broker answers at all."""

from __future__ import annotations

import logging
import socket
from collections.abc import Sequence
from typing import NamedTuple

from kafka import KafkaAdminClient
from kafka.admin import ConfigResource, ConfigResourceType

from engine.outage import Outage

# Waits between attempts that are no outage (another writer in the way, say).
FIRST_BACKOFF_S = 0.5
MAX_BACKOFF_S = 30.0


def kafka_outage(bootstrap: str, log: logging.Logger, meanwhile: str) -> Outage:
    """Kafka's outage, for one process: said once when it begins and once when it ends."""
    return Outage(log, f"Kafka at {bootstrap}", meanwhile)


def any_answers(bootstrap: str, timeout_s: float = 3.0) -> bool:
    """Whether any of the bootstrap servers accepts a TCP connection."""
    for server in bootstrap.split(","):
        host, _, port = server.strip().rpartition(":")
        try:
            socket.create_connection(
                (host.strip("[]") or "127.0.0.1", int(port)), timeout_s
            ).close()
        except (OSError, ValueError):
            continue
        return True
    return False


def retention(bootstrap: str, topics: Sequence[str]) -> dict[str, Retention]:
    """How long each topic (of those that exist) keeps its records: what Kafka still holds
    of a person after the engine has forgotten them."""
    admin = KafkaAdminClient(
        bootstrap_servers=bootstrap, client_id="journey-status", request_timeout_ms=5000
    )
    try:
        existing = set(admin.list_topics())
        wanted = [topic for topic in topics if topic in existing]
        if not wanted:
            return {}
        described = admin.describe_configs(
            [
                ConfigResource(
                    ConfigResourceType.TOPIC, topic, configs=["retention.ms", "retention.bytes"]
                )
                for topic in wanted
            ],
            config_filter="all",
        )
    finally:
        admin.close()
    found: dict[str, Retention] = {}
    for topic, configs in described.get("topic", {}).items():
        ms = int(configs.get("retention.ms", {}).get("value") or -1)
        size = int(configs.get("retention.bytes", {}).get("value") or -1)
        found[topic] = Retention(None if ms < 0 else ms, None if size < 0 else size)
    return found


class Retention(NamedTuple):
    """A topic's retention: None is for ever (or without a size limit)."""

    ms: int | None
    bytes: int | None

    def __str__(self) -> str:
        if self.ms is None:
            kept = "for ever"
        elif self.ms % 86_400_000 == 0:
            days = self.ms // 86_400_000
            kept = f"for {days} day{'s' if days != 1 else ''}"
        else:
            kept = f"for {self.ms / 3_600_000:g} hours"
        return (
            kept
            if self.bytes is None
            else f"{kept}, or until a partition holds {self.bytes:,} bytes"
        )
