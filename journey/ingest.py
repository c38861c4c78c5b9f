"""Recording touchpoint files: streamed, batched, every good record kept, every bad one named.

Large files are read, validated and encoded in a second process while this one records, so
both cores work; the queue between them holds a few batches, so memory stays flat whatever
the size of the files.
"""

from __future__ import annotations

import multiprocessing
import os
import queue
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from itertools import islice
from pathlib import Path
from typing import Any

from engine.bulk import collector_paused
from engine.errors import DecodeError, InvalidTouchpoint, JourneyError
from engine.recording import EncodedTouchpoint, Journeys
from engine.touchpoints import Touchpoint, touchpoint_from_record
from schemas.files import file_format, read_records

BadRecord = Callable[[str, str], None]  # (where, reason)
# Below this much input, starting a second process costs more than it saves.
PARALLEL_ABOVE_BYTES = 16 * 1024 * 1024
_MAX_BAD_PER_MESSAGE = 1_000


@dataclass
class IngestSummary:
    read: int = 0  # good records read
    recorded: int = 0
    duplicates: int = 0
    bad: int = 0


def check_files(paths: Iterable[Path]) -> None:
    """Refuses, before anything is recorded, files that are missing or of an unknown type."""
    for path in paths:
        file_format(path)
        if not path.is_file():
            raise DecodeError(f"{path}: no such file")


def touchpoints_from_files(
    paths: Iterable[Path], *, now_ms: int, on_bad: BadRecord
) -> Iterator[Touchpoint]:
    for path in paths:
        for item in read_records(path):
            if item.record is None:
                on_bad(item.where, str(item.error))
                continue
            try:
                yield touchpoint_from_record(item.record, now_ms=now_ms)
            except InvalidTouchpoint as exc:
                on_bad(item.where, str(exc))


def ingest_files(
    journeys: Journeys,
    paths: Sequence[Path],
    *,
    batch_size: int,
    now_ms: int,
    on_bad: BadRecord,
    on_batch: Callable[[IngestSummary], None] | None = None,
    store_env: Mapping[str, str] | None = None,
    parallel_above_bytes: int = PARALLEL_ABOVE_BYTES,
) -> IngestSummary:
    """Records every good touchpoint of the files, reporting each bad one to `on_bad`.
    With `store_env`, files larger than `parallel_above_bytes` in all are read, validated and
    encoded in a second process that uses this store's settings."""
    summary = IngestSummary()

    def bad(where: str, reason: str) -> None:
        summary.bad += 1
        on_bad(where, reason)

    def record(batch: Sequence[EncodedTouchpoint]) -> None:
        with collector_paused():
            result = journeys.record_encoded(batch)
        summary.read += len(batch)
        summary.recorded += result.recorded
        summary.duplicates += result.duplicates
        if on_batch is not None:
            on_batch(summary)

    size = sum(path.stat().st_size for path in paths)
    if store_env is not None and (os.cpu_count() or 1) > 1 and size > parallel_above_bytes:
        for batch, bad_records in _encoded_in_another_process(paths, store_env, batch_size, now_ms):
            for where, reason in bad_records:
                bad(where, reason)
            if batch:
                record(batch)
        return summary
    encode = journeys.encoder().encode
    touchpoints = touchpoints_from_files(paths, now_ms=now_ms, on_bad=bad)
    while batch := _encode_batch(encode, touchpoints, batch_size):
        record(batch)
    return summary


def _encode_batch(
    encode: Callable[[Iterable[Touchpoint]], list[EncodedTouchpoint]],
    touchpoints: Iterator[Touchpoint],
    size: int,
) -> list[EncodedTouchpoint]:
    with collector_paused():
        return encode(islice(touchpoints, size))


Message = tuple[str, Any]


def _encoded_in_another_process(
    paths: Sequence[Path], store_env: Mapping[str, str], batch_size: int, now_ms: int
) -> Iterator[tuple[list[EncodedTouchpoint], list[tuple[str, str]]]]:
    context = multiprocessing.get_context("spawn")
    messages: multiprocessing.Queue[Message] = context.Queue(maxsize=2)
    reader = context.Process(
        target=_read_and_encode,
        args=(list(paths), dict(store_env), batch_size, now_ms, messages, os.getpid()),
        daemon=True,
        name="journey-file-reader",
    )
    reader.start()
    try:
        while True:
            try:
                kind, payload = messages.get(timeout=1.0)
            except queue.Empty:
                if not reader.is_alive():
                    raise JourneyError(
                        f"the file reader stopped unexpectedly (exit code {reader.exitcode})"
                    ) from None
                continue
            if kind == "batch":
                yield payload
            elif kind == "failed":
                raise DecodeError(payload)
            else:
                return
    finally:
        if reader.is_alive():
            reader.terminate()
        reader.join()


def _read_and_encode(  # noqa: PLR0917 (a process target takes positional arguments)
    paths: list[Path],
    store_env: dict[str, str],
    batch_size: int,
    now_ms: int,
    messages: multiprocessing.Queue[Message],
    parent: int,
) -> None:
    """The second process: reads, validates and encodes batches, and hands them over."""

    def send(message: Message) -> None:
        while True:
            try:
                messages.put(message, timeout=1.0)
                return
            except queue.Full:
                if os.getppid() != parent:
                    # The recording process is gone: stop at once, without waiting to flush
                    # what nobody will read.
                    messages.cancel_join_thread()
                    os._exit(1)

    bad: list[tuple[str, str]] = []

    def on_bad(where: str, reason: str) -> None:
        bad.append((where, reason))
        if len(bad) >= _MAX_BAD_PER_MESSAGE:
            send(("batch", ([], bad.copy())))
            bad.clear()

    try:
        journeys = Journeys(store_env)
        encode = journeys.encoder().encode
        touchpoints = touchpoints_from_files(paths, now_ms=now_ms, on_bad=on_bad)
        while batch := _encode_batch(encode, touchpoints, batch_size):
            send(("batch", (batch, bad.copy())))
            bad.clear()
        if bad:
            send(("batch", ([], bad.copy())))
        journeys.close()
    except JourneyError as exc:
        send(("failed", str(exc)))
        return
    send(("done", None))
