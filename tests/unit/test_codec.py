"""The Avro contracts and the codec: round trips, evolution, and clear errors."""

from __future__ import annotations

import copy
import gzip
import io
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import fastavro
import pytest

from engine.errors import DecodeError
from schemas.codec import (
    AvroContract,
    contract,
    earlier_schemas,
    load_contract_schema,
    personal_fields,
    wire_contract,
)
from schemas.files import read_records, touchpoint_avro, write_csv, write_jsonl
from tests.conftest import T0, touchpoint

WHEN = datetime(2026, 3, 2, 9, 0, tzinfo=UTC)


def avro_record(**overrides: Any) -> dict[str, Any]:
    record = touchpoint_avro(touchpoint("e-1", page="pricing"))
    record.update(email="x@example.com", **overrides)
    return record


def next_version() -> Any:
    """Touchpoint as a later release might have it: a new field and a new channel."""
    schema = copy.deepcopy(load_contract_schema("Touchpoint"))
    schema["fields"].append(
        {"name": "campaign", "type": ["null", "string"], "default": None, "doc": "new"}
    )
    channel = next(f for f in schema["fields"] if f["name"] == "channel")
    channel["type"]["symbols"].append("chat")
    return schema


def test_a_message_starts_with_the_single_object_marker_and_the_schema_fingerprint() -> None:
    touchpoints = contract("Touchpoint")

    message = touchpoints.encode(avro_record())

    assert message[:2] == b"\xc3\x01"
    assert int.from_bytes(message[2:10], "little") == touchpoints.fingerprint
    decoded = touchpoints.decode(message)
    assert decoded["occurred_at"] == WHEN
    assert decoded["email"] == "x@example.com"
    assert decoded["attributes"] == {"page": "pricing"}


def test_a_reader_on_the_next_version_reads_messages_written_with_this_one() -> None:
    old = contract("Touchpoint")
    new = AvroContract(next_version(), also_written_with=[old.schema])

    decoded = new.decode(old.encode(avro_record()))

    assert decoded["campaign"] is None
    assert decoded["customer_id"] == "C-1"


def test_a_reader_on_this_version_reads_a_channel_it_does_not_know_as_other() -> None:
    new = AvroContract(next_version())
    old = AvroContract(load_contract_schema("Touchpoint"), also_written_with=[new.schema])

    decoded = old.decode(new.encode(avro_record(channel="chat", campaign="spring")))

    assert decoded["channel"] == "other"
    assert "campaign" not in decoded


# The NextAction fields the lifecycle added; a sales tool built before them reads without.
LIFECYCLE_FIELDS = ("status", "status_reason", "status_at", "replaced_by")


def next_action_before_statuses() -> Any:
    schema = copy.deepcopy(load_contract_schema("NextAction"))
    schema["fields"] = [f for f in schema["fields"] if f["name"] not in LIFECYCLE_FIELDS]
    return schema


def next_action(**overrides: Any) -> dict[str, Any]:
    return {
        "action_id": "a-1",
        "customer_id": "C-1",
        "owner": "kim",
        "action_type": "follow_up",
        "channel": "phone",
        "rule": "follow_up_visit",
        "priority": 0.88,
        "score": {"value": 0.9},
        "reason": "Follow up.",
        "triggering_event_ids": ["t1"],
        "decided_at": WHEN,
        "due_at": None,
        **overrides,
    }


def test_a_sales_tool_built_before_statuses_reads_an_ended_action_and_one_after_reads_old() -> None:
    now = contract("NextAction")
    before = AvroContract(next_action_before_statuses(), also_written_with=[now.schema])
    ended = next_action(status="expired", status_reason="nobody did it", status_at=WHEN)

    read_by_old = before.decode(now.encode(ended))
    read_by_new = AvroContract(now.schema, also_written_with=[before.schema]).decode(
        before.encode(next_action())
    )

    assert read_by_old == next_action()
    assert {k: read_by_new[k] for k in LIFECYCLE_FIELDS} == {
        "status": "open",
        "status_reason": None,
        "status_at": None,
        "replaced_by": None,
    }


