"""Waiting out a service that went away: a process that runs until stopped says once that the
service is unavailable and once that it is back, and meanwhile tries again after waits that
double up to a cap, each shortened by a random part so that processes that lost the service
together do not all come back at the same instant."""

from __future__ import annotations

import logging
import random
import threading
import time
from collections.abc import Callable
from typing import TypeVar

from engine.errors import StoreUnavailable

T = TypeVar("T")

FIRST_WAIT_S = 0.5
# Also the longest a process takes to notice that the service is back.
LONGEST_WAIT_S = 5.0


class Outage:
    """The state of one service for one process: available, or unavailable since when. Threads
    of one process may share it (a server's requests and its follower): each change is said
    once."""

    def __init__(
        self,
        log: logging.Logger,
        service: str = "PostgreSQL",
        meanwhile: str = "trying again until it answers",
        *,
        first_s: float = FIRST_WAIT_S,
        longest_s: float = LONGEST_WAIT_S,
        jitter: Callable[[], float] = random.random,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._log = log
        self._service = service
        self._meanwhile = meanwhile
        self._first_s = first_s
        self._longest_s = longest_s
        self._jitter = jitter
        self._clock = clock
        self._next_s = first_s
        self._since: float | None = None
        self._checked = clock()
        self._changing = threading.Lock()

    @property
    def service(self) -> str:
        return self._service

    @property
    def ongoing(self) -> bool:
        return self._since is not None

    @property
    def checked_at(self) -> float:
        """When the service was last tried, by the clock given: a process whose loop keeps
        trying its services is alive, whether they answer or not."""
        return self._checked

    def failed(self, exc: BaseException | None = None) -> float:
        """Notes that the service failed; says so if it was thought available. Returns how
        long to wait before trying again."""
        with self._changing:
            return self._failed(exc)

    def _failed(self, exc: BaseException | None) -> float:
        self._checked = self._clock()
        if self._since is None:
            self._since = self._checked
            self._log.warning(
                "%s is unavailable%s; %s",
                self._service,
                f" ({_reason(exc, self._service)})" if exc is not None else "",
                self._meanwhile,
            )
        return self.next_wait()

    def next_wait(self) -> float:
        """How long to wait before trying again; each wait is about twice the last."""
        wait = self._next_s * (0.5 + self._jitter() / 2)
        self._next_s = min(self._next_s * 2, self._longest_s)
        return wait

    def succeeded(self) -> None:
        """Notes that the service answered; says so if it was thought unavailable."""
        self._checked = self._clock()
        if self._since is None:
            return
        with self._changing:
            if self._since is None:
                return
            self._log.info(
                "%s is available again, after %.1f s", self._service, self._clock() - self._since
            )
            self._since = None
            self._next_s = self._first_s

    def attempt(
        self,
        action: Callable[[], T],
        stop: threading.Event,
        errors: tuple[type[BaseException], ...] = (StoreUnavailable,),
    ) -> T | None:
        """What `action()` returns once it succeeds, trying again after each of `errors`;
        None if `stop` is set first."""
        while not stop.is_set():
            try:
                result = action()
            except errors as exc:
                stop.wait(self.failed(exc))
                continue
            self.succeeded()
            return result
        return None


def one_line(error: BaseException) -> str:
    """An error as one line: its class and the first line of its message."""
    text = str(error).strip()
    first = text.splitlines()[0] if text else ""
    name = type(error).__name__
    if not first:
        return name
    return first if name in first else f"{name}: {first}"


def _reason(exc: BaseException, service: str) -> str:
    """The first line of the error, without the service's name it may start with."""
    text = str(exc).strip()
    if not text:
        return type(exc).__name__
    line = text.splitlines()[0]
    for said in (f"{service} is unavailable: ", f"cannot reach {service}: "):
        line = line.removeprefix(said)
    return line
