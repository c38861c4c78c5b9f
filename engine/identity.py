"""Who is who: the identity graph, a pure function of the log.

Each touchpoint names its person by a customer id, by identifiers, or both. Read in log
order, they build a graph whose nodes are identifiers (a customer id is one too) and whose
links are either a touchpoint that carried two of them, or a person's merge. A person is a
connected part of that graph.

- A touchpoint links the identifiers it carries, of the kinds the journey's policy links,
  unless one is shared. A link that would join two known customers (each with a customer id
  of their own) is refused and kept as a conflict, with its evidence, for a person to decide.
- A person's merge joins two people whatever they carry; undoing it, or detaching an
  identifier from everyone it linked, takes the link out and reads the rest again in log
  order, so the people are exactly those the log would make had the link never been there.
- A person's id is the first customer id they had (in log order); a person nobody knows by a
  customer id yet is named after their first identifier (`anonymous_id`), until one comes.

The graph keeps the links in memory: a few hundred bytes a person.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import NamedTuple

from engine.definition import IdentityPolicy
from engine.errors import InvalidTouchpoint
from engine.identifiers import CUSTOMER_ID, Identifier, anonymous_id, normalised

_NO_ATTRIBUTES: Mapping[str, str] = {}


class Link(NamedTuple):
    """Two identifiers joined at a log position, by a touchpoint (`evidence` is its event
    id, `merge_id` empty) or by a person's merge (`merge_id`, who and why)."""

    position: int
    a: Identifier
    b: Identifier
    evidence: str
    at: int = 0  # when: the touchpoint's time, or the merge's (milliseconds, UTC)
    merge_id: str = ""
    by: str = ""
    reason: str = ""


class Conflict(NamedTuple):
    """A link refused because it would have joined two known customers."""

    link: Link
    people: tuple[str, str]


@dataclass(slots=True)
class Person:
    """One connected part of the graph."""

    id: str
    nodes: set[Identifier]
    links: list[Link] = field(default_factory=list)
    known: bool = False  # someone with a customer id


class Regrouped(NamedTuple):
    """How a step changed whose touchpoints are whose: the people whose touchpoints changed
    (those who absorbed someone, and those a split made), and the ids that no longer name
    anyone's journey. A new person, or a new identifier of someone known, changes neither.

    Ask `changed or gone`, never the tuple itself: compiled (scripts/compile.py), a named
    tuple with fields is always true, whatever `__bool__` it has."""

    changed: tuple[str, ...] = ()
    gone: tuple[str, ...] = ()


_NOTHING = Regrouped()


class Placed(NamedTuple):
    """Where a touchpoint went: its person, and what placing it changed."""

    person: str
    regrouped: Regrouped = _NOTHING
    unusable: tuple[str, ...] = ()  # problems with identifiers it carried, for `show`
    home: Identifier | None = None  # the identifier that placed it


