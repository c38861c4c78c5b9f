"""Records the Kafka client cannot read: a header name that is not UTF-8, a record batch that
fails its CRC check, a record whose structure is broken.

kafka-python raises on such a record from inside `poll()` without saying which partition or
offset, and reads nothing after it in its batch, however the consumer seeks. So the consumer
fetches the bytes at its position itself and reads them here, leniently: each record that
reads is returned as it came, each that does not is returned with the reason, and nothing is
returned for a partition the client can read (its trouble lies elsewhere)."""

from __future__ import annotations

import struct
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, NamedTuple

from kafka import KafkaConsumer, TopicPartition
from kafka.codec import gzip_decode, lz4_decode, snappy_decode, zstd_decode
from kafka.errors import KafkaError
from kafka.protocol.consumer import FetchRequest
from kafka.record.default_records import DefaultRecordBatch
from kafka.record.util import decode_varint

BATCH_HEADER = DefaultRecordBatch.HEADER_STRUCT.size
READ_COMMITTED = 1
_DECOMPRESS = {
    DefaultRecordBatch.CODEC_GZIP: gzip_decode,
    DefaultRecordBatch.CODEC_SNAPPY: snappy_decode,
    DefaultRecordBatch.CODEC_LZ4: lz4_decode,
    DefaultRecordBatch.CODEC_ZSTD: zstd_decode,
}


class RawRecord(NamedTuple):
    """A record read from the fetched bytes, shaped as the client's records are."""

    topic: str
    partition: int
    offset: int
    timestamp: int | None
    key: bytes | None
    value: bytes | None
    headers: list[tuple[str, bytes | None]]
    unreadable: str | None  # why the client cannot read it; None if it can


@dataclass(frozen=True)
class RawRead:
    """What was read of one partition from its position: every record up to the end of the
    first batch holding one the client cannot read, and the offset to go on from."""

    records: list[RawRecord]
    next_offset: int


class UnreadableReader:
    """Fetches partitions' bytes with a consumer of its own (outside the group), on demand."""

    def __init__(self, bootstrap: str, client_id: str, max_bytes: int) -> None:
        self._bootstrap = bootstrap
        self._client_id = client_id
        self._max_bytes = max_bytes
        self._probe: KafkaConsumer | None = None

    def read(self, positions: Mapping[TopicPartition, int]) -> dict[TopicPartition, RawRead]:
        """The partitions among `positions` holding a record the client cannot read there,
        read leniently. Raises KafkaError if the broker cannot be asked."""
        fetched = self._fetch(positions)
        reads = {}
        for tp, (data, aborted) in fetched.items():
            read = read_leniently(tp, positions[tp], data, aborted)
            if read is not None:
                reads[tp] = read
        return reads

    def close(self) -> None:
        if self._probe is not None:
            self._probe.close(autocommit=False)
            self._probe = None

    def _fetch(
        self, positions: Mapping[TopicPartition, int]
    ) -> dict[TopicPartition, tuple[bytes, Sequence[Any]]]:
        if self._probe is None:
            self._probe = KafkaConsumer(
                bootstrap_servers=self._bootstrap,
                client_id=f"{self._client_id}-reader",
                group_id=None,
                enable_auto_commit=False,
                bootstrap_timeout_ms=5000,
            )
        probe = self._probe
        for topic in {tp.topic for tp in positions}:
            probe.partitions_for_topic(topic)  # the partitions' leaders
        # kafka-python offers no public way to fetch raw bytes: send the Fetch request
        # through the probe's own connection manager, as its fetcher does.
        manager = probe._manager
        by_leader: dict[int, list[TopicPartition]] = {}
        for tp in positions:
            leader = probe._client.cluster.leader_for_partition(tp)
            if leader is None or leader < 0:
                raise KafkaError(f"no leader known for {tp.topic}[{tp.partition}]")
            by_leader.setdefault(leader, []).append(tp)
        fetched: dict[TopicPartition, tuple[bytes, Sequence[Any]]] = {}
        for leader, partitions in by_leader.items():
            request = _fetch_request(positions, partitions, self._max_bytes)
            response = manager.run(manager.wait_for, manager.send(request, node_id=leader), 10_000)
            for topic in response.responses:
                for part in topic.partitions:
                    if part.error_code:
                        raise KafkaError(
                            f"fetching {topic.topic}[{part.partition_index}] failed with "
                            f"error code {part.error_code}"
                        )
                    tp = TopicPartition(topic.topic, part.partition_index)
                    fetched[tp] = (bytes(part.records or b""), part.aborted_transactions or ())
        return fetched


def _fetch_request(
    positions: Mapping[TopicPartition, int], partitions: list[TopicPartition], max_bytes: int
) -> Any:
    topics: dict[str, list[Any]] = {}
    for tp in partitions:
        topics.setdefault(tp.topic, []).append(
            FetchRequest.FetchTopic.FetchPartition(
                partition=tp.partition,
                current_leader_epoch=-1,
                fetch_offset=positions[tp],
                last_fetched_epoch=-1,
                partition_max_bytes=max_bytes,
            )
        )
    return FetchRequest(
        max_wait_ms=0,
        min_bytes=0,
        max_bytes=max_bytes,
        isolation_level=READ_COMMITTED,
        session_id=0,
        session_epoch=-1,
        topics=[FetchRequest.FetchTopic(topic=t, partitions=p) for t, p in topics.items()],
        forgotten_topics_data=[],
        rack_id="",
        min_version=FetchRequest.min_version_for_isolation_level(READ_COMMITTED),
        max_version=12,
    )


