"""Partitions of the log's streams: every stream in exactly one, and the hex digits a store
selects a share by agree with the streams the share holds."""

from __future__ import annotations

from uuid import UUID

import pytest

from engine.journeys import stream_id
from engine.ledger import HEX_DIGITS, Partition


@pytest.mark.parametrize("count", range(1, 17))
def test_every_stream_is_held_by_exactly_one_partition_of_its_digit(count: int) -> None:
    partitions = [Partition(index, count) for index in range(count)]
    for digit in HEX_DIGITS:
        stream = UUID(f"{'0' * 31}{digit}")
        holders = [p for p in partitions if p.holds(stream)]
        assert len(holders) == 1
        assert [p for p in partitions if digit in p.digits] == holders


def test_customers_spread_over_the_partitions() -> None:
    held = sum(Partition(0, 2).holds(stream_id(f"C-{n:06d}")) for n in range(1_000))

    assert 400 < held < 600


def test_a_partition_outside_its_count_is_refused() -> None:
    with pytest.raises(ValueError, match="no partition 2 of 2"):
        Partition(2, 2)