class IdentityGraph:
    """The graph as of the log entries given to it, in log order."""

    def __init__(self, policy: IdentityPolicy) -> None:
        self.policy = policy
        self._link_kinds = frozenset(policy.link)
        self._shared = policy.shared_identifiers
        self._of: dict[Identifier, Person] = {}
        self._by_id: dict[str, Person] = {}
        self._first: dict[Identifier, int] = {}  # where each identifier was first seen
        # Every link made, refused or not, in log order; a pair made again adds nothing (it
        # would be refused or accepted just as the first one was), so only the first counts.
        self._made: list[Link] = []
        self._pairs: set[tuple[Identifier, Identifier]] = set()
        self._detached: set[Identifier] = set()
        self._undone: set[str] = set()  # merge ids undone
        self._conflicts: list[Conflict] = []
        self._rank = {kind: rank for rank, kind in enumerate(policy.all_kinds, 1)}
        self._kinds = policy.all_kinds
        self._region = policy.region
        # Each kind's values as sent, in matching form, once worked out: most touchpoints
        # carry what earlier ones did.
        self._forms: dict[str, dict[str, Identifier]] = {kind: {} for kind in self._kinds}

    # -- reading touchpoints ------------------------------------------------------------

    def identifiers_of(
        self, customer_id: str | None, raw: Mapping[str, str], attributes: Mapping[str, str]
    ) -> tuple[list[Identifier], list[str]]:
        """A touchpoint's identifiers in matching form, its customer id first, then in the
        policy's order; and the problems with those that cannot be used."""
        found: list[Identifier] = []
        problems: list[str] = []
        if customer_id:
            found.append(Identifier(CUSTOMER_ID, customer_id))
        forms = self._forms
        for kind in self._kinds:
            value = raw.get(kind) or attributes.get(kind)
            if not value:
                continue
            form = forms[kind].get(value)
            if form is None:
                try:
                    form = Identifier(kind, normalised(kind, value, self._region))
                except InvalidTouchpoint as exc:
                    problems.append(str(exc))
                    continue
                forms[kind][value] = form
            found.append(form)
        return found, problems

    def place(
        self,
        position: int,
        event_id: str,
        customer_id: str | None,
        raw: Mapping[str, str],
        attributes: Mapping[str, str] = _NO_ATTRIBUTES,
        *,
        at: int = 0,
    ) -> Placed:
        """A touchpoint at `position`: the person it belongs to, linking what it carries.
        Its home is its customer id, or else its first usable identifier."""
        if customer_id and not raw and not (self.policy.kinds and attributes):
            home = Identifier(CUSTOMER_ID, customer_id)
            person = self._of.get(home)
            if person is not None:
                return Placed(person.id, _NOTHING, (), home)
            return Placed(self._add(home, position).id, _NOTHING, (), home)
        identifiers, problems = self.identifiers_of(customer_id, raw, attributes)
        if not identifiers:
            raise InvalidTouchpoint("customer_id", "missing, and no usable identifier either")
        home = identifiers[0]
        of = self._of
        changed: list[str] = []
        gone: list[str] = []
        created: list[str] = []
        if home not in of:
            created.append(self._add(home, position).id)
        links_home = self._links(home)
        for other in identifiers[1:]:
            linked = links_home and self._links(other)
            pair = (home, other) if home < other else (other, home)
            if other not in of:
                if not linked:
                    created.append(self._add(other, position).id)
                    continue
                # A new identifier joins the home's person, whose name it cannot change:
                # it was seen last (and after the home, if both are new: see `_name`).
                self._first[other] = position
                link = Link(position, home, other, event_id, at)
                self._pairs.add(pair)
                self._made.append(link)
                person = of[home]
                person.nodes.add(other)
                person.links.append(link)
                of[other] = person
            elif linked and pair not in self._pairs:
                self._pairs.add(pair)
                link = Link(position, home, other, event_id, at)
                self._made.append(link)
                self._join(link, changed, gone)
        changed.extend(created)
        regrouped = _regrouped(changed, gone, created)
        return Placed(of[home].id, regrouped, tuple(problems), home)

    # -- people's decisions -------------------------------------------------------------

    def merge(
        self,
        position: int,
        merge_id: str,
        a: Identifier,
        b: Identifier,
        *,
        by: str,
        reason: str,
        at: int = 0,
    ) -> Regrouped:
        """A person's merge of whoever `a` and `b` name (both must be known to the graph)."""
        if merge_id in self._undone or a not in self._of or b not in self._of:
            return _NOTHING
        changed: list[str] = []
        gone: list[str] = []
        link = Link(position, a, b, "", at, merge_id, by, reason)
        self._made.append(link)
        self._join(link, changed, gone)
        return _regrouped(changed, gone)

    def unmerge(self, merge_id: str) -> Regrouped:
        """Undoes a person's merge, as if it had never been made."""
        if merge_id in self._undone:
            return _NOTHING
        self._undone.add(merge_id)
        return self._rebuild()

    def detach(self, identifier: Identifier) -> Regrouped:
        """Takes `identifier` out of every link touchpoints made, from the start: it names
        a person of its own (a shared cookie, a wrong number), as if it had been shared."""
        if identifier in self._detached:
            return _NOTHING
        self._detached.add(identifier)
        return self._rebuild()

    # -- queries --------------------------------------------------------------------------

    def person_of(self, identifier: Identifier) -> str | None:
        """The id of the person an identifier names, if any."""
        person = self._of.get(identifier)
        return person.id if person is not None else None

    def person_at(self, identifier: Identifier) -> str:
        """The id of the person an identifier the graph holds names."""
        return self._of[identifier].id

    def members(self, person_id: str) -> frozenset[Identifier]:
        person = self._by_id.get(person_id)
        return frozenset(person.nodes) if person is not None else frozenset()

    def links(self, person_id: str) -> list[Link]:
        """The links that make the person, in log order."""
        person = self._by_id.get(person_id)
        return sorted(person.links) if person is not None else []

    def merges(self) -> list[Link]:
        """People's merges, in log order, with those undone."""
        return [link for link in self._made if link.merge_id]

    def is_undone(self, merge_id: str) -> bool:
        return merge_id in self._undone

    def detached(self) -> frozenset[Identifier]:
        return frozenset(self._detached)

    def conflicts(self) -> list[Conflict]:
        """Refused links whose two sides are still two people, in log order."""
        open_ones = []
        for conflict in self._conflicts:
            a, b = self._of[conflict.link.a], self._of[conflict.link.b]
            if a is not b:
                open_ones.append(Conflict(conflict.link, (a.id, b.id)))
        return open_ones

    def people(self) -> list[str]:
        return sorted(self._by_id)

    # -- the graph ------------------------------------------------------------------------

    def _links(self, identifier: Identifier) -> bool:
        """Whether a touchpoint may link this identifier to others."""
        return (
            (identifier.kind == CUSTOMER_ID or identifier.kind in self._link_kinds)
            and identifier not in self._shared
            and identifier not in self._detached
        )

    def _add(self, identifier: Identifier, position: int) -> Person:
        self._first.setdefault(identifier, position)
        known = identifier.kind == CUSTOMER_ID
        person = Person(identifier.value if known else anonymous_id(identifier), {identifier})
        person.known = known
        self._of[identifier] = person
        self._by_id[person.id] = person
        return person

    def _join(self, link: Link, changed: list[str], gone: list[str]) -> None:
        a, b = self._of[link.a], self._of[link.b]
        if a is b:
            a.links.append(link)
            return
        if a.known and b.known and not link.merge_id:
            self._conflicts.append(Conflict(link, (a.id, b.id)))
            return
        # The larger side absorbs the smaller: each identifier moves O(log n) times.
        keep, fold = (a, b) if len(a.nodes) >= len(b.nodes) else (b, a)
        before = (keep.id, fold.id)
        for node in fold.nodes:
            self._of[node] = keep
        keep.nodes |= fold.nodes
        keep.links.extend(fold.links)
        keep.links.append(link)
        keep.known = keep.known or fold.known
        keep.id = self._name(keep.nodes)
        for old in before:
            if old != keep.id:
                del self._by_id[old]
                gone.append(old)
        self._by_id[keep.id] = keep
        changed.append(keep.id)

    def _name(self, nodes: Iterable[Identifier]) -> str:
        """The first customer id the person had; else an id from their first identifier
        (of those first seen on one touchpoint, the one that placed it: the first in the
        policy's order)."""
        first, rank = self._first, self._rank
        known = [n for n in nodes if n.kind == CUSTOMER_ID]
        if known:
            return min(known, key=lambda n: (first[n], n.value)).value
        return anonymous_id(min(nodes, key=lambda n: (first[n], rank.get(n.kind, 0), n)))

    def _rebuild(self) -> Regrouped:
        """Reads every link again in log order, leaving out those undone or detached: the
        people become exactly those the log would have made without them. Returns the people
        whose members changed, and the ids that name no one any more."""
        before = {pid: set(p.nodes) for pid, p in self._by_id.items()}
        self._of.clear()
        self._by_id.clear()
        self._conflicts.clear()
        for node, position in sorted(self._first.items(), key=lambda item: item[1]):
            self._add(node, position)
        ignored: list[str] = []
        for link in self._made:
            if link.merge_id:
                if link.merge_id not in self._undone:
                    self._join(link, ignored, ignored)
            elif self._links(link.a) and self._links(link.b):
                self._join(link, ignored, ignored)
        changed = tuple(pid for pid, p in sorted(self._by_id.items()) if before.get(pid) != p.nodes)
        gone = tuple(sorted(before.keys() - self._by_id.keys()))
        return Regrouped(changed, gone)


def _regrouped(changed: list[str], gone: list[str], created: Iterable[str] = ()) -> Regrouped:
    """A step's changes to whose touchpoints are whose: none unless two people who were
    there before the step became one (someone made within the step had no touchpoints)."""
    if not gone:
        return _NOTHING
    made = set(created)
    really_gone = tuple(dict.fromkeys(g for g in gone if g not in made))
    if not really_gone:
        return _NOTHING
    return Regrouped(tuple(dict.fromkeys(c for c in changed if c not in gone)), really_gone)
