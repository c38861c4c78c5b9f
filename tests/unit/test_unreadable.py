"""Reading record batches leniently, as the consumer does where the Kafka client cannot."""

from __future__ import annotations

from kafka import TopicPartition
from kafka.record.default_records import DefaultRecordBatchBuilder

from consumers.unreadable import read_leniently

TP = TopicPartition("t", 0)


class RawName(str):
    """A header name written as the bytes given (the builder writes `name.encode()`)."""

    raw: bytes

    def __new__(cls, raw: bytes) -> RawName:
        made = super().__new__(cls, "?" * len(raw))
        made.raw = raw
        return made

    def encode(self, encoding: str = "utf-8", errors: str = "strict") -> bytes:
        del encoding, errors
        return self.raw


def batch(base: int, *records: tuple[bytes, list[tuple[str, bytes]]]) -> bytes:
    builder = DefaultRecordBatchBuilder(
        magic=2,
        compression_type=0,
        is_transactional=False,
        producer_id=-1,
        producer_epoch=-1,
        base_sequence=-1,
        batch_size=1 << 20,
    )
    for delta, (value, headers) in enumerate(records):
        builder.append(delta, timestamp=1_000 + delta, key=b"k", value=value, headers=headers)
    data = bytearray(builder.build())
    data[0:8] = base.to_bytes(8, "big")  # the broker sets the base offset
    return bytes(data)


def test_bytes_the_client_reads_have_nothing_unreadable() -> None:
    data = batch(0, (b"a", []), (b"b", [("h", b"1")]))

    assert read_leniently(TP, 0, data) is None


def test_a_header_name_that_is_not_utf8_makes_only_its_record_unreadable() -> None:
    data = batch(0, (b"a", [])) + batch(
        1, (b"b", []), (b"c", [(RawName(b"\xff\xfe"), b"v")]), (b"d", [])
    )

    read = read_leniently(TP, 2, data)

    assert read is not None
    assert [(r.offset, r.value, r.unreadable) for r in read.records] == [
        (2, b"c", "the header name b'\\xff\\xfe' is not UTF-8"),
        (3, b"d", None),
    ]
    assert read.records[0].headers == [("\\xff\\xfe", b"v")]
    assert read.next_offset == 4


def test_a_batch_that_fails_its_crc_check_is_unreadable_at_every_offset_from_the_position() -> None:
    good = batch(0, (b"a", []))
    damaged = bytearray(batch(1, (b"b", []), (b"c", []), (b"d", [])))
    damaged[-3] ^= 0xFF

    read = read_leniently(TP, 2, good + bytes(damaged))

    assert read is not None
    assert [(r.offset, r.value) for r in read.records] == [(2, None), (3, None)]
    assert {r.unreadable for r in read.records} == {
        "the record batch at offsets 1 to 3 failed its CRC check"
    }
    assert read.next_offset == 4


def test_a_batch_cut_short_by_the_fetch_size_is_left_for_the_next_fetch() -> None:
    data = batch(0, (b"a", [(RawName(b"\xff"), b"")]))

    assert read_leniently(TP, 0, data[:-5]) is None
