"""A customer's timeline: their touchpoints in the order they happened.

The customer's journey stream already holds every touchpoint, in the order they arrived; the
timeline is a fold of that stream on demand, so nothing is stored twice and a rebuild has no
timeline to rewrite.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass

from engine import words
from engine.journeys import TouchpointState


@dataclass(frozen=True, slots=True)
class TimelineEntry:
    """One touchpoint in a customer's timeline. `arrival` counts the customer's touchpoints in
    the order they were recorded. Personal identifiers are left out."""

    occurred_at: int
    arrival: int
    event_id: str
    channel: str
    type: str
    outcome: str | None
    rep_id: str | None
    source: str
    attributes: Mapping[str, str]

    @property
    def what(self) -> str:
        """What happened, in words: "page view", "missed call"."""
        return words.kind_words(self.type)

    @property
    def detail(self) -> str | None:
        """Where it happened and what it was about, from its attributes: "pricing" for a page
        view, "at B" for a tour, "guide.pdf" for a download; None if they say neither."""
        parts = []
        place = words.place(self.attributes)
        if place:
            parts.append(words.where(self.channel, place))
        about = words.detail(self.attributes)
        if about:
            parts.append(about)
        return ", ".join(parts) or None


def timeline(touchpoints: Iterable[TouchpointState]) -> list[TimelineEntry]:
    """Orders a customer's touchpoints, given in arrival order, by when they happened (ties
    keep arrival order)."""
    entries = [
        TimelineEntry(
            tp["occurred_at"],
            arrival,
            tp["event_id"],
            tp["channel"],
            tp["type"],
            tp["outcome"],
            tp["rep_id"],
            tp["source"],
            tp["attributes"],
        )
        for arrival, tp in enumerate(touchpoints, 1)
    ]
    return sorted(entries, key=lambda entry: (entry.occurred_at, entry.arrival))


def reported_late(entries: list[TimelineEntry]) -> list[bool]:
    """For each entry, whether it was recorded after something that happened later."""
    late: list[bool] = []
    earliest_later = float("inf")
    for entry in reversed(entries):
        late.append(entry.arrival > earliest_later)
        earliest_later = min(earliest_later, entry.arrival)
    return late[::-1]
