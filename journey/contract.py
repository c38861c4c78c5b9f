"""What the HTTP API answers and takes, field by field: the models its OpenAPI document is made
of. Answers are built as plain data (journey.render) and checked against these models where
FastAPI serialises them; a customer's journey, read most often and kept as bytes, is described
by its model and not validated again on every read.

Every time is ISO 8601 text in UTC to the millisecond (`render.instant`); every list but the
funnel comes a page at a time, in the one envelope of `Page`; every error is a `Problem`
(RFC 9457)."""

from __future__ import annotations

from http import HTTPStatus
from typing import Annotated, Any, Literal, NamedTuple

from pydantic import BaseModel, ConfigDict, Field

from engine.touchpoints import (
    EARLIEST_MS,
    MAX_ATTRIBUTES,
    MAX_ID_LENGTH,
    MAX_TEXT_LENGTH,
)

Time = Annotated[
    str,
    Field(
        json_schema_extra={"format": "date-time", "examples": ["2026-03-02T09:00:00.000Z"]},
    ),
]
Outcome = Literal["positive", "neutral", "negative"]
POSITION = (
    "The log position this request wrote (null if it wrote nothing new): pass it as `after` "
    "to a read to read your own writes."
)


class Stage(BaseModel):
    """A stage of the journey definition's ladder, in order."""

    id: str = Field(description="The stage's id, as `stage` fields name it.")
    label: str = Field(description="Its name for people.")
    description: str = Field(description="What being in it means, from the definition.")
    entered_by: list[str] = Field(
        description="What moves a customer into it, in words: one line per entry rule of "
        "the definition (any one of them does)."
    )
    state: Literal["reached", "current", "skipped", "ahead"] = Field(
        description="For this customer: current; reached (entered at some time); skipped "
        "(before the current stage, or the furthest reached, and never entered); ahead (not "
        "reached yet)."
    )


class StageEntry(BaseModel):
    """When the customer entered a stage, and what moved them there."""

    stage: str = Field(description="The stage's id.")
    entered_at: Time = Field(description="When they entered it (journey time).")
    event_id: str | None = Field(
        description="The touchpoint that moved them; null when silence did (dormancy)."
    )
    hours_in_stage: float = Field(
        description="Hours in that stage: until the next entry, or until `as_of` for the "
        "current one."
    )


class Friction(BaseModel):
    """A friction a customer met: where their journey hurt."""

    id: str = Field(description="Stable across replays: the detector and what opened it.")
    kind: str = Field(description="The friction rule's id (no_follow_up, loop, stall, ...).")
    label: str = Field(description="The rule's name for people.")
    severity: int | None = Field(
        description="1 (mild) to 5 (worst), from the journey definition; null for a kind the "
        "definition no longer has."
    )
    open: bool = Field(description="False once it was resolved.")
    opened_at: Time = Field(description="When it opened (journey time).")
    resolved_at: Time | None = Field(description="When it was resolved; null while open.")
    stage: str | None = Field(description="The customer's stage when it opened.")
    channel: str | None = Field(description="The channel of the touchpoint behind it.")
    rep_id: str | None = Field(description="The rep of the touchpoint behind it.")
    owner: str | None = Field(description="Who should act on it: the customer's rep.")
    events: list[str] = Field(
        description="The touchpoints behind it (event ids), the resolving one last."
    )


class ListedFriction(Friction):
    """A friction as lists give it: with its customer."""

    customer_id: str = Field(description="The customer who met it.")


class Moment(BaseModel):
    """A moment of truth: a touchpoint that decides much of how the customer sees the
    company, and how it went."""

    kind: str = Field(description="The moment rule's id (first_human_contact, ...).")
    label: str = Field(description="The rule's name for people.")
    at: Time = Field(description="When it happened.")
    event_id: str = Field(description="The touchpoint.")
    channel: str = Field(description="Its channel.")
    rep_id: str | None = Field(description="The rep who took part, if any.")
    outcome: Outcome | None = Field(description="How it went, if the channel could tell.")
    resolved_at: Time | None = Field(description="When it was resolved, if the rule asks.")
    resolved_by: str | None = Field(description="The touchpoint that resolved it.")
    resolution: str | None = Field(description="How it was resolved.")


class OutcomeTally(BaseModel):
    """Touchpoints with an outcome, per outcome."""

    positive: int = Field(description="Touchpoints that went well.")
    neutral: int = Field(description="Touchpoints that went neither well nor badly.")
    negative: int = Field(description="Touchpoints that went badly.")


