"""The batched runner: pages, resumes where it stopped, and never half-applies a page."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path

import pytest

from engine.definition import load_definition, parse_definition
from engine.settings import Settings
from engine.touchpoints import touchpoint_from_record
from journey.bootstrap import Engine, build_engine, event_store_env
from journey.identity import merge, unmerge
from projections.runner import ProjectionRunner
from projections.timeline import timeline
from projections.views import PageChanges, ViewConflict, ViewOutOfDate
from stores.sqlite.views import SQLiteJourneyView
from tests.conftest import DAY, T0, touchpoint
from tests.stories import anonymous_reader_turns_caller


@pytest.fixture
def paged(settings: Settings) -> Iterator[Engine]:
    """An engine on each store, folding four touchpoints per page."""
    built = build_engine(replace(settings, page_size=4))
    yield built
    built.close()


def history(customers: list[str], view: SQLiteJourneyView) -> dict[str, object]:
    return {c: (p.history if (p := view.position(c)) else None) for c in customers}


def record_story(engine: Engine) -> None:
    engine.journeys.record(
        [
            touchpoint("a1", customer_id="A", page="pricing"),
            touchpoint("b1", customer_id="B"),
            touchpoint("a2", "demo", customer_id="A", channel="visit", at=T0 + DAY),
            touchpoint("b2", "contract_signed", customer_id="B", channel="visit", at=T0 + DAY),
            touchpoint("a3", "proposal_sent", customer_id="A", channel="email", at=T0 + 2 * DAY),
        ]
    )


def record_late_visit(engine: Engine) -> None:
    """A visit of A's that happened a day before the story began, recorded after it."""
    engine.journeys.record(
        [touchpoint("a0", "visit", customer_id="A", channel="visit", at=T0 - DAY)]
    )


def in_other_processes(
    engine: Engine, view: SQLiteJourneyView, *, page_size: int, partitions: int | None = None
) -> ProjectionRunner:
    """A runner that reads the log, or folds it, in other processes however short it is."""
    return ProjectionRunner(
        engine.journeys,
        view,
        engine.definition,
        page_size=page_size,
        store_env=event_store_env(engine.settings),
        parallel_above_events=0,
        partitions=partitions,
    )


def test_catching_up_builds_positions_timelines_and_the_funnel(paged: Engine) -> None:
    record_story(paged)

    done = paged.runner.catch_up()

    assert done.events == 7  # two streams started, five touchpoints
    assert paged.view.position("A").stage == "deciding"  # type: ignore[union-attr]
    assert [t.event_id for t in timeline(paged.log.stream("A"))] == ["a1", "a2", "a3"]
    funnel = {c.stage: (c.reached, c.current) for c in paged.view.funnel(paged.definition.ladder)}
    assert funnel["aware"] == (2, 0)
    assert funnel["deciding"] == (2, 1)
    assert funnel["customer"] == (1, 1)
    assert paged.view.clock() == T0 + 2 * DAY


def test_the_runner_resumes_exactly_where_it_stopped(paged: Engine) -> None:
    record_story(paged)
    paged.runner.catch_up()

    assert paged.runner.catch_up().events == 0
    paged.journeys.record([touchpoint("a4", "contract_signed", customer_id="A", at=T0 + 3 * DAY)])
    again = paged.runner.catch_up()

    assert again.events == 1
    assert paged.view.position("A").touchpoints == 4  # type: ignore[union-attr]
    assert paged.view.position("A").stage == "customer"  # type: ignore[union-attr]


class FailingView(SQLiteJourneyView):
    """Fails to commit the n-th page, as a crash or a full disk would."""

    def __init__(self, path: Path, fail_on_page: int) -> None:
        super().__init__(path)
        self.pages = 0
        self.fail_on_page = fail_on_page

    def commit(self, projection: str, changes: PageChanges, definition_digest: str) -> None:
        self.pages += 1
        if self.pages == self.fail_on_page:
            raise OSError("disk full")
        super().commit(projection, changes, definition_digest)


