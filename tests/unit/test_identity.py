"""The identity graph: who is who, as a pure function of the log."""

from __future__ import annotations

import re

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from engine.definition import IdentityPolicy, definition_from_mapping, load_definition
from engine.errors import DefinitionError, InvalidTouchpoint
from engine.identifiers import CUSTOMER_ID, Identifier, anonymous_id, normalised
from engine.identity import IdentityGraph
from projections.runner import definition_digest


def graph(**policy: object) -> IdentityGraph:
    return IdentityGraph(IdentityPolicy.model_validate(policy))


def test_an_anonymous_reader_who_fills_a_form_and_then_calls_is_one_person() -> None:
    g = graph()
    reader = g.place(1, "e1", None, {"cookie_id": "ck-1"}).person
    assert reader == anonymous_id(Identifier("cookie_id", "ck-1"))
    assert (
        g.place(2, "e2", None, {"cookie_id": "ck-1", "email": "Anna@Example.com"}).person == reader
    )
    crm = g.place(3, "e3", "C-1", {"email": "anna@example.com", "phone": "+45 20 12 34 56"})
    assert crm.person == "C-1"
    assert crm.regrouped.gone == (reader,)
    assert g.place(4, "e4", None, {"phone": "+4520123456"}).person == "C-1"
    assert g.person_of(Identifier("cookie_id", "ck-1")) == "C-1"


def test_two_known_customers_are_never_joined_by_a_touchpoint() -> None:
    g = graph()
    g.place(1, "e1", "C-1", {"email": "shared@example.com"})
    placed = g.place(2, "e2", "C-2", {"email": "shared@example.com"})
    assert placed.person == "C-2"
    assert g.person_of(Identifier("email", "shared@example.com")) == "C-1"
    [conflict] = g.conflicts()
    assert conflict.people == ("C-2", "C-1")
    assert conflict.link.evidence == "e2"


def test_a_persons_merge_resolves_a_conflict_and_its_undo_restores_it() -> None:
    g = graph()
    g.place(1, "e1", "C-1", {"email": "a@example.com"})
    g.place(2, "e2", "C-2", {"email": "a@example.com"})
    merged = g.merge(
        3,
        "m1",
        Identifier(CUSTOMER_ID, "C-2"),
        Identifier(CUSTOMER_ID, "C-1"),
        by="eve",
        reason="same person",
    )
    assert merged.gone == ("C-2",)
    assert g.person_of(Identifier(CUSTOMER_ID, "C-2")) == "C-1"  # the first id stays
    assert g.conflicts() == []
    undone = g.unmerge("m1")
    assert "C-2" in undone.changed
    assert g.person_of(Identifier(CUSTOMER_ID, "C-2")) == "C-2"
    assert len(g.conflicts()) == 1


def test_shared_identifiers_link_no_one() -> None:
    g = graph(shared={"email": ["INFO@acme.com"], "phone": ["+45 70 10 20 30"]})
    g.place(1, "e1", "C-1", {"email": "info@acme.com"})
    g.place(2, "e2", None, {"email": "info@acme.com", "cookie_id": "k"})
    assert g.person_of(Identifier("cookie_id", "k")) != "C-1"
    assert g.conflicts() == []


def test_placeholders_and_unreadable_identifiers_place_nothing() -> None:
    g = graph()
    placed = g.place(1, "e1", "C-1", {"email": "null", "phone": "12"})
    assert placed.person == "C-1"
    assert len(placed.unusable) == 2
    with pytest.raises(InvalidTouchpoint, match="no usable identifier"):
        g.place(2, "e2", None, {"cookie_id": "undefined"})


def test_a_national_phone_number_needs_the_journeys_region() -> None:
    with pytest.raises(InvalidTouchpoint, match="no country code"):
        normalised("phone", "20 12 34 56")
    assert normalised("phone", "20 12 34 56", "DK") == "+4520123456"


# -- generated histories ------------------------------------------------------------------

_IDS = st.sampled_from(["C-1", "C-2", "C-3", None, None])
_EMAILS = st.sampled_from(["a@x.com", "b@x.com", "c@x.com", None])
_PHONES = st.sampled_from(["+4520000001", "+4520000002", None])
_COOKIES = st.sampled_from(["k1", "k2", "k3", None])


@st.composite
def touchpoints(draw: st.DrawFn) -> list[tuple[str | None, dict[str, str]]]:
    found = []
    for _ in range(draw(st.integers(1, 25))):
        raw = {
            kind: value
            for kind, value in (
                ("email", draw(_EMAILS)),
                ("phone", draw(_PHONES)),
                ("cookie_id", draw(_COOKIES)),
            )
            if value
        }
        customer = draw(_IDS)
        if customer is None and not raw:
            raw = {"cookie_id": "k1"}
        found.append((customer, raw))
    return found


def people(g: IdentityGraph) -> dict[str, frozenset[Identifier]]:
    return {person: g.members(person) for person in g.people()}


def fed(history: list[tuple[str | None, dict[str, str]]], **policy: object) -> IdentityGraph:
    g = graph(**policy)
    for position, (customer, raw) in enumerate(history, 1):
        g.place(position, f"e{position}", customer, raw)
    return g


@settings(max_examples=300, deadline=None)
@given(touchpoints(), st.data())
def test_a_merge_undone_leaves_the_people_the_log_makes_without_it(
    history: list[tuple[str | None, dict[str, str]]], data: st.DataObject
) -> None:
    cut = data.draw(st.integers(1, len(history)))
    never = fed(history)
    g = graph()
    for position, (customer, raw) in enumerate(history, 1):
        g.place(position * 10, f"e{position}", customer, raw)
        if position == cut:  # a person merges two people (or one with itself)
            ids = g.people()
            a, b = (min(g.members(data.draw(st.sampled_from(ids)))) for _ in "ab")
            g.merge(position * 10 + 5, "m", a, b, by="eve", reason="same person")
    g.unmerge("m")
    assert people(g) == people(never)
    assert [c.people for c in g.conflicts()] == [c.people for c in never.conflicts()]


