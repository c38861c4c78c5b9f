"""Work in a second process, handed over through a short queue: one core prepares batches
while the other records or folds them. Memory stays flat (the queue holds two batches), and
the second process stops as soon as the first is gone, however it went."""

from __future__ import annotations

import gc
import multiprocessing
import os
import queue
from collections.abc import Callable, Generator, Iterator
from typing import Any, TypeVar

from engine.bulk import collector_paused
from engine.errors import JourneyError

T = TypeVar("T")
_QUEUE_BATCHES = 2
_POLL_SECONDS = 1.0


def from_another_process(
    produce: Callable[..., Iterator[T]], *args: Any, name: str
) -> Generator[T, None, None]:
    """Yields what `produce(*args)` yields, computed in a second process. `produce` must be a
    module-level function and its arguments picklable; a JourneyError it raises is raised
    here with the same message. Closing the iterator early stops the second process."""
    context = multiprocessing.get_context("spawn")
    messages: multiprocessing.Queue[tuple[str, Any]] = context.Queue(maxsize=_QUEUE_BATCHES)
    worker = context.Process(
        target=_run, args=(produce, args, messages, os.getpid()), daemon=True, name=name
    )
    worker.start()
    try:
        while True:
            try:
                with collector_paused():  # unpickling a batch makes many objects, no cycles
                    kind, payload = messages.get(timeout=_POLL_SECONDS)
            except queue.Empty:
                if worker.is_alive():
                    continue
                try:  # it may have sent its last words just before it ended
                    kind, payload = messages.get(timeout=_POLL_SECONDS)
                except queue.Empty:
                    raise JourneyError(
                        f"the {name} stopped unexpectedly (exit code {worker.exitcode})"
                    ) from None
            if kind == "item":
                yield payload
            elif kind == "failed":
                raise JourneyError(payload)
            else:
                return
    finally:
        if worker.is_alive():
            worker.terminate()
        worker.join()


def _run(
    produce: Callable[..., Iterator[Any]],
    args: tuple[Any, ...],
    messages: multiprocessing.Queue[tuple[str, Any]],
    parent: int,
) -> None:
    def send(message: tuple[str, Any]) -> None:
        while True:
            try:
                messages.put(message, timeout=_POLL_SECONDS)
                return
            except queue.Full:
                if os.getppid() != parent:
                    # The first process is gone: stop at once, without waiting to flush what
                    # nobody will read.
                    messages.cancel_join_thread()
                    os._exit(1)

    # This process only makes batches of plain data, which hold no reference cycles: the
    # cycle collector would spend its time rescanning them while they are built and pickled.
    gc.disable()
    try:
        for item in produce(*args):
            send(("item", item))
    except JourneyError as exc:
        send(("failed", str(exc)))
        return
    except Exception as exc:  # reported by the first process, in its own words
        send(("failed", f"{type(exc).__name__}: {exc}"))
        return
    send(("done", None))