def test_a_page_that_fails_to_commit_leaves_nothing_behind_and_is_redone(
    paged: Engine, settings: Settings
) -> None:
    record_story(paged)
    failing = FailingView(settings.views_path, fail_on_page=2)
    runner = ProjectionRunner(paged.journeys, failing, paged.definition, page_size=4)

    with pytest.raises(OSError, match="disk full"):
        runner.catch_up()

    assert runner.position() == 6  # the first page's four touchpoints, nothing of the second
    assert failing.position("A").touchpoints == 2  # type: ignore[union-attr]
    ProjectionRunner(paged.journeys, failing, paged.definition, page_size=4).catch_up()
    fresh = SQLiteJourneyView(settings.data_dir / "fresh.db")
    ProjectionRunner(paged.journeys, fresh, paged.definition).catch_up()
    assert history(["A", "B"], failing) == history(["A", "B"], fresh)
    assert failing.funnel(paged.definition.ladder) == fresh.funnel(paged.definition.ladder)
    fresh.close()
    failing.close()


class RacingView(SQLiteJourneyView):
    """Lets another runner commit just before this one's first commit."""

    def __init__(self, path: Path) -> None:
        super().__init__(path)
        self.rival: ProjectionRunner | None = None
        self.conflicts = 0

    def commit(self, projection: str, changes: PageChanges, definition_digest: str) -> None:
        rival, self.rival = self.rival, None
        if rival is not None:
            rival.catch_up()
        try:
            super().commit(projection, changes, definition_digest)
        except ViewConflict:
            self.conflicts += 1
            raise


def test_a_runner_that_loses_a_race_drops_its_page_and_applies_nothing_twice(
    paged: Engine, settings: Settings
) -> None:
    record_story(paged)
    racing = RacingView(settings.data_dir / "shared.db")
    runner = ProjectionRunner(paged.journeys, racing, paged.definition, page_size=4)
    rival_view = SQLiteJourneyView(settings.data_dir / "shared.db")
    racing.rival = ProjectionRunner(paged.journeys, rival_view, paged.definition, page_size=4)

    runner.catch_up()

    assert racing.conflicts == 1
    assert racing.position("A").touchpoints == 3  # type: ignore[union-attr]
    assert racing.position("B").touchpoints == 2  # type: ignore[union-attr]
    rival_view.close()
    racing.close()


def test_a_runner_does_not_build_on_what_it_remembers_when_the_view_moved_without_it(
    paged: Engine, settings: Settings
) -> None:
    record_story(paged)
    paged.runner.catch_up()  # it now remembers A with three touchpoints
    paged.journeys.record([touchpoint("a4", "contract_signed", customer_id="A", at=T0 + 3 * DAY)])
    other = build_engine(settings)  # another process on the same stores
    other.runner.catch_up()  # A: four touchpoints
    other.close()
    paged.journeys.record([touchpoint("a5", "referral_given", customer_id="A", at=T0 + 4 * DAY)])

    paged.runner.catch_up()

    assert paged.view.position("A").touchpoints == 5  # type: ignore[union-attr]
    assert paged.view.position("A").stage == "advocate"  # type: ignore[union-attr]


def test_views_built_with_another_definition_must_be_rebuilt(paged: Engine) -> None:
    record_story(paged)
    paged.runner.catch_up()
    stricter = parse_definition(
        '[journey]\nname = "two stages"\n'
        '[[stages]]\nid = "aware"\nlabel = "Aware"\nenter = [{types = ["*"]}]\n'
        '[[stages]]\nid = "customer"\nlabel = "Customer"\n'
        'enter = [{types = ["contract_signed"]}]\n',
        origin="strict",
    )
    runner = ProjectionRunner(paged.journeys, paged.view, stricter)

    with pytest.raises(ViewOutOfDate, match="journey rebuild"):
        runner.catch_up()
    runner.rebuild()

    assert paged.view.position("A").stage == "aware"  # type: ignore[union-attr]
    assert paged.view.position("B").stage == "customer"  # type: ignore[union-attr]
    assert load_definition() != stricter


def test_a_replay_read_in_a_second_process_builds_the_same_views(
    paged: Engine, settings: Settings
) -> None:
    record_story(paged)
    record_late_visit(paged)
    paged.runner.catch_up()
    other = SQLiteJourneyView(settings.data_dir / "other.db")
    runner = in_other_processes(paged, other, page_size=3)

    done = runner.catch_up()

    assert done.position == paged.runner.position()
    assert history(["A", "B"], other) == history(["A", "B"], paged.view)
    assert other.funnel(paged.definition.ladder) == paged.view.funnel(paged.definition.ladder)
    other.close()


