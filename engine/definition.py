"""The journey definition: stages and how touchpoints enter them, read from a TOML file."""

from __future__ import annotations

import tomllib
from collections.abc import Mapping
from functools import cached_property
from importlib import resources
from pathlib import Path
from typing import Any, Self

from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from engine.errors import DefinitionError
from engine.touchpoints import CHANNELS, OTHER_CHANNEL, OUTCOMES

ANY_TYPE = "*"
_ID_PATTERN = r"^[a-z][a-z0-9_]*$"


class _Model(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class EntryRule(_Model):
    """A touchpoint that matches `types`, `channels`, `outcomes` and `attributes` counts towards
    the rule; once `min_count` have happened the rule moves the customer into its stage.
    A rule moves customers forward only, unless `from` names the stages it may move them
    back from (a regression)."""

    types: tuple[str, ...] = Field(min_length=1)
    channels: tuple[str, ...] | None = None
    outcomes: tuple[str, ...] | None = None
    attributes: dict[str, str] = Field(default_factory=dict)
    min_count: int = Field(default=1, ge=1)
    from_stages: tuple[str, ...] | None = Field(default=None, alias="from")

    @model_validator(mode="after")
    def _known_values(self) -> Self:
        for channel in self.channels or ():
            if channel not in (*CHANNELS, OTHER_CHANNEL):
                raise ValueError(f"channels: unknown channel {channel!r}")
        for outcome in self.outcomes or ():
            if outcome not in OUTCOMES:
                raise ValueError(f"outcomes: unknown outcome {outcome!r}")
        return self


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


class JourneyInfo(_Model):
    name: str
    description: str = ""


class JourneyDefinition(_Model):
    journey: JourneyInfo
    stages: tuple[Stage, ...] = Field(min_length=1)
    dormancy: Dormancy | None = None

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
        return self

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
