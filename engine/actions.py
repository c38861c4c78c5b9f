"""Next actions and what sales people did with them, as events.

The decider records each decision as a `CustomerActions.Decided` event, with its explanation;
sales tools report outcomes, recorded as `ActionOutcomes.Reported` events. Each customer has
one stream of each, apart from their touchpoints, so that the decider, the outcome consumer
and ingest never write to the same stream."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime
from functools import lru_cache
from typing import Any, NamedTuple
from uuid import NAMESPACE_URL, UUID, uuid5

from eventsourcing.domain import Aggregate

from engine.errors import InvalidOutcome, InvalidTouchpoint
from engine.touchpoints import (
    EARLIEST_MS,
    FUTURE_TOLERANCE_MS,
    identifier_field,
    kind_of,
    millis,
    quoted,
    text_field,
)

_ACTIONS_NAMESPACE = uuid5(NAMESPACE_URL, "urn:journey-engine:actions")
_OUTCOMES_NAMESPACE = uuid5(NAMESPACE_URL, "urn:journey-engine:action-outcomes")
_ACTION_ID_NAMESPACE = uuid5(NAMESPACE_URL, "urn:journey-engine:action")

# What sales people report: accepted (will do), done, dismissed (will not do), snoozed (later).
STATUSES = ("accepted", "done", "dismissed", "snoozed")

# How the journey itself ends an open action: a more important one took its place, its window
# passed with nothing done, or what it answered went away (the friction closed, the customer
# opted out or went dormant).
SUPERSEDED, EXPIRED, CANCELLED = "superseded", "expired", "cancelled"
ENDINGS = (SUPERSEDED, EXPIRED, CANCELLED)


@lru_cache(maxsize=65_536)  # a customer's open triggers are looked at again at each touchpoint
def action_id(customer_id: str, rule_id: str, trigger: str) -> str:
    """An action's id: the same customer, rule and triggering event always give the same id,
    so a retry or a rebuild never makes a second action."""
    return str(uuid5(_ACTION_ID_NAMESPACE, f"{customer_id}\x1f{rule_id}\x1f{trigger}"))


class CustomerActions(Aggregate):
    """The next actions decided for one customer."""

    class Started(Aggregate.Created):
        customer_id: str

    class Decided(Aggregate.Event):
        """An action decided, as published (`action`, the NextAction record with times in
        milliseconds), and why: the rule, the events behind it, the score parts and the
        candidates it beat (`explanation`)."""

        action_id: str
        customer_id: str
        action: dict[str, Any]
        explanation: dict[str, Any]

    class Ended(Aggregate.Event):
        """The journey ended an open action (`status`: superseded, expired or cancelled), for
        the reason `why` in words, at `at` (event time); `replaced_by` names the action that
        superseded it. The NextAction record published again is the decided one with these."""

        action_id: str
        customer_id: str
        status: str
        why: str
        at: int
        replaced_by: str | None

    @staticmethod
    def create_id(customer_id: str) -> UUID:
        return uuid5(_ACTIONS_NAMESPACE, customer_id)

    def __init__(self, customer_id: str) -> None:
        self.customer_id = customer_id


class ActionOutcomes(Aggregate):
    """What sales people reported doing with one customer's actions."""

    class Started(Aggregate.Created):
        customer_id: str

    class Reported(Aggregate.Event):
        event_id: str
        action_id: str
        customer_id: str
        status: str
        reason: str | None
        snoozed_until: int | None
        rep_id: str | None
        occurred_at: int

    @staticmethod
    def create_id(customer_id: str) -> UUID:
        return uuid5(_OUTCOMES_NAMESPACE, customer_id)

    def __init__(self, customer_id: str) -> None:
        self.customer_id = customer_id


class ActionOutcome(NamedTuple):
    """A validated outcome. Times are milliseconds since the epoch, UTC."""

    event_id: str
    action_id: str
    customer_id: str
    status: str
    reason: str | None
    snoozed_until: int | None
    rep_id: str | None
    occurred_at: int

    def fields(self) -> dict[str, Any]:
        return self._asdict()


def outcome_from_record(record: Mapping[str, Any], *, now_ms: int) -> ActionOutcome:
    """An outcome from a decoded ActionOutcome record (Avro or JSON). Raises InvalidOutcome
    naming the first field that is wrong."""
    status = record.get("status")
    if status not in STATUSES:
        shown = quoted(status) if isinstance(status, str) else kind_of(status)
        raise InvalidOutcome("status", f"{shown} is not one of {', '.join(STATUSES)}")
    snoozed_until = _time(record.get("snoozed_until"), "snoozed_until", optional=True)
    if status == "snoozed" and snoozed_until is None:
        raise InvalidOutcome("snoozed_until", "a snoozed action needs the time it comes back")
    occurred_at = _time(record.get("occurred_at"), "occurred_at")
    assert occurred_at is not None
    if occurred_at > now_ms + FUTURE_TOLERANCE_MS:
        raise InvalidOutcome("occurred_at", "is in the future")
    return ActionOutcome(
        _identifier(record.get("event_id"), "event_id"),
        _identifier(record.get("action_id"), "action_id"),
        _identifier(record.get("customer_id"), "customer_id"),
        status,
        _text(record.get("reason"), "reason"),
        snoozed_until,
        _text(record.get("rep_id"), "rep_id"),
        occurred_at,
    )


def _identifier(value: Any, name: str) -> str:
    try:
        return identifier_field(value, name)
    except InvalidTouchpoint as exc:
        raise InvalidOutcome(exc.field, exc.problem) from None


def _text(value: Any, name: str) -> str | None:
    try:
        return text_field(value, name)
    except InvalidTouchpoint as exc:
        raise InvalidOutcome(exc.field, exc.problem) from None


def _time(value: Any, name: str, *, optional: bool = False) -> int | None:
    if value is None and optional:
        return None
    if hasattr(value, "timestamp"):  # a datetime, as fastavro reads timestamp-millis
        value = millis(value)
    elif isinstance(value, str):
        try:
            value = millis(datetime.fromisoformat(value))
        except ValueError:
            raise InvalidOutcome(name, f"{quoted(value)} is not an ISO 8601 time") from None
    if not isinstance(value, int) or isinstance(value, bool):
        raise InvalidOutcome(name, "is missing or not a time")
    if value < EARLIEST_MS:
        raise InvalidOutcome(name, "is before 1990: milliseconds since the epoch expected")
    return value
