"""Briefs before meetings. The decider keeps, per customer, what a person meeting them should
know: the meetings booked and not yet held, what the customer read and downloaded, who
referred them and from where, the reps they met and what was promised, and the place they
deal with (which a referral through them proposes). A brief puts that
in words, with the open frictions.

What is kept is ordered by when it happened, not when it arrived, and bounded: the newest few
of each kind, so a customer's state stays small however long their history."""

from __future__ import annotations

from bisect import insort
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, NamedTuple

from consumers import reasons
from engine.definition import Briefing
from engine.touchpoints import millis
from engine.words import kind_words
from projections.position import Mark, Position

KEPT = 5  # of each kind of thing a brief names


class Booking(NamedTuple):
    """A meeting booked by a touchpoint: what, when it is held, by whom, where."""

    event_id: str
    what: str
    at: int
    host: str | None
    place: str | None
    booked_at: int
    channel: str


class Met(NamedTuple):
    """A touchpoint a rep had with the customer, and what they promised, if noted."""

    at: int
    rep: str
    type: str
    channel: str
    outcome: str | None
    promised: str | None


@dataclass(slots=True)
class Context:
    bookings: dict[str, Booking] = field(default_factory=dict)
    read: list[tuple[int, str]] = field(default_factory=list)
    downloaded: list[tuple[int, str]] = field(default_factory=list)
    referral: tuple[int, str, str | None] | None = None  # the first: when, by whom, from where
    met: list[Met] = field(default_factory=list)
    place: tuple[int, str] | None = None  # the place their latest touchpoint naming one named

    def to_state(self) -> dict[str, Any]:
        return {
            "b": [list(b) for b in self.bookings.values()],
            "r": self.read,
            "d": self.downloaded,
            "f": self.referral,
            "m": [list(m) for m in self.met],
            "p": self.place,
        }

    @classmethod
    def from_state(cls, state: Mapping[str, Any] | None) -> Context:
        """The context stored with a customer's action state; empty for a state stored before
        briefs were kept."""
        if not state:
            return cls()
        referral = state["f"]
        return cls(
            bookings={b[0]: Booking(*b) for b in state["b"]},
            read=[(at, text) for at, text in state["r"]],
            downloaded=[(at, text) for at, text in state["d"]],
            referral=None if referral is None else (referral[0], referral[1], referral[2]),
            met=[Met(*m) for m in state["m"]],
            place=None if state.get("p") is None else (state["p"][0], state["p"][1]),
        )


class Noticing:
    """What a brief is made of (a journey definition's `Briefing`), read once from it:
    `observe` looks for it in every touchpoint."""

    def __init__(self, briefing: Briefing) -> None:
        self.booked = briefing.booked
        self.booked_for = briefing.booked_for
        self.host = briefing.host
        self.place = briefing.place
        self.read = frozenset(briefing.read)
        self.read_attribute = briefing.read_attribute
        self.downloaded = frozenset(briefing.downloaded)
        self.downloaded_attribute = briefing.downloaded_attribute
        self.referred_by = briefing.referred_by
        self.referrer_place = briefing.referrer_place
        self.promised = briefing.promised


def observe(
    context: Context, briefing: Noticing, mark: Mark, attributes: Mapping[str, str]
) -> bool:
    """Keeps what a brief needs from one touchpoint; True if the context changed."""
    changed = False
    if briefing.booked in attributes:
        changed = _book(context, briefing, mark, attributes)
    if mark.type in briefing.read:
        page = attributes.get(briefing.read_attribute)
        if page:
            changed |= _keep_newest(context.read, mark.occurred_at, page)
    elif mark.type in briefing.downloaded:
        asset = attributes.get(briefing.downloaded_attribute)
        if asset:
            changed |= _keep_newest(context.downloaded, mark.occurred_at, asset)
    place = attributes.get(briefing.place)
    if place and (context.place is None or (mark.occurred_at, place) > context.place):
        context.place = (mark.occurred_at, place)
        changed = True
    referred_by = attributes.get(briefing.referred_by)
    if referred_by and (
        context.referral is None or (mark.occurred_at, referred_by) < context.referral[:2]
    ):
        where = attributes.get(briefing.referrer_place) or None
        context.referral = (mark.occurred_at, referred_by, where)
        changed = True
    if mark.rep_id:
        met = Met(
            mark.occurred_at,
            mark.rep_id,
            mark.type,
            mark.channel,
            mark.outcome,
            attributes.get(briefing.promised) or None,
        )
        if met not in context.met and (len(context.met) < KEPT or met > context.met[0]):
            insort(context.met, met)
            del context.met[:-KEPT]
            changed = True
    return changed


