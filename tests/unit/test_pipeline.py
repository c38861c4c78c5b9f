"""Work in other processes: what each yields arrives, and a failure in any stops them all."""

from __future__ import annotations

import os
from collections.abc import Iterator

import pytest

from engine.errors import JourneyError, StoreUnavailable
from engine.pipeline import from_other_processes


def work(how: str, n: int) -> Iterator[int]:
    """Yields 1 to n, then ends as `how` says."""
    yield from range(1, n + 1)
    if how == "fails":
        raise JourneyError(f"share {n} cannot go on")
    if how == "loses the store":
        raise StoreUnavailable("PostgreSQL is unavailable: terminating connection")
    if how == "dies":
        os._exit(3)
    while how == "forever":
        yield 0


def test_what_each_process_yields_arrives_in_its_order() -> None:
    seen: dict[int, list[int]] = {0: [], 1: [], 2: []}

    shares = [("ends", 3), ("ends", 5), ("ends", 0)]
    for which, item in from_other_processes(work, shares, name="count"):
        seen[which].append(item)

    assert seen == {0: [1, 2, 3], 1: [1, 2, 3, 4, 5], 2: []}


def test_a_failure_in_one_process_is_raised_in_its_words() -> None:
    with pytest.raises(JourneyError, match="share 2 cannot go on"):
        list(from_other_processes(work, [("forever", 1), ("fails", 2)], name="share"))


def test_a_store_gone_away_in_another_process_is_an_outage_here_too() -> None:
    with pytest.raises(StoreUnavailable, match="terminating connection"):
        list(from_other_processes(work, [("forever", 1), ("loses the store", 2)], name="share"))


def test_a_process_that_dies_is_named_while_the_others_still_work() -> None:
    shares = [("forever", 1), ("dies", 1)]
    with pytest.raises(JourneyError, match=r"the fold 2 of 2 stopped unexpectedly \(exit code 3\)"):
        list(from_other_processes(work, shares, name="fold"))
