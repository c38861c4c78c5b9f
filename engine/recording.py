"""Recording touchpoints: many customers, one transaction, each touchpoint once."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, NamedTuple
from uuid import UUID

from eventsourcing.application import Application
from eventsourcing.domain import Aggregate
from eventsourcing.persistence import IntegrityError, Mapper, StoredEvent, Transcoder
from eventsourcing.utils import get_topic

from engine.conflicts import Conflict, RecordedContents
from engine.errors import ConfigurationError, UnknownCustomer
from engine.journeys import CLOCK_ID, CustomerJourney, JourneyClock, stream_id
from engine.ledger import BatchWrite, TouchpointLedger
from engine.sealing import CHECK, SEALED, Sealing, Unsealed
from engine.touchpoints import Touchpoint
from engine.transcoding import OrjsonTranscoder

Clock = Callable[[], datetime]
# The writes to commit with a batch for the conflicts found in it.
OnConflicts = Callable[[Sequence[Conflict]], Sequence[BatchWrite]]

# Where `TouchpointEncoder.seal` places the sealed fields in a stored state (the transcoder's
# JSON: base64 texts need no escaping).
_TIMESTAMP = b',"timestamp":'
_CHECK = b',"%s":"' % CHECK.encode()
_SEALED = b',"%s":"' % SEALED.encode()
# How many streams' last versions are remembered between batches (about 100 bytes each).
_MAX_KNOWN_STREAMS = 500_000


@dataclass(frozen=True, slots=True)
class BatchRecorded:
    """What one call to `Journeys.record` did. A touchpoint recorded before, exactly as it is,
    is a duplicate, and skipped; one whose `event_id` was recorded with other content is a
    conflict, and refused."""

    recorded: int
    duplicates: int
    last_position: int | None
    conflicts: tuple[Conflict, ...] = ()


class Journeys(Application[UUID]):
    """The event store of customer journeys."""

    name = "Journeys"

    def __init__(self, env: Mapping[str, str] | None = None, clock: Clock | None = None) -> None:
        super().__init__(env)
        if not isinstance(self.recorder, TouchpointLedger):
            raise ConfigurationError(
                f"the event store's recorder {type(self.recorder).__name__} "
                "cannot record touchpoints idempotently"
            )
        self._ledger: TouchpointLedger = self.recorder
        self._clock = clock or (lambda: datetime.now(UTC))
        self._versions: dict[str, int] = {}
        self._expect_fresh = True  # the last batch held no touchpoint recorded before
        # The streams of the customers the last batch's lookup did not know were all new.
        self._expect_new_streams = False
        # The last version of the streams `append` wrote or looked up, and whether the last
        # append found its ledger ids unrecorded and the streams it did not know new.
        self._appended: dict[UUID, int] = {}
        self._append_expects_new = False
        self._streams: dict[str, UUID | str] = {}
        self._encoder = TouchpointEncoder(self.mapper, self._clock)
        self._contents = RecordedContents(
            lambda streams: self._ledger.select_stream_states(
                streams, self._encoder.recorded_topic
            ),
            self._encoder.decode,
        )

    def construct_transcoder(self) -> Transcoder:
        if self.env.get("TRANSCODER_TOPIC"):
            return super().construct_transcoder()
        transcoder = OrjsonTranscoder()
        self.register_transcodings(transcoder)
        return transcoder

    @property
    def ledger(self) -> TouchpointLedger:
        return self._ledger

    def seal_with(self, sealing: Sealing) -> None:
        """Seals the personal data of the touchpoints recorded from now on."""
        self._encoder.sealing = sealing

    def encoder(self) -> TouchpointEncoder:
        """Encodes touchpoints for `record_encoded`; it may run in another process."""
        return self._encoder

    def record(
        self,
        touchpoints: Iterable[Touchpoint],
        also: Sequence[BatchWrite] = (),
        *,
        all_or_none: bool = False,
        on_conflicts: OnConflicts | None = None,
    ) -> BatchRecorded:
        """Records a batch in one transaction. A touchpoint already recorded, or repeated within
        the batch, is skipped; one whose `event_id` was taken by other content is refused
        (see `BatchRecorded.conflicts`); with `all_or_none`, a conflict refuses the whole batch.
        Safe to retry: a conflicting writer only makes it look again. The writes in `also`
        commit with the batch, even an empty one, and so do those `on_conflicts` returns for
        the conflicts found (the dead letters they make, say)."""
        return self.record_encoded(
            self._encoder.encode(touchpoints),
            also,
            all_or_none=all_or_none,
            on_conflicts=on_conflicts,
        )

    def record_encoded(
        self,
        batch: EncodedBatch,
        also: Sequence[BatchWrite] = (),
        *,
        all_or_none: bool = False,
        on_conflicts: OnConflicts | None = None,
    ) -> BatchRecorded:
        """`record` for touchpoints already encoded by this application's encoder."""
        if batch.unsealed:
            self._encoder.seal(batch)
        event_ids = batch.event_ids
        repeats: list[int] = []
        if len(set(event_ids)) == len(event_ids):
            unique = dict(zip(event_ids, range(len(event_ids)), strict=True))
        else:  # the first of each id stands
            unique = {}
            for index, event_id in enumerate(event_ids):
                if unique.setdefault(event_id, index) != index:
                    repeats.append(index)
        # While batches hold only new touchpoints, the ledger is not asked first: its unique
        # key refuses a touchpoint recorded before, and the batch is then recorded again,
        # asking. So is every batch after one that held a touchpoint recorded before. Alike,
        # while the customers this process did not know turn out to be new, their streams'
        # versions are not looked up: a stream that did exist refuses the batch.
        fresh_ids, new_streams = self._expect_fresh, self._expect_new_streams
        attempts = 3 if fresh_ids or new_streams else 2
        for attempt in range(1, attempts + 1):
            guessing = attempt == 1
            try:
                result = self._record_new(
                    batch,
                    unique,
                    repeats,
                    also,
                    ask_ledger=not (guessing and fresh_ids),
                    guess_streams=guessing and new_streams,
                    all_or_none=all_or_none,
                    on_conflicts=on_conflicts,
                )
            except IntegrityError:
                # A touchpoint was recorded before, or another writer appended to one of these
                # streams, or one of them was not new: forget what we believed.
                self._versions.clear()
                self._expect_new_streams = False
                if attempt == attempts:
                    raise
                continue
            self._expect_fresh = result.duplicates == len(batch) - len(unique)
            return result
        raise AssertionError("unreachable")

    def _record_new(
        self,
        batch: EncodedBatch,
        unique: dict[str, int],
        repeats: list[int],
        also: Sequence[BatchWrite],
        *,
        ask_ledger: bool,
        guess_streams: bool,
        all_or_none: bool,
        on_conflicts: OnConflicts | None,
    ) -> BatchRecorded:
        known = self._ledger.recorded_event_ids(list(unique)) if unique and ask_ledger else set()
        conflicts: tuple[Conflict, ...] = ()
        if known or repeats:
            conflicts = tuple(
                self._contents.conflicts(
                    batch.event_ids,
                    batch.customer_ids,
                    batch.states,
                    firsts=unique,
                    repeats=repeats,
                    known=known,
                )
            )
        if conflicts and all_or_none:
            return BatchRecorded(0, 0, None, conflicts)
        if conflicts and on_conflicts is not None:
            also = [*also, *on_conflicts(conflicts)]
        fresh = [index for event_id, index in unique.items() if event_id not in known]
        duplicates = len(batch.event_ids) - len(fresh) - len(conflicts)
        if not fresh:
            if also:
                self.recorder.insert_events([], touchpoint_ids=[], also=also)
            return BatchRecorded(0, duplicates, None, conflicts)
        customer_ids, states = batch.customer_ids, batch.states
        # Keyed by customer id: str hashes are cached, UUID hashes are computed in Python.
        self._learn_versions({customer_ids[index] for index in fresh}, guess=guess_streams)
        versions, streams = self._versions, self._streams
        started, now = self._encoder.started, self._clock()
        recorded_topic = self._encoder.recorded_topic
        stored: list[StoredEvent] = []
        next_versions: dict[str, int] = {}
        for index in fresh:
            customer_id = customer_ids[index]
            version = next_versions.get(customer_id) or versions[customer_id]
            if version == 0:
                stored.append(started(streams[customer_id], customer_id, now))
                version = 1
            version += 1
            stored.append(StoredEvent(streams[customer_id], version, recorded_topic, states[index]))
            next_versions[customer_id] = version
        event_ids = batch.event_ids
        positions = self.recorder.insert_events(
            stored, touchpoint_ids=[event_ids[index] for index in fresh], also=also
        )
        versions.update(next_versions)
        if self._contents.keeps_any:
            for index in fresh:
                self._contents.recorded(customer_ids[index], event_ids[index], states[index])
        return BatchRecorded(
            len(fresh), duplicates, positions[-1] if positions else None, conflicts
        )

    def _learn_versions(self, customer_ids: set[str], *, guess: bool = False) -> None:
        """Looks up the last version of the streams this process does not know yet; with
        `guess`, takes them to be new instead."""
        if len(self._versions) + len(customer_ids) > _MAX_KNOWN_STREAMS:
            self._versions.clear()
            self._streams.clear()
            self._expect_new_streams = False  # those forgotten are not new
        unknown = {
            customer_id: stream_id(customer_id)
            for customer_id in customer_ids
            if customer_id not in self._versions
        }
        if not unknown:
            return
        found = {} if guess else self._ledger.stream_versions(list(unknown.values()))
        if not guess:
            self._expect_new_streams = not found
        for customer_id, sid in unknown.items():
            self._streams[customer_id] = self._ledger.stream_key(sid)
            self._versions[customer_id] = found.get(sid, 0)

    def tick(self, at: int) -> bool:
        """Appends a clock event: the engine's time has reached `at` (milliseconds, UTC).
        Nothing is appended unless it moves the clock forward; returns whether it did."""
        for attempt in (1, 2):
            version, last = self.clock_time()
            if last is not None and at <= last:
                return False
            now = self._clock()
            events: list[Any] = []
            if version == 0:
                events.append(
                    JourneyClock.Started(
                        originator_topic=get_topic(JourneyClock),
                        originator_id=CLOCK_ID,
                        originator_version=1,
                        timestamp=now,
                    )
                )
                version = 1
            ticked: Any = JourneyClock.Ticked  # its fields come from the class body
            events.append(
                ticked(originator_id=CLOCK_ID, originator_version=version + 1, timestamp=now, at=at)
            )
            try:
                self.recorder.insert_events([self.mapper.to_stored_event(e) for e in events])
            except IntegrityError:
                if attempt == 2:
                    raise  # another clock ticked at the same moment, twice
                continue
            return True
        raise AssertionError("unreachable")

    def append(self, events: Sequence[StreamEvent], also: Sequence[BatchWrite] = ()) -> int | None:
        """Appends events to their customers' streams (decisions, outcomes) in one
        transaction, each (by its ledger id) once; the writes in `also` commit with them.
        Returns the log position of the last event appended, if any."""
        unique = {event.ledger_id: event for event in events}
        # As `record` does: while appends find their ledger ids unrecorded and the streams
        # this process did not know new, neither is asked; an append that guessed wrong is
        # refused by the ledger's or the stream's unique key, and made again, asking.
        asking = (False, True, True) if self._append_expects_new else (True, True)
        for attempt, ask in enumerate(asking, 1):
            known = self._ledger.recorded_event_ids(list(unique)) if unique and ask else set()
            fresh = [event for ledger_id, event in unique.items() if ledger_id not in known]
            stream_ids = [event.stream_id for event in fresh]  # a uuid5 each: made once
            streams = set(stream_ids)
            if ask:
                looked_up = self._ledger.stream_versions(list(streams)) if streams else {}
                if unique:
                    self._append_expects_new = not known and all(
                        stream in self._appended or stream not in looked_up for stream in streams
                    )
                versions = {stream: looked_up.get(stream, 0) for stream in streams}
            else:
                versions = {stream: self._appended.get(stream, 0) for stream in streams}
            now = self._clock()
            built: list[Any] = []
            for event, stream in zip(fresh, stream_ids, strict=True):
                version = versions.get(stream, 0)
                if version == 0:
                    started: Any = event.aggregate.Started  # type: ignore[attr-defined]
                    built.append(
                        started(
                            originator_topic=get_topic(event.aggregate),
                            originator_id=stream,
                            originator_version=1,
                            timestamp=now,
                            customer_id=event.customer_id,
                        )
                    )
                    version = 1
                versions[stream] = version + 1
                built.append(
                    event.kind(
                        originator_id=stream,
                        originator_version=version + 1,
                        timestamp=now,
                        **event.fields,
                    )
                )
            try:
                positions = self.recorder.insert_events(
                    [self.mapper.to_stored_event(e) for e in built],
                    touchpoint_ids=[event.ledger_id for event in fresh],
                    also=also,
                )
            except IntegrityError:
                self._appended.clear()
                self._append_expects_new = False
                if attempt == len(asking):
                    raise  # another writer appended to one of these streams, twice
                continue
            if len(self._appended) + len(versions) > _MAX_KNOWN_STREAMS:
                self._appended.clear()
                self._append_expects_new = False  # those forgotten are not new
            self._appended.update(versions)
            return positions[-1] if positions else None
        raise AssertionError("unreachable")

    def recorded_count(self) -> int:
        """How many touchpoints are recorded."""
        return self._ledger.recorded_count()

    def recorded_ids(self, ledger_ids: Sequence[str]) -> set[str]:
        """Those of the ledger ids (touchpoints' event ids, `append`'s ids) already recorded."""
        return self._ledger.recorded_event_ids(ledger_ids) if ledger_ids else set()

    def clock_time(self) -> tuple[int, int | None]:
        """The clock stream's last version (0: no tick yet) and the time of its last tick."""
        stored = self.recorder.select_events(CLOCK_ID, desc=True, limit=1)
        if not stored:
            return 0, None
        event = self.mapper.to_domain_event(stored[0])
        return stored[0].originator_version, getattr(event, "at", None)

    def journey(self, customer_id: str) -> CustomerJourney:
        """A customer's journey stream, rebuilt from the store."""
        sid = stream_id(customer_id)
        if not self._ledger.stream_versions([sid]):
            raise UnknownCustomer(customer_id)
        journey: CustomerJourney = self.repository.get(sid)
        return journey


