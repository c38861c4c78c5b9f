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
            yield FileRecord(path, number, record)
        else:
            error = DecodeError(f"expected a JSON object, got {_json_kind(record)}")
            yield FileRecord(path, number, None, error)


def _csv_records(path: Path, source: IO[bytes]) -> Iterator[FileRecord]:
    undecodable: dict[int, str] = {}

    def text_lines() -> Iterator[str]:
        for number, raw in enumerate(_without_bom(source), 1):
            try:
                yield raw.decode("utf-8")
            except UnicodeDecodeError as exc:
                undecodable[number] = f"not UTF-8 text ({exc.reason})"
                yield "\n"  # keeps the line count; reported with its number below

    rows = csv.reader(text_lines())
    header: list[str] | None = None
    while True:
        try:
            row = next(rows)
        except StopIteration:
            return
        except csv.Error as exc:
            yield FileRecord(path, rows.line_num, None, DecodeError(f"not valid CSV: {exc}"))
            continue
        number = rows.line_num
        if number in undecodable:
            yield FileRecord(path, number, None, DecodeError(undecodable.pop(number)))
            continue
        if header is None:
            header = row
            continue
        if not any(row):
            continue
        if len(row) != len(header):
            error = DecodeError(f"expected {len(header)} columns, found {len(row)}")
            yield FileRecord(path, number, None, error)
            continue
        try:
            yield FileRecord(path, number, _csv_record(header, row))
        except DecodeError as exc:
            yield FileRecord(path, number, None, exc)


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
                attributes.update(json.loads(value))
            except (json.JSONDecodeError, TypeError, ValueError):
                raise DecodeError("attributes: expected a JSON object") from None
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
        "customer_id": tp.customer_id,
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
        "customer_id": tp.customer_id,
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
