"""A seeded, realistic multi-channel dataset: many variations of the customer stories.

Touchpoints come out in the order channel systems would report them (their arrival order), so
an offline visit logged days later comes after what happened in between.
"""

from __future__ import annotations

import random
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import TYPE_CHECKING

from engine.actions import ActionOutcome
from engine.touchpoints import Touchpoint, millis

if TYPE_CHECKING:
    from consumers.action_store import ActionRow

HOUR = 3_600_000
DAY = 24 * HOUR
START = millis(datetime(2025, 3, 3, tzinfo=UTC))
SPAN_DAYS = 240
REPS = ("kathrine", "peter", "amira", "jonas", "li", "sofia", "mateo", "ingrid")
LOCATIONS = ("A", "B", "C", "D")
PAGES = ("home", "amenities", "programmes", "case_study", "blog", "about", "locations")
SOURCES = {"web": "web-analytics", "email": "email-platform", "phone": "telephony", "visit": "crm"}


@dataclass
class _Journey:
    """One customer's touchpoints as they are built, with the arrival delay of each."""

    customer_id: str
    rep: str
    rng: random.Random
    at: int
    items: list[tuple[int, Touchpoint]] = field(default_factory=list)

    def add(
        self,
        channel: str,
        kind: str,
        *,
        after: float = 0.0,
        outcome: str | None = None,
        rep: str | None = None,
        logged_after: float = 0.0,
        **attributes: str,
    ) -> None:
        """A touchpoint `after` hours from the previous one, reported `logged_after` hours late."""
        self.at += int(after * HOUR) + self.rng.randrange(60_000)
        tp = Touchpoint(
            event_id=f"{self.customer_id}-{len(self.items) + 1:03d}",
            customer_id=self.customer_id,
            channel=channel,
            type=kind,
            occurred_at=self.at,
            source=SOURCES[channel],
            rep_id=rep,
            outcome=outcome,
            email=f"{self.customer_id.lower()}@example.com" if channel == "email" else None,
            phone=f"+4520{self.customer_id[-6:]}" if channel == "phone" else None,
            cookie_id=f"ck-{self.customer_id.lower()}" if channel == "web" else None,
            attributes=attributes,
        )
        self.items.append((self.at + int(logged_after * HOUR), tp))

    def browse(self, pages: int, *, hours: float = 6.0) -> None:
        for _ in range(pages):
            self.add(
                "web", "page_view", after=self.rng.uniform(0.1, hours), page=self.rng.choice(PAGES)
            )

    def newsletter(self, count: int) -> None:
        for _ in range(count):
            self.add("email", "email_opened", after=self.rng.uniform(24, 96), campaign="newsletter")