def _book(context: Context, briefing: Noticing, mark: Mark, attributes: Mapping[str, str]) -> bool:
    what = attributes[briefing.booked]
    booked_for = _time(attributes.get(briefing.booked_for))
    if not what or booked_for is None or mark.event_id in context.bookings:
        return False
    context.bookings[mark.event_id] = Booking(
        mark.event_id,
        what,
        booked_for,
        attributes.get(briefing.host) or None,
        attributes.get(briefing.place) or None,
        mark.occurred_at,
        mark.channel,
    )
    return True


def upcoming(context: Context, now: int) -> list[Booking]:
    """The meetings not yet held at `now`, soonest first; forgets those held."""
    for event_id in [e for e, b in context.bookings.items() if b.at <= now]:
        del context.bookings[event_id]
    return sorted(context.bookings.values(), key=lambda b: (b.at, b.event_id))


def brief(context: Context, position: Position, labels: Mapping[str, str], now: int) -> str:
    """What whoever meets the customer should know, in a few sentences, on `now`."""
    parts = []
    if context.read:
        parts.append(f"They read {_listed(text for _, text in context.read)}.")
    if context.downloaded:
        parts.append(f"They downloaded {_listed(text for _, text in context.downloaded)}.")
    if context.referral is not None:
        _, referred_by, place = context.referral
        parts.append(f"{referred_by} referred them" + (f", from {place}." if place else "."))
    if context.met:
        parts.append(f"They met {_listed(_met(m, now) for m in context.met)}.")
    open_frictions = [f for f in position.frictions if f.resolved_at is None]
    if open_frictions:
        parts.append(f"Still open: {_listed(labels.get(f.kind, f.kind) for f in open_frictions)}.")
    return " ".join(parts) or "Nothing on record beyond the booking."


def meeting(booking: Booking) -> str:
    return booking.what + (f" at {booking.place}" if booking.place else "")


def _met(met: Met, now: int) -> str:
    how = f", {met.outcome}" if met.outcome else ""
    promise = f", who promised {met.promised}" if met.promised else ""
    return f"{met.rep} ({kind_words(met.type)} on {reasons.day(met.at, now)}{how}){promise}"


def _listed(items: Iterable[str]) -> str:
    return ", ".join(items)


def _keep_newest(kept: list[tuple[int, str]], at: int, text: str) -> bool:
    """Keeps `text` once, at the latest time it happened, and only the newest few."""
    for index, (seen_at, seen) in enumerate(kept):
        if seen == text:
            if seen_at >= at:
                return False
            del kept[index]
            break
    else:
        if len(kept) >= KEPT and (at, text) < kept[0]:
            return False
    if not kept or (at, text) >= kept[-1]:
        kept.append((at, text))  # the newest, as touchpoints mostly arrive
    else:
        insort(kept, (at, text))
    if len(kept) > KEPT:
        del kept[:-KEPT]
    return True


def _time(text: str | None) -> int | None:
    """A booking's time, if it is one: ISO 8601 (UTC unless it says otherwise)."""
    if not text:
        return None
    try:
        moment = datetime.fromisoformat(text)
    except ValueError:
        return None
    return millis(moment)
