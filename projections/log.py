"""Reading the journey log for folds: the stored states of recorded touchpoints, decoded
straight to plain data, without building an event object per row."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import replace
from typing import Any, TypedDict, TypeVar, cast

import msgspec
import orjson
from eventsourcing.application import Application
from eventsourcing.persistence import JSONTranscoder
from eventsourcing.utils import get_topic

from engine.actions import ActionOutcomes
from engine.errors import ConfigurationError
from engine.journeys import (
    ERASURES_STREAM,
    CustomerJourney,
    Erasures,
    IdentityDecisions,
    JourneyClock,
    TouchpointState,
    stream_id,
)
from engine.ledger import Partition, TouchpointLedger

TOUCHPOINT_TOPIC = get_topic(CustomerJourney.TouchpointRecorded)
TICK_TOPIC = get_topic(JourneyClock.Ticked)
OUTCOME_TOPIC = get_topic(ActionOutcomes.Reported)
IDENTITY_TOPIC = get_topic(IdentityDecisions.Decided)
ERASURE_TOPIC = get_topic(Erasures.Forgotten)
_FOLDED_TOPICS = (TOUCHPOINT_TOPIC, TICK_TOPIC, IDENTITY_TOPIC)
# The decider also reads what sales people did with its actions.
DECIDER_TOPICS = (*_FOLDED_TOPICS, OUTCOME_TOPIC)


T = TypeVar("T")


class Tick(TypedDict):
    """The stored state of a clock event, as replays read it."""

    at: int


class Folded(msgspec.Struct, gc=False):
    """What a fold reads of a stored touchpoint, clock event or people's decision about who
    is who, decoded without the rest. A clock event has no `event_id`; its time is `at`. An
    `anonymous` touchpoint came without a customer id: its `customer_id` is the key made
    from its identifiers. A decision has a `decision` (see engine.journeys.IdentityDecisions)."""

    event_id: str | None = None
    customer_id: str = ""
    occurred_at: int = 0
    type: str = ""
    channel: str = ""
    outcome: str | None = None
    rep_id: str | None = None
    attributes: dict[str, str] = {}
    identifiers: dict[str, str] = {}
    anonymous: bool = False
    at: int = 0
    decision: str = ""
    merge_id: str = ""
    a: str = ""
    b: str = ""
    by: str = ""
    # A decision's reason; also an outcome's, which may have none, as the decider reads them.
    reason: str | None = ""


class DeciderEntry(Folded, gc=False):
    """What the decider reads of a touchpoint, a clock event, a people's decision or an
    outcome, decoded without the rest: an outcome has an `action_id` (and an `event_id` too,
    and its `reason`)."""

    action_id: str | None = None
    status: str = ""
    snoozed_until: int | None = None


_decode_folded = msgspec.json.Decoder(Folded).decode
_decode_decider_entry = msgspec.json.Decoder(DeciderEntry).decode


class JourneyLog:
    def __init__(self, app: Application[Any]) -> None:
        if not isinstance(app.recorder, TouchpointLedger):
            raise ConfigurationError(f"cannot replay from {type(app.recorder).__name__}")
        self._recorder = app.recorder
        self._max = app.recorder.max_notification_id
        mapper = app.mapper
        # The fold needs none of the types the transcoder revives (only the recording
        # timestamp is one), so data in the library's JSON format is read as plain JSON.
        plain_json = isinstance(mapper.transcoder, JSONTranscoder)
        self._decode = orjson.loads if plain_json else mapper.transcoder.decode
        self._compressor = mapper.compressor
        self._cipher = mapper.cipher
        plain = plain_json and not (self._cipher or self._compressor)
        self._folded: Callable[[bytes], Folded] = _decode_folded if plain else self._folded_from_any
        self._entry: Callable[[bytes], DeciderEntry] = (
            _decode_decider_entry if plain else self._entry_from_any
        )

    def head(self) -> int:
        """The position of the last event recorded so far."""
        return self._max() or 0

    def entries(
        self,
        after: int,
        limit: int,
        stop: int | None = None,
        topics: Sequence[str] = _FOLDED_TOPICS,
    ) -> list[tuple[int, TouchpointState | Tick]]:
        """Up to `limit` recorded touchpoints and clock events after a position, with their
        positions. A touchpoint has an `event_id`; a clock event has not. With
        `topics=DECIDER_TOPICS`, outcomes too: they have an `action_id`."""
        rows = self._recorder.select_states(after, limit, topics, stop)
        decode = self._decode
        if self._cipher or self._compressor:
            opened = self._open
            decoded = [(position, decode(opened(state))) for position, state in rows]
        else:
            decoded = [(position, decode(state)) for position, state in rows]
        return cast(list[tuple[int, TouchpointState | Tick]], decoded)

    def touchpoints(self, after: int, limit: int) -> list[tuple[int, TouchpointState]]:
        """`entries` that are recorded touchpoints, and nothing else."""
        found = self.entries(after, limit, topics=(TOUCHPOINT_TOPIC,))
        return cast(list[tuple[int, TouchpointState]], found)

    def decider_entries(
        self, after: int, limit: int, stop: int | None = None
    ) -> list[tuple[int, DeciderEntry]]:
        """Up to `limit` recorded touchpoints, clock events, people's decisions and outcomes
        after a position, with their positions, reduced to what the decider reads."""
        rows = self._recorder.select_states(after, limit, DECIDER_TOPICS, stop)
        entry = self._entry
        return [(position, entry(state)) for position, state in rows]

    def folded(
        self, after: int, limit: int, stop: int | None = None, partition: Partition | None = None
    ) -> list[tuple[int, Folded]]:
        """`entries`, reduced to what a fold reads; with a partition, only the touchpoints of
        its customers, and every clock event."""
        everyone = (TICK_TOPIC, IDENTITY_TOPIC)  # time and who is who reach every share
        if partition is not None and not set(everyone) <= set(partition.everywhere):
            missing = tuple(t for t in everyone if t not in partition.everywhere)
            partition = replace(partition, everywhere=(*partition.everywhere, *missing))
        rows = self._recorder.select_states(after, limit, _FOLDED_TOPICS, stop, partition)
        fold = self._folded
        return [(position, fold(state)) for position, state in rows]

    def folded_streams(self, customer_ids: Sequence[str]) -> dict[str, list[Folded]]:
        """These customers' recorded touchpoints, reduced to what a fold reads, each
        customer's in the order they arrived; customers with none are left out."""
        return self._streams(customer_ids, self._folded)

    def folded_entries(self, stream_keys: Sequence[str]) -> dict[str, list[tuple[int, Folded]]]:
        """`folded_streams`, each touchpoint with its position in the log."""
        streams = {stream_id(key): key for key in stream_keys}
        stored = self._recorder.select_stream_entries(list(streams), TOUCHPOINT_TOPIC)
        fold = self._folded
        return {
            streams[stream]: [(position, fold(state)) for position, state in entries]
            for stream, entries in stored.items()
        }

    def touchpoints_of(
        self, keys: Sequence[str], before: int | None = None
    ) -> list[TouchpointState]:
        """The touchpoints recorded under any of these keys (a person's), in log order; with
        `before`, those recorded before that position."""
        streams = {stream_id(key): key for key in keys}
        stored = self._recorder.select_stream_entries(list(streams), TOUCHPOINT_TOPIC)
        merged = sorted(entry for entries in stored.values() for entry in entries)
        return [
            self._touchpoint(state)
            for position, state in merged
            if before is None or position < before
        ]

    def erasures(self) -> list[dict[str, Any]]:
        """The receipts of people's erasures, oldest first."""
        sid = Erasures.create_id(ERASURES_STREAM)
        stored = self._recorder.select_stream_states([sid], ERASURE_TOPIC).get(sid, [])
        receipts = [self._decode(self._open(state)) for state in stored]
        for receipt in receipts:
            receipt.pop("timestamp", None)
        return receipts

    def stream(self, customer_id: str) -> list[TouchpointState]:
        """A customer's recorded touchpoints, in the order they arrived."""
        return self._streams([customer_id], self._touchpoint).get(customer_id, [])

    def _streams(
        self, customer_ids: Sequence[str], decode: Callable[[bytes], T]
    ) -> dict[str, list[T]]:
        customers = {stream_id(customer_id): customer_id for customer_id in customer_ids}
        stored = self._recorder.select_stream_states(list(customers), TOUCHPOINT_TOPIC)
        return {
            customers[stream]: [decode(state) for state in states]
            for stream, states in stored.items()
        }

    def _touchpoint(self, state: bytes) -> TouchpointState:
        return cast(TouchpointState, self._decode(self._open(state)))

    def _folded_from_any(self, state: bytes) -> Folded:
        return msgspec.convert(self._decode(self._open(state)), Folded, strict=False)

    def _entry_from_any(self, state: bytes) -> DeciderEntry:
        return msgspec.convert(self._decode(self._open(state)), DeciderEntry, strict=False)

    def _open(self, state: bytes) -> bytes:
        if self._cipher:
            state = self._cipher.decrypt(state)
        if self._compressor:
            state = self._compressor.decompress(state)
        return state
