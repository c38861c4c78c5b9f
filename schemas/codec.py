"""Bytes and files to records and back: Avro single-object encoding for messages (and the
framing of schema registries, read with the writer schema the registry holds), Avro container
files, and JSON lines and CSV for people. Every failure becomes a DecodeError."""

from __future__ import annotations

import copy
import io
import json
import struct
from collections import OrderedDict
from collections.abc import Iterable, Iterator, Mapping
from functools import cache
from pathlib import Path
from typing import IO, Any

import fastavro
from fastavro._read_common import SchemaResolutionError
from fastavro.schema import fingerprint, load_schema, to_parsing_canonical_form
from fastavro.types import Schema

from engine.errors import DecodeError, EncodeError
from schemas.registry import FRAME_SIZE, REGISTRY_MARKER, SchemaRegistry

SCHEMA_DIR = Path(__file__).parent
# The Avro specification's marker for single-object encoding, followed by a CRC-64-AVRO
# fingerprint of the writer's schema, little-endian.
SINGLE_OBJECT_MARKER = b"\xc3\x01"
_HEADER = struct.Struct("<2sQ")
# Schema ids are never reused, so a writer schema once fetched is good for all time; producers
# use a handful, this bounds a topic that somehow names many.
REGISTRY_CACHE_SIZE = 1024


