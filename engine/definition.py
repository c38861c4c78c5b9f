"""The journey definition, read from a TOML file: stages and how touchpoints enter them, the
frictions to detect, the moments of truth to mark, and the next-best-action rules."""

from __future__ import annotations

import re
import string
import tomllib
from collections.abc import Iterator, Mapping
from functools import cached_property
from importlib import resources
from pathlib import Path
from typing import Annotated, Any, Literal, Self

from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from engine.errors import DefinitionError, InvalidTouchpoint
from engine.identifiers import BUILT_IN_KINDS, CUSTOMER_ID, Identifier, is_region, normalised
from engine.touchpoints import CHANNELS, OTHER_CHANNEL, OUTCOMES

ANY_TYPE = "*"
_ID_PATTERN = r"^[a-z][a-z0-9_]*$"


class _Model(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class Match(_Model):
    """Which touchpoints something applies to: one of `types` ("*" for any), and if given one of
    `channels`, one of `outcomes`, and every one of `attributes`."""

    types: tuple[str, ...] = Field(min_length=1)
    channels: tuple[str, ...] | None = None
    outcomes: tuple[str, ...] | None = None
    attributes: dict[str, str] = Field(default_factory=dict)

    @model_validator(mode="after")
    def _known_values(self) -> Self:
        for channel in self.channels or ():
            if channel not in (*CHANNELS, OTHER_CHANNEL):
                raise ValueError(f"channels: unknown channel {channel!r}")
        for outcome in self.outcomes or ():
            if outcome not in OUTCOMES:
                raise ValueError(f"outcomes: unknown outcome {outcome!r}")
        return self


class EntryRule(Match):
    """A touchpoint that matches counts towards the rule; once `min_count` have happened the
    rule moves the customer into its stage. A rule moves customers forward only, unless `from`
    names the stages it may move them back from (a regression)."""

    min_count: int = Field(default=1, ge=1)
    from_stages: tuple[str, ...] | None = Field(default=None, alias="from")


class Stage(_Model):
    id: str = Field(pattern=_ID_PATTERN)
    label: str
    description: str = ""
    # How long a customer may stay before it counts as a stall.
    budget_days: float | None = Field(default=None, gt=0)
    enter: tuple[EntryRule, ...] = ()


class Dormancy(_Model):
    """A customer in one of `from` stages who is silent for `after_days` (by event time)
    has been in `stage` since then; the next touchpoint takes them out again."""

    stage: str
    after_days: float = Field(gt=0)
    from_stages: tuple[str, ...] = Field(alias="from", min_length=1)


class _Friction(_Model):
    id: str = Field(pattern=_ID_PATTERN)
    label: str
    description: str = ""
    # How bad it is, 1 to 5: open frictions are listed worst first.
    severity: int = Field(default=2, ge=1, le=5)


class NoFollowUp(_Friction):
    """A touchpoint matching `after` with none matching `expect` within `within_hours` (by
    event time). The friction opens when the window closes and resolves at the late reply.
    With `stages`, only touchpoints while the customer is in one of them open a window."""

    detector: Literal["no_follow_up"]
    after: tuple[Match, ...] = Field(min_length=1)
    expect: tuple[Match, ...] = Field(min_length=1)
    within_hours: float = Field(gt=0)
    stages: tuple[str, ...] | None = None


class ChannelJump(_Friction):
    """A touchpoint matching `then` within `within_minutes` after a failed step matching
    `failed`: the customer gave up on one channel and tried another. Resolves at the next
    touchpoint matching `resolved_by`."""

    detector: Literal["channel_jump"]
    failed: tuple[Match, ...] = Field(min_length=1)
    then: tuple[Match, ...] = Field(min_length=1)
    within_minutes: float = Field(gt=0)
    resolved_by: tuple[Match, ...] = Field(min_length=1)


class Stall(_Friction):
    """A customer in a stage for longer than the stage's `budget_days`. Resolves when they
    leave the stage."""

    detector: Literal["stall"]


class Loop(_Friction):
    """The same step (a touchpoint matching `steps`, told apart by its type and the values of
    `step_attributes`) `repeats` times in one stage. Resolves when the customer moves on."""

    detector: Literal["loop"]
    steps: tuple[Match, ...] = Field(min_length=1)
    step_attributes: tuple[str, ...] = ()
    repeats: int = Field(ge=2)


class Regression(_Friction):
    """A move back to an earlier stage of the ladder (dormancy is not one). Resolves when the
    customer is back where they fell from."""

    detector: Literal["regression"]


class HandOff(_Friction):
    """A contact (a touchpoint matching `contacts` with a rep) by someone other than the
    customer's rep, who is the rep of their first such contact. Resolves at the next contact
    by the customer's own rep."""

    detector: Literal["hand_off"]
    contacts: tuple[Match, ...] = Field(min_length=1)


class Negative(_Friction):
    """A touchpoint matching `when` (a complaint, a bounce, a negative outcome). Further ones
    join the open friction; it resolves at a touchpoint matching `resolved_by`."""

    detector: Literal["negative"]
    when: tuple[Match, ...] = Field(min_length=1)
    resolved_by: tuple[Match, ...] = Field(min_length=1)


class ReferralMismatch(_Friction):
    """A referral whose `referral_attribute` (the referrer's location, say) differs from the
    `offer_attribute` of a later touchpoint matching `offer`: the referral was not used."""

    detector: Literal["referral_mismatch"]
    referral: tuple[Match, ...] = Field(min_length=1)
    referral_attribute: str
    offer: tuple[Match, ...] = Field(min_length=1)
    offer_attribute: str


FrictionRule = Annotated[
    NoFollowUp | ChannelJump | Stall | Loop | Regression | HandOff | Negative | ReferralMismatch,
    Field(discriminator="detector"),
]


class MomentOfTruth(_Model):
    """A touchpoint matching `when` (only the customer's first one if `first_only`) is a moment
    of truth; its outcome says how it went. With `resolved_by`, the first later touchpoint
    matching it records how the moment was resolved (a complaint answered, say)."""

    id: str = Field(pattern=_ID_PATTERN)
    label: str
    description: str = ""
    when: tuple[Match, ...] = Field(min_length=1)
    first_only: bool = True
    resolved_by: tuple[Match, ...] = ()


# What an action rule's `reason` may name, filled in when the action is decided. "The
# touchpoint" is the one that matters to the trigger: for a follow-up that never came, the
# touchpoint still waiting for it; for a failed step then a jump to another channel, the step
# that failed; for any other friction, the touchpoint at which it opened; for a moment of
# truth, its touchpoint; for a stage, the touchpoint that moved the customer into it. Days
# are on the journey's clock in UTC, in English.
REASON_FIELDS = {
    "label": "the label of the friction, moment of truth or stage behind the action",
    "touchpoint": "the touchpoint, where, with whom and on which day, such as "
    "'tour at B with peter on Mon 7 Dec'",
    "what": "what the touchpoint was and what it was about, such as \"page view 'pricing'\"",
    "day": "the day of the touchpoint, such as 'Mon 7 Dec' (with the year if not this year)",
    "time": "the day and time of the touchpoint, such as 'Mon 7 Dec at 14:05 UTC'",
    "place": "where the touchpoint happened (its location or branch), or 'elsewhere'",
    "silence": "how long the customer has heard nothing since it mattered, such as '5 days': "
    "for a follow-up that never came, since the touchpoint waiting for it; for any other "
    "friction, since it opened; for a moment of truth, since it happened; for a stage, since "
    "the customer entered it",
    "channel": "the channel of the touchpoint behind it (for a channel jump, the one they "
    "turned to)",
    "outcome": "how that touchpoint went (positive, neutral, negative, or 'unknown')",
    "rep": "the customer's rep, or 'nobody yet'",
    "referral": "what the customer's referrer has (the referral rule's attribute), if anything",
    "meeting": "for a booked trigger: what was booked and where, such as 'tour at B'",
    "meeting_at": "for a booked trigger: when the meeting is, such as 'Tue 10 Mar at 09:00 UTC'",
    "host": "for a booked trigger: who holds the meeting",
    "brief": "for a booked trigger: what the customer read and downloaded, who referred "
    "them, the reps they met and what was promised, and the open frictions",
    "referrer": "the customer who referred them, by id, or 'the referrer'",
    "referrer_rep": "the referrer's rep, if the referrer is a known customer, or 'their rep'",
    "referred": "for a referred_entered trigger: the customer they referred",
    "when": "the day the trigger happened (for a friction, became true), as YYYY-MM-DD",
    "events": "the ids of the touchpoints behind it, comma-separated (the action's "
    "triggering_event_ids show them without naming them in the reason)",
}


MEETING_FIELDS = {"meeting", "meeting_at", "host", "brief"}
TRIGGERS = ("friction", "moment", "entered", "booked", "referred_entered")


class Briefing(_Model):
    """What books a meeting and what the brief before it tells. A touchpoint whose `booked`
    attribute names what was booked (a tour, a demo, a meeting) books it for the time in its
    `booked_for` attribute (ISO 8601), held by `host` (a rep id; else the customer's rep) at
    `place`. The brief tells what the customer read (the `read_attribute` of `read` touchpoints)
    and downloaded, who referred them and from where, the reps they met and what they promised,
    and the open frictions."""

    booked: str = "booked"
    booked_for: str = "booked_for"
    host: str = "host"
    place: str = "location"
    read: tuple[str, ...] = ("page_view",)
    read_attribute: str = "page"
    downloaded: tuple[str, ...] = ("content_download",)
    downloaded_attribute: str = "asset"
    referred_by: str = "referred_by"
    referrer_place: str = "referrer_location"
    promised: str = "promised"
    # The brief is due this long before the meeting.
    due_before_hours: float = Field(default=2, gt=0)


class ScoreParts(_Model):
    """The parts of an action's priority, each from 0 to 1."""

    value: float = Field(default=0.5, ge=0, le=1)
    urgency: float = Field(default=0.5, ge=0, le=1)
    fit: float = Field(default=0.5, ge=0, le=1)


class ActionRule(ScoreParts):
    """When the customer's state shows the rule's trigger, the rule proposes an action.

    The trigger is exactly one of: an open friction of the rule `friction` (one action per
    friction; none once it has resolved), a moment of truth `moment` (with one of
    `moment_outcomes`, if given), having entered the stage `entered`, or `booked`: a meeting
    booked and not yet held (see `Briefing`), with the action due before it and owned by
    "host", the person holding it; or `referred_entered`: someone the customer referred (a
    referral naming them, `Briefing.referred_by`) entered that stage. With `within_days`,
    the trigger must have happened that recently. `stages` and `without_moments` narrow it
    further; a dormant customer gets nothing unless `stages` names the dormant stage. The action
    goes out on the first of `channels` the customer has used themselves (else the first one
    they have not opted out of), to `owner`: "rep" for the customer's rep, or a role such as
    "branch_manager"."""

    id: str = Field(pattern=_ID_PATTERN)
    action: str = Field(pattern=_ID_PATTERN)
    label: str = ""
    friction: str | None = None
    moment: str | None = None
    moment_outcomes: tuple[str, ...] | None = None
    entered: str | None = None
    booked: bool = False
    referred_entered: str | None = None
    within_days: float | None = Field(default=None, gt=0)
    stages: tuple[str, ...] | None = None
    without_moments: tuple[str, ...] = ()
    channels: tuple[str, ...] = Field(min_length=1)
    owner: str = Field(default="rep", pattern=_ID_PATTERN)
    due_hours: float = Field(default=24, gt=0)
    # How long after its due time an action nobody did expires (None: the policy's).
    expires_hours: float | None = Field(default=None, gt=0)
    reason: str = Field(min_length=1)

    @model_validator(mode="after")
    def _one_trigger(self) -> Self:
        triggers = [name for name in TRIGGERS if getattr(self, name)]
        if len(triggers) != 1:
            raise ValueError(f"needs exactly one trigger: {', '.join(TRIGGERS)}")
        for channel in self.channels:
            if channel not in CHANNELS:
                raise ValueError(f"channels: unknown channel {channel!r}")
        for outcome in self.moment_outcomes or ():
            if outcome not in OUTCOMES:
                raise ValueError(f"moment_outcomes: unknown outcome {outcome!r}")
        try:
            names = {name for _, name, _, _ in string.Formatter().parse(self.reason) if name}
        except ValueError as exc:
            raise ValueError(f"reason: {exc}") from None
        meeting = sorted(names & MEETING_FIELDS)
        if meeting and not self.booked:
            raise ValueError(f"reason: {{{meeting[0]}}} is only known to a booked trigger")
        unknown = sorted(names - REASON_FIELDS.keys())
        if unknown:
            raise ValueError(
                f"reason: unknown field {{{unknown[0]}}}; it may name "
                + ", ".join(f"{{{name}}}" for name in REASON_FIELDS)
            )
        return self


class ActionPolicy(_Model):
    """Arbitration and the contact policy over every rule's proposals."""

    # Priority = the weighted sum of an action's score parts.
    weights: ScoreParts = ScoreParts(value=0.5, urgency=0.3, fit=0.2)
    # At most this many open actions per customer, the highest priority first.
    max_open: int = Field(default=2, ge=1)
    # At most this many new actions per customer, and per owner, per day (UTC, event time).
    per_customer_per_day: int = Field(default=2, ge=1)
    per_owner_per_day: int = Field(default=40, ge=1)
    # After a rep dismisses an action, the same rule proposes nothing for that customer for
    # this long.
    dismissed_suppression_hours: float = Field(default=168, ge=0)
    # An open action nobody did expires this long after its due time (or after the end of
    # its snooze), unless its rule says otherwise.
    expire_after_hours: float = Field(default=336, gt=0)
    # The owner of "rep" actions for customers who have no rep yet.
    unassigned_owner: str = Field(default="inside_sales", pattern=_ID_PATTERN)
    # Touchpoints that withdraw the customer's consent to any contact, and that give it back.
    opt_out: tuple[Match, ...] = ()
    opt_in: tuple[Match, ...] = ()
    # Per channel, touchpoints after which that channel is not used for actions.
    channel_opt_out: dict[str, tuple[Match, ...]] = Field(default_factory=dict)
    briefing: Briefing = Briefing()
    rules: tuple[ActionRule, ...] = ()

    @model_validator(mode="after")
    def _consent_rules(self) -> Self:
        for channel in self.channel_opt_out:
            if channel not in CHANNELS:
                raise ValueError(f"channel_opt_out: unknown channel {channel!r}")
        consent = {
            "opt_out": self.opt_out,
            "opt_in": self.opt_in,
            **{
                f"channel_opt_out.{channel}": matches
                for channel, matches in self.channel_opt_out.items()
            },
        }
        for name, matches in consent.items():
            if any(match.attributes for match in matches):
                raise ValueError(f"{name}: consent is matched by type, channel and outcome only")
        return self


class IdentityPolicy(_Model):
    """How identifiers join touchpoints into people (see engine/identity.py).

    A touchpoint that carries two identifiers of the kinds in `link` links them, and with
    them everyone already known by either. Two customer ids never join that way: a link
    between two known customers is a conflict, left for a person to merge or not. `kinds`
    adds identifier kinds, read from the touchpoint's attribute of that name (a CRM's
    contact id, say). `shared` lists values many people use (a switchboard number, an
    `info@` address), by kind: they identify no one and link nothing. `region` reads
    national phone numbers (an ISO 3166 code such as "DK"); without it, only numbers with
    their country code (+45...) are usable."""

    link: tuple[str, ...] = BUILT_IN_KINDS
    kinds: tuple[str, ...] = ()
    shared: dict[str, tuple[str, ...]] = Field(default_factory=dict)
    region: str | None = None
    # Where identifiers are stored as keyed digests (engine/sealing.py), the digests of the
    # shared values, by kind: given by the store, never written in a definition.
    shared_digests: dict[str, tuple[str, ...]] = Field(default_factory=dict, exclude=True)

    @model_validator(mode="after")
    def _known_kinds(self) -> Self:
        for kind in self.kinds:
            if not re.match(_ID_PATTERN, kind) or kind in (CUSTOMER_ID, *BUILT_IN_KINDS):
                raise ValueError(f"kinds: {kind!r} is not a new lower-case name")
        known = (*BUILT_IN_KINDS, *self.kinds)
        for name, kinds in (("link", self.link), ("shared", tuple(self.shared))):
            for kind in kinds:
                if kind not in known:
                    raise ValueError(f"{name}: unknown identifier kind {kind!r}")
        if self.region is not None and not is_region(self.region):
            raise ValueError(f"region: {self.region!r} is not a region phone numbers know")
        for kind, values in self.shared.items():
            for value in values:
                try:
                    normalised(kind, value, self.region)
                except InvalidTouchpoint as exc:
                    raise ValueError(f"shared.{kind}: {exc.problem}") from None
        return self

    @cached_property
    def all_kinds(self) -> tuple[str, ...]:
        """Every identifier kind, in the order they place an anonymous touchpoint."""
        return (*BUILT_IN_KINDS, *self.kinds)

    @cached_property
    def shared_identifiers(self) -> frozenset[Identifier]:
        return frozenset(
            (
                *(
                    Identifier(kind, normalised(kind, value, self.region))
                    for kind, values in self.shared.items()
                    for value in values
                ),
                *(
                    Identifier(kind, digest)
                    for kind, digests in self.shared_digests.items()
                    for digest in digests
                ),
            )
        )


class PrivacyPolicy(_Model):
    """What is personal data beyond the identifiers (email, phone, cookie id and the kinds
    `[identity]` adds, which always are): the attributes named in `personal`, such as a
    customer's name or a rep's note. Where the store seals personal data, their values are
    sealed with the person's key: no rule, view or brief sees them, so none may name them."""

    personal: tuple[str, ...] = ()

    @model_validator(mode="after")
    def _names(self) -> Self:
        for name in self.personal:
            if not name.strip():
                raise ValueError("personal: an attribute name is empty")
        return self


class JourneyInfo(_Model):
    name: str
    description: str = ""


class JourneyDefinition(_Model):
    journey: JourneyInfo
    stages: tuple[Stage, ...] = Field(min_length=1)
    dormancy: Dormancy | None = None
    frictions: tuple[FrictionRule, ...] = ()
    moments: tuple[MomentOfTruth, ...] = ()
    # Team name to its reps' ids: outcomes are also shown per team.
    teams: dict[str, tuple[str, ...]] = Field(default_factory=dict)
    actions: ActionPolicy = ActionPolicy()
    identity: IdentityPolicy = IdentityPolicy()
    privacy: PrivacyPolicy = PrivacyPolicy()

    @model_validator(mode="after")
    def _consistent(self) -> Self:
        ids = [stage.id for stage in self.stages]
        for stage_id in ids:
            if ids.count(stage_id) > 1:
                raise ValueError(f"stages: stage {stage_id!r} is declared twice")
        for index, stage in enumerate(self.stages):
            for rule_index, rule in enumerate(stage.enter):
                for source in rule.from_stages or ():
                    if source not in ids:
                        raise ValueError(
                            f"stages[{index}].enter[{rule_index}].from: unknown stage {source!r}"
                        )
        if self.dormancy is not None:
            if self.dormancy.stage not in ids:
                raise ValueError(f"dormancy.stage: unknown stage {self.dormancy.stage!r}")
            for source in self.dormancy.from_stages:
                if source not in ids:
                    raise ValueError(f"dormancy.from: unknown stage {source!r}")
        for index, friction in enumerate(self.frictions):
            for stage_id in getattr(friction, "stages", None) or ():
                if stage_id not in ids:
                    raise ValueError(f"frictions[{index}].stages: unknown stage {stage_id!r}")
        for kind, items in (("frictions", self.frictions), ("moments", self.moments)):
            seen: set[str] = set()
            for index, item in enumerate(items):
                if item.id in seen:
                    raise ValueError(f"{kind}[{index}].id: {item.id!r} is declared twice")
                seen.add(item.id)
        self._check_action_rules(ids)
        self._check_personal()
        return self

    def _check_personal(self) -> None:
        personal = set(self.privacy.personal)
        for kind in self.identity.kinds:
            if kind in personal:
                raise ValueError(
                    f"privacy.personal: {kind!r} is an identifier kind, personal already"
                )
        for where, name in _attributes_named(self.model_dump(by_alias=True), ""):
            if name in personal:
                raise ValueError(
                    f"{where}: attribute {name!r} is personal (privacy.personal), "
                    "so no rule may read it"
                )

    def _check_action_rules(self, stage_ids: list[str]) -> None:
        frictions = {f.id for f in self.frictions}
        moments = {m.id for m in self.moments}
        seen: set[str] = set()
        for index, rule in enumerate(self.actions.rules):
            where = f"actions.rules[{index}]"
            if rule.id in seen:
                raise ValueError(f"{where}.id: {rule.id!r} is declared twice")
            seen.add(rule.id)
            if rule.friction is not None and rule.friction not in frictions:
                raise ValueError(f"{where}.friction: unknown friction {rule.friction!r}")
            for moment_id in (rule.moment, *rule.without_moments):
                if moment_id is not None and moment_id not in moments:
                    raise ValueError(f"{where}: unknown moment of truth {moment_id!r}")
            for stage_id in (rule.entered, rule.referred_entered, *(rule.stages or ())):
                if stage_id is not None and stage_id not in stage_ids:
                    raise ValueError(f"{where}: unknown stage {stage_id!r}")

    def team_of(self, rep_id: str | None) -> str | None:
        return next((team for team, reps in self.teams.items() if rep_id in reps), None)

    def friction(self, friction_id: str) -> FrictionRule | None:
        return next((f for f in self.frictions if f.id == friction_id), None)

    def moment(self, moment_id: str) -> MomentOfTruth | None:
        return next((m for m in self.moments if m.id == moment_id), None)

    def action_rule(self, rule_id: str) -> ActionRule | None:
        return next((r for r in self.actions.rules if r.id == rule_id), None)

    @cached_property
    def stage_ids(self) -> tuple[str, ...]:
        return tuple(stage.id for stage in self.stages)

    @cached_property
    def ladder(self) -> tuple[str, ...]:
        """The stages a customer climbs, in order (the dormant stage is not one of them)."""
        dormant = self.dormancy.stage if self.dormancy else None
        return tuple(stage_id for stage_id in self.stage_ids if stage_id != dormant)

    def stage(self, stage_id: str) -> Stage:
        for stage in self.stages:
            if stage.id == stage_id:
                return stage
        raise KeyError(stage_id)


def _attributes_named(value: Any, where: str) -> Iterator[tuple[str, str]]:
    """Every attribute name a part of the definition reads, with where it is read: the keys
    of `attributes` tables, and the values of fields named `..._attribute(s)`."""
    if isinstance(value, dict):
        for key, item in value.items():
            here = f"{where}.{key}" if where else str(key)
            if key == "attributes" and isinstance(item, dict):
                yield from ((here, name) for name in item)
            elif key == "briefing" and isinstance(item, dict):  # each text names an attribute
                yield from ((f"{here}.{k}", v) for k, v in item.items() if isinstance(v, str))
            elif key.endswith("_attribute") and isinstance(item, str):
                yield here, item
            elif key.endswith("_attributes") and isinstance(item, list | tuple):
                yield from ((here, name) for name in item if isinstance(name, str))
            elif key not in ("privacy", "identity"):
                yield from _attributes_named(item, here)
    elif isinstance(value, list | tuple):
        for index, item in enumerate(value):
            yield from _attributes_named(item, f"{where}[{index}]")


def load_definition(path: Path | None = None) -> JourneyDefinition:
    """Reads a journey definition; without a path, the default B2B journey."""
    if path is None:
        text = resources.files("engine").joinpath("default_journey.toml").read_text("utf-8")
        return parse_definition(text, origin="default journey")
    try:
        text = path.read_text("utf-8")
    except OSError as exc:
        raise DefinitionError(
            f"{path}: cannot read the journey definition ({exc.strerror})"
        ) from None
    except UnicodeDecodeError as exc:
        raise DefinitionError(f"{path}: not UTF-8 text ({exc.reason})") from None
    return parse_definition(text, origin=str(path))


def parse_definition(text: str, *, origin: str) -> JourneyDefinition:
    try:
        document = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise DefinitionError(f"{origin}: not valid TOML: {exc}") from None
    return definition_from_mapping(document, origin=origin)


def definition_from_mapping(document: Mapping[str, Any], *, origin: str) -> JourneyDefinition:
    try:
        return JourneyDefinition.model_validate(document)
    except ValidationError as exc:
        first = exc.errors()[0]
        where = _location(first["loc"])
        message = str(first["msg"]).removeprefix("Value error, ")
        extra = exc.error_count() - 1
        more = f" (and {extra} more problem{'s' if extra > 1 else ''})" if extra else ""
        prefix = f"{where}: " if where else ""
        raise DefinitionError(f"{origin}: {prefix}{message}{more}") from None


def _location(loc: tuple[int | str, ...]) -> str:
    text = ""
    for part in loc:
        text += f"[{part}]" if isinstance(part, int) else (f".{part}" if text else str(part))
    return text
