"""Waiting out a service: said once when it goes and once when it is back, whatever the
number of failed attempts, with waits that grow up to a cap."""

from __future__ import annotations

import logging
import threading

import pytest

from engine.errors import StoreUnavailable
from engine.outage import Outage

LOG = "journey.test-outage"


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def lines(caplog: pytest.LogCaptureFixture) -> list[str]:
    return [record.getMessage() for record in caplog.records if record.name == LOG]


def test_an_outage_is_said_once_when_it_begins_and_once_when_it_ends(
    caplog: pytest.LogCaptureFixture,
) -> None:
    clock = Clock()
    outage = Outage(
        logging.getLogger(LOG), "PostgreSQL", "deciding again when it answers", clock=clock
    )
    caplog.set_level(logging.INFO, LOG)

    outage.succeeded()
    for _ in range(5):
        outage.failed(StoreUnavailable("PostgreSQL is unavailable: connection refused"))
        clock.now += 1
    outage.succeeded()
    outage.succeeded()

    assert lines(caplog) == [
        "PostgreSQL is unavailable (connection refused); deciding again when it answers",
        "PostgreSQL is available again, after 5.0 s",
    ]
    assert not outage.ongoing


def test_the_waits_double_up_to_the_longest_and_start_again_after_a_recovery() -> None:
    outage = Outage(logging.getLogger(LOG), first_s=0.5, longest_s=4.0, jitter=lambda: 1.0)
    failure = StoreUnavailable("gone")

    assert [outage.failed(failure) for _ in range(6)] == [0.5, 1.0, 2.0, 4.0, 4.0, 4.0]
    outage.succeeded()
    assert outage.failed(failure) == 0.5


def test_each_wait_is_shortened_by_a_random_part_of_at_most_half() -> None:
    outage = Outage(logging.getLogger(LOG), first_s=2.0, longest_s=2.0, jitter=lambda: 0.0)

    assert outage.failed(StoreUnavailable("gone")) == 1.0


def test_an_attempt_tries_again_until_the_action_succeeds() -> None:
    results = iter([StoreUnavailable("gone"), StoreUnavailable("gone"), "answered"])

    def action() -> str:
        result = next(results)
        if isinstance(result, Exception):
            raise result
        return result

    outage = Outage(logging.getLogger(LOG), first_s=0.001, longest_s=0.001)
    assert outage.attempt(action, threading.Event()) == "answered"
    assert not outage.ongoing


def test_an_attempt_gives_up_when_asked_to_stop() -> None:
    stop = threading.Event()

    def action() -> str:
        stop.set()
        raise StoreUnavailable("gone")

    assert Outage(logging.getLogger(LOG)).attempt(action, stop) is None


def test_other_errors_are_not_waited_out() -> None:
    def action() -> str:
        raise ValueError("a bug")

    with pytest.raises(ValueError, match="a bug"):
        Outage(logging.getLogger(LOG)).attempt(action, threading.Event())