@settings(max_examples=300, deadline=None)
@given(touchpoints(), st.sampled_from(["a@x.com", "b@x.com"]))
def test_detaching_an_identifier_is_as_if_it_had_been_shared_from_the_start(
    history: list[tuple[str | None, dict[str, str]]], email: str
) -> None:
    g = fed(history)
    g.detach(Identifier("email", email))
    assert people(g) == people(fed(history, shared={"email": [email]}))


@settings(max_examples=300, deadline=None)
@given(touchpoints())
def test_no_person_has_two_customer_ids_without_a_merge_and_keeps_the_first(
    history: list[tuple[str | None, dict[str, str]]],
) -> None:
    g = fed(history)
    first_seen = list(dict.fromkeys(c for c, _ in history if c))
    for person, members in people(g).items():
        known = [m.value for m in members if m.kind == CUSTOMER_ID]
        assert len(known) <= 1
        if known:
            assert person == known[0]
    for customer in first_seen:
        assert g.person_of(Identifier(CUSTOMER_ID, customer)) == customer


@pytest.mark.parametrize(
    ("policy", "message"),
    [
        ({"region": "XX"}, "region: 'XX' is not a region phone numbers know"),
        ({"link": ["fax"]}, "link: unknown identifier kind 'fax'"),
        ({"kinds": ["email"]}, "kinds: 'email' is not a new lower-case name"),
        ({"shared": {"phone": ["12"]}}, "shared.phone: '12' has no country code"),
    ],
)
def test_a_bad_identity_policy_names_the_key(policy: dict[str, object], message: str) -> None:
    definition = {"journey": {"name": "j"}, "stages": [{"id": "aware", "label": "Aware"}]}
    with pytest.raises(DefinitionError, match=re.escape(message)):
        definition_from_mapping({**definition, "identity": policy}, origin="j.toml")


def test_a_kind_the_journey_adds_is_read_from_the_attribute_of_that_name() -> None:
    g = graph(kinds=["crm_contact"], link=["email", "crm_contact"])
    g.place(1, "e1", "C-1", {}, {"crm_contact": "77"})
    assert g.place(2, "e2", None, {"email": "a@x.com"}, {"crm_contact": "77"}).person == "C-1"


def test_only_an_identity_policy_of_ones_own_asks_for_the_views_to_be_rebuilt() -> None:
    default = load_definition()
    assert definition_digest(default) == definition_digest(
        default.model_copy(update={"identity": IdentityPolicy()})
    )
    danish = default.model_copy(update={"identity": IdentityPolicy(region="DK")})
    assert definition_digest(danish) != definition_digest(default)


_IDENTIFIERS = st.fixed_dictionaries(
    {},
    optional={
        "email": st.sampled_from(["a@x.com", "A@X.com", "b@x.com", "n/a"]),
        "phone": st.sampled_from(["+4520000001", "+45 20 00 00 01", "+4520000002"]),
        "cookie_id": st.sampled_from(["k1", "k2", "k3"]),
    },
)
_STEPS = st.lists(
    st.one_of(
        st.tuples(st.sampled_from([None, "C-1", "C-2", "C-3"]), _IDENTIFIERS),
        st.sampled_from(["detach cookie_id:k1", "detach email:a@x.com", "merge", "unmerge"]),
    ),
    max_size=40,
)


@settings(max_examples=300, deadline=None)
@given(steps=_STEPS)
def test_people_place_each_touchpoint_where_the_graph_alone_would(
    steps: list[tuple[str | None, dict[str, str]] | str],
) -> None:
    """`People` skips the graph for what changes nothing (a customer's identifiers carried
    before, an anonymous key's identifiers as last time): the person, and what placing
    changed, are still exactly those the graph gives for every touchpoint."""
    from engine.identifiers import parse_identifier, stream_key
    from engine.journeys import DETACHED, MERGED, UNMERGED
    from projections.people import Decision, People, Sighting

    policy = IdentityPolicy()
    people = People(policy, history=None)  # type: ignore[arg-type]  # nothing is read back
    alone = IdentityGraph(policy)
    for position, step in enumerate(steps, 1):
        if isinstance(step, str):
            verb, _, what = step.partition(" ")
            if verb == "detach":
                decision = Decision(DETACHED, "", what, "", "eve", "shared", 0)
                expected = alone.detach(parse_identifier(what))
            elif verb == "merge":
                a, b = Identifier(CUSTOMER_ID, "C-1"), Identifier(CUSTOMER_ID, "C-2")
                decision = Decision(MERGED, "m1", str(a), str(b), "eve", "same", 0)
                expected = alone.merge(position, "m1", a, b, by="eve", reason="same")
            else:
                decision = Decision(UNMERGED, "m1", "", "", "eve", "two", 0)
                expected = alone.unmerge("m1")
            assert people.decide(position, decision) == expected
            continue
        customer, raw = step
        key = customer or stream_key(dict(raw))
        if key is None:
            continue  # a touchpoint naming no one is refused when recorded
        seen = Sighting(customer, raw, {}) if raw or customer is None else None
        person, moved = people.place(position, key, seen, f"e{position}")
        try:
            placed = alone.place(position, f"e{position}", customer, raw)
        except InvalidTouchpoint:
            placed = alone.place(position, f"e{position}", key, {})
        assert person == placed.person
        assert (moved.changed, moved.gone) == (placed.regrouped.changed, placed.regrouped.gone)
