"""An analyst's projection that follows the log folds each touchpoint once, even when the
store goes away while a page is being committed."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from engine.errors import StoreUnavailable
from engine.settings import Settings
from engine.touchpoints import touchpoint_from_record
from journey.bootstrap import build_engine, build_projection_views
from projections.custom import CustomRunner, Generation, ProjectionViews
from projections.examples import PricingInterest
from tests.conftest import HOUR, T0, touchpoint
from tests.stories import anonymous_reader_turns_caller


class GoesAwayAtTheFirstCommit(ProjectionViews):
    """The views of a store that goes away while the first page is being committed."""

    gone = False

    def commit(
        self, generation: Generation, states: dict[str, dict[str, Any]], position: int
    ) -> None:
        if not self.gone:
            self.gone = True
            raise StoreUnavailable("PostgreSQL is unavailable: terminating connection")
        super().commit(generation, states, position)


def test_a_page_whose_commit_failed_is_folded_once_when_it_is_read_again(tmp_path: Path) -> None:
    settings = Settings.from_env({"JOURNEY_DATA_DIR": str(tmp_path)})
    engine = build_engine(settings)
    try:
        engine.journeys.record(
            touchpoint(f"p-{n}", at=T0 + n * HOUR, page="pricing") for n in range(3)
        )
        views = GoesAwayAtTheFirstCommit(build_projection_views(settings).db)
        runner = CustomRunner(engine.log, views, PricingInterest(), "PricingInterest")
        generation = views.new_generation(PricingInterest.name)

        with pytest.raises(StoreUnavailable):
            runner.catch_up(generation)
        runner.catch_up(generation)

        assert views.load(generation, ["C-1"])["C-1"]["views"] == 3
    finally:
        engine.close()


def test_an_analysts_projection_counts_people_however_their_touchpoints_came(
    tmp_path: Path,
) -> None:
    """Greta read the pricing page twice without logging in; a failed form with her cookie
    and email, which the CRM knows, makes them hers."""
    settings = Settings.from_env({"JOURNEY_DATA_DIR": str(tmp_path)})
    engine = build_engine(settings)
    try:
        now = T0 + 400 * 24 * HOUR
        story = [touchpoint_from_record(r, now_ms=now) for r in anonymous_reader_turns_caller()]
        views = build_projection_views(settings)
        runner = CustomRunner(engine.log, views, PricingInterest(), "PricingInterest", 2)
        generation = views.new_generation(PricingInterest.name)
        engine.journeys.record(story[:3])  # the pricing views, not yet anyone's
        runner.catch_up(generation)
        pricing = {"views": 2, "first": story[1].occurred_at, "last": story[2].occurred_at}
        assert list(views.load(generation, [story[1].customer_id]).values()) == [pricing]

        engine.journeys.record(story[3:])
        runner.catch_up(generation)
        held = views.load(generation, ["S7-GRETA", story[1].customer_id])
        assert held == {"S7-GRETA": pricing}
    finally:
        engine.close()
