"""Recording touchpoint files: streamed, batched, every good record kept, every bad one named.

Large files are read, validated and encoded in a second process while this one records, so
both cores work; the queue between them holds a few batches, so memory stays flat whatever
the size of the files.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path

from engine.bulk import collector_paused
from engine.definition import JourneyDefinition
from engine.errors import DecodeError, InvalidTouchpoint
from engine.pipeline import from_another_process
from engine.recording import EncodedBatch, Journeys
from engine.settings import DEFAULT_PARALLEL_ABOVE_BYTES, Settings
from engine.touchpoints import Touchpoint, touchpoint_from_record
from journey.bootstrap import journeys_of
from schemas.files import file_format, read_records

BadRecord = Callable[[str, str], None]  # (where, reason)
_ENCODED_AT_ONCE = 5_000
Encode = Callable[[Iterable[Touchpoint]], EncodedBatch]


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


@dataclass
class Origins:
    """Where each touchpoint of a batch was read: a line number (or 'record N') each, and the
    file of each run of them, which is far cheaper to keep and to pass between processes
    than a text per touchpoint."""

    lines: list[int | str] = field(default_factory=list)
    files: list[tuple[int, Path]] = field(default_factory=list)  # (first index, path)

    def add(self, path: Path, line: int | str) -> None:
        if not self.files or self.files[-1][1] is not path:
            self.files.append((len(self.lines), path))
        self.lines.append(line)

    def where(self, index: int) -> str:
        path = next(path for first, path in reversed(self.files) if first <= index)
        return f"{path}:{self.lines[index]}"


# good, encoded; where each was read; bad: where, why
Batch = tuple[EncodedBatch, Origins, list[tuple[str, str]]]


def encoded_batches(
    paths: Iterable[Path], encode: Encode, *, batch_size: int, now_ms: int
) -> Iterator[Batch]:
    """Reads, validates and encodes the files' records; each batch holds up to `batch_size`
    records, good and bad, so that memory stays flat whatever the files hold. Touchpoints are
    encoded a few thousand at a time: a batch holds them only in their compact stored form."""
    encoded = EncodedBatch([], [], [])
    origins = Origins()
    good: list[Touchpoint] = []
    bad: list[tuple[str, str]] = []
    # Paused while the files are read (the records make no reference cycles); resumed when
    # reading ends or is abandoned.
    with collector_paused():
        for path in paths:
            for item in read_records(path):
                if item.record is None:
                    bad.append((item.where, str(item.error)))
                else:
                    try:
                        good.append(touchpoint_from_record(item.record, now_ms=now_ms))
                    except InvalidTouchpoint as exc:
                        bad.append((item.where, str(exc)))
                    else:
                        origins.add(item.path, item.line)
                    if len(good) == _ENCODED_AT_ONCE:
                        encoded.extend(encode(good))
                        good = []
                if len(encoded) + len(good) + len(bad) >= batch_size:
                    encoded.extend(encode(good))
                    yield encoded, origins, bad
                    encoded, origins, good, bad = EncodedBatch([], [], []), Origins(), [], []
    if good or bad or encoded:
        encoded.extend(encode(good))
        yield encoded, origins, bad


def ingest_files(
    journeys: Journeys,
    paths: Sequence[Path],
    *,
    batch_size: int,
    now_ms: int,
    on_bad: BadRecord,
    on_batch: Callable[[IngestSummary], None] | None = None,
    store: tuple[Settings, JourneyDefinition] | None = None,
    parallel_above_bytes: int = DEFAULT_PARALLEL_ABOVE_BYTES,
) -> IngestSummary:
    """Records every good touchpoint of the files, reporting each bad one to `on_bad`.
    With `store` (its settings, and the definition that says what is personal), files
    larger than `parallel_above_bytes` in all are read, validated and encoded (sealed too)
    in a second process that opens the same store."""
    summary = IngestSummary()

    def bad(where: str, reason: str) -> None:
        summary.bad += 1
        on_bad(where, reason)

    def record(batch: EncodedBatch, origins: Origins) -> None:
        with collector_paused():
            result = journeys.record_encoded(batch)
        summary.read += len(batch) - len(result.conflicts)
        summary.recorded += result.recorded
        summary.duplicates += result.duplicates
        for conflict in result.conflicts:
            bad(origins.where(conflict.index), f"event_id: {conflict.reason}")
        if on_batch is not None:
            on_batch(summary)

    size = sum(path.stat().st_size for path in paths)
    batches: Iterator[Batch]
    if store is not None and (os.cpu_count() or 1) > 1 and size > parallel_above_bytes:
        settings, definition = store
        batches = from_another_process(
            _read_and_encode, list(paths), settings, definition, batch_size, now_ms,
            name="file reader",
        )  # fmt: skip
    else:
        batches = encoded_batches(
            paths, journeys.encoder().encode, batch_size=batch_size, now_ms=now_ms
        )
    for batch, origins, bad_records in batches:
        for where, reason in bad_records:
            bad(where, reason)
        if batch:
            record(batch, origins)
    return summary


def _read_and_encode(
    paths: list[Path],
    settings: Settings,
    definition: JourneyDefinition,
    batch_size: int,
    now_ms: int,
) -> Iterator[Batch]:
    """`encoded_batches`, in the second process, with an encoder for the same store. The
    first process seals the touchpoints' personal data as it records them: reading a file
    costs more than recording it."""
    with journeys_of(settings, definition) as journeys:
        encode = partial(journeys.encoder().encode, seal_later=True)
        yield from encoded_batches(paths, encode, batch_size=batch_size, now_ms=now_ms)