class TimelineEntry(BaseModel):
    """A touchpoint as the customer's timeline shows it (personal identifiers left out)."""

    occurred_at: Time = Field(description="When it happened (not when it was reported).")
    event_id: str = Field(description="The producer's id of the touchpoint.")
    channel: str = Field(description="web, email, phone, visit, or other.")
    type: str = Field(description="What happened: page_view, call_inbound, tour, ...")
    what: str = Field(description="What happened, in words: page view, call to us, tour, ...")
    detail: str | None = Field(
        description="Where it happened and what it was about, from its attributes: the page "
        "viewed, the file downloaded, the form, 'at B' for a location; null if they say neither."
    )
    outcome: Outcome | None = Field(description="How it went, if the channel could tell.")
    rep_id: str | None = Field(description="The sales rep who took part, if any.")
    source: str = Field(description="The system that reported it.")
    attributes: dict[str, str] = Field(description="The channel's free details.")
    arrival: int = Field(
        description="Its place in the order the customer's touchpoints were recorded (1 for "
        "the first): a touchpoint reported late has a higher one than its neighbours."
    )


class Action(BaseModel):
    """A next-best-action: what someone should do for a customer, why, and what became of
    it."""

    action_id: str = Field(description="Stable: a decision made again has the same id.")
    customer_id: str = Field(description="The customer it is for.")
    owner: str = Field(description="Who should act: a rep, or a role such as branch_manager.")
    action_type: str = Field(description="What to do: follow_up, recovery_call, ...")
    channel: str = Field(description="How to reach the customer for it.")
    rule: str = Field(description="The action rule that decided it.")
    priority: float = Field(description="0 to 1; higher first.")
    priority_level: Literal["high", "medium", "low"] = Field(
        description="The priority in a word: high from 0.8, medium from 0.6, low below (the "
        "default policy's follow-ups and call backs are high, its thank-yous low)."
    )
    status: Literal[
        "open", "accepted", "snoozed", "done", "dismissed", "superseded", "expired", "cancelled"
    ] = Field(
        description="open, accepted or snoozed while it is to be done; done or dismissed as a "
        "rep reported; superseded when a more important action took its place, expired when "
        "its window passed with nothing done, cancelled when what triggered it resolved or the "
        "customer opted out or went dormant (status_reason says which)."
    )
    reason: str | None = Field(
        description="Why, in words a rep can act on (null for analysts: it names people)."
    )
    decided_at: Time = Field(description="When it was decided (journey time).")
    due_at: Time | None = Field(description="When it should be done by.")
    triggering_event_ids: list[str] = Field(description="The touchpoints behind it.")
    status_at: Time | None = Field(description="When its status last changed; null if open.")
    status_reason: str | None = Field(description="Why, as the rep or the engine said.")
    snoozed_until: Time | None = Field(description="With snoozed: when it comes back.")


class Beaten(BaseModel):
    """A candidate action this one won against, or that was held back."""

    rule: str = Field(description="Its action rule.")
    action_id: str = Field(description="The id it would have had.")
    priority: float = Field(description="Its priority.")
    held_by: str = Field(description="What held it back: a higher priority, a daily limit.")


class Explanation(BaseModel):
    """Why the action was decided, as the decider recorded it."""

    rule: str = Field(description="The action rule.")
    trigger: str = Field(description="What triggered it: a friction's id or a touchpoint's.")
    triggered_at: Time = Field(description="When that happened.")
    events: list[str] = Field(description="The touchpoints behind it.")
    score: dict[str, float] = Field(description="The score's parts: value, urgency, fit.")
    weights: dict[str, float] = Field(description="The definition's weight for each part.")
    priority: float = Field(description="The weighted sum of the parts.")
    beat: list[Beaten] = Field(description="The candidates it beat or held back.")


class ExplainedAction(Action):
    """An action with why it was decided."""

    explanation: Explanation = Field(description="Why it was decided.")
    log_position: int = Field(description="The log position the decision was made at.")


class RecordedOutcome(Action):
    """The action as it stands once the outcome is recorded."""

    position: int | None = Field(description=POSITION)