def read_leniently(
    tp: TopicPartition, position: int, data: bytes, aborted: Sequence[Any] = ()
) -> RawRead | None:
    """The records at and after `position` in fetched bytes, up to the end of the first
    batch holding one the client cannot read; None if the bytes hold no such record."""
    records: list[RawRecord] = []
    aborted_from = sorted(aborted, key=lambda txn: txn.first_offset)
    aborted_producers: set[int] = set()
    for batch, body in _batches(data):
        while aborted_from and aborted_from[0].first_offset <= batch.last_offset:
            aborted_producers.add(aborted_from.pop(0).producer_id)
        if batch.next_offset <= position:
            continue
        if batch.magic < 2:
            return None  # the old formats hold no headers; the client reads them
        if not batch.validate_crc():
            reason = (
                f"the record batch at offsets {batch.base_offset} to {batch.last_offset} "
                "failed its CRC check"
            )
            first = max(position, batch.base_offset)
            if batch.last_offset_delta != batch.records_count - 1:
                # The header itself may be what is corrupt: give up one offset at a time.
                return RawRead([*records, *_lost(tp, first, first, reason)], first + 1)
            records += _lost(tp, first, batch.last_offset, reason)
            return RawRead(records, batch.next_offset)
        if batch.is_control_batch:
            if batch.is_transactional and batch.producer_id in aborted_producers:
                aborted_producers.discard(batch.producer_id)  # its abort marker
            continue
        if batch.is_transactional and batch.producer_id in aborted_producers:
            continue
        found = [r for r in _records(tp, batch, body) if r.offset >= position]
        records += found
        if any(record.unreadable for record in found):
            return RawRead(records, batch.next_offset)
    return None


def _batches(data: bytes) -> Iterator[tuple[DefaultRecordBatch, bytes]]:
    """Each whole batch in fetched bytes, with its records' bytes (a last one cut short by
    the fetch size is left out)."""
    position = 0
    while position + 17 <= len(data):
        (length,) = struct.unpack_from(">i", data, position + 8)
        end = position + 12 + length
        if length < 0 or end > len(data):
            return
        magic = data[position + 16]
        if magic >= 2 and end - position >= BATCH_HEADER:
            yield DefaultRecordBatch(data[position:end]), data[position + BATCH_HEADER : end]
        position = end


def _records(tp: TopicPartition, batch: DefaultRecordBatch, body: bytes) -> Iterator[RawRecord]:
    codec = batch.compression_type
    try:
        data = _DECOMPRESS[codec](body) if codec in _DECOMPRESS else body
    except Exception as exc:  # whatever the codec raises on broken bytes
        reason = f"the record batch at offset {batch.base_offset} does not decompress ({exc})"
        yield from _lost(tp, batch.base_offset, batch.last_offset, reason)
        return
    offset = batch.base_offset - 1
    position = 0
    for _ in range(batch.records_count):
        try:
            record, position = _record(tp, batch, data, position)
        except (ValueError, IndexError) as exc:
            reason = f"a record in the batch at offset {batch.base_offset} is broken ({exc})"
            yield from _lost(tp, offset + 1, batch.last_offset, reason)
            return
        offset = record.offset
        yield record


def _record(
    tp: TopicPartition, batch: DefaultRecordBatch, data: bytes, position: int
) -> tuple[RawRecord, int]:
    length, position = decode_varint(data, position)
    start = position
    _attributes, position = decode_varint(data, position)
    timestamp_delta, position = decode_varint(data, position)
    offset_delta, position = decode_varint(data, position)
    key, position = _bytes(data, position)
    value, position = _bytes(data, position)
    count, position = decode_varint(data, position)
    if count < 0:
        raise ValueError(f"{count} headers")
    headers: list[tuple[str, bytes | None]] = []
    unreadable = None
    for _ in range(count):
        name, position = _bytes(data, position)
        if name is None:
            raise ValueError("a header without a name")
        header_value, position = _bytes(data, position)
        try:
            text = name.decode()
        except UnicodeDecodeError:
            text = name.decode(errors="backslashreplace")
            unreadable = unreadable or f"the header name {name!r} is not UTF-8"
        headers.append((text, header_value))
    if position - start != length:
        raise ValueError(f"{position - start} bytes read of a {length}-byte record")
    timestamp = (
        batch.max_timestamp
        if batch.timestamp_type == DefaultRecordBatch.LOG_APPEND_TIME
        else batch.first_timestamp + timestamp_delta
    )
    record = RawRecord(
        tp.topic,
        tp.partition,
        batch.base_offset + offset_delta,
        timestamp,
        key,
        value,
        headers,
        unreadable,
    )
    return record, position


def _bytes(data: bytes, position: int) -> tuple[bytes | None, int]:
    size, position = decode_varint(data, position)
    if size < 0:
        return None, position
    if position + size > len(data):
        raise ValueError(f"{size} bytes announced, {len(data) - position} left")
    return bytes(data[position : position + size]), position + size


def _lost(tp: TopicPartition, first: int, last: int, reason: str) -> list[RawRecord]:
    """Records known only by their offsets."""
    return [
        RawRecord(tp.topic, tp.partition, offset, None, None, None, [], reason)
        for offset in range(first, last + 1)
    ]
