"""Reasons in words: how an action's reason names the touchpoint behind it and the time since.
Reasons are published in the NextAction record as they are, so they stand alone and come out
the same every time: dates on the journey's clock in UTC, in English whatever the machine's
locale, and never from the wall clock."""

from __future__ import annotations

from datetime import UTC, datetime

from engine.words import kind_words, shown, where
from projections.position import Touch

HOUR_MS = 3_600_000

_DAYS = ("Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun")
_MONTHS = ("Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec")


def day(at: int, now: int) -> str:
    """The day of `at` as "Mon 7 Dec", with the year when it is not `now`'s year."""
    moment = _utc(at)
    words = f"{_DAYS[moment.weekday()]} {moment.day} {_MONTHS[moment.month - 1]}"
    return words if moment.year == _utc(now).year else f"{words} {moment.year}"


def day_and_time(at: int, now: int) -> str:
    """`day` with the time of day: "Mon 7 Dec at 14:05 UTC"."""
    return f"{day(at, now)} at {_utc(at):%H:%M} UTC"


def duration(ms: int) -> str:
    """A span as people say it: hours up to two days, then days."""
    hours = max(0, ms) // HOUR_MS
    if hours < 48:
        return f"{hours} hour{'s' if hours != 1 else ''}"
    return f"{hours // 24} days"


def what(touch: Touch | None) -> str:
    """What the touchpoint was, with what it was about: "page view 'pricing'"."""
    if touch is None:
        return "touchpoint"
    kind = kind_words(touch.type)
    detail = shown(touch.detail)
    return f"{kind} '{detail}'" if detail else kind


def touchpoint(touch: Touch | None, at: int, now: int) -> str:
    """The touchpoint, where (see engine.words.where), with whom and when: "tour at B with
    peter on Mon 7 Dec"; `at`
    is the time to name if there is no touchpoint to speak of."""
    if touch is None:
        return f"{what(touch)} on {day(at, now)}"
    words = what(touch)
    place = shown(touch.place)
    if place:
        words += f" {where(touch.channel, place)}"
    if touch.rep_id:
        words += f" with {touch.rep_id}"
    return f"{words} on {day(touch.at, now)}"


def place(touch: Touch | None) -> str:
    """Where the touchpoint happened, or "elsewhere" if it does not say."""
    return (shown(touch.place) if touch is not None else None) or "elsewhere"


def _utc(at: int) -> datetime:
    return datetime.fromtimestamp(at / 1000, UTC)
