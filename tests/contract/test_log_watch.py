"""What a follower of the log waits on: it wakes when a writer commits, in any process, and
when asked to stop; on each store."""

from __future__ import annotations

import time
from collections.abc import Iterator

import pytest

from engine.settings import Settings
from journey.bootstrap import Engine, build_log_watch
from stores.store import LogWatch
from tests.conftest import touchpoint

# Far longer than any wait these tests expect: a wait this long means it was not woken.
NEVER_S = 60.0


@pytest.fixture
def watch(settings: Settings) -> Iterator[LogWatch]:
    watching = build_log_watch(settings)
    watching.wait(NEVER_S)  # the first wait begins watching, and returns at once
    yield watching
    watching.close()


def waited(watch: LogWatch, timeout: float = NEVER_S) -> float:
    started = time.monotonic()
    watch.wait(timeout)
    return time.monotonic() - started


def test_a_wait_ends_once_a_writer_appends_to_the_log(engine: Engine, watch: LogWatch) -> None:
    engine.journeys.record([touchpoint("e1")])

    assert waited(watch) < NEVER_S / 2


def test_a_stop_request_ends_the_wait(watch: LogWatch) -> None:
    watch.interrupt()

    assert waited(watch) < NEVER_S / 2


def test_a_wait_on_postgresql_lasts_while_nothing_is_appended(
    settings: Settings, watch: LogWatch
) -> None:
    if settings.store != "postgres":
        pytest.skip("the embedded store notifies nobody: its watch looks again every few ms")
    assert waited(watch, 0.2) >= 0.19


def test_an_append_on_postgresql_ends_one_wait_and_the_next_waits_again(
    settings: Settings, engine: Engine, watch: LogWatch
) -> None:
    if settings.store != "postgres":
        pytest.skip("the embedded store notifies nobody: its watch looks again every few ms")
    engine.journeys.record([touchpoint("e1"), touchpoint("e2")])
    assert waited(watch) < NEVER_S / 2

    assert waited(watch, 0.2) >= 0.19
