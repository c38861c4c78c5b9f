"""Whatever an outcome record, an Avro container file or a gzipped file holds, reading it
raises nothing but the engine's own error for a bad record, in one short line, and keeps the
good records read before a break. `make fuzz` runs many more examples than the tests do."""

from __future__ import annotations

import gzip
import io
from pathlib import Path
from typing import Any

from hypothesis import example, given
from hypothesis import strategies as st

from engine.actions import outcome_from_record
from engine.errors import InvalidOutcome
from schemas.codec import contract
from schemas.files import read_records, touchpoint_avro, write_jsonl
from tests.conftest import touchpoint
from tests.unit.test_files_fuzz import FUZZ, NOW_MS, json_values

OUTCOME_FIELDS = ("event_id", "action_id", "customer_id", "status", "reason", "snoozed_until",
                  "rep_id", "occurred_at")  # fmt: skip


def good_outcome() -> dict[str, Any]:
    return {
        "event_id": "o-1",
        "action_id": "a-1",
        "customer_id": "C-1",
        "status": "snoozed",
        "reason": "on holiday",
        "snoozed_until": "2026-03-09T09:00:00Z",
        "rep_id": "kim",
        "occurred_at": 1_772_000_000_000,
    }


@FUZZ
@given(changes=st.dictionaries(st.sampled_from(OUTCOME_FIELDS), json_values, max_size=3))
@example(changes={"status": "x" * 10_000})
@example(changes={"occurred_at": "9" * 30})
@example(changes={"snoozed_until": "+999999-01-01"})
def test_any_outcome_record_is_an_outcome_or_one_short_line_naming_the_field(
    changes: dict[str, Any],
) -> None:
    refusal = refused({**good_outcome(), **changes})

    if refusal is not None:
        assert refusal.field in OUTCOME_FIELDS
        assert "\n" not in str(refusal)
        assert len(str(refusal)) < 300, str(refusal)


def refused(record: dict[str, Any]) -> InvalidOutcome | None:
    try:
        outcome_from_record(record, now_ms=NOW_MS)
    except InvalidOutcome as exc:
        return exc
    return None


def container(count: int) -> bytes:
    out = io.BytesIO()
    records = [touchpoint_avro(touchpoint(f"e-{i}", page="pricing")) for i in range(count)]
    contract("Touchpoint").write_container(out, records)
    return out.getvalue()


@FUZZ
@given(
    count=st.integers(1, 300),
    flips=st.lists(st.tuples(st.floats(0, 1), st.integers(1, 255)), max_size=4),
    cut=st.none() | st.floats(0, 1),
)
def test_any_damage_to_an_avro_container_file_is_reported_where_it_begins(
    tmp_path: Path, count: int, flips: list[tuple[float, int]], cut: float | None
) -> None:
    data = bytearray(container(count))
    for where, mask in flips:
        data[int(where * (len(data) - 1))] ^= mask
    if cut is not None:
        data = data[: int(cut * len(data))]
    path = tmp_path / "touchpoints.avro"
    path.write_bytes(bytes(data))

    items = list(read_records(path))

    errors = [item for item in items if item.error is not None]
    assert len(errors) <= 1, "reading goes no further than the first damage"
    if errors:
        assert items[-1] is errors[0]
        assert "\n" not in str(errors[0].error)
        assert len(str(errors[0].error)) < 500, str(errors[0].error)
    if not flips and cut is None:
        assert [item.record["event_id"] for item in items if item.record] == [
            f"e-{i}" for i in range(count)
        ]


@FUZZ
@given(
    count=st.integers(1, 400),
    flips=st.lists(st.tuples(st.floats(0, 1), st.integers(1, 255)), max_size=3),
    cut=st.none() | st.floats(0, 1),
)
def test_any_damage_to_a_gzipped_file_keeps_what_was_read_before_it(
    tmp_path: Path, count: int, flips: list[tuple[float, int]], cut: float | None
) -> None:
    text = io.StringIO()
    write_jsonl(text, [touchpoint(f"e-{i}") for i in range(count)])
    data = bytearray(gzip.compress(text.getvalue().encode()))
    for where, mask in flips:
        data[int(where * (len(data) - 1))] ^= mask
    if cut is not None:
        data = data[: int(cut * len(data))]
    path = tmp_path / "touchpoints.jsonl.gz"
    path.write_bytes(bytes(data))

    items = list(read_records(path))

    read = [item.record.get("event_id") for item in items if item.record]
    if not flips:  # a file cut short keeps every record before the cut, in order
        assert read == [f"e-{i}" for i in range(len(read))]
    for item in items:
        if item.error is not None:
            assert "\n" not in str(item.error)
            assert len(str(item.error)) < 500, str(item.error)
    if not flips and cut is None:
        assert len(read) == count


def test_a_gzip_stream_that_is_not_gzip_is_one_line(tmp_path: Path) -> None:
    path = tmp_path / "plain.jsonl.gz"
    path.write_bytes(b"not gzip at all\n")

    (item,) = read_records(path)

    assert item.error is not None
    assert str(item.error).startswith("the file breaks off here: ")