@pytest.mark.parametrize(
    ("data", "message"),
    [
        (b"", "too short"),
        (b"{json: 1}xxxxxxxx", "not an Avro single-object message"),
        (b"\xc3\x01" + bytes(8) + b"\x02", "unknown schema"),
    ],
)
def test_bytes_that_are_not_a_touchpoint_raise_a_decode_error(data: bytes, message: str) -> None:
    with pytest.raises(DecodeError, match=message):
        contract("Touchpoint").decode(data)


def test_a_truncated_or_padded_message_raises_a_decode_error() -> None:
    message = contract("Touchpoint").encode(avro_record())

    with pytest.raises(DecodeError, match="corrupt"):
        contract("Touchpoint").decode(message[:-4])
    with pytest.raises(DecodeError, match="unexpected bytes"):
        contract("Touchpoint").decode(message + b"\x00")


def test_every_field_is_documented_and_identifiers_are_marked_personal() -> None:
    for name in ("Touchpoint", "NextAction", "ActionOutcome"):
        schema = load_contract_schema(name)
        assert schema["doc"]
        assert all(field.get("doc") for field in schema["fields"]), name
    assert personal_fields(load_contract_schema("Touchpoint")) == ("email", "phone", "cookie_id")


def test_container_files_round_trip_and_stream(tmp_path: Path) -> None:
    path = tmp_path / "touchpoints.avro"
    records = [avro_record(event_id=f"e-{i}", occurred_at=T0 + i) for i in range(250)]
    with path.open("wb") as out:
        contract("Touchpoint").write_container(out, records)

    read = [item.record for item in read_records(path)]

    assert [r["event_id"] for r in read if r] == [f"e-{i}" for i in range(250)]


def test_a_corrupt_container_file_is_reported_not_raised(tmp_path: Path) -> None:
    path = tmp_path / "broken.avro"
    buffer = io.BytesIO()
    contract("Touchpoint").write_container(buffer, [avro_record()])
    path.write_bytes(buffer.getvalue()[:-20])

    items = list(read_records(path))

    assert items[-1].error is not None
    assert items[-1].where == f"{path}:record 1"


def test_json_lines_report_each_bad_line_by_number_and_keep_the_rest(tmp_path: Path) -> None:
    path = tmp_path / "touchpoints.jsonl"
    with path.open("w") as out:
        write_jsonl(out, [touchpoint("e-1")])
        out.write("{not json\n\n[1, 2]\n")
        write_jsonl(out, [touchpoint("e-2")])

    items = list(read_records(path))

    assert [(i.line, i.record["event_id"] if i.record else str(i.error)) for i in items] == [
        (1, "e-1"),
        (2, "not valid JSON: unexpected character, expected a string key (column 2)"),
        (4, "expected a JSON object, got a list"),
        (5, "e-2"),
    ]


def test_csv_reads_attribute_columns_and_names_short_rows(tmp_path: Path) -> None:
    path = tmp_path / "touchpoints.csv"
    with path.open("w", newline="") as out:
        write_csv(out, [touchpoint("e-1", page="pricing")])
        out.write("e-2,C-2,web\n")

    items = list(read_records(path))

    assert items[0].record is not None
    assert items[0].record["attributes"] == {"page": "pricing"}
    assert items[1].where == f"{path}:3"
    assert "expected 12 columns, found 3" in str(items[1].error)


def test_a_stray_quote_in_csv_costs_its_own_row_and_no_other(tmp_path: Path) -> None:
    path = tmp_path / "typed.csv"
    row = "e-{},C-1,web,page_view,2026-03-02T09:00:00Z,web,{}\n"
    path.write_text(
        "event_id,customer_id,channel,type,occurred_at,source,attributes.note\n"
        + row.format(1, "")
        + row.format(2, '"Asked for the offer')
        + row.format(3, '"Called back.\nAsked for ""the offer"",\nin writing."')
        + row.format(4, "")
    )

    items = list(read_records(path))

    assert [(i.line, i.record["event_id"] if i.record else str(i.error)) for i in items] == [
        (2, "e-1"),
        (3, "a quote opened on this line is not closed in its row"),
        (4, "e-3"),
        (7, "e-4"),
    ]
    assert items[2].record is not None
    assert items[2].record["attributes"] == {
        "note": 'Called back.\nAsked for "the offer",\nin writing.'
    }


