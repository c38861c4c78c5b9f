"""`journey identity`: who is who, as the log's touchpoints say: the identifiers each
customer carries, how they were linked, and the identifiers two customers share."""

from __future__ import annotations

import getpass
import uuid
from typing import Any, NamedTuple

import click
from rich.text import Text

from engine.errors import JourneyError, UnknownCustomer
from engine.identifiers import CUSTOMER_ID, Identifier, parse_identifier
from engine.identity import Conflict, IdentityGraph, Link
from engine.journeys import DETACHED, MERGED, PEOPLE_STREAM, UNMERGED, IdentityDecisions
from engine.recording import StreamEvent
from engine.sealing import ERASED, Sealing
from journey import render
from journey.bootstrap import Engine
from journey.console import catch_up, engine_for, now_ms, out, print_json
from projections.identities import read_identities


class UnknownIdentifier(UnknownCustomer):
    def __init__(self, identifier: Identifier) -> None:
        JourneyError.__init__(self, f"no touchpoint recorded names {identifier}")
        self.customer_id = str(identifier)


class IdentityRefused(JourneyError):
    """A merge or an undo that cannot be made: the message says why."""


class Decided(NamedTuple):
    """A people's decision, appended to the log: what it was, and who is who after it."""

    decision: str
    merge_id: str
    people: tuple[str, ...]  # the people it named, as they stand now
    position: int | None


def merge(engine: Engine, a: str, b: str, *, by: str, reason: str) -> Decided:
    """Joins the people `a` and `b` name (customer ids or identifiers) into one, who keeps
    the first customer id either had. Refused if they are one already."""
    graph = read_identities(engine.log, engine.definition.identity)
    first, second = (identifier_in(graph, who, engine.sealing) for who in (a, b))
    people = {person_named(graph, first), person_named(graph, second)}
    if len(people) == 1:
        raise IdentityRefused(f"{a} and {b} are one person already: {people.pop()}")
    merge_id = f"m-{uuid.uuid4().hex[:12]}"
    position = _append(engine, MERGED, merge_id, str(first), str(second), by=by, reason=reason)
    catch_up(engine)
    graph = read_identities(engine.log, engine.definition.identity)
    return Decided(MERGED, merge_id, (person_named(graph, first),), position)


def unmerge(engine: Engine, what: str, *, by: str, reason: str) -> Decided:
    """Undoes a person's merge (`what` is its id, as `identity show` lists it), or takes an
    identifier out of every link touchpoints made (`what` is the identifier): the people
    become those the log makes without it, from the start."""
    graph = read_identities(engine.log, engine.definition.identity)
    merges = {link.merge_id: link for link in graph.merges()}
    if what in merges:
        if graph.is_undone(what):
            raise IdentityRefused(f"merge {what} is undone already")
        link = merges[what]
        position = _append(engine, UNMERGED, what, str(link.a), str(link.b), by=by, reason=reason)
        named: tuple[Identifier, ...] = (link.a, link.b)
        decision = UNMERGED
    else:
        identifier = identifier_in(graph, what, engine.sealing)
        if identifier.kind == CUSTOMER_ID:
            raise IdentityRefused(
                f"{what} is neither a merge id nor an identifier such as email:..., phone:... "
                "or cookie_id:... (a customer id is undone by undoing the merge that joined it)"
            )
        person_named(graph, identifier)
        if identifier in graph.detached():
            raise IdentityRefused(f"{what} links no one already")
        position = _append(engine, DETACHED, "", str(identifier), "", by=by, reason=reason)
        named = (identifier,)
        decision = DETACHED
    catch_up(engine)
    graph = read_identities(engine.log, engine.definition.identity)
    people = tuple(dict.fromkeys(person_named(graph, identifier) for identifier in named))
    return Decided(decision, what if decision == UNMERGED else "", people, position)


def identifier_in(graph: IdentityGraph, who: str, sealing: Sealing | None) -> Identifier:
    """`who` in matching form (its digest, where touchpoints are sealed); a click error
    naming it if it cannot be read."""
    identifier = parse_identifier(who, graph.policy.all_kinds)
    if identifier.kind == CUSTOMER_ID:
        return identifier
    found, problems = graph.identifiers_of(None, {identifier.kind: identifier.value}, {})
    if problems or not found:
        raise IdentityRefused(problems[0] if problems else f"{who}: not an identifier")
    if sealing is None:
        return found[0]
    matching = sealing.matching(found[0])
    if graph.person_of(matching) is None:
        raise UnknownIdentifier(found[0])  # as typed, not as its digest
    return matching


