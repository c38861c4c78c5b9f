"""The identity graph as the log makes it: every recorded touchpoint's customer id and
identifiers, and people's decisions about who is who, read in log order (see
engine/identity.py)."""

from __future__ import annotations

from engine.definition import IdentityPolicy
from engine.identity import IdentityGraph
from projections.log import JourneyLog
from projections.people import People


def read_identities(log: JourneyLog, policy: IdentityPolicy) -> IdentityGraph:
    """The graph of everything recorded so far."""
    people = People(policy, log)
    people.catch_up(log.head())
    return people.graph
