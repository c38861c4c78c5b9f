"""A worker process ends when the process that started it dies, even while it is busy and
even when that process is killed with kill -9."""

from __future__ import annotations

import os
import select
import signal
import subprocess
import sys
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

ROOT = Path(__file__).parents[2]
# A first process that starts a worker through the pipeline, says its pid once the worker
# has sent something, then waits.
FIRST = """
from engine.pipeline import from_another_process
from tests.unit.test_lifeline import busy

for item in from_another_process(busy, name="worker"):
    print(item, flush=True)
"""


def busy() -> Iterator[int]:
    """Sends its pid, then works on for ever without sending anything more."""
    yield os.getpid()
    threading.Event().wait()


@pytest.mark.skipif(not hasattr(os, "pidfd_open"), reason="waits with pidfd_open (Linux)")
def test_a_busy_worker_ends_when_the_process_that_started_it_is_killed() -> None:
    first = subprocess.Popen(
        [sys.executable, "-c", FIRST],
        cwd=ROOT,
        stdout=subprocess.PIPE,
        # Killed, it leaves its queue's semaphores to multiprocessing's tracker, which says so.
        stderr=subprocess.DEVNULL,
        text=True,
    )
    try:
        assert first.stdout is not None
        readable, _, _ = select.select([first.stdout], [], [], 60)
        assert readable, "the worker sent nothing"
        worker = os.pidfd_open(int(first.stdout.readline()))
    finally:
        first.kill()  # SIGKILL: it has no chance to stop its worker
        first.wait(timeout=30)
    try:
        ended, _, _ = select.select([worker], [], [], 30)
        if not ended:
            signal.pidfd_send_signal(worker, signal.SIGKILL)
    finally:
        os.close(worker)
    assert ended, "the worker runs on"