def test_holding_changes_back_for_an_unseen_view_builds_the_same_views(
    paged: Engine, tmp_path: Path
) -> None:
    """Writing each customer about once, also when positions must make room in memory."""
    from journey.demo import demo_touchpoints

    paged.journeys.record(list(demo_touchpoints(40, seed=3)))
    paged.journeys.tick(T0 + 400 * DAY)
    record_story(paged)
    paged.runner.catch_up()
    held = SQLiteJourneyView(tmp_path / "held.db")
    runner = ProjectionRunner(paged.journeys, held, paged.definition, page_size=50)
    runner._projector._max_cached = 25  # fewer than the customers: changes are written early

    runner.catch_up(unseen=True)

    customers = [f"C-{n:06d}" for n in range(1, 41)] + ["A", "B"]
    for customer in customers:
        assert held.position(customer) == paged.view.position(customer)
        assert held.frictions(customer_id=customer, open_only=False) == paged.view.frictions(
            customer_id=customer, open_only=False
        )
    assert held.consistency("channel") == paged.view.consistency("channel")
    assert held.moment_outcomes() == paged.view.moment_outcomes()
    assert held.tracking("journey")[0] == paged.runner.position()
    held.close()


@pytest.mark.parametrize("max_cached", [None, 12])
def test_a_rebuild_folded_in_partitions_builds_the_same_views(
    paged: Engine, tmp_path: Path, max_cached: int | None
) -> None:
    """Each partition folds and writes its own customers; the journey's position and clocks
    are written once all are in. Also when positions must make room in memory."""
    from journey.demo import demo_touchpoints

    paged.journeys.record(list(demo_touchpoints(40, seed=5)))
    paged.journeys.tick(T0 + 400 * DAY)
    record_story(paged)
    record_late_visit(paged)
    paged.runner.catch_up()
    built = SQLiteJourneyView(tmp_path / "partitioned.db")
    runner = in_other_processes(paged, built, page_size=50, partitions=3)
    runner._projector._max_cached = max_cached
    seen: list[tuple[int, int]] = []

    done = runner.catch_up(lambda n, of: seen.append((n, of)), unseen=True)

    assert done.position == paged.runner.position()
    assert built.tracking("journey:3/3")[0] > 0, "the third partition wrote its share"
    assert seen[-1] == (done.events, done.events)
    for customer in [f"C-{n:06d}" for n in range(1, 41)] + ["A", "B"]:
        assert built.position(customer) == paged.view.position(customer)
        assert built.frictions(customer_id=customer, open_only=False) == paged.view.frictions(
            customer_id=customer, open_only=False
        )
    assert built.funnel(paged.definition.ladder) == paged.view.funnel(paged.definition.ladder)
    assert built.moment_outcomes() == paged.view.moment_outcomes()
    assert (built.clock(), built.ticked()) == (paged.view.clock(), paged.view.ticked())
    assert built.tracking("journey") == paged.view.tracking("journey")
    paged.journeys.record([touchpoint("b3", "complaint", customer_id="B", at=T0 + 500 * DAY)])
    assert runner.catch_up().events == 1
    paged.runner.catch_up()
    assert built.position("B") == paged.view.position("B")
    built.close()


def test_waiting_for_a_position_returns_once_another_process_reached_it(
    paged: Engine, settings: Settings
) -> None:
    record_story(paged)
    head = paged.log.head()
    journey = Path(sys.executable).with_name("journey")
    catching_up = subprocess.Popen(  # the views, then the decider, as servers run them
        ["sh", "-c", f"{journey} funnel && {journey} decide --no-publish"],
        env={**os.environ, **settings_env(settings)},
        stdout=subprocess.DEVNULL,
    )
    try:
        assert paged.runner.wait_for(head, timeout=60) == head
        assert paged.decider.wait_for(head, timeout=60) >= head
    finally:
        assert catching_up.wait(timeout=60) == 0


def test_waiting_for_a_position_nobody_reaches_says_where_it_stopped(paged: Engine) -> None:
    record_story(paged)
    head = paged.runner.catch_up().position
    beyond = head + 1

    with pytest.raises(TimeoutError, match=f"the views are at {head}, not yet at {beyond}"):
        paged.runner.wait_for(beyond, timeout=0.2)
    with pytest.raises(TimeoutError, match=f"the decider is at 0, not yet at {beyond}"):
        paged.decider.wait_for(beyond, timeout=0.2)


