"""Whatever a touchpoint file holds, reading it raises nothing, reports each bad record with
the line it is on, and yields every good record around the bad ones.

The examples are generated: good records, arbitrary text and bytes, and good records with
one field replaced by an arbitrary JSON value, as JSON lines (with or without the byte-order
mark spreadsheets write) and as CSV. `make fuzz` runs many more of them than the tests do."""

from __future__ import annotations

import csv
import io
import json
import os
from pathlib import Path
from typing import Any

from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from engine.errors import InvalidTouchpoint
from engine.touchpoints import touchpoint_from_record
from schemas.files import BOM, CSV_COLUMNS, read_records

NOW_MS = 1_800_000_000_000
EXAMPLES = int(os.environ.get("JOURNEY_FUZZ_EXAMPLES", "150"))
FUZZ = settings(
    max_examples=EXAMPLES,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
FIELDS = ("event_id", "customer_id", "channel", "type", "occurred_at", "source", "rep_id",
          "outcome", "attributes")  # fmt: skip


def good(number: int) -> dict[str, Any]:
    return {
        "event_id": f"good-{number}",
        "customer_id": f"C-{number % 7}",
        "channel": "web",
        "type": "page_view",
        "occurred_at": "2026-03-02T09:00:00Z",
        "source": "web-analytics",
        "attributes": {"page": "pricing"},
    }


json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(), inner, max_size=3),
    max_leaves=6,
)
# A line of a file: ("good", n), or a bad line, or a good record with one field changed.
lines = st.one_of(
    st.integers(0, 10**6).map(lambda n: ("good", n)),
    st.text().filter(lambda t: "\n" not in t and "\r" not in t).map(lambda t: ("text", t)),
    st.binary().filter(lambda b: b"\n" not in b).map(lambda b: ("bytes", b)),
    st.tuples(st.sampled_from(FIELDS), json_values).map(lambda fv: ("mutated", fv)),
)


def read(path: Path) -> tuple[set[str], dict[int | str, str]]:
    """The event ids of the good touchpoints read from a file, and the bad records by line."""
    found: set[str] = set()
    bad: dict[int | str, str] = {}
    for item in read_records(path):
        if item.record is None:
            bad[item.line] = str(item.error)
            continue
        try:
            found.add(touchpoint_from_record(item.record, now_ms=NOW_MS).event_id)
        except InvalidTouchpoint as exc:
            bad[item.line] = str(exc)
    return found, bad


@FUZZ
@given(content=st.lists(lines, max_size=12), bom=st.booleans())
@example(content=[("mutated", ("occurred_at", "²")), ("good", 1)], bom=False)
@example(content=[("mutated", ("occurred_at", "9" * 5000)), ("good", 1)], bom=True)
@example(content=[("good", 1), ("mutated", ("customer_id", "x" * 10_000))], bom=False)
def test_any_json_lines_file_reads_into_good_touchpoints_and_located_rejections(
    tmp_path: Path, content: list[tuple[str, Any]], bom: bool
) -> None:
    raw: list[bytes] = []
    goods: set[str] = set()
    for number, (kind, value) in enumerate(content):
        if kind == "good":
            record = good(value + number * 10**7)
            goods.add(record["event_id"])
            raw.append(json.dumps(record).encode())
        elif kind == "text":
            raw.append(value.encode())
        elif kind == "bytes":
            raw.append(value)
        else:
            field, replacement = value
            raw.append(json.dumps({**good(-number - 1), field: replacement}).encode())
    path = tmp_path / "touchpoints.jsonl"
    path.write_bytes((BOM if bom else b"") + b"\n".join(raw) + b"\n")

    found, bad = read(path)

    assert goods <= found, "a good record was lost"
    for line in bad:
        assert isinstance(line, int)
        assert 1 <= line <= len(raw)
        assert raw[line - 1].strip(), "a blank line was reported"
    for reason in bad.values():
        assert "\n" not in reason, reason
        assert len(reason) < 500, reason


# Lines a person may type into a CSV file by hand: stray and doubled quotes among the commas.
hand_typed = st.text(alphabet=st.sampled_from('a1,"{}: \r'), max_size=30).map(lambda t: ("raw", t))
# A good record whose note runs over several lines, which CSV quotes.
noted = st.integers(0, 10**6).map(lambda n: ("noted", n))


@FUZZ
@given(content=st.lists(lines | hand_typed | noted, max_size=12), bom=st.booleans())
@example(content=[("raw", 'x,"{'), ("noted", 1), ("good", 2), ("raw", '"'), ("good", 3)], bom=False)
def test_any_csv_file_reads_into_good_touchpoints_and_located_rejections(
    tmp_path: Path, content: list[tuple[str, Any]], bom: bool
) -> None:
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow((*CSV_COLUMNS, "attributes.note"))
    goods: set[str] = set()
    for number, (kind, value) in enumerate(content):
        note = ""
        if kind == "raw":
            out.write(value + "\n")
            continue
        if kind in ("good", "noted"):
            record = good(value + number * 10**7)
            if kind == "noted":
                note = 'Called back.\nAsked for "the offer",\nin writing.'
            goods.add(record["event_id"])
        elif kind == "mutated":
            field, replacement = value
            text = replacement if isinstance(replacement, str) else json.dumps(replacement)
            record = {**good(-number - 1), field: text}
        else:
            text = value if isinstance(value, str) else value.decode("utf-8", "replace")
            record = {**good(-number - 1), "event_id": text, "customer_id": text}
        if isinstance(record.get("attributes"), dict):
            record["attributes"] = json.dumps(record["attributes"])
        writer.writerow([*(record.get(column, "") for column in CSV_COLUMNS), note])
    path = tmp_path / "touchpoints.csv"
    path.write_bytes((BOM if bom else b"") + out.getvalue().encode())

    found, bad = read(path)

    assert goods <= found, "a good record was lost"
    for reason in bad.values():
        assert "\n" not in reason, reason
        assert len(reason) < 500, reason


def test_a_csv_file_saved_by_a_spreadsheet_keeps_every_row(tmp_path: Path) -> None:
    path = tmp_path / "excel.csv"
    rows = [",".join(CSV_COLUMNS)] + [
        f"e-{n},C-1,web,page_view,2026-03-02T09:00:00Z,web-analytics,,,,,,{{}}" for n in (1, 2)
    ]
    path.write_bytes(BOM + "\r\n".join(rows).encode() + b"\r\n")

    assert read(path) == ({"e-1", "e-2"}, {})


def test_a_json_lines_file_with_a_byte_order_mark_keeps_its_first_record(tmp_path: Path) -> None:
    path = tmp_path / "marked.jsonl"
    path.write_bytes(BOM + json.dumps(good(1)).encode() + b"\nnull\n")

    assert read(path) == ({"good-1"}, {2: "expected a JSON object, got null"})
