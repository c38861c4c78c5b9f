"""The touchpoint: one contact between a customer and the company, as channel systems report it."""

from __future__ import annotations

import math
import re
from collections.abc import Mapping
from datetime import UTC, datetime
from types import MappingProxyType
from typing import Any, NamedTuple

from engine.errors import InvalidTouchpoint
from engine.identifiers import stream_key

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


_NO_ATTRIBUTES: Mapping[str, str] = MappingProxyType({})


class Touchpoint(NamedTuple):
    """A validated touchpoint. `occurred_at` is milliseconds since the epoch, UTC.
    (A named tuple: immutable, and cheap to build by the hundred thousand.)

    An `anonymous` touchpoint came without a customer id: `customer_id` is then the key it
    is recorded under, made from its first identifier (`engine.identifiers.stream_key`),
    and the identity graph says whose journey it is part of."""

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
    attributes: Mapping[str, str] = _NO_ATTRIBUTES
    anonymous: bool = False

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

    Raises InvalidTouchpoint naming the first field that is wrong. Written for speed: the
    common, valid case runs straight through; anything unusual takes the careful path.
    """
    get = record.get
    channel = get("channel")
    if type(channel) is not str or channel not in _CHANNEL_SET:
        channel = _channel(channel)
    kind = get("type")
    if type(kind) is not str or kind not in _seen_types:
        kind = _type(kind)
    outcome = get("outcome")
    if outcome is not None and (type(outcome) is not str or outcome not in _OUTCOME_SET):
        outcome = _outcome(outcome)
    occurred_at = get("occurred_at")
    if type(occurred_at) is int:
        pass  # milliseconds, as Avro carries them; the range is checked below
    elif type(occurred_at) is str and len(occurred_at) > 18:
        try:
            moment = datetime.fromisoformat(occurred_at)
        except ValueError:
            occurred_at = _occurred_at(occurred_at, now_ms)
        else:
            occurred_at = int(moment.timestamp() * 1000) if moment.tzinfo else millis(moment)
    else:
        occurred_at = _occurred_at(occurred_at, now_ms)
    if not EARLIEST_MS <= occurred_at <= now_ms + FUTURE_TOLERANCE_MS:
        occurred_at = _occurred_at(occurred_at, now_ms)
    attributes = get("attributes")
    if attributes is None:
        attributes = _NO_ATTRIBUTES
    elif type(attributes) is not dict or not _plain_attributes(attributes):
        attributes = _attributes(attributes)
    event_id = identifier_field(get("event_id"), "event_id")
    email = text_field(get("email"), "email")
    phone = text_field(get("phone"), "phone")
    cookie_id = text_field(get("cookie_id"), "cookie_id")
    customer_id = get("customer_id")
    anonymous = customer_id is None or customer_id == ""
    if anonymous:
        customer_id = stream_key({"email": email, "phone": phone, "cookie_id": cookie_id})
        if customer_id is None:
            raise InvalidTouchpoint(
                "customer_id",
                "is missing, and no email, phone or cookie_id says whose touchpoint it is",
            )
    return Touchpoint(
        event_id,
        identifier_field(customer_id, "customer_id"),
        channel,
        kind,
        occurred_at,
        _required_text(get("source"), "source"),
        text_field(get("rep_id"), "rep_id"),
        outcome,
        email,
        phone,
        cookie_id,
        attributes,
        anonymous,
    )


_CHANNEL_SET = frozenset((*CHANNELS, OTHER_CHANNEL))
_OUTCOME_SET = frozenset(OUTCOMES)
_seen_types: set[str] = set()


def _channel(value: Any) -> str:
    channel = _required_text(value, "channel").lower()
    if channel not in _CHANNEL_SET:
        raise InvalidTouchpoint("channel", f"{quoted(channel)} is not one of {', '.join(CHANNELS)}")
    return channel


def _type(value: Any) -> str:
    kind = _required_text(value, "type")
    if not _TYPE_PATTERN.match(kind):
        raise InvalidTouchpoint(
            "type", f"{quoted(kind)} is not a lower-case name such as page_view"
        )
    if len(_seen_types) < 10_000:
        _seen_types.add(kind)
    return kind


def _outcome(value: Any) -> str | None:
    outcome = text_field(value, "outcome")
    if outcome is not None:
        outcome = outcome.lower()
        if outcome not in _OUTCOME_SET:
            raise InvalidTouchpoint(
                "outcome", f"{quoted(outcome)} is not one of {', '.join(OUTCOMES)}"
            )
    return outcome


def _plain_attributes(attributes: dict[Any, Any]) -> bool:
    if len(attributes) > MAX_ATTRIBUTES:
        return False
    for key, value in attributes.items():
        if type(key) is not str or type(value) is not str or len(value) > MAX_TEXT_LENGTH:
            return False
        if "\x00" in value or "\x00" in key:
            return False
    return True


def identifier_field(value: Any, name: str) -> str:
    """An id field's text; raises InvalidTouchpoint naming the field if it is not one."""
    if (
        type(value) is str
        and 0 < len(value) <= MAX_ID_LENGTH
        and not value[0].isspace()
        and not value[-1].isspace()
        and "\x00" not in value
    ):
        return value
    if type(value) is str and len(value.strip()) > MAX_ID_LENGTH:
        raise InvalidTouchpoint(name, f"longer than {MAX_ID_LENGTH} characters")
    text = _required_text(value, name)
    if "\x00" in text:
        raise InvalidTouchpoint(name, "contains a NUL character")
    return text


