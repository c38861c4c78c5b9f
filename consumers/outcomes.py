"""What sales people did with their actions: outcomes from `journey.action-outcomes`, checked
against the actions the engine decided and recorded as events, exactly once, with the offsets
they were consumed up to. An outcome that does not decode, breaks the contract, names no
known action, or names another customer's action is a dead letter, with its reason, on the
outcomes' dead-letter topic; the outcomes around it are recorded."""

from __future__ import annotations

import threading
from collections.abc import Callable, Sequence
from typing import Any

from consumers.action_store import ActionRow, ActionStore
from consumers.bookkeeping import Bookkeeping
from consumers.ingest import IngestTotals, Rejection, TouchpointIngest
from consumers.settings import KafkaSettings
from engine.actions import ActionOutcome, ActionOutcomes, outcome_from_record
from engine.errors import DecodeError, InvalidOutcome
from engine.ledger import BatchWrite
from engine.recording import BatchRecorded, Journeys, OnConflicts, StreamEvent
from schemas.codec import wire_contract
from schemas.registry import SchemaRegistry

OUTCOMES_GROUP = "journey-outcomes"


def outcome_event(outcome: ActionOutcome) -> StreamEvent:
    """The event that records an outcome, once however often it is delivered."""
    return StreamEvent(
        f"outcome:{outcome.event_id}",
        outcome.customer_id,
        ActionOutcomes,
        ActionOutcomes.Reported,
        outcome.fields(),
    )


def check_outcome(actions: ActionStore, outcome: ActionOutcome) -> None:
    """Raises InvalidOutcome unless the outcome is about a known action of its customer."""
    check_against(actions.action(outcome.action_id), outcome)


def check_against(action: ActionRow | None, outcome: ActionOutcome) -> None:
    """Raises InvalidOutcome unless `action`, the one the outcome names, is of its customer."""
    if action is None:
        raise InvalidOutcome("action_id", f"no action {outcome.action_id!r} was decided")
    if action.customer_id != outcome.customer_id:
        raise InvalidOutcome(
            "customer_id",
            f"action {outcome.action_id!r} is for customer {action.customer_id!r}, "
            f"not {outcome.customer_id!r}",
        )


def record_outcomes(
    journeys: Journeys, outcomes: Sequence[ActionOutcome], also: Sequence[BatchWrite] = ()
) -> BatchRecorded:
    events = [outcome_event(outcome) for outcome in outcomes]
    unique = {event.ledger_id for event in events}
    fresh = len(unique - journeys.recorded_ids(list(unique)))
    position = journeys.append(events, also)
    return BatchRecorded(fresh, len(outcomes) - fresh, position)


class OutcomeIngest(TouchpointIngest):
    """A member of the outcomes consumer group: the ingest consumer's guarantees (offsets in
    the database, dead letters kept and published, outages waited out) for outcomes."""

    metrics_name = "outcomes"

    def __init__(
        self,
        journeys: Journeys,
        bookkeeping: Bookkeeping,
        settings: KafkaSettings,
        actions: ActionStore,
        *,
        batch_size: int = 500,
        registry: SchemaRegistry | None = None,
    ) -> None:
        super().__init__(
            journeys,
            bookkeeping,
            settings,
            batch_size=batch_size,
            client_id="journey-outcomes",
            registry=registry,
        )
        self._actions = actions
        self._decoder = wire_contract("ActionOutcome").reading_registry(registry)
        self._topic = settings.outcomes_topic
        self._dead_letter_topic = settings.outcomes_dead_letter_topic
        self._group = OUTCOMES_GROUP
        self._stop = threading.Event()

    def run(
        self, stop: threading.Event, on_batch: Callable[[IngestTotals], None] | None = None
    ) -> IngestTotals:
        self._stop = stop  # for looking actions up, which waits out an outage as writes do
        return super().run(stop, on_batch)

    def _triage(self, value: bytes | None, now_ms: int) -> Any:
        if value is None:
            return Rejection("undecodable", "the record has no value")
        if len(value) > self._settings.max_record_bytes:
            return Rejection("oversized", f"{len(value)} bytes is too large for an outcome")
        try:
            outcome = outcome_from_record(self._decoder.decode(value), now_ms=now_ms)
        except DecodeError as exc:
            return Rejection("undecodable", str(exc))
        except InvalidOutcome as exc:
            return Rejection("invalid", str(exc))
        action = self._retrying(
            lambda: self._actions.action(outcome.action_id), self._stop, "look up an action"
        )
        try:
            check_against(action, outcome)
        except InvalidOutcome as exc:
            reason = "unknown_action" if exc.field == "action_id" else "wrong_customer"
            return Rejection(reason, str(exc))
        return outcome

    def _write(
        self, good: list[Any], also: Sequence[BatchWrite], on_conflicts: OnConflicts
    ) -> BatchRecorded:
        return record_outcomes(self._journeys, good, also)  # outcomes have no event_id
