"""Health, readiness and metrics of a process that runs until stopped, on a small HTTP port of
its own: /healthz (its loop ran recently), /readyz (it can do its work: none of the services it
needs is known to be away) and /metrics (Prometheus' text format).

Readiness is what the process itself last saw of PostgreSQL and Kafka (its `Outage`s): asking
again here would open connections the loop does not use, and could not tell more than the
loop's next try does."""

from __future__ import annotations

import json
import logging
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from consumers.metrics import READY
from engine.errors import ConfigurationError
from engine.outage import Outage

log = logging.getLogger("journey.health")

# A loop that has tried none of its services for this long is taken for stuck. The longest
# wait between tries during an outage is 5 s, a batch's transaction rarely takes more than a
# few: a minute leaves room for a slow one.
STALE_AFTER_S = 60.0


class Health:
    """Whether a process is alive (its loop tried its services, or beat, recently) and ready
    (it has started, and none of the services it watches is in an outage)."""

    def __init__(
        self, *, stale_after_s: float = STALE_AFTER_S, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self._stale_after_s = stale_after_s
        self._clock = clock
        self._outages: list[Outage] = []
        self._started = False
        self._beat = clock()

    def watch(self, *outages: Outage) -> None:
        """Services the process needs, by the outages it keeps of them."""
        self._outages.extend(outages)

    def started(self) -> None:
        """The process has what it needs to work (its store was opened, say)."""
        self._started = True
        self.beat()

    def beat(self) -> None:
        """The loop ran (for loops that go a while without trying a service)."""
        self._beat = self._clock()

    def alive(self) -> bool:
        latest = max([self._beat, *(outage.checked_at for outage in self._outages)])
        return self._clock() - latest <= self._stale_after_s

    def waiting_for(self) -> list[str]:
        """The services the process is waiting for; before it started, all of them."""
        # Each service once, though several parts of the process may wait for it.
        waiting = list(dict.fromkeys(o.service for o in self._outages if o.ongoing))
        return waiting if self._started else ["start", *waiting]

    def ready(self) -> bool:
        return not self.waiting_for()


def health_body(health: Health, check: str) -> tuple[int, dict[str, Any]]:
    """The status and JSON body of /healthz (`check` "alive") or /readyz ("ready")."""
    if check == "alive":
        alive = health.alive()
        return (200 if alive else 503), {"status": "alive" if alive else "stuck"}
    waiting = health.waiting_for()
    if waiting:
        return 503, {"status": "not ready", "waiting_for": waiting}
    return 200, {"status": "ready"}


def metrics_text() -> bytes:
    return generate_latest()


class _Handler(BaseHTTPRequestHandler):
    health: Health  # set on the subclass made for each server

    def do_GET(self) -> None:
        path = self.path.split("?", 1)[0]
        if path == "/metrics":
            READY.set(1 if self.health.ready() else 0)
            self._answer(200, metrics_text(), CONTENT_TYPE_LATEST)
        elif path in ("/healthz", "/readyz"):
            status, body = health_body(self.health, "alive" if path == "/healthz" else "ready")
            self._answer(status, json.dumps(body).encode(), "application/json")
        else:
            self._answer(404, b'{"detail": "not found"}', "application/json")

    def _answer(self, status: int, body: bytes, content_type: str) -> None:
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: Any) -> None:
        """Scrapes and probes come every few seconds: they are not logged."""


@contextmanager
def health_server(host: str, port: int, health: Health) -> Iterator[int]:
    """Serves /metrics, /healthz and /readyz on `host`:`port` (0: a free port) in a thread of
    its own while the block runs; yields the port."""
    handler = type("Handler", (_Handler,), {"health": health})
    try:
        server = ThreadingHTTPServer((host, port), handler)
    except OSError as exc:
        raise ConfigurationError(
            f"JOURNEY_METRICS_PORT: cannot listen on {host}:{port}: {exc.strerror or exc}"
        ) from None
    server.daemon_threads = True
    thread = threading.Thread(target=server.serve_forever, name="journey-metrics", daemon=True)
    thread.start()
    bound = int(server.server_address[1])
    log.info("metrics on http://%s:%d/metrics, health on /healthz and /readyz", host, bound)
    try:
        yield bound
    finally:
        server.shutdown()
        server.server_close()