def text_field(value: Any, name: str) -> str | None:
    """An optional text field, stripped (None if empty); raises InvalidTouchpoint naming the
    field if it is not text."""
    if value is None:
        return None
    if type(value) is not str:
        raise InvalidTouchpoint(name, f"expected text, got {kind_of(value)}")
    if len(value) > MAX_TEXT_LENGTH:
        raise InvalidTouchpoint(name, f"longer than {MAX_TEXT_LENGTH} characters")
    if "\x00" in value:  # no database's text holds one
        raise InvalidTouchpoint(name, "contains a NUL character")
    return value.strip() or None


def _required_text(value: Any, name: str) -> str:
    text = text_field(value, name)
    if text is None:
        raise InvalidTouchpoint(name, "is missing or empty")
    return text


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
        raise InvalidTouchpoint(
            "occurred_at",
            f"expected ISO-8601 text or whole milliseconds since 1970, got {kind_of(value)}",
        )
    if ms < EARLIEST_MS:
        seconds = isinstance(value, int) and EARLIEST_MS // 1000 <= ms < EARLIEST_MS
        raise InvalidTouchpoint(
            "occurred_at",
            f"{value} looks like seconds, milliseconds since 1970 expected"
            if seconds
            else f"{_moment(ms)} is before 1990",
        )
    if ms > now_ms + FUTURE_TOLERANCE_MS:
        raise InvalidTouchpoint("occurred_at", f"{_moment(ms)} is in the future")
    return ms


def _moment(ms: int) -> str:
    """A time for a message; one past the year 9999 (microseconds sent as milliseconds,
    say) cannot be a datetime."""
    try:
        return from_millis(ms).isoformat()
    except (ValueError, OverflowError, OSError):
        return f"{ms} ms after 1970 (milliseconds expected)"


def _parse_time_text(text: str) -> int:
    text = text.strip()
    if text.isascii() and text.isdigit() and len(text) <= _MAX_MS_DIGITS:
        return int(text)
    try:
        return millis(datetime.fromisoformat(text))
    except (ValueError, OverflowError):
        raise InvalidTouchpoint(
            "occurred_at", f"{quoted(text)} is neither ISO-8601 nor milliseconds since 1970"
        ) from None


# Milliseconds until the year 9999 take 15 digits; a longer number is no time.
_MAX_MS_DIGITS = 16


def _attribute(key: Any) -> str:
    """An attribute's field name for a message; an odd name is quoted."""
    name = str(key)
    if name.isprintable() and " " not in name and 0 < len(name) <= 40:
        return f"attributes.{name}"
    return f"attributes[{quoted(name)}]"


def quoted(text: str) -> str:
    """A value for a one-line message: quoted, and cut short if long."""
    return repr(text if len(text) <= 40 else f"{text[:40]}...")


def kind_of(value: Any) -> str:
    """What a value is, as a record's author would name it."""
    if value is True or value is False:
        return "true or false"
    if value is None:
        return "null"
    if isinstance(value, float):
        return f"the number {value:g}"
    if isinstance(value, int):
        return "a whole number"
    if isinstance(value, str):
        return "text"
    if isinstance(value, list | tuple):
        return "a list"
    if isinstance(value, Mapping):
        return "an object"
    return type(value).__name__


def _attribute_text(key: Any, item: Any) -> str:
    """An attribute's value as text, numbers and truth values in the form JSON writes them."""
    if isinstance(item, str):
        return item
    if isinstance(item, bool):
        return "true" if item else "false"
    if isinstance(item, int):
        return str(item)
    if isinstance(item, float) and math.isfinite(item):
        return repr(item)
    raise InvalidTouchpoint(_attribute(key), f"expected text, got {kind_of(item)}")


def _attributes(value: Any) -> dict[str, str]:
    if value is None:
        return {}
    if not isinstance(value, Mapping):
        raise InvalidTouchpoint(
            "attributes", f"expected an object of text values, got {kind_of(value)}"
        )
    if len(value) > MAX_ATTRIBUTES:
        raise InvalidTouchpoint("attributes", f"more than {MAX_ATTRIBUTES} entries")
    attributes: dict[str, str] = {}
    for key, item in value.items():
        if item is None:
            continue  # a null attribute is an absent one
        text = _attribute_text(key, item)
        if "\x00" in text or "\x00" in str(key):
            raise InvalidTouchpoint(_attribute(key), "contains a NUL character")
        if len(text) > MAX_TEXT_LENGTH:
            raise InvalidTouchpoint(_attribute(key), f"longer than {MAX_TEXT_LENGTH} characters")
        attributes[str(key)] = text
    return attributes