class AvroContract:
    """One record type: the schema it is read with, and every schema it may have been written
    with, known by fingerprint (this one, and other versions, older or newer)."""

    def __init__(
        self,
        schema: Schema,
        also_written_with: Iterable[Schema] = (),
        *,
        logical_types: bool = True,
    ) -> None:
        self.schema = fastavro.parse_schema(schema)
        # False: timestamps are read as their wire values, whatever the writer's schema says.
        self.logical_types = logical_types
        self._registry: RegistryWriters | None = None
        self.fingerprint = schema_fingerprint(self.schema)
        self._writers = {self.fingerprint: self.schema}
        for other in also_written_with:
            parsed = fastavro.parse_schema(other)
            self._writers[schema_fingerprint(parsed)] = parsed

    @property
    def name(self) -> str:
        return str(self.schema["name"])  # type: ignore[call-overload, index]

    def reading_registry(self, registry: SchemaRegistry | None) -> AvroContract:
        """This contract, also reading messages framed for `registry` (with the writer
        schema it holds, resolved against this one). Without a registry such a message is
        refused with the setting that is missing."""
        reading = copy.copy(self)
        reading._registry = None if registry is None else RegistryWriters(registry, self)
        return reading

    def encode(self, record: Mapping[str, Any]) -> bytes:
        """A single-object encoded message."""
        out = io.BytesIO()
        out.write(_HEADER.pack(SINGLE_OBJECT_MARKER, self.fingerprint))
        try:
            fastavro.schemaless_writer(out, self.schema, dict(record), strict_allow_default=True)
        except (ValueError, TypeError, KeyError, AttributeError) as exc:
            raise EncodeError(f"cannot encode {self.name}: {exc}") from exc
        return out.getvalue()

    def decode(self, data: bytes) -> dict[str, Any]:
        """Reads a single-object encoded message written with any known version of the schema."""
        if len(data) < _HEADER.size:
            return self._decode_unmarked(data)
        marker, writer_fingerprint = _HEADER.unpack_from(data)
        if marker != SINGLE_OBJECT_MARKER:
            return self._decode_unmarked(data)
        writer = self._writers.get(writer_fingerprint)
        if writer is None:
            raise DecodeError(
                f"written with an unknown schema (fingerprint {writer_fingerprint:016x}), "
                f"not a known version of {self.name}"
            )
        body = io.BytesIO(data)
        body.seek(_HEADER.size)
        # Resolving a schema against itself costs a third of the decoding: skip it.
        reader = None if writer_fingerprint == self.fingerprint else self.schema
        try:
            record = fastavro.schemaless_reader(body, writer, reader)
        except Exception as exc:  # fastavro raises many kinds on corrupt input
            raise DecodeError(f"corrupt {self.name} message: {brief(exc)}") from exc
        if body.tell() != len(data):
            raise DecodeError(f"{len(data) - body.tell()} unexpected bytes after a {self.name}")
        if not isinstance(record, dict):
            raise DecodeError(f"a {self.name} message did not hold a record")
        return record

    def _decode_unmarked(self, data: bytes) -> dict[str, Any]:
        """A message without the single-object marker: framed for a schema registry, or not
        a message of ours at all."""
        if data[:1] == REGISTRY_MARKER and len(data) >= FRAME_SIZE:
            return self._decode_registry_framed(data)
        if len(data) < _HEADER.size:
            raise DecodeError(f"{len(data)} bytes is too short for an Avro single-object message")
        raise DecodeError(f"not an Avro single-object message (starts with {data[:2].hex()})")

    def _decode_registry_framed(self, data: bytes) -> dict[str, Any]:
        """Reads a message framed for a schema registry. Raises RegistryUnavailable (not a
        DecodeError) when the registry does not answer: the message is not at fault."""
        schema_id = int.from_bytes(data[1:FRAME_SIZE], "big")
        if self._registry is None:
            raise DecodeError(
                f"framed for a schema registry (schema id {schema_id}), but "
                "JOURNEY_SCHEMA_REGISTRY_URL is not set"
            )
        writer, same = self._registry.writer(schema_id)
        body = io.BytesIO(data)
        body.seek(FRAME_SIZE)
        try:
            record = fastavro.schemaless_reader(body, writer, None if same else self.schema)
        except SchemaResolutionError as exc:
            raise DecodeError(
                f"schema id {schema_id} cannot be read as {self.name}: "
                f"{_resolution_problem(exc, writer)}"
            ) from None
        except Exception as exc:  # fastavro raises many kinds on corrupt input
            raise DecodeError(
                f"corrupt {self.name} message (schema id {schema_id}): {brief(exc)}"
            ) from exc
        if body.tell() != len(data):
            raise DecodeError(
                f"{len(data) - body.tell()} unexpected bytes after a {self.name} "
                f"(schema id {schema_id})"
            )
        if not isinstance(record, dict):
            raise DecodeError(f"a {self.name} message (schema id {schema_id}) held no record")
        return record

    def write_container(self, out: IO[bytes], records: Iterable[Mapping[str, Any]]) -> None:
        """Writes an Avro container file (records are streamed, not held)."""
        fastavro.writer(out, self.schema, (dict(r) for r in records), codec="deflate")

    def read_container(self, source: IO[bytes]) -> Iterator[dict[str, Any]]:
        """Streams the records of an Avro container file, read with this contract's schema."""
        try:
            reader = fastavro.reader(source, reader_schema=self.schema)
        except Exception as exc:
            raise DecodeError(f"not an Avro container file of {self.name}: {brief(exc)}") from exc
        records = iter(reader)
        while True:
            try:
                record = next(records)
            except StopIteration:
                return
            except SchemaResolutionError:
                raise DecodeError(
                    f"written with the schema {_schema_name(reader.writer_schema)}, which is "
                    f"not the {self.name} contract: {_field_names(reader.writer_schema)}"
                ) from None
            except Exception as exc:
                raise DecodeError(f"corrupt Avro container block: {brief(exc)}") from exc
            if isinstance(record, dict):
                yield record


class RegistryWriters:
    """Writer schemas by registry id, parsed for one contract: each asked of the registry
    once, kept while it is among the most recently used."""

    def __init__(
        self, registry: SchemaRegistry, reader: AvroContract, limit: int = REGISTRY_CACHE_SIZE
    ) -> None:
        self._registry = registry
        self._reader = reader
        self._limit = limit
        self._writers: OrderedDict[int, tuple[Schema, bool]] = OrderedDict()

    def writer(self, schema_id: int) -> tuple[Schema, bool]:
        """The parsed writer schema, and whether it is the reader's own (then nothing needs
        resolving). Raises DecodeError for an unknown id or a schema that does not parse,
        RegistryUnavailable when the registry does not answer."""
        found = self._writers.get(schema_id)
        if found is not None:
            self._writers.move_to_end(schema_id)
            return found
        text = self._registry.schema(schema_id)
        try:
            schema = json.loads(text)
            if not self._reader.logical_types:
                schema = _without_logical_types(schema)
            parsed = fastavro.parse_schema(schema)
        except Exception as exc:  # JSON or fastavro's many kinds of "not a schema"
            raise DecodeError(f"schema id {schema_id} is not an Avro schema: {brief(exc)}") from exc
        found = (parsed, schema_fingerprint(parsed) == self._reader.fingerprint)
        self._writers[schema_id] = found
        if len(self._writers) > self._limit:
            self._writers.popitem(last=False)
        return found


