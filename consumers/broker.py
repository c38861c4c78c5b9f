"""What every process that talks to Kafka shares: saying once that the broker went away and
once that it is back, however many times it retries in between, and how long it waits."""

from __future__ import annotations

import logging
import random
import socket

FIRST_BACKOFF_S = 0.5
MAX_BACKOFF_S = 30.0


class BrokerOutage:
    """Tracks whether Kafka answers. `down` warns on the first failure of an outage only,
    `up` says once that the broker is back; `backoff` grows from half a second to 30 s (with
    a little jitter, so members do not come back in step) and starts over on recovery."""

    def __init__(self, bootstrap: str, log: logging.Logger, meanwhile: str) -> None:
        self._bootstrap = bootstrap
        self._log = log
        self._meanwhile = meanwhile
        self._delay = FIRST_BACKOFF_S
        self.is_down = False

    def down(self, error: BaseException | None = None) -> None:
        if self.is_down:
            return
        self.is_down = True
        self._log.warning(
            "Kafka at %s is unreachable%s; %s",
            self._bootstrap,
            f" ({one_line(error)})" if error else "",
            self._meanwhile,
        )

    def up(self) -> None:
        self._delay = FIRST_BACKOFF_S
        if self.is_down:
            self.is_down = False
            self._log.info("Kafka at %s is reachable again", self._bootstrap)

    def backoff(self) -> float:
        delay, self._delay = self._delay, min(self._delay * 2, MAX_BACKOFF_S)
        return delay * random.uniform(0.8, 1.2)


def one_line(error: BaseException) -> str:
    """An error as one line: its class and the first line of its message."""
    text = str(error).strip()
    first = text.splitlines()[0] if text else ""
    name = type(error).__name__
    if not first:
        return name
    return first if name in first else f"{name}: {first}"


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
