"""Touchpoint files: JSON lines, CSV and Avro container files, optionally gzipped, streamed one
record at a time so that any size reads in constant memory."""

from __future__ import annotations

import csv
import gzip
import json
import zlib
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import IO, Any, NamedTuple, cast

import orjson

from engine.errors import DecodeError
from engine.touchpoints import Touchpoint, from_millis
from schemas.codec import contract

BOM = "\ufeff".encode()  # the byte-order mark some programs begin UTF-8 files with
FORMATS = {".jsonl": "jsonl", ".ndjson": "jsonl", ".json": "jsonl", ".csv": "csv", ".avro": "avro"}


class FileRecord(NamedTuple):
    """One record read from a file, or why it could not be read."""

    path: Path
    line: int | str  # a line number, or 'record N' in an Avro file
    record: dict[str, Any] | None
    error: DecodeError | None = None

    @property
    def where(self) -> str:
        return f"{self.path}:{self.line}"


def file_format(path: Path) -> str:
    suffixes = [s for s in path.suffixes if s != ".gz"]
    fmt = FORMATS.get(suffixes[-1].lower()) if suffixes else None
    if fmt is None:
        raise DecodeError(f"{path}: unknown file type (expected .jsonl, .csv or .avro, maybe .gz)")
    return fmt


def read_records(path: Path) -> Iterator[FileRecord]:
    """Streams the records of a touchpoint file. A file that cannot be opened raises DecodeError;
    a bad line is yielded with its error and reading goes on; a file that breaks off (a
    truncated .gz, a failing disk) ends with a record saying where and why."""
    reader = {"avro": _avro_records, "jsonl": _json_records, "csv": _csv_records}[file_format(path)]
    try:
        source = cast(
            IO[bytes],
            gzip.open(path, "rb") if path.suffix == ".gz" else open(path, "rb"),  # noqa: SIM115
        )
    except OSError as exc:
        raise DecodeError(f"{path}: {exc.strerror or exc}") from None
    with source:
        line: int | str = 0
        try:
            for item in reader(path, source):
                line = item.line
                yield item
        except (OSError, EOFError, zlib.error) as exc:
            after = line + 1 if isinstance(line, int) else f"after {line}"
            yield FileRecord(path, after, None, DecodeError(f"the file breaks off here: {exc}"))


def _json_records(path: Path, lines: IO[bytes]) -> Iterator[FileRecord]:
    loads = orjson.loads
    for number, line in enumerate(_without_bom(lines), 1):
        try:
            record = loads(line)
        except orjson.JSONDecodeError as exc:
            if line.strip():
                error = DecodeError(f"not valid JSON: {exc.msg} (column {exc.colno})")
                yield FileRecord(path, number, None, error)
            continue
        if type(record) is dict:
            # A key that appears twice is kept once by the parser: a line with more or fewer
            # key-like spots than the record has keys is parsed again, slowly, to find out.
            attributes = record.get("attributes")
            keys = len(record) + (len(attributes) if type(attributes) is dict else 0)
            if line.count(b'":') == keys or (repeated := _repeated_key(line)) is None:
                yield FileRecord(path, number, record)
            else:
                error = DecodeError(f"the key {_shown_key(repeated)} appears twice")
                yield FileRecord(path, number, None, error)
        else:
            error = DecodeError(f"expected a JSON object, got {_json_kind(record)}")
            yield FileRecord(path, number, None, error)


def _repeated_key(line: bytes) -> str | None:
    """A key that appears twice in one object of a JSON line, or None."""
    repeated: list[str] = []

    def pairs(items: list[tuple[str, Any]]) -> dict[str, Any]:
        seen = dict(items)
        if len(seen) < len(items) and not repeated:
            names = [name for name, _ in items]
            repeated.append(next(name for name in names if names.count(name) > 1))
        return seen

    try:
        json.loads(line, object_pairs_hook=pairs)
    except ValueError:  # what orjson read, the standard parser may refuse
        return None
    return repeated[0] if repeated else None


