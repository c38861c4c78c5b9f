"""The touchpoint: one contact between a customer and the company, as channel systems report it."""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from engine.errors import InvalidTouchpoint

CHANNELS = ("web", "email", "phone", "visit")
# Readers map channels they do not know yet to this symbol instead of failing.
OTHER_CHANNEL = "other"
OUTCOMES = ("positive", "neutral", "negative")
# Identifiers that name a person: kept apart from the rest so that they can be encrypted and erased.
PERSONAL_FIELDS = ("email", "phone", "cookie_id")

MAX_ID_LENGTH = 200
MAX_ATTRIBUTES = 64
MAX_TEXT_LENGTH = 4_000
FUTURE_TOLERANCE_MS = 24 * 3600 * 1000
EARLIEST_MS = 631_152_000_000  # 1990-01-01: anything earlier is almost surely seconds, not millis.
_TYPE_PATTERN = re.compile(r"^[a-z][a-z0-9_]{0,63}$")


@dataclass(frozen=True, slots=True)
class Touchpoint:
    """A validated touchpoint. `occurred_at` is milliseconds since the epoch, UTC."""

    event_id: str
    customer_id: str
    channel: str
    type: str
    occurred_at: int
    source: str
    rep_id: str | None = None
    outcome: str | None = None
    email: str | None = None
    phone: str | None = None
    cookie_id: str | None = None
    attributes: Mapping[str, str] = field(default_factory=dict)

    @property
    def identifiers(self) -> dict[str, str]:
        """The personal identifiers that are present."""
        found = {"email": self.email, "phone": self.phone, "cookie_id": self.cookie_id}
        return {name: value for name, value in found.items() if value}


def millis(moment: datetime) -> int:
    """Milliseconds since the epoch for an aware datetime (naive ones are taken as UTC)."""
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return int(moment.timestamp() * 1000)


def from_millis(ms: int) -> datetime:
    return datetime.fromtimestamp(ms / 1000, tz=UTC)


def touchpoint_from_record(record: Mapping[str, Any], *, now_ms: int) -> Touchpoint:
    """Builds a touchpoint from a decoded record (JSON, CSV or Avro), enforcing the domain rules.

    Raises InvalidTouchpoint naming the first field that is wrong.
    """
    channel = _required_text(record, "channel").lower()
    if channel not in CHANNELS and channel != OTHER_CHANNEL:
        raise InvalidTouchpoint("channel", f"{channel!r} is not one of {', '.join(CHANNELS)}")
    kind = _required_text(record, "type")
    if not _TYPE_PATTERN.match(kind):
        raise InvalidTouchpoint("type", f"{kind!r} is not a lower-case name such as page_view")
    outcome = _optional_text(record, "outcome")
    if outcome is not None and outcome not in OUTCOMES:
        raise InvalidTouchpoint("outcome", f"{outcome!r} is not one of {', '.join(OUTCOMES)}")
    return Touchpoint(
        event_id=_identifier(record, "event_id"),
        customer_id=_identifier(record, "customer_id"),
        channel=channel,
        type=kind,
        occurred_at=_occurred_at(record.get("occurred_at"), now_ms),
        source=_required_text(record, "source"),
        rep_id=_optional_text(record, "rep_id"),
        outcome=outcome,
        email=_optional_text(record, "email"),
        phone=_optional_text(record, "phone"),
        cookie_id=_optional_text(record, "cookie_id"),
        attributes=_attributes(record.get("attributes")),
    )


def _identifier(record: Mapping[str, Any], name: str) -> str:
    value = _required_text(record, name)
    if len(value) > MAX_ID_LENGTH:
        raise InvalidTouchpoint(name, f"longer than {MAX_ID_LENGTH} characters")
    return value


def _required_text(record: Mapping[str, Any], name: str) -> str:
    value = _optional_text(record, name)
    if value is None:
        raise InvalidTouchpoint(name, "is missing or empty")
    return value


def _optional_text(record: Mapping[str, Any], name: str) -> str | None:
    value = record.get(name)
    if value is None:
        return None
    if not isinstance(value, str):
        raise InvalidTouchpoint(name, f"expected text, got {type(value).__name__}")
    value = value.strip()
    if len(value) > MAX_TEXT_LENGTH:
        raise InvalidTouchpoint(name, f"longer than {MAX_TEXT_LENGTH} characters")
    return value or None


def _occurred_at(value: Any, now_ms: int) -> int:
    if value is None or value == "":
        raise InvalidTouchpoint("occurred_at", "is missing")
    if isinstance(value, datetime):
        ms = millis(value)
    elif isinstance(value, int) and not isinstance(value, bool):
        ms = value
    elif isinstance(value, str):
        ms = _parse_time_text(value)
    else:
        raise InvalidTouchpoint("occurred_at", f"expected a time, got {type(value).__name__}")
    if ms < EARLIEST_MS:
        raise InvalidTouchpoint("occurred_at", f"{value!r} is before 1990 (milliseconds expected)")
    if ms > now_ms + FUTURE_TOLERANCE_MS:
        raise InvalidTouchpoint("occurred_at", f"{from_millis(ms).isoformat()} is in the future")
    return ms


def _parse_time_text(text: str) -> int:
    text = text.strip()
    if text.isdigit():
        return int(text)
    try:
        return millis(datetime.fromisoformat(text))
    except ValueError:
        raise InvalidTouchpoint(
            "occurred_at", f"{text!r} is neither ISO-8601 nor milliseconds since the epoch"
        ) from None


def _attributes(value: Any) -> dict[str, str]:
    if value is None:
        return {}
    if not isinstance(value, Mapping):
        raise InvalidTouchpoint("attributes", f"expected a map of text, got {type(value).__name__}")
    if len(value) > MAX_ATTRIBUTES:
        raise InvalidTouchpoint("attributes", f"more than {MAX_ATTRIBUTES} entries")
    attributes: dict[str, str] = {}
    for key, item in value.items():
        if not isinstance(item, str | int | float | bool):
            raise InvalidTouchpoint(f"attributes.{key}", "expected text")
        text = str(item)
        if len(text) > MAX_TEXT_LENGTH:
            raise InvalidTouchpoint(f"attributes.{key}", f"longer than {MAX_TEXT_LENGTH} characters")
        attributes[str(key)] = text
    return attributes