def _warm_referral_gone_cold(j: _Journey) -> None:
    rng, other = j.rng, rng_other_rep(j)
    home, offered = rng.sample(LOCATIONS, 2)
    j.add("email", "referral", referred_by=f"C-REF{rng.randrange(100):02d}", referrer_location=home)
    # The tour is booked for five days after the call, at ten, and a colleague will hold it.
    call_at = j.at + 48 * HOUR
    tour_at = (call_at // DAY + 5) * DAY + 10 * HOUR
    j.add(
        "phone",
        "call_outbound",
        after=48,
        rep=j.rep,
        outcome="positive",
        booked="tour",
        booked_for=datetime.fromtimestamp(tour_at / 1000, UTC).isoformat(),
        host=other,
        location=offered,
    )
    j.add("web", "page_view", after=24, page="amenities")
    j.add("web", "page_view", after=0.2, page="programmes")
    j.browse(rng.randint(1, 4), hours=1)
    j.add(
        "visit",
        "tour",
        after=max(0.0, (tour_at - j.at) / HOUR),
        rep=other,
        outcome=rng.choice(("neutral", "negative")),
        location=offered,
    )
    j.newsletter(rng.randint(0, 2))


def _digital_to_phone(j: _Journey) -> None:
    j.browse(j.rng.randint(2, 8), hours=48)
    j.add("web", "page_view", after=24, page="pricing")
    j.add("web", "page_view", after=1, page="pricing")
    j.add("web", "form_failed", after=0.2, outcome="negative", form="contact", error="validation")
    j.add("phone", "call_inbound", after=j.rng.uniform(0.1, 0.9), line="sales")
    j.newsletter(j.rng.randint(1, 4))


def _bank_customer_on_two_channels(j: _Journey) -> None:
    rng = j.rng
    j.add("visit", "contract_signed", rep=j.rep, outcome="positive", product="current_account")
    j.newsletter(rng.randint(2, 6))
    j.add(
        "email",
        "referral_given",
        after=24 * rng.randint(60, 200),
        referred=f"C-NEW{rng.randrange(100)}",
    )
    j.add(
        "visit",
        "visit",
        after=24 * rng.randint(10, 60),
        rep=j.rep,
        outcome="positive",
        branch="central",
    )
    j.add(
        "phone", "call_inbound", after=24 * 5, outcome="negative", ivr="stuck", wait_seconds="840"
    )
    j.add("phone", "call_inbound", after=26, outcome="negative", ivr="stuck", wait_seconds="1260")
    j.add("email", "complaint", after=3, outcome="negative", topic="phone_service")


def _pricing_loop(j: _Journey) -> None:
    j.browse(j.rng.randint(1, 5), hours=24)
    for _ in range(6):
        j.add("web", "page_view", after=j.rng.uniform(30, 48), page="pricing")
    for _ in range(2):
        j.add("email", "email_clicked", after=j.rng.uniform(4, 30), link="comparison_guide")


def _late_visit_log(j: _Journey) -> None:
    j.browse(j.rng.randint(3, 8), hours=30)
    j.add("email", "email_clicked", after=48, link="brochure")
    j.add("visit", "visit", after=24, rep=j.rep, outcome="positive", logged_after=72, location="A")
    j.add("email", "email_opened", after=24, campaign="visit_recap")
    j.add("email", "email_inbound", after=24, subject="question about parking")


def _happy_path(j: _Journey) -> None:
    rng = j.rng
    j.browse(rng.randint(2, 6), hours=24)
    j.add("web", "page_view", after=24, page="pricing")
    j.add("web", "demo_requested", after=0.5, form="demo")
    j.add("visit", "demo", after=72, rep=j.rep, outcome="positive")
    j.add("email", "proposal_sent", after=47, rep=j.rep, outcome="positive")
    j.add("phone", "call_outbound", after=24, rep=j.rep, outcome="positive")
    j.add("visit", "contract_signed", after=24 * rng.randint(3, 14), rep=j.rep, outcome="positive")
    j.newsletter(rng.randint(1, 4))
    j.add(
        "email",
        "referral_given",
        after=24 * 90,
        outcome="positive",
        referred=f"C-NEW{rng.randrange(100)}",
    )


def _browser(j: _Journey) -> None:
    j.browse(j.rng.randint(1, 6), hours=72)
    j.newsletter(j.rng.randint(0, 4))
    if j.rng.random() < 0.5:
        j.add("web", "page_view", after=24 * j.rng.randint(70, 120), page="home")


def _stalled_evaluation(j: _Journey) -> None:
    j.browse(j.rng.randint(2, 6), hours=24)
    j.add("web", "content_download", after=12, asset="whitepaper")
    j.add("phone", "call_inbound", after=48, rep=j.rep, outcome="neutral")
    j.add("visit", "demo", after=96, rep=j.rep, outcome=j.rng.choice(("positive", "neutral")))
    j.newsletter(j.rng.randint(0, 3))


def rng_other_rep(j: _Journey) -> str:
    return j.rng.choice([rep for rep in REPS if rep != j.rep])


# (story, how it goes, share of customers)
STORIES: tuple[tuple[str, Callable[[_Journey], None], float], ...] = (
    ("warm referral gone cold", _warm_referral_gone_cold, 0.10),
    ("digital to phone after a failed step", _digital_to_phone, 0.12),
    ("bank customer on two channels", _bank_customer_on_two_channels, 0.08),
    ("repeated pricing views, no contact", _pricing_loop, 0.14),
    ("late visit log", _late_visit_log, 0.10),
    ("happy path", _happy_path, 0.12),
    ("browser", _browser, 0.20),
    ("stalled evaluation", _stalled_evaluation, 0.14),
)


@dataclass(frozen=True, slots=True)
class DemoCustomer:
    customer_id: str
    story: str


def demo_customers(customers: int, seed: int) -> list[DemoCustomer]:
    rng = random.Random(seed)
    names = [name for name, _, _ in STORIES]
    weights = [share for _, _, share in STORIES]
    return [
        DemoCustomer(f"C-{number:06d}", rng.choices(names, weights)[0])
        for number in range(1, customers + 1)
    ]


def demo_touchpoints(
    customers: int = 1_000, seed: int = 7, start: int = START, until: int | None = None
) -> Iterator[Touchpoint]:
    """About 20 touchpoints per customer, in arrival order. Journeys begin within SPAN_DAYS
    of `start`; with `until`, what would happen or arrive after it has not happened yet."""
    stories = {name: build for name, build, _ in STORIES}
    arrivals: list[tuple[int, str, Touchpoint]] = []
    for customer in demo_customers(customers, seed):
        rng = random.Random(f"{seed}:{customer.customer_id}")
        journey = _Journey(
            customer.customer_id, rng.choice(REPS), rng, start + rng.randrange(SPAN_DAYS * DAY)
        )
        journey.browse(rng.randint(4, 14), hours=96)
        stories[customer.story](journey)
        journey.newsletter(rng.randint(0, 4))
        arrivals.extend((arrived, tp.event_id, tp) for arrived, tp in journey.items)
    arrivals.sort(key=lambda item: (item[0], item[1]))
    for arrived, _, tp in arrivals:
        if until is not None and arrived > until:
            return
        yield tp


def recent_start(now: int) -> int:
    """A start for journeys that are under way at `now`: the first began about nine months
    earlier, the last twenty days earlier (midnight UTC, so one day's demo data stays put)."""
    return now - now % DAY - (SPAN_DAYS + 20) * DAY


# How the demo's sales people deal with their actions: some take most up, some few.
_DISMISSALS = (
    "already in touch with them",
    "not a fit for us",
    "they asked not to be called",
    "duplicate of another action",
)


def demo_outcomes(actions: Iterable[ActionRow], seed: int, now: int) -> list[ActionOutcome]:
    """What the owners did with each action, as their sales tool would report it: accepted and
    then done, done straight away, dismissed with a reason, snoozed, or nothing. Each owner
    keeps a habit of their own; nothing is reported after `now`."""
    outcomes = []
    for action in sorted(actions, key=lambda a: a.action_id):
        habit = random.Random(f"{seed}:{action.owner}").uniform(0.25, 0.85)
        rng = random.Random(f"{seed}:{action.action_id}")
        roll = rng.random()
        at = action.decided_at + int(rng.uniform(0.5, 30) * HOUR)
        steps: list[tuple[str, str | None, int | None]]  # status, reason, snoozed until
        if roll < habit:
            steps = [("accepted", None, None), ("done", None, None)]
            if rng.random() < 0.4:
                steps = steps[1:]
        elif roll < habit + 0.12:
            steps = [("dismissed", rng.choice(_DISMISSALS), None)]
        elif roll < habit + 0.2:
            steps = [("snoozed", None, at + 2 * DAY)]
        else:
            continue
        for number, (status, reason, until) in enumerate(steps):
            when = at + number * int(rng.uniform(2, 48) * HOUR)
            if when > now:
                break
            outcomes.append(
                ActionOutcome(
                    f"demo-{action.action_id}-{number}",
                    action.action_id,
                    action.customer_id,
                    status,
                    reason,
                    until,
                    action.owner,
                    when,
                )
            )
    return outcomes
