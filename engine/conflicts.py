"""Telling a repeated touchpoint from a conflicting one: an `event_id` recorded before names one
touchpoint, and the same id arriving with other content is refused, never taken for a repeat.

Repeats are common (a file ingested again, a batch retried) and conflicts rare, so a repeat is
recognised without decoding anything: by a hash of its stored form up to the recording time,
kept for the streams read. Only when those differ are the two decoded and compared field by
field, so that attributes given in another order are still the same touchpoint."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any
from uuid import UUID

from engine.journeys import stream_id

# What makes a touchpoint the one it is: every field it was recorded with.
_FIELDS = ("customer_id", "channel", "type", "occurred_at", "source", "rep_id", "outcome",
           "attributes", "identifiers", "personal_data")  # fmt: skip
# How many recorded touchpoints' hashes are kept between batches (about 150 bytes each).
_MAX_KEPT = 1_000_000
_RECORDED_AT = b',"timestamp":'  # where the recording time begins in the library's JSON form
_ID_FIELD = b'{"event_id":"'
_NOTHING: dict[str, int] = {}

SelectStates = Callable[[Sequence[UUID]], dict[UUID, list[bytes]]]
Decode = Callable[[bytes], dict[str, Any]]


@dataclass(frozen=True, slots=True)
class Conflict:
    """A touchpoint refused because its `event_id` names a different touchpoint: one recorded
    before, or one earlier in the same batch. `index` is its place in the batch."""

    index: int
    event_id: str
    reason: str


class RecordedContents:
    """The content hashes of the touchpoints recorded in the streams read so far, by customer,
    so that a file ingested again reads each customer's stream once, not once a batch."""

    def __init__(self, select_states: SelectStates, decode: Decode) -> None:
        self._select_states = select_states
        self._decode = decode
        self._streams: dict[str, dict[str, int]] = {}  # customer id -> event id -> hash
        self._kept = 0

    def conflicts(
        self,
        event_ids: Sequence[str],
        customer_ids: Sequence[str],
        states: Sequence[bytes],
        *,
        firsts: dict[str, int],
        repeats: Iterable[int],
        known: Iterable[str],
    ) -> list[Conflict]:
        """The conflicts of a batch: each of `repeats` (a place whose id came earlier in the
        batch, at `firsts[id]`) that differs from the first, and each `known` id (recorded
        before; at `firsts[id]` in the batch) whose touchpoint differs from the recorded one."""
        found: list[Conflict] = []
        for index in repeats:
            first = firsts[event_ids[index]]
            if states[index] != states[first]:
                reason = differs(self._decode(states[index]), self._decode(states[first]))
                if reason:
                    found.append(Conflict(index, event_ids[index], reason))
        streams = self._streams
        places = [firsts[event_id] for event_id in known]
        self._read(
            customer_ids[i]
            for i in places
            if event_ids[i] not in streams.get(customer_ids[i], _NOTHING)
        )
        for index in places:
            event_id, customer_id = event_ids[index], customer_ids[index]
            recorded = streams.get(customer_id, _NOTHING).get(event_id)
            if recorded is None:
                reason = "conflicts with a touchpoint recorded for another customer"
            elif recorded == content_hash(states[index]):
                continue
            else:
                reason = self._compared(event_id, customer_id, states[index])
            if reason:
                found.append(Conflict(index, event_id, reason))
        found.sort(key=lambda conflict: conflict.index)
        return found

    @property
    def keeps_any(self) -> bool:
        return bool(self._streams)

    def recorded(self, customer_id: str, event_id: str, state: bytes) -> None:
        """Keeps a touchpoint just recorded, if its customer's stream is kept."""
        stream = self._streams.get(customer_id)
        if stream is not None:
            stream[event_id] = content_hash(state)
            self._kept += 1

    def forget(self) -> None:
        self._streams.clear()
        self._kept = 0

    def _read(self, customer_ids: Iterable[str]) -> None:
        """Reads the streams of these customers, again if kept (another process may have
        recorded in them since)."""
        wanted = {customer_id: stream_id(customer_id) for customer_id in set(customer_ids)}
        if not wanted:
            return
        if self._kept > _MAX_KEPT:
            self.forget()
        selected = self._select_states(list(wanted.values()))
        for customer_id, sid in wanted.items():
            stream: dict[str, int] = {}
            for state in selected.get(sid, ()):
                stream[self._decode_id(state)] = content_hash(state)
            self._kept += len(stream) - len(self._streams.get(customer_id, ()))
            self._streams[customer_id] = stream

    def _compared(self, event_id: str, customer_id: str, state: bytes) -> str | None:
        """Decodes the recorded touchpoint and this one, and names what differs."""
        sid = stream_id(customer_id)
        for recorded in self._select_states([sid]).get(sid, ()):
            before = self._decode(recorded)
            if before.get("event_id") == event_id:
                return differs(self._decode(state), before, recorded_before=True)
        return "conflicts with a touchpoint recorded for another customer"

    def _decode_id(self, state: bytes) -> str:
        # The library's JSON form begins with the id, as `_event_state` orders the fields:
        # read it from there unless it holds an escape.
        if state.startswith(_ID_FIELD):
            end = state.find(b'"', len(_ID_FIELD))
            if end > 0 and b"\\" not in state[:end]:
                return state[len(_ID_FIELD) : end].decode()
        event_id: str = self._decode(state)["event_id"]
        return event_id


def content_hash(state: bytes) -> int:
    """A hash of a stored touchpoint without its recording time: equal for the same
    touchpoint however often it arrives (within one process; Python salts its hashes)."""
    cut = state.rfind(_RECORDED_AT)
    return hash(state[:cut] if cut > 0 else state)


def differs(
    state: dict[str, Any], before: dict[str, Any], *, recorded_before: bool = False
) -> str | None:
    """Why a touchpoint conflicts with the one that has its `event_id`: the fields that
    differ (and when that one was recorded); None if they are the same touchpoint."""
    differing = [
        name for name in _FIELDS if (state.get(name) or None) != (before.get(name) or None)
    ]
    if not differing:
        return None
    fields = (
        f"its {differing[0]} {'differ' if differing[0].endswith('s') else 'differs'}"
        if len(differing) == 1
        else f"its {', '.join(differing[:-1])} and {differing[-1]} differ"
    )
    if not recorded_before:
        return f"conflicts with the touchpoint given earlier with this event_id: {fields}"
    when = before.get("timestamp")
    on = f" on {when:%Y-%m-%d %H:%M} UTC" if isinstance(when, datetime) else " before"
    return f"conflicts with the touchpoint recorded{on}: {fields}"
