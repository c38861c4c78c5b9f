"""Help for work on many records at once."""

from __future__ import annotations

import gc
from collections.abc import Iterator
from contextlib import contextmanager


@contextmanager
def collector_paused() -> Iterator[None]:
    """Decoding, validating or folding a batch allocates many small objects and creates no
    reference cycles; Python's cycle collector would rescan them all, again and again, for
    nothing. Pause it for the batch."""
    was_enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if was_enabled:
            gc.enable()


def settle_young_objects() -> None:
    """For processes that keep much in memory and run for long (consumers, the decider):
    collects the young generations, then moves every survivor out of the collector's sight.
    What they keep holds no reference cycles and is freed by reference counting as usual;
    without this, the collector's full scans of it stall a live batch now and then."""
    gc.collect(1)
    gc.freeze()