class Journey(BaseModel):
    """A customer's journey: where they stand, how they got there, where it hurt, and what to
    do next."""

    customer_id: str = Field(
        description="The customer's id, as channel systems give it (for analysts, its pseudonym)."
    )
    stage: str | None = Field(description="The stage they are in now.")
    stage_label: str = Field(description="Its name for people.")
    stage_since: Time | None = Field(description="When they entered it.")
    time_in_stage_hours: float | None = Field(description="Hours in it, until `as_of`.")
    as_of: Time | None = Field(
        description="The customer's journey time: their latest touchpoint or the engine's "
        "clock, whichever is later."
    )
    touchpoints: int = Field(description="How many touchpoints were recorded for them.")
    first_seen: Time | None = Field(description="Their earliest touchpoint.")
    last_seen: Time | None = Field(description="Their latest touchpoint.")
    stage_history: list[StageEntry] = Field(description="Every stage they entered, in order.")
    rep: str | None = Field(description="Their rep: the rep of their first contact with one.")
    frictions: list[Friction] = Field(description="Frictions they met, open and resolved.")
    moments_of_truth: list[Moment] = Field(description="Their moments of truth, in order.")
    channel_outcomes: dict[str, OutcomeTally] = Field(
        description="Touchpoints with an outcome, per channel."
    )
    inconsistent_channels: bool = Field(
        description="Whether the channels disagree: good on one, bad on another."
    )
    next_actions: list[Action] = Field(description="Their actions, open ones first.")
    timeline: list[TimelineEntry] = Field(
        description="Their touchpoints by when they happened, across channels."
    )
    stages: list[Stage] = Field(description="The journey's ladder, for drawing a stage bar.")
    next_stage: str | None = Field(
        description="The ladder's stage after the current one (its `entered_by` says what "
        "moves the customer there); null at the top, or off the ladder (dormant)."
    )


class CustomerSummary(BaseModel):
    """A customer as lists show them."""

    customer_id: str = Field(description="The customer's id, as channel systems give it.")
    stage: str | None = Field(description="The stage they are in now.")
    stage_since: Time | None = Field(description="When they entered it.")
    rep: str | None = Field(description="Their rep.")
    touchpoints: int = Field(description="How many touchpoints were recorded for them.")
    last_seen: Time | None = Field(description="Their latest touchpoint.")
    open_frictions: int = Field(description="How many of their frictions are open.")


class StageCount(BaseModel):
    """A stage of the funnel."""

    stage: str = Field(description="The stage's id.")
    label: str = Field(description="Its name for people.")
    reached: int = Field(
        description="Customers who got at least this far on the ladder (for a stage off the "
        "ladder: who are in it)."
    )
    current: int = Field(description="Customers in the stage now.")


class FrictionCount(BaseModel):
    """Open frictions of one group: the fields grouped by (`by`, and `then` if given) are
    present, the others left out. A null key is frictions without one (no owner, say)."""

    kind: str | None = Field(None, description="With by=kind or then=kind.")
    stage: str | None = Field(None, description="With by=stage or then=stage.")
    channel: str | None = Field(None, description="With by=channel or then=channel.")
    owner: str | None = Field(None, description="With by=owner or then=owner.")
    frictions: int = Field(description="How many open frictions the group has.")


class Page(BaseModel):
    """One page of a list. Ask for the next with `next` until it is null: each item comes
    once, in the list's order."""

    total: int = Field(description="How many items the list has in all, with these filters.")
    limit: int = Field(description="The most items a page holds, as asked (`limit`).")
    offset: int = Field(description="How many items come before this page (`offset`).")
    next: str | None = Field(
        description="The next page: a path and query on this server, to GET as it is (the "
        "same filters, the next offset); null on the last page.",
        examples=["/api/actions?owner=kathrine&limit=100&offset=100"],
    )


class WorkItem(Action):
    """An action on a sales person's worklist."""

    group: Literal["overdue", "today", "later"] = Field(
        description="overdue (due before `as_of`), today (due later on the day of `as_of`, "
        "in `zone`), or later (another day, or no due time)."
    )
    label: str = Field(description="What to do, as the action rule names it.")


class WorkCounts(BaseModel):
    """How many actions the worklist holds, per group."""

    overdue: int = Field(description="Due before `as_of`.")
    today: int = Field(description="Due later on the day of `as_of`.")
    later: int = Field(description="Due another day, or with no due time.")
    snoozed: int = Field(description="Snoozed until after `as_of`: left out until then.")


class DayCount(BaseModel):
    """Actions of the worklist due on one day."""

    day: str = Field(
        description="The day, in `zone`.",
        json_schema_extra={"format": "date", "examples": ["2026-03-14"]},
    )
    actions: int = Field(description="Actions due that day.")


class Owner(BaseModel):
    """Someone actions are decided for: a rep, or a role such as branch_manager."""

    owner: str = Field(description="The owner's id, as actions name it.")
    to_do: int = Field(
        description="Actions to do as of `as_of`: open, accepted, or back from a snooze."
    )
    overdue: int = Field(description="Of those, due before `as_of`.")


class Caller(BaseModel):
    """Who a token is, and whose customers and actions it reads."""

    name: str = Field(description="The token's name in the tokens file (or the variable's).")
    role: str = Field(description="admin, rep, manager, analyst or ingest.")
    rep: str | None = Field(description="A rep's id, for a rep's token.")
    team: str | None = Field(description="A manager's team.")
    reps: list[str] | None = Field(
        description="Whose customers and actions it reads: the rep, or the team's reps; "
        "null for everyone's (admin), or no one's by name (analyst, ingest)."
    )