def _resolution_problem(exc: SchemaResolutionError, writer: Schema) -> str:
    """Why a writer schema does not resolve against the reader's, in one line: fastavro quotes
    whole schemas when their names differ."""
    text = brief(exc)
    if text.startswith("Schema mismatch: {"):
        return f"it is the record {_schema_name(writer)}"
    return text


def brief(exc: BaseException, limit: int = 160) -> str:
    """A library's error for a one-line message: its first line, cut short (fastavro's
    messages can quote a whole schema)."""
    lines = str(exc).strip().splitlines()
    text = lines[0] if lines else type(exc).__name__
    return text if len(text) <= limit else f"{text[:limit]}..."


def _schema_name(schema: Schema | None) -> str:
    name = schema.get("name") if isinstance(schema, dict) else None
    return repr(name) if isinstance(name, str) else "of another kind"


def _field_names(schema: Schema | None) -> str:
    """A foreign schema's fields, for a one-line message."""
    fields = schema.get("fields") if isinstance(schema, dict) else None
    if not isinstance(fields, list):
        return "it is not a record"
    names = [str(field.get("name")) for field in fields if isinstance(field, dict)]
    shown = ", ".join(names[:8]) + (f" and {len(names) - 8} more" if len(names) > 8 else "")
    return f"its fields are {shown}"


def schema_fingerprint(schema: Schema) -> int:
    """The CRC-64-AVRO fingerprint of a schema's parsing canonical form, as an integer."""
    digest = fingerprint(to_parsing_canonical_form(schema), "CRC-64-AVRO")
    return int.from_bytes(bytes.fromhex(digest), "little")


def load_contract_schema(name: str) -> Schema:
    """Loads `journey.<name>.avsc` from the contracts folder, resolving named types beside it."""
    return load_schema(str(SCHEMA_DIR / f"journey.{name}.avsc"), _write_hint=False)


def earlier_schemas(name: str) -> list[Schema]:
    """The earlier versions of a contract that producers may still write with, kept beside it
    as `journey.<name>.v<N>.avsc`."""
    return [
        load_schema(str(path), _write_hint=False)
        for path in sorted(SCHEMA_DIR.glob(f"journey.{name}.v*.avsc"))
    ]


@cache
def contract(name: str) -> AvroContract:
    """The current contract for Touchpoint, NextAction or ActionOutcome, reading messages
    written with any earlier version too."""
    return AvroContract(load_contract_schema(name), earlier_schemas(name))


@cache
def wire_contract(name: str) -> AvroContract:
    """`contract(name)` reading logical types as their wire values (timestamps as
    milliseconds, not datetimes): what the consumer needs, faster. Logical types are not part
    of a schema's canonical form, so the fingerprints are the same."""
    return AvroContract(
        _without_logical_types(load_contract_schema(name)),
        [_without_logical_types(earlier) for earlier in earlier_schemas(name)],
        logical_types=False,
    )


def _without_logical_types(schema: Any) -> Any:
    if isinstance(schema, dict):
        return {k: _without_logical_types(v) for k, v in schema.items() if k != "logicalType"}
    if isinstance(schema, list):
        return [_without_logical_types(item) for item in schema]
    return schema


def personal_fields(schema: Schema) -> tuple[str, ...]:
    """Names of the fields a schema marks as holding personal data."""
    fields = schema.get("fields", []) if isinstance(schema, dict) else []
    return tuple(f["name"] for f in fields if f.get("personal") is True)