class StreamEvent(NamedTuple):
    """An event for `Journeys.append`: which aggregate's stream, the event class, and its
    fields. `ledger_id` is what makes it recorded once."""

    ledger_id: str
    customer_id: str
    aggregate: type[Aggregate]
    kind: Any  # an event class of the aggregate
    fields: dict[str, Any]

    @property
    def stream_id(self) -> UUID:
        stream: UUID = self.aggregate.create_id(self.customer_id)
        return stream


@dataclass(slots=True)
class EncodedBatch:
    """Touchpoints in the stored form of their TouchpointRecorded events, a list per field:
    a batch of them crosses to another process many times faster than a tuple per
    touchpoint."""

    event_ids: list[str]
    customer_ids: list[str]
    states: list[bytes]
    # The touchpoints whose personal data the recording process seals (`Sealing.seal_later`):
    # their index in the batch, and their personal data as sent.
    unsealed: list[tuple[int, Unsealed]] = field(default_factory=list)

    def __len__(self) -> int:
        return len(self.event_ids)

    def extend(self, more: EncodedBatch) -> None:
        offset = len(self.event_ids)
        self.event_ids.extend(more.event_ids)
        self.customer_ids.extend(more.customer_ids)
        self.states.extend(more.states)
        self.unsealed.extend((offset + index, data) for index, data in more.unsealed)


