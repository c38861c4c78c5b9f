from __future__ import annotations

from typing import Any

import pytest

from engine.errors import InvalidTouchpoint
from engine.touchpoints import touchpoint_from_record
from tests.conftest import T0, record

NOW = T0 + 3_600_000


def test_a_valid_record_becomes_a_touchpoint_with_times_in_milliseconds() -> None:
    tp = touchpoint_from_record(record(email="ann@example.com", rep_id="kathrine"), now_ms=NOW)

    assert tp.occurred_at == T0
    assert tp.channel == "web"
    assert tp.attributes == {"page": "pricing"}
    assert tp.identifiers == {"email": "ann@example.com"}


@pytest.mark.parametrize(
    "occurred_at", [T0, str(T0), "2026-03-02T09:00:00+00:00", "2026-03-02T10:00:00+01:00"]
)
def test_times_may_be_milliseconds_or_iso_8601(occurred_at: Any) -> None:
    assert touchpoint_from_record(record(occurred_at=occurred_at), now_ms=NOW).occurred_at == T0


@pytest.mark.parametrize(
    ("overrides", "field", "problem"),
    [
        ({"event_id": ...}, "event_id", "missing"),
        ({"customer_id": "  "}, "customer_id", "missing"),
        ({"customer_id": "x" * 201}, "customer_id", "longer than 200"),
        ({"channel": "fax"}, "channel", "'fax' is not one of"),
        ({"type": "Page View"}, "type", "lower-case name"),
        ({"outcome": "great"}, "outcome", "'great' is not one of"),
        ({"occurred_at": "yesterday"}, "occurred_at", "neither ISO-8601"),
        ({"occurred_at": T0 // 1000}, "occurred_at", "looks like seconds"),
        ({"occurred_at": "1900-01-01T00:00:00Z"}, "occurred_at", "1900-01-01T00:00:00+00:00 is "),
        ({"occurred_at": "²"}, "occurred_at", "'²' is neither ISO-8601"),
        ({"occurred_at": "9" * 5000}, "occurred_at", "'99999999999999999999"),
        ({"occurred_at": 1e20}, "occurred_at", "got the number 1e+20"),
        ({"customer_id": "x" * 10_000}, "customer_id", "longer than 200"),
        ({"attributes": {"a\nb": [1]}}, "attributes['a\\nb']", "expected text, got a list"),
        ({"occurred_at": NOW + 3 * 86_400_000}, "occurred_at", "in the future"),
        ({"source": 42}, "source", "expected text"),
        ({"attributes": ["page"]}, "attributes", "expected an object of text values"),
        ({"attributes": {"page": {"deep": 1}}}, "attributes.page", "expected text"),
    ],
)
def test_a_bad_record_is_refused_naming_the_field_and_the_problem(
    overrides: dict[str, Any], field: str, problem: str
) -> None:
    with pytest.raises(InvalidTouchpoint) as caught:
        touchpoint_from_record(record(**overrides), now_ms=NOW)

    assert caught.value.field == field
    assert problem in str(caught.value)


def test_text_is_trimmed_and_channels_and_outcomes_are_case_insensitive() -> None:
    tp = touchpoint_from_record(
        record(customer_id=" C-1 ", channel="Email", outcome="Negative", rep_id=""), now_ms=NOW
    )

    assert (tp.customer_id, tp.channel, tp.outcome, tp.rep_id) == ("C-1", "email", "negative", None)


def test_attribute_values_that_are_numbers_or_truth_values_become_text_as_json_writes_them() -> (
    None
):
    attributes = {"wait_seconds": 840, "rating": 4.5, "consented": True, "left": None}
    tp = touchpoint_from_record(record(attributes=attributes), now_ms=NOW)

    assert tp.attributes == {"wait_seconds": "840", "rating": "4.5", "consented": "true"}


def test_an_attribute_that_is_no_finite_number_is_refused() -> None:
    with pytest.raises(
        InvalidTouchpoint, match=r"attributes\.score: expected text, got the number nan"
    ):
        touchpoint_from_record(record(attributes={"score": float("nan")}), now_ms=NOW)