def test_json_that_a_parser_would_read_by_guessing_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "odd.jsonl"
    path.write_text(
        '{"event_id": "e-1", "customer_id": "C-1", "event_id": "e-2"}\n'
        "e-3,C-1,web,page_view,2026-03-02T09:00:00Z,web,,,,,,\n"
    )
    csv_path = tmp_path / "odd.csv"
    with csv_path.open("w", newline="") as out:
        write_csv(out, [])
        out.write('e-3,C-1,web,page_view,2026-03-02T09:00:00Z,web,,,,,,"{""score"":NaN}"\n')

    errors = [str(i.error) for i in [*read_records(path), *read_records(csv_path)]]

    assert errors[0] == "the key 'event_id' appears twice"
    assert errors[2].startswith("attributes: not valid JSON")


def test_an_avro_file_of_another_schema_is_named_in_one_short_line(tmp_path: Path) -> None:
    path = tmp_path / "orders.avro"
    order = {"type": "record", "name": "Order", "fields": [{"name": "id", "type": "string"}]}
    with path.open("wb") as out:
        fastavro.writer(out, order, [{"id": "o-1"}])

    (item,) = read_records(path)

    assert str(item.error) == (
        "written with the schema 'Order', which is not the journey.Touchpoint contract: "
        "its fields are id"
    )


def test_an_unknown_file_type_is_refused(tmp_path: Path) -> None:
    with pytest.raises(DecodeError, match="unknown file type"):
        list(read_records(tmp_path / "touchpoints.xlsx"))


def test_a_line_that_is_not_utf_8_is_one_bad_record_and_the_rest_is_read(tmp_path: Path) -> None:
    for suffix, write in (("jsonl", write_jsonl), ("csv", write_csv)):
        path = tmp_path / f"mixed.{suffix}"
        with path.open("w") as out:
            write(out, [touchpoint("e-1"), touchpoint("e-2")])
        good = path.read_bytes().splitlines(keepends=True)
        path.write_bytes(b"".join([*good[:-1], b"\xff\xfe broken\n", good[-1]]))

        items = list(read_records(path))

        assert [i.record["event_id"] for i in items if i.record] == ["e-1", "e-2"], suffix
        assert [i.error is not None for i in items].count(True) == 1, suffix


def test_a_truncated_gzip_file_keeps_what_was_read_and_says_where_it_broke_off(
    tmp_path: Path,
) -> None:
    path = tmp_path / "touchpoints.jsonl.gz"
    with gzip.open(path, "wt") as out:
        write_jsonl(out, [touchpoint(f"e-{i}") for i in range(2_000)])
    path.write_bytes(path.read_bytes()[:-200])

    items = list(read_records(path))

    assert len([i for i in items if i.record]) > 1_000
    assert items[-1].error is not None
    assert "breaks off" in str(items[-1].error)


def test_messages_written_with_the_first_touchpoint_schema_are_still_read() -> None:
    """Producers built when customer_id was required keep working after it became nullable,
    and so does the consumer's reader, which reads timestamps as their wire values."""
    (first,) = earlier_schemas("Touchpoint")
    message = AvroContract(first).encode(avro_record())

    assert contract("Touchpoint").decode(message)["customer_id"] == "C-1"
    assert wire_contract("Touchpoint").decode(message)["customer_id"] == "C-1"
    anonymous = contract("Touchpoint").encode(avro_record(customer_id=None, cookie_id="k1"))
    assert contract("Touchpoint").decode(anonymous)["customer_id"] is None
