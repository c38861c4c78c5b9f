"""What every process that talks to Kafka shares: the outage it says once, and whether the
broker answers at all."""

from __future__ import annotations

import logging
import socket

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
