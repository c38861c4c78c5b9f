"""Worker processes that end when the process that started them dies, however it died
(`kill -9` included), instead of running on under init with nobody to read their work or
stop them.

On Linux the kernel sends the worker a signal when its parent dies (prctl's
PR_SET_PDEATHSIG), whatever the worker is doing at that moment: waiting in the database
driver, folding in compiled code, polling Kafka. A pipe the worker watches would need a
thread of its own in every worker, and with forked workers each would also hold the write
ends of its elder siblings' pipes, so that none sees the end of its own until they have all
gone. The kernel's signal has one pitfall: it is sent when the *thread* that started the
worker ends, not its process. Workers are started here by the thread that waits for them
until they end (the main thread of `journey consume`, the thread that iterates
engine.pipeline's generator, which joins them before it returns), so the two coincide.

Where prctl is missing (other systems), a daemon thread of the worker looks at its parent
once a second instead."""

from __future__ import annotations

import ctypes
import os
import sys
import threading
import time

_PR_SET_PDEATHSIG = 1  # from <linux/prctl.h>
_LOOK_EVERY_S = 1.0


def end_with_parent(parent: int, signum: int) -> None:
    """Has `signum` sent to this process when `parent`, the process that started it, dies.
    Called first thing in the worker."""
    if not _death_signal(signum):
        threading.Thread(
            target=_watch, args=(parent, signum), name="parent watch", daemon=True
        ).start()
    # The parent may have died before the signal was asked for: nobody would send it then.
    if os.getppid() != parent:
        os.kill(os.getpid(), signum)


def _death_signal(signum: int) -> bool:
    """Asks the kernel for `signum` at the parent's death; False where it cannot."""
    if not sys.platform.startswith("linux"):
        return False
    try:
        prctl = ctypes.CDLL(None, use_errno=True).prctl
    except (OSError, AttributeError):
        return False
    return int(prctl(_PR_SET_PDEATHSIG, signum, 0, 0, 0)) == 0


def _watch(parent: int, signum: int) -> None:
    while os.getppid() == parent:
        time.sleep(_LOOK_EVERY_S)
    os.kill(os.getpid(), signum)