class TouchpointEncoder:
    """Encodes journey events straight from touchpoints into their stored form, exactly as the
    library's mapper would encode the event objects (and reads them back), without building
    the objects first: at many thousands a second, that construction costs more than the rest
    of recording a touchpoint."""

    def __init__(self, mapper: Mapper[UUID], clock: Clock) -> None:
        self.sealing: Sealing | None = None
        self._transcoder = mapper.transcoder
        self._compressor = mapper.compressor
        self._cipher = mapper.cipher
        self._clock = clock
        self._started_topic = get_topic(CustomerJourney.Started)
        self.recorded_topic = get_topic(CustomerJourney.TouchpointRecorded)
        self._aggregate_topic = get_topic(CustomerJourney)

    def started(self, sid: UUID | str, customer_id: str, now: datetime) -> StoredEvent:
        state = {
            "timestamp": now,
            "originator_topic": self._aggregate_topic,
            "customer_id": customer_id,
        }
        return StoredEvent(sid, 1, self._started_topic, self._encode(state))

    def encode(
        self, touchpoints: Iterable[Touchpoint], *, seal_later: bool = False
    ) -> EncodedBatch:
        """The touchpoints' events, encoded. With `seal_later`, their personal data is
        sealed by the process that records them (`record_encoded`), when it can be: that
        shares the work of sealing between a process that reads a file and one that records."""
        now = self._clock()
        encode = self._encode
        batch = EncodedBatch([], [], [])
        add_id, add_customer, add_state = (
            batch.event_ids.append,
            batch.customer_ids.append,
            batch.states.append,
        )
        sealing = self.sealing
        if sealing is not None and seal_later and not (self._compressor or self._cipher):
            add_unsealed = batch.unsealed.append
            for index, tp in enumerate(touchpoints):
                state, unsealed = sealing.unsealed_state(tp, now)
                add_id(tp.event_id)
                add_customer(state["customer_id"])
                add_state(encode(state))
                if unsealed is not None:
                    add_unsealed((index, unsealed))
            return batch
        if sealing is not None:
            touchpoints = list(touchpoints)
            sealing.prepare(touchpoints)
            for tp in touchpoints:
                state = sealing.state(tp, now)
                add_id(tp.event_id)
                add_customer(state["customer_id"])
                add_state(encode(state))
            return batch
        for tp in touchpoints:
            add_id(tp.event_id)
            add_customer(tp.customer_id)
            add_state(encode(_event_state(tp, now)))
        return batch

    def seal(self, batch: EncodedBatch) -> None:
        """Seals, in place, the personal data of a batch encoded with `seal_later`."""
        if self.sealing is None:
            raise ConfigurationError(
                "touchpoints encoded to be sealed reached a store that does not seal them"
            )
        sealing, states, keys = self.sealing, batch.states, batch.customer_ids
        sealing.prepare_keys(keys[index] for index, _ in batch.unsealed)
        for index, unsealed in batch.unsealed:
            check, sealed = sealing.sealed(keys[index], unsealed)
            # The check goes before the recording time and the sealed text last, as `encode`
            # places them: `_encode` of the whole state gives these very bytes.
            state = states[index]
            at = state.rindex(_TIMESTAMP)
            states[index] = b"".join(
                (state[:at], _CHECK, check.encode(), b'"', state[at:-1], _SEALED,
                 sealed.encode(), b'"}')
            )  # fmt: skip
        batch.unsealed = []

    def encode_state(self, state: dict[str, Any]) -> bytes:
        """A state in its stored form (one `decode` read back, say)."""
        return self._encode(state)

    def _encode(self, state: dict[str, Any]) -> bytes:
        data = self._transcoder.encode(state)
        if self._compressor:
            data = self._compressor.compress(data)
        if self._cipher:
            data = self._cipher.encrypt(data)
        return data

    def decode(self, data: bytes) -> dict[str, Any]:
        """A stored state back as a dict of its fields."""
        if self._cipher:
            data = self._cipher.decrypt(data)
        if self._compressor:
            data = self._compressor.decompress(data)
        state: dict[str, Any] = self._transcoder.decode(data)
        return state


def _event_state(tp: Touchpoint, timestamp: datetime) -> dict[str, Any]:
    """`touchpoint_fields(tp, timestamp)`, inlined for speed: the state is encoded at once, so
    the attributes need no copy unless they are not a plain dict."""
    identifiers = {}
    if tp.email:
        identifiers["email"] = tp.email
    if tp.phone:
        identifiers["phone"] = tp.phone
    if tp.cookie_id:
        identifiers["cookie_id"] = tp.cookie_id
    attributes = tp.attributes
    state = {
        "event_id": tp.event_id,
        "customer_id": tp.customer_id,
        "channel": tp.channel,
        "type": tp.type,
        "occurred_at": tp.occurred_at,
        "source": tp.source,
        "rep_id": tp.rep_id,
        "outcome": tp.outcome,
        "attributes": attributes if type(attributes) is dict else dict(attributes),
        "identifiers": identifiers,
        "timestamp": timestamp,
    }
    if tp.anonymous:  # only then: the states of other touchpoints stay as they were
        state["anonymous"] = True
    return state
