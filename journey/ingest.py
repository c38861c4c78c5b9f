"""Recording touchpoint files: streamed, batched, every good record kept, every bad one named."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path

from engine.errors import DecodeError, InvalidTouchpoint
from engine.recording import Journeys
from engine.touchpoints import Touchpoint, touchpoint_from_record
from schemas.files import file_format, read_records

BadRecord = Callable[[str, str], None]  # (where, reason)


@dataclass
class IngestSummary:
    read: int = 0
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


def record_in_batches(
    journeys: Journeys,
    touchpoints: Iterable[Touchpoint],
    *,
    batch_size: int,
    summary: IngestSummary,
    on_batch: Callable[[IngestSummary], None] | None = None,
) -> IngestSummary:
    batch: list[Touchpoint] = []

    def flush() -> None:
        result = journeys.record(batch)
        summary.recorded += result.recorded
        summary.duplicates += result.duplicates
        batch.clear()
        if on_batch is not None:
            on_batch(summary)

    for tp in touchpoints:
        summary.read += 1
        batch.append(tp)
        if len(batch) >= batch_size:
            flush()
    if batch:
        flush()
    return summary