class OwnerPage(Page):
    as_of: Time | None = Field(description="The journey's clock the counts are taken at.")
    items: list[Owner] = Field(description="Owners, by id.")


class WorklistPage(Page):
    """A sales person's day: actions to do, overdue first, then due today, then later, as of
    the journey's clock: the latest time a touchpoint or a clock event names (not the wall
    clock: history recorded at past times has a day of its own)."""

    owner: str = Field(description="Whose worklist.")
    as_of: Time | None = Field(description='The journey\'s clock: "now" for this list.')
    zone: str = Field(description="The time zone days begin in (IANA), as asked.")
    counts: WorkCounts = Field(description="Actions per group, the whole list's.")
    days: list[DayCount] = Field(
        description="Actions due per day, in order; days before today hold the overdue ones."
    )
    items: list[WorkItem] = Field(
        description="Overdue first, then today, then later; in each the earliest due first."
    )


class CustomerPage(Page):
    items: list[CustomerSummary] = Field(description="Customers, the longest in stage first.")


class ActionPage(Page):
    items: list[Action] = Field(description="Actions, the most important first.")


class FrictionPage(Page):
    items: list[ListedFriction] = Field(
        description="Frictions, worst first (severity, then the oldest)."
    )


class FrictionCountPage(Page):
    items: list[FrictionCount] = Field(description="Groups, the most frictions first.")


class RuleBacktest(BaseModel):
    """One action rule's proposals in a backtest, compared with the logged decisions by
    action id (the customer, the rule and the triggering event)."""

    rule: str = Field(description="The rule's id; `all` for the totals.")
    proposed: int = Field(description="Proposals of the candidate decided in the window.")
    logged: int = Field(description="Decisions the decider logged in the window.")
    added: int = Field(description="Proposed by the candidate only.")
    dropped: int = Field(description="Logged only: the candidate would not propose them.")
    changed: int = Field(
        description="Both, but with another owner, priority, due time, channel or reason."
    )
    same: int = Field(description="Both, alike.")
    changed_fields: dict[str, int] = Field(
        description="How many changed proposals differ in each field."
    )
    outcomes: dict[str, int] = Field(
        description="What became of the proposals that match logged ones, replayed with the "
        "outcomes sales people reported and the journey's own ends: by status."
    )
    dismissed_because: dict[str, int] = Field(
        description="Of those dismissed, how many for each reason given, the commonest first."
    )
    dropped_outcomes: dict[str, int] = Field(
        description="What became of the logged actions the candidate drops: by status."
    )


class OwnerDayBacktest(BaseModel):
    """One owner's proposals and logged decisions on one day."""

    day: str = Field(
        description="The day (UTC, journey time).",
        json_schema_extra={"format": "date", "examples": ["2026-03-14"]},
    )
    proposed: int = Field(description="Proposals of the candidate that day.")
    logged: int = Field(description="Decisions logged that day.")


class OwnerBacktest(BaseModel):
    """How one owner's proposals spread over the days, against the candidate's limit."""

    owner: str = Field(description="A rep's id, or a role such as branch_manager.")
    limit: int = Field(description="The candidate's `per_owner_per_day`.")
    proposed: int = Field(description="Proposals of the candidate in the window.")
    logged: int = Field(description="Decisions logged in the window.")
    busiest_day: int = Field(description="The most proposals on one day.")
    days_at_limit: int = Field(
        description="Days the candidate reaches the limit on: what comes after waits."
    )
    logged_days_over_limit: int = Field(
        description="Days the logged decisions exceed the candidate's limit on."
    )
    days: list[OwnerDayBacktest] = Field(description="Each day with either, in order.")


class ProposalBacktest(BaseModel):
    """An action as one side of the backtest decided it, and what became of it."""

    owner: str = Field(description="Who would do it.")
    action_type: str = Field(description="What to do.")
    channel: str = Field(description="By which channel.")
    priority: float = Field(description="From 0 to 1.")
    decided_at: Time = Field(description="When it was decided (journey time).")
    due_at: Time | None = Field(description="When it is due.")
    reason: str = Field(description="Why, in words a sales person reads.")
    status: str = Field(description="What became of it: open, done, dismissed, expired...")
    status_reason: str | None = Field(description="Why it ended, or the rep's reason.")


class PairBacktest(BaseModel):
    """One action id of the customer asked for: the candidate's proposal and the logged one."""

    action_id: str = Field(description="The action's id.")
    rule: str = Field(description="The rule that decided it.")
    difference: Literal["added", "dropped", "changed", "same"] = Field(
        description="added (the candidate only), dropped (logged only), changed, or same."
    )
    changed_fields: list[str] = Field(description="The fields that differ, if changed.")
    candidate: ProposalBacktest | None = Field(description="The candidate's; null if dropped.")
    logged: ProposalBacktest | None = Field(description="The logged one; null if added.")