def _shown_key(key: str) -> str:
    return repr(key if len(key) <= 40 else f"{key[:40]}...")


def _csv_records(path: Path, source: IO[bytes]) -> Iterator[FileRecord]:
    header: list[str] | None = None
    for number, row in _csv_rows(source):
        if isinstance(row, DecodeError):
            yield FileRecord(path, number, None, row)
        elif header is None:
            header = row
        elif len(row) != len(header):
            error = DecodeError(f"expected {len(header)} columns, found {len(row)}")
            yield FileRecord(path, number, None, error)
        else:
            try:
                yield FileRecord(path, number, _csv_record(header, row))
            except DecodeError as exc:
                yield FileRecord(path, number, None, exc)


# A quoted field may hold line breaks (a note, say), but no touchpoint spans more lines.
_MAX_LINES_PER_ROW = 100


def _csv_rows(source: IO[bytes]) -> Iterator[tuple[int, list[str] | DecodeError]]:
    """The rows of a CSV file with the line each begins on, blank ones left out. A row ends at
    the first line break outside quotes. A quote that stays open to the end of the file, or
    for more lines than a touchpoint takes, or that swallows whole rows, is reported on the
    line it opens, and the lines after that one are read again as rows of their own: a stray
    quote costs one row, not the rows after it."""
    lines = _text_lines(source)
    again: list[tuple[int, str | DecodeError]] = []  # lines to read again, the next one last
    width: int | None = None  # the header's

    def next_line() -> tuple[int, str | DecodeError] | None:
        return again.pop() if again else next(lines, None)

    while (line := next_line()) is not None:
        number, text = line
        if isinstance(text, DecodeError):
            yield number, text
            continue
        if '"' not in text:
            if text.strip():
                row = text.rstrip("\r\n").split(",")
                width = width or len(row)
                yield number, row
            continue
        held = [text]
        try:
            row = _csv_row(held)
        except csv.Error as exc:
            yield number, DecodeError(f"not valid CSV: {exc}")
            continue
        while _quote_open(row) and len(held) < _MAX_LINES_PER_ROW:
            following = next_line()
            if following is None:
                break
            if isinstance(following[1], DecodeError):
                again.append(following)
                break
            held.append(following[1])
            try:
                row = _csv_row(held)
            except csv.Error:  # the lines hold more than one row: the quote was a stray
                break
        if not _quote_open(row) and (len(held) == 1 or _spans_lines(row, held, width)):
            width = width or len(row)
            yield number, row
            continue
        yield number, DecodeError("a quote opened on this line is not closed in its row")
        again.extend((number + offset, held[offset]) for offset in range(len(held) - 1, 0, -1))


def _spans_lines(row: list[str], lines: list[str], width: int | None) -> bool:
    """Whether a row read across lines is one: well quoted, of the header's width, and none of
    the lines after its first a whole row by itself (those are a stray quote's doing)."""
    try:  # a quote that closes a field spanning lines is followed by a comma or the row's end
        next(csv.reader(("".join(lines),), strict=True))
    except csv.Error:
        return False
    if width is None:
        return True
    if len(row) != width:
        return False
    for line in lines[1:]:
        try:
            alone = _csv_row([line])
        except csv.Error:
            continue
        if len(alone) == width and not _quote_open(alone):
            return False
    return True


def _csv_row(lines: list[str]) -> list[str]:
    return next(csv.reader(("".join(lines),)))


def _quote_open(row: list[str]) -> bool:
    """Whether a row read so far ends inside a quoted field (one that holds the line break)."""
    return bool(row) and row[-1].endswith("\n")


def _text_lines(source: IO[bytes]) -> Iterator[tuple[int, str | DecodeError]]:
    for number, raw in enumerate(_without_bom(source), 1):
        try:
            yield number, raw.decode("utf-8")
        except UnicodeDecodeError as exc:
            yield number, DecodeError(f"not UTF-8 text ({exc.reason})")


