"""Which customer the demo shows for each story: of the customers generated for it, the one
whose journey up to today shows most of what the story says the engine should see (the
README's customer stories). Each story's criteria are declared once, in CRITERIA.

A customer qualifies only if they show every one of their story's defining features; a story
none of its customers qualifies for gets no example, and the demo says so.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from functools import partial
from itertools import pairwise

from consumers.action_store import ActionRow
from journey.bootstrap import Engine
from journey.demo import STORIES, DemoCustomer
from journey.people import people_touchpoints
from projections.log import Folded
from projections.position import Position

# The default journey's stages, in the order customers climb them.
LADDER = ("aware", "engaged", "considering", "evaluating", "deciding", "customer", "advocate")


@dataclass(frozen=True, slots=True)
class Shown:
    """What the demo shows of a customer: where they stand, their open next actions, the
    touchpoints recorded after something that happened later, and who owns the actions meant
    for their rep (the definition's unassigned owner while they have none)."""

    position: Position
    actions: tuple[ActionRow, ...]
    late: tuple[Folded, ...]
    rep_owner: str


@dataclass(frozen=True, slots=True)
class Feature:
    """Something a story says the engine should see, and how to tell a customer shows it.
    `defining`: a customer without it does not show the story at all. `timeline`: telling
    needs the customer's touchpoints, read only for the stories that ask."""

    says: str
    seen: Callable[[Shown], bool]
    defining: bool = False
    timeline: bool = False


def _stage(stage: str) -> Callable[[Shown], bool]:
    return lambda shown: shown.position.stage == stage


def _friction(kind: str) -> Callable[[Shown], bool]:
    """An open friction: one somebody resolved no longer shows the story."""
    return lambda shown: any(f.kind == kind for f in shown.position.open_frictions)


def _moment(kind: str, *outcomes: str) -> Callable[[Shown], bool]:
    return lambda shown: any(
        m.kind == kind and m.outcome in outcomes for m in shown.position.moments
    )


def _action(
    rule: str, owner: str | None = None, channel: str | None = None
) -> Callable[[Shown], bool]:
    """An open next action of `rule`; `owner` "rep" is the customer's rep."""

    def seen(shown: Shown) -> bool:
        wanted = shown.rep_owner if owner == "rep" else owner
        return any(
            a.rule == rule
            and (wanted is None or a.owner == wanted)
            and (channel is None or a.channel == channel)
            for a in shown.actions
        )

    return seen


def _only_actions(*rules: str) -> Callable[[Shown], bool]:
    return lambda shown: sorted(a.rule for a in shown.actions) == sorted(rules)


def _no_human_contact(shown: Shown) -> bool:
    return not any(m.kind == "first_human_contact" for m in shown.position.moments)


def _stages_in_order(*stages: str) -> Callable[[Shown], bool]:
    return lambda shown: [entry.stage for entry in shown.position.history] == list(stages)


def _regressed_from(*stages: str) -> Callable[[Shown], bool]:
    """Moved back from one of `stages` to a stage below it on the ladder."""

    def seen(shown: Shown) -> bool:
        history = [entry.stage for entry in shown.position.history]
        return any(
            before in stages and after in LADDER and LADDER.index(after) < LADDER.index(before)
            for before, after in pairwise(history)
        )

    return seen


def _positive_in_person_negative_by_phone(shown: Shown) -> bool:
    outcomes = shown.position.outcomes
    visit, phone = outcomes.get("visit", [0, 0, 0]), outcomes.get("phone", [0, 0, 0])
    return shown.position.inconsistent_channels and visit[0] > visit[2] and phone[2] > phone[0]


def _all_moments_positive(shown: Shown) -> bool:
    moments = shown.position.moments
    return bool(moments) and all(m.outcome == "positive" for m in moments)


def _no_friction(shown: Shown) -> bool:
    return not shown.position.frictions


def _late_visit(shown: Shown) -> bool:
    return any(tp.channel == "visit" for tp in shown.late)


def _moved_by_the_late_visit(shown: Shown) -> bool:
    late = {tp.event_id: tp.occurred_at for tp in shown.late if tp.channel == "visit"}
    return any(
        late.get(entry.event_id or "") == entry.entered_at for entry in shown.position.history
    )


def _late_visit_followed_up_by_its_rep(shown: Shown) -> bool:
    reps = {tp.rep_id for tp in shown.late if tp.channel == "visit"}
    return any(a.rule == "follow_up_visit" and a.owner in reps for a in shown.actions)


def _came_back_after_going_quiet(shown: Shown) -> bool:
    history = [entry.stage for entry in shown.position.history]
    return "dormant" in history[:-1]


def _stalled_in(stage: str) -> Callable[[Shown], bool]:
    return lambda shown: any(
        f.kind == "stall" and f.stage == stage for f in shown.position.open_frictions
    )


# Per story of the demo's generator: what the engine should see, as the customer stories say
# it, the defining features first (the last two stories are the generator's own: customers
# who only browse, and evaluations that stall).
CRITERIA: Mapping[str, tuple[Feature, ...]] = {
    "warm referral gone cold": (
        Feature("referral not used", _friction("referral_unused"), defining=True),
        Feature("visit with no follow-up", _friction("no_follow_up"), defining=True),
        Feature("stage Evaluating", _stage("evaluating")),
        Feature("a poor first in-person visit", _moment("first_visit", "neutral", "negative")),
        Feature("hand-off break", _friction("hand_off")),
        Feature("a follow-up by their rep", _action("follow_up_visit", owner="rep")),
        Feature("an introduction through the referrer", _action("introduction_referral")),
    ),
    "digital to phone after a failed step": (
        Feature(
            "channel jump after a failed digital step", _friction("channel_jump"), defining=True
        ),
        Feature("stage Considering", _stage("considering")),
        Feature(
            "a call back with context from their rep",
            _action("call_back_channel_jump", owner="rep", channel="phone"),
        ),
    ),
    "bank customer on two channels": (
        Feature(
            "a negative first complaint", _moment("first_complaint", "negative"), defining=True
        ),
        Feature("positive in person but negative by phone", _positive_in_person_negative_by_phone),
        Feature("a regression from Advocate or Customer", _regressed_from("advocate", "customer")),
        Feature(
            "a recovery call by the branch manager",
            _action("recovery_call", owner="branch_manager"),
        ),
    ),
    "repeated pricing views, no contact": (
        Feature("loop without progress", _friction("loop"), defining=True),
        Feature("stage Considering", _stage("considering")),
        Feature("no human contact", _no_human_contact),
        Feature(
            "a consultation offer by email from their rep",
            _action("consultation_offer", owner="rep", channel="email"),
        ),
    ),
    "late visit log": (
        Feature("a visit reported late", _late_visit, defining=True, timeline=True),
        Feature("the stage moved when the visit happened", _moved_by_the_late_visit, timeline=True),
        Feature(
            "a follow-up by the rep who made the visit",
            _late_visit_followed_up_by_its_rep,
            timeline=True,
        ),
    ),
    "happy path": (
        Feature("stages Aware to Advocate in order", _stages_in_order(*LADDER), defining=True),
        Feature("no friction", _no_friction),
        Feature("moments of truth all positive", _all_moments_positive),
        Feature("nothing to do but a thank-you", _only_actions("thank_you_referral")),
    ),
    "browser": (
        Feature("no human contact", _no_human_contact, defining=True),
        Feature("back after going quiet", _came_back_after_going_quiet),
        Feature("stage Engaged", _stage("engaged")),
    ),
    "stalled evaluation": (
        Feature("stalled in Evaluating", _stalled_in("evaluating"), defining=True),
        Feature("visit with no follow-up", _friction("no_follow_up")),
        Feature("a follow-up by their rep", _action("follow_up_visit", owner="rep")),
    ),
}


@dataclass(frozen=True, slots=True)
class Example:
    """A story's example customer (None: no customer shows it), what they show of the story
    and what they do not; `candidates`: how many customers were generated for it."""

    story: str
    customer_id: str | None
    shows: tuple[str, ...]
    misses: tuple[str, ...]
    candidates: int

    def summary(self, today: str) -> str:
        """One line saying what the example shows of the story, or plainly that none does."""
        features = CRITERIA[self.story]
        if self.customer_id is None:
            if not self.candidates:
                return "No example: no customer was generated for this story."
            defining = " and ".join(f.says for f in features if f.defining)
            return (
                f"No example: no customer of the {self.candidates} generated for this story "
                f"shows {defining} up to {today}."
            )
        line = (
            f"{self.customer_id} shows {len(self.shows)} of the story's {len(features)} signs: "
            f"{', '.join(self.shows)}"
        )
        return f"{line}; not shown: {', '.join(self.misses)}" if self.misses else line


def best(
    story: str, candidates: Iterable[str], shown: Callable[[Sequence[str]], Mapping[str, Shown]]
) -> Example:
    """The candidate who shows every defining feature and the most features of the story;
    ties go to the lowest customer id. `shown` reads what the demo shows of some customers:
    they are read a few at a time, in the order of their ids, until one shows everything (no
    later one can do better), so the demo reads little more than the examples it shows."""
    features = CRITERIA[story]
    ordered = sorted(candidates)
    found: tuple[str, tuple[str, ...]] | None = None
    for start in range(0, len(ordered), _READ_AT_ONCE):
        few = ordered[start : start + _READ_AT_ONCE]
        journeys = shown(few)
        for customer_id in few:
            journey = journeys.get(customer_id)
            if journey is None:
                continue
            shows = tuple(f.says for f in features if f.seen(journey))
            if not all(f.says in shows for f in features if f.defining):
                continue
            if found is None or len(shows) > len(found[1]):
                found = customer_id, shows
        if found is not None and len(found[1]) == len(features):
            break
    if found is None:
        return Example(story, None, (), (), len(ordered))
    customer_id, shows = found
    misses = tuple(f.says for f in features if f.says not in shows)
    return Example(story, customer_id, shows, misses, len(ordered))


_READ_AT_ONCE = 32


def story_examples(
    engine: Engine, customers: Iterable[DemoCustomer], open_actions: Iterable[ActionRow]
) -> list[Example]:
    """One example per story of the demo's generator, in its order, from the engine's views;
    `open_actions`: every customer's open next actions."""
    stories: dict[str, list[str]] = {name: [] for name, _, _ in STORIES}
    for customer in customers:
        stories[customer.story].append(customer.customer_id)
    actions: dict[str, list[ActionRow]] = {}
    for action in open_actions:
        actions.setdefault(action.customer_id, []).append(action)
    unassigned = engine.definition.actions.unassigned_owner

    def shown(story: str, customer_ids: Sequence[str]) -> dict[str, Shown]:
        late: Mapping[str, tuple[Folded, ...]] = {}
        if any(f.timeline for f in CRITERIA[story]):
            streams = people_touchpoints(engine, customer_ids)
            late = {c: reported_late(stream) for c, stream in streams.items()}
        return {
            c: Shown(p, tuple(actions.get(c, ())), late.get(c, ()), p.rep or unassigned)
            for c, p in engine.view.load_positions(customer_ids).items()
        }

    return [
        best(story, customer_ids, partial(shown, story)) for story, customer_ids in stories.items()
    ]


def reported_late(arrivals: Sequence[Folded]) -> tuple[Folded, ...]:
    """Of a customer's touchpoints in the order they arrived, those recorded after something
    that happened later (the timeline marks them "reported late")."""
    late: list[Folded] = []
    latest = float("-inf")
    for tp in arrivals:
        if tp.occurred_at < latest:
            late.append(tp)
        else:
            latest = tp.occurred_at
    return tuple(late)