class BacktestWindow(BaseModel):
    """Which decisions were compared, by when they were decided."""

    model_config = ConfigDict(populate_by_name=True)

    from_: Time | None = Field(alias="from", description="From (inclusive); null: the start.")
    to: Time | None = Field(description="Before (exclusive); null: the end.")


class Replayed(BaseModel):
    """What the backtest replayed: the log from its start to where the decider has decided."""

    events: int = Field(description="Log entries: touchpoints, clock events and outcomes.")
    position: int = Field(description="The log position replayed up to.")
    customers: int = Field(description="Customers decided for.")
    seconds: float = Field(description="How long the replay took.")


class Backtest(BaseModel):
    """A candidate definition's action rules and policy replayed over history beside the
    logged decisions. Nothing was written or sent."""

    candidate: str = Field(description="Where the candidate came from.")
    window: BacktestWindow = Field(description="Which decisions were compared.")
    replayed: Replayed = Field(description="What was replayed.")
    totals: RuleBacktest = Field(description="Every rule together.")
    rules: list[RuleBacktest] = Field(
        description="Each rule of the candidate, then any logged rule it no longer has."
    )
    owners: list[OwnerBacktest] = Field(description="Each owner's days, by id.")
    added_outcomes: str = Field(description="Why added proposals have no outcomes.")
    customer: list[PairBacktest] = Field(
        description="The customer asked for (`customer`): their actions side by side, the "
        "first decided first; empty if none was asked for."
    )


class Credit(BaseModel):
    """Credit one attribution model gives touchpoints with one value of an attribute on one
    channel for one kind of conversion: a stage entry or a friction opening. Each conversion
    gives 1 in all per model and attribute, split over the customer's touchpoints up to it
    (in the order they happened; the one that made it included)."""

    model: str = Field(
        description="first_touch, last_touch or position_based (40% to the first, 40% to "
        "the last, 20% split between those in between)."
    )
    converted: str = Field(description="stage (a stage entry) or friction (one opening).")
    name: str = Field(description="The stage entered, or the friction's kind.")
    stage: str | None = Field(description="The stage entered, or the friction opened in.")
    attribute: str = Field(description="The touchpoint attribute credited (campaign, say).")
    value: str = Field(description='Its value; "unknown" for touchpoints without it.')
    channel: str = Field(description="The channel of the touchpoints credited.")
    credit: float = Field(description="The credit, summed over the customers in range.")
    conversions: int = Field(description="How many conversions of this name there were.")


class CreditPage(Page):
    range: str = Field(description="Whose conversions are credited, in words.")
    attributes: list[str] = Field(description="The attributes credited.")
    items: list[Credit] = Field(description="Credits, the most first.")


class Velocity(BaseModel):
    """Sales velocity: of the customers first seen in a month (UTC) who entered a stage, the
    median days from their first touchpoint to their first entry into it."""

    month: str = Field(description="The month of the first touchpoint, UTC.", examples=["2026-03"])
    stage: str = Field(description="The stage's id.")
    label: str = Field(description="Its name for people.")
    customers: int = Field(description="Customers first seen that month who entered it.")
    median_days: float = Field(description="The median days to their first entry.")


class VelocityPage(Page):
    range: str = Field(description="Whose velocity, in words.")
    items: list[Velocity] = Field(description="By month, then in the journey's stage order.")


class Recorded(BaseModel):
    """What a POST of touchpoints did."""

    recorded: int = Field(description="Touchpoints recorded now.")
    duplicates: int = Field(
        description="Touchpoints recorded before, exactly as they are: skipped."
    )
    position: int | None = Field(description=POSITION)