def identifiers_shown(engine: Engine, person: str) -> dict[str, str]:
    """Where touchpoints are sealed, the identifiers of the person's touchpoints as their
    channels sent them, by digest (erased ones read as erased); else nothing."""
    if engine.sealing is None:
        return {}
    kinds = engine.definition.identity.kinds
    shown: dict[str, str] = {}
    for state in engine.log.touchpoints_of(engine.view.keys_of(person)):
        opened = engine.sealing.opened(state)
        for kind, digest in state["identifiers"].items():
            shown[digest] = opened["identifiers"].get(kind, ERASED)
        for kind in kinds:
            if kind in state["attributes"]:
                shown[state["attributes"][kind]] = opened["attributes"].get(kind, ERASED)
    return shown


def _append(engine: Engine, decision: str, merge_id: str, a: str, b: str, **why: str) -> int | None:
    """Appends a decision (`why`: who decided, `by`, and their `reason`)."""
    fields = {
        "decision": decision,
        "merge_id": merge_id,
        "a": a,
        "b": b,
        "by": why["by"],
        "reason": why["reason"],
        "occurred_at": now_ms(),
    }
    ledger_id = f"identity:{uuid.uuid4()}"
    event = StreamEvent(
        ledger_id, PEOPLE_STREAM, IdentityDecisions, IdentityDecisions.Decided, fields
    )
    return engine.journeys.append([event])


@click.group("identity")
def identity() -> None:
    """Who is who: the identifiers each customer's touchpoints carried, and conflicts."""


@identity.command("show")
@click.argument("who")
@click.option("--json", "as_json", is_flag=True, help="Print JSON instead of text.")
@click.pass_context
def show(ctx: click.Context, who: str, as_json: bool) -> None:
    """Show a person by their customer id or any identifier (`email:anna@example.com`,
    `phone:+4520123456`, `cookie_id:...`): every identifier they are known by, the
    touchpoints that linked them, and the conflicts that concern them."""
    with engine_for(ctx) as engine:
        graph = read_identities(engine.log, engine.definition.identity)
        person = person_named(graph, identifier_in(graph, who, engine.sealing))
        conflicts = [c for c in graph.conflicts() if person in c.people]
        shown = identifiers_shown(engine, person)
    if as_json:
        print_json(person_json(graph, person, conflicts, shown))
        return
    _print_person(graph, person, conflicts, shown)


@identity.command("conflicts")
@click.option("--json", "as_json", is_flag=True, help="Print JSON instead of a table.")
@click.pass_context
def conflicts(ctx: click.Context, as_json: bool) -> None:
    """List the identifiers two known customers share: touchpoints that would have joined
    them, which the engine never does by itself."""
    with engine_for(ctx) as engine:
        graph = read_identities(engine.log, engine.definition.identity)
    found = graph.conflicts()
    if as_json:
        print_json([conflict_json(conflict) for conflict in found])
        return
    if not found:
        out.print("No conflicts: no identifier is shared by two known customers.")
        return
    table = render.Listing(
        "Identifiers two known customers share",
        ["at", "touchpoint", "of", "carried", "which belongs to"],
        head=3,
        labelled=["carried", "which belongs to"],
    )
    for conflict in found:
        link = conflict.link
        table.add_row(
            render.when(link.at),
            render.shown(link.evidence),
            render.shown(conflict.people[0]),
            render.shown(str(link.b)),
            render.shown(conflict.people[1]),
        )
    out.print(table)
    out.print(
        f"{len(found)} conflict{'s' if len(found) != 1 else ''}: each touchpoint stays with "
        "its own customer, and the identifier with the customer who had it first."
    )


def who_decides() -> str:
    """The user running the command, who decides or asks unless they say otherwise."""
    try:
        return getpass.getuser()
    except (KeyError, OSError):
        return "unknown"


@identity.command("merge")
@click.argument("a")
@click.argument("b")
@click.option("--reason", required=True, help="Why they are one person: kept with the merge.")
@click.option("--by", help="Who decides [the user running the command].")
@click.pass_context
def merge_command(ctx: click.Context, a: str, b: str, reason: str, by: str | None) -> None:
    """Join the people A and B name (customer ids or identifiers) into one journey. The
    first customer id either had stays theirs; the other finds them too. Undo it with
    `journey identity unmerge MERGE_ID`."""
    with engine_for(ctx) as engine:
        done = merge(engine, a, b, by=by or who_decides(), reason=reason)
    out.print(
        f"{a} and {b} are one person now: {done.people[0]} (merge {done.merge_id}; "
        f"undo with: journey identity unmerge {done.merge_id} --reason ...)"
    )


