"""Whose journey each touchpoint is part of, as a fold reads the log: the identity graph
(engine/identity.py) as of the entry being folded, and each person's touchpoints read from
every stream they were recorded under."""

from __future__ import annotations

import heapq
from collections.abc import Iterable, Mapping, Sequence
from typing import Any, NamedTuple, Protocol

from engine.definition import IdentityPolicy
from engine.errors import InvalidTouchpoint
from engine.identifiers import CUSTOMER_ID, Identifier, parse_identifier
from engine.identity import IdentityGraph, Regrouped
from engine.journeys import DETACHED, MERGED, UNMERGED
from projections.log import Folded

_PAGE = 10_000
_UNCHANGED = Regrouped()


class Sighting(NamedTuple):
    """What a touchpoint says of whose it is, where that is more than its customer id:
    its identifiers, or that it came without a customer id."""

    customer_id: str | None
    identifiers: Mapping[str, str]
    attributes: Mapping[str, str]


class Decision(NamedTuple):
    """A people's decision about who is who, as the log holds it (see
    engine.journeys.IdentityDecisions): identifiers are written `kind:value`."""

    decision: str
    merge_id: str
    a: str
    b: str
    by: str
    reason: str
    at: int

    @classmethod
    def of(cls, e: Folded | Mapping[str, Any]) -> Decision:
        if isinstance(e, Folded):
            return cls(e.decision, e.merge_id, e.a, e.b, e.by, e.reason or "", e.occurred_at)
        return cls(
            e["decision"], e["merge_id"], e["a"], e["b"], e["by"], e["reason"], e["occurred_at"]
        )


class History(Protocol):
    """The log as `People` reads it."""

    def folded(self, after: int, limit: int, stop: int | None = None) -> list[tuple[int, Folded]]:
        """Touchpoints and clock events after a position, up to `stop`."""

    def folded_entries(self, stream_keys: Sequence[str]) -> dict[str, list[tuple[int, Folded]]]:
        """The touchpoints recorded under these keys, with their positions."""


def sighting(e: Folded, kinds: tuple[str, ...] = ()) -> Sighting | None:
    """What `People.place` needs of a touchpoint beyond its key; None for the usual one,
    a customer id and nothing else."""
    if e.identifiers or e.anonymous or (kinds and any(kind in e.attributes for kind in kinds)):
        return Sighting(None if e.anonymous else e.customer_id, e.identifiers, e.attributes)
    return None


def sighting_of(entry: Mapping[str, Any], kinds: tuple[str, ...] = ()) -> Sighting | None:
    """`sighting`, of a touchpoint read whole (a TouchpointState)."""
    identifiers = entry.get("identifiers")
    anonymous = entry.get("anonymous", False)
    attributes = entry["attributes"]
    if identifiers or anonymous or (kinds and any(kind in attributes for kind in kinds)):
        customer = None if anonymous else entry["customer_id"]
        return Sighting(customer, identifiers or {}, attributes)
    return None