class TouchpointRecord(BaseModel):
    """A touchpoint as channel systems report it: the Avro contract `journey.Touchpoint`, in
    JSON. Describes what to send; the engine's own validation decides, as on Kafka, and is
    a little more lenient (a channel or outcome in any case, numbers and true or false as
    attribute values, a null attribute as an absent one). Other fields are ignored."""

    model_config = ConfigDict(
        title="Touchpoint",
        json_schema_extra={
            "examples": [
                {
                    "event_id": "web-7f3a9c",
                    "customer_id": "C-1",
                    "channel": "web",
                    "type": "page_view",
                    "occurred_at": "2026-03-02T09:00:00.000Z",
                    "source": "web-analytics",
                    "attributes": {"page": "pricing"},
                }
            ]
        },
    )

    event_id: str = Field(
        min_length=1,
        max_length=MAX_ID_LENGTH,
        description="Made by the producer and unique for all time: the engine records a "
        "touchpoint once per event_id, however often it is sent. Sent again with other "
        "content, it is refused with 409.",
    )
    customer_id: str | None = Field(
        None,
        min_length=1,
        max_length=MAX_ID_LENGTH,
        description="The customer (or prospect), as the CRM knows them. Leave it out when the "
        "channel does not know it: the touchpoint must then carry an email, phone or cookie_id, "
        "and joins the journey of whoever they name.",
    )
    channel: Literal["web", "email", "phone", "visit", "other"] = Field(
        description="Where it happened: a visit is in person."
    )
    type: str = Field(
        pattern=r"^[a-z][a-z0-9_]{0,63}$",
        description="What happened, a lower-case name: page_view, form_submitted, "
        "email_opened, call_inbound, call_missed, visit, tour, demo, proposal_sent, "
        "contract_signed, complaint, ...",
    )
    occurred_at: (
        Annotated[str, Field(json_schema_extra={"format": "date-time"})]
        | Annotated[int, Field(ge=EARLIEST_MS)]
    ) = Field(
        description="When it happened (not when it was reported): ISO 8601 text (UTC unless "
        "it names its offset) or whole milliseconds since 1970. Not before 1990, and at most "
        "a day ahead of the server's clock.",
        examples=["2026-03-02T09:00:00.000Z", 1772442000000],
    )
    source: str = Field(
        min_length=1,
        max_length=MAX_TEXT_LENGTH,
        description="The system that reported it: web-analytics, crm, telephony, ...",
    )
    rep_id: str | None = Field(
        None, max_length=MAX_TEXT_LENGTH, description="The sales rep who took part, if any."
    )
    outcome: Outcome | None = Field(
        None, description="How it went for the customer, if the channel can tell."
    )
    email: str | None = Field(
        None, max_length=MAX_TEXT_LENGTH, description="Personal: for identity resolution."
    )
    phone: str | None = Field(
        None, max_length=MAX_TEXT_LENGTH, description="Personal: for identity resolution."
    )
    cookie_id: str | None = Field(
        None, max_length=MAX_TEXT_LENGTH, description="Personal: the web analytics cookie."
    )
    attributes: dict[str, Annotated[str, Field(max_length=MAX_TEXT_LENGTH)]] = Field(
        default_factory=dict,
        max_length=MAX_ATTRIBUTES,
        description="Free details of the channel: page=pricing, form=contact, location=B, "
        "referred_by=C-17, wait_seconds=540.",
    )


class ProblemType(NamedTuple):
    name: str
    status: int
    title: str
    meaning: str

    @property
    def uri(self) -> str:
        return f"/problems/{self.name}"


PROBLEMS = {
    p.name: p
    for p in (
        ProblemType(
            "unauthorized",
            401,
            "A valid token is required",
            "no token, or not the one this endpoint takes: send Authorization: Bearer <token>",
        ),
        ProblemType("not-found", 404, "Not found", "no such customer, action or path"),
        ProblemType(
            "method-not-allowed", 405, "Method not allowed", "the path takes other methods"
        ),
        ProblemType(
            "conflict",
            409,
            "Conflicts with what was recorded",
            "an event_id recorded before with other content: nothing of the request was recorded",
        ),
        ProblemType("too-large", 413, "Too large", "a body over 16 MiB or over 10,000 touchpoints"),
        ProblemType(
            "invalid",
            422,
            "Not valid",
            "a field or parameter is wrong; `detail` names it: nothing of the request was recorded",
        ),
        ProblemType(
            "unexpected",
            500,
            "Unexpected error",
            "a fault of the server, logged with `instance`",
        ),
        ProblemType(
            "store-unavailable",
            503,
            "The store is unavailable",
            "PostgreSQL cannot be reached: try again after Retry-After seconds",
        ),
        ProblemType(
            "views-behind",
            503,
            "The views are behind",
            "the views did not reach `after` in time: try again after Retry-After seconds",
        ),
    )
}
BY_STATUS = {p.status: p for p in reversed(PROBLEMS.values())}  # 503: the store's


class Problem(BaseModel):
    """An error, as RFC 9457 problem details (`application/problem+json`)."""

    type: str = Field(
        description="What kind of problem, as a URI reference; stable, for programs to tell "
        "problems apart: " + ", ".join(f"`{p.uri}` ({p.meaning})" for p in PROBLEMS.values()),
        examples=["/problems/not-found"],
    )
    title: str = Field(description="The kind of problem, for people; the same for each type.")
    status: int = Field(description="The HTTP status code.")
    detail: str = Field(
        description="This occurrence, in one line: the field and what is wrong with it, or "
        "what was not found.",
        examples=["[1].occurred_at: 'yesterday' is neither ISO-8601 nor milliseconds since 1970"],
    )
    instance: str | None = Field(
        None,
        description="The path asked for; for an unexpected error, an id the server's log "
        "names it by.",
    )