@identity.command("unmerge")
@click.argument("what")
@click.option("--reason", required=True, help="Why: kept with the undo.")
@click.option("--by", help="Who decides [the user running the command].")
@click.pass_context
def unmerge_command(ctx: click.Context, what: str, reason: str, by: str | None) -> None:
    """Undo a merge (WHAT: its id, as `journey identity show` lists it), or take an
    identifier out of every link touchpoints made (WHAT: `cookie_id:...`, say, for a cookie
    two people shared). The journeys, and the actions from then on, read as if it had never
    been linked."""
    with engine_for(ctx) as engine:
        done = unmerge(engine, what, by=by or who_decides(), reason=reason)
    undone = f"merge {what}" if done.decision == UNMERGED else f"{what}'s links"
    out.print(f"Undone {undone}: {', '.join(done.people)}")


def person_named(graph: IdentityGraph, identifier: Identifier) -> str:
    """The id of the person an identifier (in any form a channel sends it) names."""
    problems: list[str] = []
    if identifier.kind == CUSTOMER_ID:
        found = [identifier]
    else:
        found, problems = graph.identifiers_of(None, {identifier.kind: identifier.value}, {})
    if problems:
        raise click.BadParameter(problems[0], param_hint="'WHO'")
    person = graph.person_of(found[0]) if found else None
    if person is None:
        raise UnknownIdentifier(identifier)
    return person


def _print_person(
    graph: IdentityGraph, person: str, conflicts: list[Conflict], shown: dict[str, str]
) -> None:
    members = sorted(graph.members(person), key=_kind_order(graph))
    heading = Text(render.shown(person), style="bold")
    heading.append(f", known by {len(members)} identifier{'s' if len(members) != 1 else ''}")
    out.print(heading)
    width = max(len(member.kind) for member in members)
    for member in members:
        out.print(f"  {member.kind.ljust(width)}  {shown.get(member.value, member.value)}")
    links = graph.links(person)
    if links:
        out.print("Linked by:")
        for link in links:
            a, b = (_named(identifier, shown) for identifier in (link.a, link.b))
            out.print(f"  {render.when(link.at)}  {_linked_by(link)}: {a} and {b}")
    for conflict in conflicts:
        link, (carrier, holder) = conflict.link, conflict.people
        line = Text("Conflict", style="yellow")
        line.append(
            f": touchpoint {render.shown(link.evidence)} of {render.shown(carrier)}, "
            f"{render.when(link.at)},"
        )
        out.print(line)
        carried = _named(link.b, shown)
        out.print(f"  carried {carried}, which {render.shown(holder)} already had: not joined")


def _named(identifier: Identifier, shown: dict[str, str]) -> str:
    return f"{identifier.kind}:{shown.get(identifier.value, identifier.value)}"


def _linked_by(link: Link) -> str:
    if link.merge_id:
        return f"merge {link.merge_id} by {render.shown(link.by)} ({render.shown(link.reason)})"
    return render.shown(link.evidence)


def _kind_order(graph: IdentityGraph) -> Any:
    order = {kind: rank for rank, kind in enumerate(("customer_id", *graph.policy.all_kinds))}
    return lambda member: (order.get(member.kind, len(order)), member.value)


def _link_json(link: Link) -> dict[str, Any]:
    return {
        "position": link.position,
        "at": render.iso(link.at),
        "a": str(link.a),
        "b": str(link.b),
        "touchpoint": link.evidence or None,
        "merge_id": link.merge_id or None,
        "by": link.by or None,
        "reason": link.reason or None,
    }


def conflict_json(conflict: Conflict) -> dict[str, Any]:
    return {"link": _link_json(conflict.link), "people": list(conflict.people)}


def person_json(
    graph: IdentityGraph,
    person: str,
    conflicts: list[Conflict],
    shown: dict[str, str] | None = None,
) -> dict[str, Any]:
    members = sorted(graph.members(person), key=_kind_order(graph))
    shown = shown or {}
    return {
        "person": person,
        "identifiers": [{"kind": m.kind, "value": shown.get(m.value, m.value)} for m in members],
        "links": [_link_json(link) for link in graph.links(person)],
        "conflicts": [conflict_json(conflict) for conflict in conflicts],
    }