class People:
    """The identity graph of the log up to the last touchpoint placed, and the streams each
    person's touchpoints were recorded under."""

    def __init__(self, policy: IdentityPolicy, history: History) -> None:
        self.policy = policy
        self._kinds = policy.kinds  # identifier kinds read from attributes
        self._history = history
        self.graph = IdentityGraph(policy)
        self._upto = 0  # the graph holds every touchpoint up to this position
        # The keys anonymous touchpoints were recorded under, by the identifier that placed
        # them (a customer's touchpoints are recorded under their customer id).
        self._keys: dict[Identifier, set[str]] = {}
        # Customer ids that name their own person: a touchpoint under one of them with
        # nothing more to say is theirs without asking the graph (the usual touchpoint).
        self._alone: set[str] = set()
        # Keys whose person changed since `take_aliases`: key -> person (None: itself).
        self._aliases: dict[str, str | None] = {}
        self._home_of: dict[str, Identifier] = {}  # anonymous keys: the identifier placing them
        # (customer id, kind, value as sent) of the identifiers their touchpoints carried.
        self._carried: set[tuple[str, str, str]] = set()
        self._last: dict[str, Mapping[str, str]] = {}  # each key's last identifiers
        # Anonymous keys: the identifiers their last touchpoint was placed by (the same
        # again link nothing new: see `place`).
        self._anonymous: dict[str, Mapping[str, str]] = {}
        self._read: dict[str, list[tuple[int, Folded]]] = {}  # streams read for this page
        self._sent: set[tuple[str, str]] = set()  # identifiers placed, as channels sent them
        # Whether a touchpoint without a customer id or a people's decision was read: then
        # one person's touchpoints may sit under several keys.
        self.joins_keys = False

    @property
    def upto(self) -> int:
        return self._upto

    def forget(self) -> None:
        self.graph = IdentityGraph(self.policy)
        self._upto = 0
        self._keys.clear()
        self._alone.clear()
        self._aliases.clear()
        self._home_of.clear()
        self._carried.clear()
        self._last.clear()
        self._anonymous.clear()
        self._read = {}
        self._sent.clear()
        self.joins_keys = False

    def catch_up(self, position: int, *, read_after: int | None = None) -> None:
        """Reads the touchpoints up to `position` that the graph has not seen: a fold that
        starts there finds everyone where the log left them. `read_after`: the caller read
        the log after that position itself, and found nothing up to `position`."""
        upto = position if read_after is None else min(position, read_after)
        while self._upto < upto:
            entries = self._history.folded(self._upto, _PAGE, stop=position)
            if not entries:
                break
            kinds = self.policy.kinds
            for log_position, e in entries:
                if e.event_id is not None:
                    self.place(
                        log_position, e.customer_id, sighting(e, kinds), e.event_id, e.occurred_at
                    )
                elif e.decision:
                    self.decide(log_position, Decision.of(e))
            self._upto = max(self._upto, entries[-1][0])
        if read_after is not None:
            self._upto = max(self._upto, position)
        self._aliases.clear()  # the views hold them already

    def place(
        self,
        log_position: int,
        key: str,
        seen: Sighting | None,
        event_id: str = "",
        at: int = 0,
    ) -> tuple[str, Regrouped]:
        """The person whose journey a touchpoint recorded under `key` is part of, and what
        placing it changed of who is who."""
        self._upto = log_position
        if key in self._alone:
            if seen is None:
                return key, _UNCHANGED
            if seen.customer_id == key and not self._kinds and self._known(key, seen):
                # Identifiers this customer's touchpoints carried before: linked already
                # (or refused), and placing them again would change nothing.
                return key, _UNCHANGED
        graph = self.graph
        # The identifiers this key's last touchpoint carried, again: each is in the graph and
        # each pair was linked (or refused) then, and a detached or shared one never links
        # again, so placing them changes nothing: they name the same home.
        if (
            seen is not None
            and seen.customer_id is None
            and not self._kinds
            and self._anonymous.get(key) == seen.identifiers
        ):
            return graph.person_at(self._home_of[key]), _UNCHANGED
        if seen is None:
            placed = graph.place(log_position, event_id, key, {})
            if placed.person == key:
                self._alone.add(key)
            return placed.person, self._noted(placed.regrouped)
        self._sent.update(seen.identifiers.items())
        try:
            placed = graph.place(
                log_position, event_id, seen.customer_id, seen.identifiers, seen.attributes, at=at
            )
        except InvalidTouchpoint:
            # No identifier it carries is usable (any more): it is a person of its own.
            placed = graph.place(log_position, event_id, key, {})
            return placed.person, self._noted(placed.regrouped)
        if seen.customer_id is None:
            self.joins_keys = True
        if seen.customer_id is None and placed.home is not None:
            keys = self._keys.setdefault(placed.home, set())
            self._home_of[key] = placed.home
            self._anonymous[key] = seen.identifiers
            if key not in keys:
                keys.add(key)
                if key != placed.person:
                    self._aliases[key] = placed.person
        elif placed.person == seen.customer_id:
            self._alone.add(placed.person)
        return placed.person, self._noted(placed.regrouped)

    def _known(self, key: str, seen: Sighting) -> bool:
        """Whether every identifier of the sighting came with this key before; remembers
        them if not."""
        identifiers = seen.identifiers
        if self._last.get(key) == identifiers:  # the same as their last touchpoint's
            return True
        self._last[key] = identifiers
        carried = self._carried
        fresh = False
        for kind, value in seen.identifiers.items():
            if (key, kind, value) not in carried:
                carried.add((key, kind, value))
                fresh = True
        return not fresh

    def decide(self, log_position: int, decision: Decision) -> Regrouped:
        """A people's decision at `log_position`: what it changed of who is who."""
        self._upto = log_position
        self.joins_keys = True
        kinds = self.policy.all_kinds
        a = parse_identifier(decision.a, kinds)
        if decision.decision == MERGED:
            b = parse_identifier(decision.b, kinds)
            moved = self.graph.merge(
                log_position,
                decision.merge_id,
                a,
                b,
                by=decision.by,
                reason=decision.reason,
                at=decision.at,
            )
        elif decision.decision == UNMERGED:
            moved = self.graph.unmerge(decision.merge_id)
        elif decision.decision == DETACHED:
            moved = self.graph.detach(a)
        else:
            return Regrouped()  # a kind of decision this release does not know
        return self._noted(moved)

    def take_aliases(self) -> dict[str, str | None]:
        """The keys whose person changed since last asked: key -> person (None: itself)."""
        aliases, self._aliases = self._aliases, {}
        return aliases

    def _noted(self, regrouped: Regrouped) -> Regrouped:
        """Keeps `_alone` and the aliases true to the graph after people were regrouped."""
        if regrouped.changed or regrouped.gone:
            for person in regrouped.changed:
                for key in self.keys(person):
                    self._aliases[key] = None if key == person else person
            self._alone.difference_update(regrouped.gone)
            for person in regrouped.changed:
                for member in self.graph.members(person):
                    if member.kind == CUSTOMER_ID:
                        self._alone.discard(member.value)
                if self.graph.person_of(Identifier(CUSTOMER_ID, person)) == person:
                    self._alone.add(person)
        return regrouped

    def person_of(self, key: str) -> str:
        """The person a key names now (the key itself, if the graph has not seen it)."""
        if key in self._alone:
            return key
        home = self._home_of.get(key)
        found = self.graph.person_of(home if home is not None else Identifier(CUSTOMER_ID, key))
        return found or key

    def keys(self, person: str) -> list[str]:
        """Every key the person's touchpoints were recorded under."""
        found: list[str] = []
        for member in self.graph.members(person) or {Identifier(CUSTOMER_ID, person)}:
            if member.kind == CUSTOMER_ID:
                found.append(member.value)
            found.extend(self._keys.get(member, ()))
        return sorted(set(found))

    def touchpoints(
        self, people: Iterable[str], before: int | None = None
    ) -> dict[str, list[Folded]]:
        """Each person's touchpoints recorded before `before` (all, if None), in log order;
        people with none are left out. Streams read since `read_ahead` are not read again."""
        keys = {person: self.keys(person) for person in people}
        streams = self._streams({k for ks in keys.values() for k in ks})
        found: dict[str, list[Folded]] = {}
        for person, person_keys in keys.items():
            merged = heapq.merge(
                *(streams.get(key, []) for key in person_keys), key=lambda entry: entry[0]
            )
            touchpoints = [e for position, e in merged if before is None or position < before]
            if touchpoints:
                found[person] = touchpoints
        return found

    def read_ahead(
        self, page: Iterable[tuple[int, str | None, Any, Any]], also: Iterable[str] = ()
    ) -> None:
        """Reads at once the streams a page's touchpoints may need folded again: those of
        the people their identifiers name now, and of their own keys, for touchpoints that
        may join people (without a customer id, or with identifiers new to their customer).
        They are kept until the next page's `read_ahead`: the log only grows, and readers
        take what came before a position. The streams of the people `also` are read too.
        `page` holds (log position, key, mark, sighting) entries, as a fold's page does."""
        self._read = {}
        wanted: set[str] = set(also)
        graph, alone, carried, sent = self.graph, self._alone, self._carried, self._sent
        anonymous = self._anonymous
        for _, key, _, seen in page:
            if key is None or not isinstance(seen, Sighting):
                continue
            if seen.customer_id is None:
                if anonymous.get(key) == seen.identifiers and not self._kinds:
                    continue  # what placed its last touchpoint: it joins no one
            elif key in alone:
                pairs = seen.identifiers.items()
                if all((key, k, v) in carried for k, v in pairs):
                    continue  # nothing new: it joins no one
                if not any(pair in sent for pair in pairs):
                    continue  # identifiers never seen, as sent, may still name someone; rarely
            identifiers, _ = graph.identifiers_of(None, seen.identifiers, seen.attributes)
            named = {p for p in map(graph.person_of, identifiers) if p is not None}
            if seen.customer_id is not None or key in self._home_of:
                named.add(self.person_of(key))
            if len(named) > 1:  # it may join them
                wanted.update(named)
        if wanted:
            self._streams({k for person in wanted for k in self.keys(person)})

    def _streams(self, keys: set[str]) -> dict[str, list[tuple[int, Folded]]]:
        read = self._read
        missing = sorted(k for k in keys if k not in read)
        if missing:
            found = self._history.folded_entries(missing)
            for key in missing:
                read[key] = found.get(key, [])
        return {key: read[key] for key in keys}