def problem_body(
    status: int, detail: str, instance: str | None, kind: str | None = None
) -> dict[str, Any]:
    """A problem's JSON; `kind` names its type, else the status does."""
    found = PROBLEMS[kind] if kind else BY_STATUS.get(status)
    shown: dict[str, Any] = {
        "type": found.uri if found else "about:blank",
        "title": found.title if found else _phrase(status),
        "status": status,
        "detail": detail,
    }
    if instance is not None:
        shown["instance"] = instance
    return shown


def _phrase(status: int) -> str:
    try:
        return HTTPStatus(status).phrase
    except ValueError:
        return "Error"


class NextSteps(BaseModel):
    """What the customers of a group of actions did in the days after each decision; only
    actions whose window had passed by the journey's clock count."""

    actions: int = Field(description="Actions whose window is over.")
    moved_on: int = Field(description="Of those, whose customer reached a later stage in it.")
    went_dormant: int = Field(description="Whose customer went dormant in it.")
    turned_negative: int = Field(
        description="Whose customer had a negative friction open in it (a complaint, a "
        "bounce, an unsubscribe, a negative outcome)."
    )
    moved_on_share: float | None = Field(description="moved_on / actions; null for none.")
    went_dormant_share: float | None = Field(description="went_dormant / actions.")
    turned_negative_share: float | None = Field(description="turned_negative / actions.")


class DismissedBecause(BaseModel):
    """A reason owners gave for dismissing actions, and how often."""

    reason: str = Field(description='The reason given ("no reason given" if none).')
    actions: int = Field(description="Actions dismissed for it.")


class Effect(BaseModel):
    """One rule's, owner's or team's actions decided in the period."""

    key: str = Field(description="The rule's id, the owner, or the team.")
    label: str = Field(description="Its name for people.")
    proposed: int = Field(description="Actions decided.")
    taken_up: int = Field(description="Accepted or done at some point.")
    accepted: int = Field(description="Accepted at some point.")
    done: int = Field(description="Done.")
    dismissed: int = Field(description="Dismissed by their owner.")
    snoozed: int = Field(description="Snoozed at some point.")
    expired: int = Field(description="Ended by the journey: nobody did them in time.")
    cancelled: int = Field(description="Ended by the journey: they no longer made sense.")
    superseded: int = Field(description="Ended by the journey: a more important one came.")
    still_open: int = Field(description="Open, accepted or snoozed now.")
    dismissed_because: list[DismissedBecause] = Field(description="The most given first.")
    median_hours_to_act: float | None = Field(
        description="Median hours from the decision to the first accept or done."
    )
    acted_on: NextSteps = Field(description="The actions taken up.")
    not_acted_on: NextSteps = Field(description="The others.")


class EffectivenessAnswer(BaseModel):
    """What the actions decided in a period achieved, by rule, owner or team: the group with
    the most actions first."""

    by: str = Field(description="rule, owner or team.")
    from_: Time | None = Field(alias="from", description="Actions decided from this time.")
    to: Time | None = Field(description="Actions decided before this time.")
    within_days: int = Field(description="The window after each decision that is looked at.")
    as_of: Time | None = Field(description="The journey's clock.")
    items: list[Effect] = Field(description="The groups, the one with the most actions first.")


class IdentifierOf(BaseModel):
    """An identifier in its matching form."""

    kind: str = Field(
        description="customer_id, email, phone, cookie_id, or a kind the journey adds."
    )
    value: str = Field(
        description="In its matching form: an email in lower case, a phone in E.164."
    )


class IdentityLink(BaseModel):
    """Two identifiers joined: by a touchpoint that carried both, or by a person's merge."""

    position: int = Field(description="Where in the log it was made.")
    at: Time | None = Field(description="When: the touchpoint's time, or the merge's.")
    a: str = Field(description="One identifier, written kind:value.")
    b: str = Field(description="The other.")
    touchpoint: str | None = Field(description="The touchpoint that carried both, if it was one.")
    merge_id: str | None = Field(description="The merge, if a person made it.")
    by: str | None = Field(description="Who merged them.")
    reason: str | None = Field(description="Why, in their words.")


class IdentityConflict(BaseModel):
    """A touchpoint that would have joined two known customers, which the engine never does
    by itself: `people` are whose touchpoint it was, and who had the identifier first."""

    link: IdentityLink = Field(description="The link refused: `b` is the identifier.")
    people: list[str] = Field(
        description="Whose touchpoint it was, and who had the identifier first."
    )


class PersonIdentity(BaseModel):
    """Who a person is: every identifier their touchpoints carried, how they were linked,
    and the conflicts that concern them."""

    person: str = Field(description="Their id: the first customer id they had.")
    identifiers: list[IdentifierOf] = Field(description="Every identifier, their ids first.")
    links: list[IdentityLink] = Field(description="What joined them, in log order.")
    conflicts: list[IdentityConflict] = Field(description="Conflicts that concern them.")


