from __future__ import annotations

from typing import Any

from engine.journeys import TouchpointState
from projections.timeline import reported_late, timeline
from tests.conftest import DAY, T0


def state(event_id: str, at: int) -> TouchpointState:
    fields: dict[str, Any] = {
        "event_id": event_id,
        "customer_id": "C-1",
        "channel": "email",
        "type": "email_opened",
        "occurred_at": at,
        "source": "test",
        "rep_id": None,
        "outcome": None,
        "attributes": {},
        "identifiers": {"email": "x@example.com"},
    }
    return fields  # type: ignore[return-value]


def test_the_timeline_is_ordered_by_when_things_happened_and_marks_late_reports() -> None:
    arrived = [state("tue", T0 + DAY), state("wed", T0 + 2 * DAY), state("mon", T0)]

    entries = timeline(arrived)

    assert [e.event_id for e in entries] == ["mon", "tue", "wed"]
    assert [e.arrival for e in entries] == [3, 1, 2]
    assert reported_late(entries) == [True, False, False]


def test_touchpoints_at_the_same_moment_keep_their_arrival_order() -> None:
    entries = timeline([state("b", T0), state("a", T0)])

    assert [e.event_id for e in entries] == ["b", "a"]
    assert reported_late(entries) == [False, False]


def test_the_timeline_leaves_personal_identifiers_out() -> None:
    (entry,) = timeline([state("e1", T0)])

    assert "x@example.com" not in repr(entry)


def described(type_: str, channel: str = "web", **attributes: str) -> tuple[str, str | None]:
    entry = state("e1", T0)
    (shown,) = timeline([{**entry, "type": type_, "channel": channel, "attributes": attributes}])
    return shown.what, shown.detail


def test_each_touchpoint_says_in_words_what_it_was_and_what_it_was_about() -> None:
    assert described("page_view", page="pricing", url="/pricing") == ("page view", "pricing")
    assert described("page_view", url="/offices/b") == ("page view", "/offices/b")
    assert described("content_download", asset="whitepaper") == ("download", "whitepaper")
    assert described("tour", "visit", location="B", content="as on the website") == (
        "tour",
        "at B",
    )
    assert described("call_outbound", "phone", location="B", booked="tour") == (
        "call from us",
        "about B",
    )
    assert described("call_missed") == ("missed call", None)
    assert described("webinar_registered", title="Hybrid offices") == (
        "webinar registered",
        "Hybrid offices",
    )
