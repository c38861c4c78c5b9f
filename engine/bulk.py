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
