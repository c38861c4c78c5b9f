"""The identity graph as the log makes it: every recorded touchpoint's customer id and
identifiers, read in log order (see engine/identity.py)."""

from __future__ import annotations

from engine.definition import IdentityPolicy
from engine.identity import IdentityGraph
from projections.log import JourneyLog

_PAGE = 5_000


def read_identities(log: JourneyLog, policy: IdentityPolicy) -> IdentityGraph:
    """The graph of everything recorded so far."""
    graph = IdentityGraph(policy)
    after = 0
    while True:
        entries = log.touchpoints(after, _PAGE)
        for position, touchpoint in entries:
            graph.place(
                position,
                touchpoint["event_id"],
                touchpoint["customer_id"],
                touchpoint.get("identifiers") or {},
                touchpoint.get("attributes") or {},
                at=touchpoint["occurred_at"],
            )
        if len(entries) < _PAGE:
            return graph
        after = entries[-1][0]