def settings_env(settings: Settings) -> dict[str, str]:
    """The environment that gives a `journey` command these settings."""
    env = {"JOURNEY_DATA_DIR": str(settings.data_dir)}
    if settings.store == "postgres":
        pg = settings.postgres
        env["JOURNEY_DATABASE_URL"] = (
            f"postgresql://{pg['POSTGRES_USER']}:{pg.get('POSTGRES_PASSWORD', '')}@"
            f"{pg['POSTGRES_HOST']}:{pg['POSTGRES_PORT']}/{pg['POSTGRES_DBNAME']}"
        )
        env["POSTGRES_SCHEMA"] = pg["POSTGRES_SCHEMA"]
    return env


def joined_history(engine: Engine) -> list[str]:
    """Demo customers, a third of whose web touchpoints come with only their cookie, Greta's
    story, two customers merged by a person and a merge undone, then more touchpoints and
    a clock event; returns every id that may name someone in the views."""
    from journey.demo import demo_touchpoints

    records = [tp._asdict() for tp in demo_touchpoints(40, seed=5)]
    names = {record["customer_id"] for record in records}
    for number, record in enumerate(records):
        del record["anonymous"]
        if number % 3 == 0 and record["cookie_id"]:
            del record["customer_id"]  # recorded under its cookie: the person is found later
    now = T0 + 400 * DAY
    touchpoints = [touchpoint_from_record(record, now_ms=now) for record in records]
    half = len(touchpoints) // 2
    engine.journeys.record(touchpoints[:half])
    engine.journeys.record(
        [touchpoint_from_record(r, now_ms=now) for r in anonymous_reader_turns_caller()]
    )
    known = sorted({tp.customer_id for tp in touchpoints[:half] if not tp.anonymous})
    first, second, third, fourth = known[:4]
    merge(engine, first, second, by="ana", reason="same person")
    undone = merge(engine, third, fourth, by="ana", reason="same person, it seemed")
    unmerge(engine, undone.merge_id, by="ana", reason="two people after all")
    engine.journeys.record(touchpoints[half:])
    engine.journeys.tick(T0 + 400 * DAY)
    engine.runner.catch_up()
    return sorted(names | {tp.customer_id for tp in touchpoints} | {"S7-GRETA"})


@pytest.mark.parametrize(
    ("max_cached", "glance"), [(None, 1_000), (12, 1_000), (None, 0)], ids=["", "cached", "late"]
)
def test_a_rebuild_of_a_log_that_joins_people_under_several_keys_is_partitioned_by_person(
    paged: Engine, tmp_path: Path, max_cached: int | None, glance: int
) -> None:
    """Partitions of the keys are not partitions of the people once touchpoints without a
    customer id, or people's merges, join them: each partition then reads the whole log to
    know who is who, and folds and writes only its own people; from the start if the log's
    first entries join people, else once a partition of the keys meets such an entry. The
    views are the ones the live runner keeps, and every partition wrote its share."""
    ids = joined_history(paged)
    built = SQLiteJourneyView(tmp_path / "partitioned.db")
    runner = in_other_processes(paged, built, page_size=50, partitions=3)
    runner._projector._max_cached = max_cached
    runner._glance = glance  # how many entries it reads before partitioning

    done = runner.catch_up(unseen=True)

    assert done.position == paged.runner.position()
    for share in ("journey:1/3", "journey:2/3", "journey:3/3"):
        assert built.tracking(share)[0] == done.position, f"{share} folded the whole log"
    greta = built.position("S7-GRETA")
    assert greta is not None
    assert greta.touchpoints == 5
    assert len([c for c in ids if paged.view.position(c) is not None]) < len(ids) - 10
    for customer in ids:
        assert built.position(customer) == paged.view.position(customer), customer
        assert built.keys_of(customer) == paged.view.keys_of(customer), customer
        assert built.frictions(customer_id=customer, open_only=False) == paged.view.frictions(
            customer_id=customer, open_only=False
        )
        assert built.person_of(customer) == paged.view.person_of(customer), customer
    assert built.funnel(paged.definition.ladder) == paged.view.funnel(paged.definition.ladder)
    assert built.moment_outcomes() == paged.view.moment_outcomes()
    assert (built.clock(), built.ticked()) == (paged.view.clock(), paged.view.ticked())
    assert built.tracking("journey") == paged.view.tracking("journey")
    built.close()