def _without_bom(lines: Iterable[bytes]) -> Iterator[bytes]:
    """The lines of a text file, without the byte-order mark spreadsheets begin UTF-8 with."""
    first = True
    for line in lines:
        yield line.removeprefix(BOM) if first else line
        first = False


def _json_kind(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "true or false"
    if isinstance(value, list):
        return "a list"
    if isinstance(value, str):
        return "text"
    return "a number"


def _csv_record(header: list[str], row: list[str]) -> dict[str, Any]:
    record: dict[str, Any] = {}
    attributes: dict[str, Any] = {}
    for name, value in zip(header, row, strict=True):
        if value == "":
            continue
        if name.startswith("attributes."):
            attributes[name.removeprefix("attributes.")] = value
        elif name == "attributes":
            try:
                parsed = orjson.loads(value)
            except orjson.JSONDecodeError as exc:
                raise DecodeError(f"attributes: not valid JSON: {exc.msg}") from None
            if type(parsed) is not dict:
                raise DecodeError(f"attributes: expected a JSON object, got {_json_kind(parsed)}")
            attributes.update(parsed)
        else:
            record[name] = value
    record["attributes"] = attributes
    return record


def _avro_records(path: Path, source: IO[bytes]) -> Iterator[FileRecord]:
    number = 0
    try:
        for number, record in enumerate(contract("Touchpoint").read_container(source), 1):
            yield FileRecord(path, f"record {number}", record)
    except DecodeError as exc:
        # A corrupt block ends what can be read of a container file.
        yield FileRecord(path, f"record {number + 1}", None, exc)


def touchpoint_json(tp: Touchpoint) -> dict[str, Any]:
    """The JSON form of a touchpoint, for people: times in ISO-8601, absent fields left out."""
    record: dict[str, Any] = {
        "event_id": tp.event_id,
        **({} if tp.anonymous else {"customer_id": tp.customer_id}),
        "channel": tp.channel,
        "type": tp.type,
        "occurred_at": from_millis(tp.occurred_at).isoformat().replace("+00:00", "Z"),
        "source": tp.source,
    }
    optional = {
        "rep_id": tp.rep_id,
        "outcome": tp.outcome,
        "email": tp.email,
        "phone": tp.phone,
        "cookie_id": tp.cookie_id,
    }
    record.update((key, value) for key, value in optional.items() if value is not None)
    if tp.attributes:
        record["attributes"] = dict(tp.attributes)
    return record


def touchpoint_avro(tp: Touchpoint) -> dict[str, Any]:
    """The Avro record of a touchpoint."""
    return {
        "event_id": tp.event_id,
        "customer_id": None if tp.anonymous else tp.customer_id,
        "email": tp.email,
        "phone": tp.phone,
        "cookie_id": tp.cookie_id,
        "channel": tp.channel,
        "type": tp.type,
        "occurred_at": tp.occurred_at,
        "source": tp.source,
        "rep_id": tp.rep_id,
        "outcome": tp.outcome,
        "attributes": dict(tp.attributes),
    }


def write_jsonl(out: IO[str], touchpoints: Iterable[Touchpoint]) -> int:
    count = 0
    dumps = json.JSONEncoder(ensure_ascii=False, separators=(",", ":")).encode
    for tp in touchpoints:
        out.write(dumps(touchpoint_json(tp)))
        out.write("\n")
        count += 1
    return count


CSV_COLUMNS = (
    "event_id",
    "customer_id",
    "channel",
    "type",
    "occurred_at",
    "source",
    "rep_id",
    "outcome",
    "email",
    "phone",
    "cookie_id",
    "attributes",
)


def write_csv(out: IO[str], touchpoints: Iterable[Touchpoint]) -> int:
    writer = csv.writer(out)
    writer.writerow(CSV_COLUMNS)
    count = 0
    for tp in touchpoints:
        record = touchpoint_json(tp)
        record["attributes"] = json.dumps(record.get("attributes", {}), separators=(",", ":"))
        writer.writerow([record.get(column, "") for column in CSV_COLUMNS])
        count += 1
    return count
