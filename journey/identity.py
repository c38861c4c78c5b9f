"""`journey identity`: who is who, as the log's touchpoints say: the identifiers each
customer carries, how they were linked, and the identifiers two customers share."""

from __future__ import annotations

from typing import Any

import click
from rich.text import Text

from engine.errors import JourneyError
from engine.identifiers import CUSTOMER_ID, Identifier, parse_identifier
from engine.identity import Conflict, IdentityGraph, Link
from journey import render
from journey.console import engine_for, out, print_json
from projections.identities import read_identities


class UnknownIdentifier(JourneyError):
    def __init__(self, identifier: Identifier) -> None:
        super().__init__(f"no touchpoint recorded names {identifier}")


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
        identifier = parse_identifier(who, graph.policy.all_kinds)
        person = person_named(graph, identifier)
        conflicts = [c for c in graph.conflicts() if person in c.people]
        if as_json:
            print_json(_person_json(graph, person, conflicts))
            return
        _print_person(graph, person, conflicts)


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
        print_json([_conflict_json(conflict) for conflict in found])
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


def _print_person(graph: IdentityGraph, person: str, conflicts: list[Conflict]) -> None:
    members = sorted(graph.members(person), key=_kind_order(graph))
    heading = Text(render.shown(person), style="bold")
    heading.append(f", known by {len(members)} identifier{'s' if len(members) != 1 else ''}")
    out.print(heading)
    width = max(len(member.kind) for member in members)
    for member in members:
        out.print(f"  {member.kind.ljust(width)}  {member.value}")
    links = graph.links(person)
    if links:
        out.print("Linked by:")
        for link in links:
            out.print(f"  {render.when(link.at)}  {_linked_by(link)}: {link.a} and {link.b}")
    for conflict in conflicts:
        link, (carrier, holder) = conflict.link, conflict.people
        line = Text("Conflict", style="yellow")
        line.append(
            f": touchpoint {render.shown(link.evidence)} of {render.shown(carrier)}, "
            f"{render.when(link.at)},"
        )
        out.print(line)
        out.print(f"  carried {link.b}, which {render.shown(holder)} already had: not joined")


def _linked_by(link: Link) -> str:
    if link.merge_id:
        return f"{render.shown(link.by)}'s merge ({render.shown(link.reason)})"
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


def _conflict_json(conflict: Conflict) -> dict[str, Any]:
    return {"link": _link_json(conflict.link), "people": list(conflict.people)}


def _person_json(graph: IdentityGraph, person: str, conflicts: list[Conflict]) -> dict[str, Any]:
    members = sorted(graph.members(person), key=_kind_order(graph))
    return {
        "person": person,
        "identifiers": [{"kind": m.kind, "value": m.value} for m in members],
        "links": [_link_json(link) for link in graph.links(person)],
        "conflicts": [_conflict_json(conflict) for conflict in conflicts],
    }