class MergeIn(BaseModel):
    """Two people (customer ids or identifiers, kind:value) to join into one."""

    a: str = Field(description="A customer id, or an identifier: email:anna@example.com.")
    b: str = Field(description="The other person, named the same way.")
    reason: str = Field(min_length=1, description="Why they are one person.")
    by: str = Field(min_length=1, description="Who decides.")


class UnmergeIn(BaseModel):
    """A merge to undo (its id), or an identifier to take out of every link touchpoints made."""

    what: str = Field(description="A merge's id (m-...), or an identifier (kind:value).")
    reason: str = Field(min_length=1, description="Why, in their words.")
    by: str = Field(min_length=1, description="Who decides.")


class IdentityDecided(BaseModel):
    """A people's decision about who is who, recorded in the log."""

    decision: Literal["merged", "unmerged", "detached"] = Field(
        description="merged, unmerged (a merge undone) or detached (an identifier's links)."
    )
    merge_id: str | None = Field(description="The merge made or undone.")
    people: list[str] = Field(description="The people it concerns, as they stand now.")
    position: int | None = Field(description=POSITION)


class ForgetIn(BaseModel):
    """A person's request to be forgotten, as it is kept on the receipt (no personal data)."""

    reason: str = Field(min_length=1, description="Why: the request's reference, say.")
    by: str = Field(min_length=1, description="Who erases.")


class Erasure(BaseModel):
    """The receipt of a person's erasure: no personal data."""

    person: str = Field(description="Whose: their id, the first customer id they had.")
    keys: list[str] = Field(description="Every key their touchpoints were recorded under.")
    data_keys: int = Field(description="Data keys destroyed: what they sealed is unreadable.")
    dead_letters: int = Field(description="Dead letters that named them, emptied.")
    position: int | None = Field(
        description="The receipt's place in the log; null if they were forgotten before and "
        "nothing of theirs was left to erase."
    )
    at: str = Field(description="When, ISO 8601 UTC.")


class ExportedTouchpoint(BaseModel):
    """A touchpoint as recorded, its personal data opened (or `(erased)`)."""

    event_id: str = Field(description="The producer's id.")
    customer_id: str = Field(description="The key it was recorded under.")
    channel: str = Field(description="web, email, phone, visit or other.")
    type: str = Field(description="What happened.")
    occurred_at: str = Field(description="When, ISO 8601 UTC.")
    source: str = Field(description="The system that reported it.")
    rep_id: str | None = Field(description="The rep involved, if any.")
    outcome: str | None = Field(description="positive, neutral or negative, if any.")
    attributes: dict[str, str] = Field(description="Every attribute, personal ones opened.")
    identifiers: dict[str, str] = Field(description="Identifiers as the channel sent them.")
    anonymous: bool = Field(False, description="Sent without a customer id.")
    erased: bool = Field(False, description="Its personal data was erased.")


class ExportedDeadLetter(BaseModel):
    """A dead letter that names the person, as kept."""

    where: str = Field(description="topic[partition]@offset.")
    reason: str = Field(description="Why it was refused.")
    detail: str = Field(description="What was wrong.")
    key: str | None = Field(description="The record's key, as text.")
    value: str | None = Field(description="The record's value, as text.")
    recorded_at: str = Field(description="When it was kept, ISO 8601.")


class ErasureReceipt(BaseModel):
    """A receipt of an erasure, as the log keeps it."""

    person: str = Field(description="Whose.")
    keys: list[str] = Field(description="The keys whose data keys were destroyed.")
    data_keys: int = Field(description="Data keys destroyed.")
    dead_letters: int = Field(description="Dead letters emptied.")
    by: str = Field(description="Who erased.")
    reason: str = Field(description="Why.")
    occurred_at: str = Field(description="When, ISO 8601 UTC.")


class SubjectExport(BaseModel):
    """Everything the engine holds about a person, their personal data opened."""

    person: str = Field(description="Their id.")
    keys: list[str] = Field(description="Every key their touchpoints were recorded under.")
    exported_at: str = Field(description="When, ISO 8601 UTC.")
    identity: PersonIdentity = Field(description="Who they are, as `/api/identity` shows it.")
    journey: Journey = Field(description="Their journey, as `/api/customers/{id}` shows it.")
    touchpoints: list[ExportedTouchpoint] = Field(description="Every touchpoint, in log order.")
    dead_letters: list[ExportedDeadLetter] = Field(description="Dead letters that name them.")
    erasures: list[ErasureReceipt] = Field(description="Receipts of their erasures.")
