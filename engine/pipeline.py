"""Work in other processes, handed over through a short queue: one core prepares batches
while another records or folds them, or each folds its own share. Memory stays flat (the
queue holds two batches per process), and the other processes stop as soon as the first is
gone, however it went: each ends with it (engine.lifeline)."""

from __future__ import annotations

import gc
import multiprocessing
import os
import queue
import signal
import time
from collections.abc import Callable, Generator, Iterator, Sequence
from contextlib import closing
from typing import Any, TypeVar

from engine.bulk import collector_paused
from engine.errors import JourneyError, StoreUnavailable
from engine.lifeline import end_with_parent

T = TypeVar("T")
_QUEUE_BATCHES = 2
_POLL_SECONDS = 1.0


def from_another_process(
    produce: Callable[..., Iterator[T]], *args: Any, name: str
) -> Generator[T, None, None]:
    """Yields what `produce(*args)` yields, computed in a second process. `produce` must be a
    module-level function and its arguments picklable; a JourneyError it raises is raised
    here with the same message (a StoreUnavailable as a StoreUnavailable, so that it is
    waited out). Closing the iterator early stops the second process."""
    with closing(from_other_processes(produce, [args], name=name)) as items:
        for _, item in items:
            yield item


def from_other_processes(
    produce: Callable[..., Iterator[T]], args_of_each: Sequence[tuple[Any, ...]], *, name: str
) -> Generator[tuple[int, T], None, None]:
    """Runs `produce(*args)` for each of `args_of_each` in a process of its own, and yields
    (which, item) for what each yields, in the order they come. Ends when every process has
    finished; the first failure stops them all."""
    context = multiprocessing.get_context("spawn")
    messages: multiprocessing.Queue[tuple[int, str, Any]] = context.Queue(
        maxsize=_QUEUE_BATCHES * len(args_of_each)
    )
    count = len(args_of_each)
    names = [name if count == 1 else f"{name} {n + 1} of {count}" for n in range(count)]
    workers = [
        context.Process(
            target=_run,
            args=(produce, args, messages, os.getpid(), which),
            daemon=True,
            name=names[which],
        )
        for which, args in enumerate(args_of_each)
    ]
    running = set(range(len(workers)))
    looked = time.monotonic()
    try:
        for worker in workers:
            worker.start()
        while running:
            if time.monotonic() - looked > _POLL_SECONDS:
                # One may have died while the others keep the queue busy.
                looked = time.monotonic()
                for n in running:
                    if workers[n].exitcode not in {None, 0}:
                        raise JourneyError(
                            f"the {workers[n].name} stopped unexpectedly "
                            f"(exit code {workers[n].exitcode})"
                        )
            try:
                with collector_paused():  # unpickling a batch makes many objects, no cycles
                    which, kind, payload = messages.get(timeout=_POLL_SECONDS)
            except queue.Empty:
                stopped = [n for n in running if not workers[n].is_alive()]
                if not stopped:
                    continue
                try:  # it may have sent its last words just before it ended
                    which, kind, payload = messages.get(timeout=_POLL_SECONDS)
                except queue.Empty:
                    worker = workers[stopped[0]]
                    raise JourneyError(
                        f"the {worker.name} stopped unexpectedly (exit code {worker.exitcode})"
                    ) from None
            if kind == "item":
                yield which, payload
            elif kind == "failed":
                raise JourneyError(payload)
            elif kind == "unavailable":  # waited out by those that wait out an outage
                raise StoreUnavailable(payload)
            else:
                running.discard(which)
    finally:
        started = [worker for worker in workers if worker.pid is not None]
        for worker in started:
            if worker.is_alive():
                worker.terminate()
        for worker in started:
            worker.join()


def _run(
    produce: Callable[..., Iterator[Any]],
    args: tuple[Any, ...],
    messages: multiprocessing.Queue[tuple[int, str, Any]],
    parent: int,
    which: int,
) -> None:
    # Nothing here is worth finishing once the first process is gone, however it went.
    end_with_parent(parent, signal.SIGKILL)

    def send(message: tuple[str, Any]) -> None:
        while True:
            try:
                messages.put((which, *message), timeout=_POLL_SECONDS)
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
    except StoreUnavailable as exc:
        send(("unavailable", str(exc)))
        return
    except JourneyError as exc:
        send(("failed", str(exc)))
        return
    except Exception as exc:  # reported by the first process, in its own words
        send(("failed", f"{type(exc).__name__}: {exc}"))
        return
    send(("done", None))
    # All that is left is to free what the work built, which can take longer than the last
    # of the work, while the first process waits: leave once the last words are delivered.
    messages.close()
    messages.join_thread()
    os._exit(0)
