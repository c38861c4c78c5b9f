"""The journey views: what they hold and the port every store implements."""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from itertools import pairwise
from typing import Any

import orjson

from engine.errors import JourneyError
from projections.position import FRICTIONS, MOMENTS, OUTCOMES, Position
from projections.sql import look_until, one_of

JOURNEY_PROJECTION = "journey"


class ViewConflict(JourneyError):
    """The view moved on under this runner (another runner wrote it): reload and go on."""


class ViewOutOfDate(JourneyError):
    """The view was built with another journey definition and must be rebuilt."""


# Every view table with a row per customer (or more): a customer id that names no one any
# more leaves them all.
CUSTOMER_TABLES = ("journey_positions", "journey_frictions", "journey_moments", "journey_outcomes")


@dataclass(frozen=True, slots=True)
class DetailRows:
    """The customers whose frictions, moments of truth or outcome tallies changed: in each
    detail view, their rows are replaced by rows made from their positions. The rows are
    made when a view asks for them: while it writes them, or before it takes a lock that
    other writers wait for."""

    positions: Sequence[Position] = ()
    severity: Mapping[str, int] = field(default_factory=dict)

    def tables(self) -> list[tuple[str, int, list[str], Iterator[tuple[Any, ...]]]]:
        """(table, columns, customers whose rows are replaced, their new rows) of each view."""
        frictions = [p for p in self.positions if p.details_changed & FRICTIONS]
        moments = [p for p in self.positions if p.details_changed & MOMENTS]
        outcomes = [p for p in self.positions if p.details_changed & OUTCOMES]
        return [
            ("journey_frictions", 11, _ids(frictions), self._friction_rows(frictions)),
            ("journey_moments", 11, _ids(moments), _moment_rows(moments)),
            ("journey_outcomes", 5, _ids(outcomes), _outcome_rows(outcomes)),
        ]

    def _friction_rows(self, positions: list[Position]) -> Iterator[tuple[Any, ...]]:
        severity = self.severity
        for p in positions:
            for f in p.frictions:
                yield (
                    p.customer_id,
                    f.id,
                    f.kind,
                    severity.get(f.kind, 1),
                    f.stage,
                    f.channel,
                    f.rep_id,
                    p.rep or f.rep_id,
                    f.opened_at,
                    f.resolved_at,
                    orjson.dumps(f.events).decode(),
                )


def _ids(positions: list[Position]) -> list[str]:
    return [p.customer_id for p in positions]


# A moment's fields the moments view has columns for: all but its touch.
_MOMENT_COLUMNS = 9


def _moment_rows(positions: list[Position]) -> Iterator[tuple[Any, ...]]:
    for p in positions:
        for index, moment in enumerate(p.moments):
            yield (p.customer_id, index, *moment[:_MOMENT_COLUMNS])


def _outcome_rows(positions: list[Position]) -> Iterator[tuple[Any, ...]]:
    for p in positions:
        for channel, tally in p.outcomes.items():
            yield (p.customer_id, channel, *tally)


@dataclass(frozen=True, slots=True)
class PageChanges:
    """What one page of events changed, committed in one transaction with its position."""

    positions: Sequence[Position]
    clock: int | None
    position: int
    ticked: int | None = None  # the time of the last clock event so far
    details: DetailRows = DetailRows()  # frictions, moments of truth, outcome tallies
    # None of these customers has rows in the views yet: theirs are added, none replaced.
    first_write: bool = False
    # Ids that no longer name anyone's journey (people who became one): their rows go.
    removed: Sequence[str] = ()
    # Keys touchpoints were recorded under that name another person (None: their own).
    aliases: Mapping[str, str | None] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class FrictionRow:
    """A friction as the views list it. `owner` is the customer's rep (or, if they have none
    yet, the rep involved)."""

    customer_id: str
    id: str
    kind: str
    severity: int
    stage: str | None
    channel: str | None
    rep_id: str | None
    owner: str | None
    opened_at: int
    resolved_at: int | None
    events: list[str]


FRICTION_GROUPS = ("kind", "stage", "channel", "owner")


@dataclass(frozen=True, slots=True)
class CustomerRow:
    """A customer as lists show them."""

    customer_id: str
    stage: str | None
    stage_since: int | None
    rep: str | None
    touchpoints: int
    last_at: int | None
    open_frictions: int


@dataclass(frozen=True, slots=True)
class StageCount:
    stage: str
    reached: int  # customers who got at least this far on the ladder
    current: int  # customers in the stage now


@dataclass(frozen=True, slots=True)
class CustomersBehind:
    """The customers behind a figure of the analyst report: first seen in a range of times
    (`first_from` inclusive, `first_to` exclusive, in milliseconds), who got at least as far
    as a ladder rank, who moved straight from one stage to another, or who met a friction
    (open or resolved) in a stage or on a channel ("" for none recorded)."""

    first_from: int | None = None
    first_to: int | None = None
    reached_rank: int | None = None
    moved: tuple[str, str] | None = None
    friction_stage: str | None = None
    friction_channel: str | None = None

    def condition(self, schema: str) -> tuple[str, list[Any]]:
        """What SQL can check of it, as a condition on the positions `p`."""
        where, params = "", list[Any]()
        if self.first_from is not None:
            where, params = where + " AND p.first_at >= %s", [*params, self.first_from]
        if self.first_to is not None:
            where, params = where + " AND p.first_at < %s", [*params, self.first_to]
        if self.reached_rank is not None:
            where, params = where + " AND p.peak_rank >= %s", [*params, self.reached_rank]
        met = ""
        for column, value in (("stage", self.friction_stage), ("channel", self.friction_channel)):
            if value == "":
                met += f" AND f.{column} IS NULL"
            elif value is not None:
                met, params = met + f" AND f.{column} = %s", [*params, value]
        if met:
            where += (
                f" AND EXISTS (SELECT 1 FROM {schema}journey_frictions f "
                f"WHERE f.customer_id = p.customer_id{met})"
            )
        return where, params

    def moved_in(self, position: Position) -> bool:
        """Whether the customer moved straight from the first stage of `moved` to the second."""
        if self.moved is None:
            return True
        stages = [entry.stage for entry in position.history]
        return self.moved in pairwise(stages)


class JourneyView(ABC):
    """Positions and funnel counts, with the log position they reflect."""

    @abstractmethod
    def tracking(self, projection: str) -> tuple[int, str | None]:
        """The last log position committed for a projection (0 if none) and the digest of the
        journey definition it was built with."""

    @abstractmethod
    def load_positions(self, customer_ids: Iterable[str]) -> dict[str, Position]:
        """The stored positions of those customers that have one."""

    @abstractmethod
    def commit(self, projection: str, changes: PageChanges, definition_digest: str) -> None:
        """Writes a page's changes and its position in one transaction. Raises ViewConflict if
        the stored position is not behind the page's."""

    def wait_for(self, projection: str, position: int, timeout: float) -> bool:
        """Waits until a projection's views (written by this process or another) have reached
        `position`; False if they have not after `timeout` seconds."""
        return look_until(lambda: self.tracking(projection)[0] >= position, timeout)

    @abstractmethod
    def reset(self) -> None:
        """Empties the views, so that they can be rebuilt from the start of the log."""

    def opener(self) -> Callable[[], JourneyView] | None:
        """Opens these views again in another process that helps build them (it is
        picklable); None: they cannot be shared with another process."""
        return None

    @abstractmethod
    def drop(self) -> None:
        """Removes the views' tables."""

    @abstractmethod
    def position(self, customer_id: str) -> Position | None: ...

    @abstractmethod
    def person_of(self, key: str) -> str | None:
        """The person a key (a customer id, or the key of anonymous touchpoints) names now,
        if the views know it."""

    @abstractmethod
    def keys_of(self, person: str) -> list[str]:
        """Every key the person's touchpoints were recorded under, their own id first."""

    @abstractmethod
    def keys_of_many(self, people: Sequence[str]) -> dict[str, list[str]]:
        """`keys_of` of each person."""

    @abstractmethod
    def funnel(self, ladder: Sequence[str]) -> list[StageCount]:
        """Counts per stage of the ladder (and of any other stage a customer is in)."""

    @abstractmethod
    def clock(self) -> int | None:
        """The journey's clock: the latest time any touchpoint or clock event names."""

    @abstractmethod
    def ticked(self) -> int | None:
        """The time of the last clock event folded."""

    def time_of(self, position: Position) -> int | None:
        """A customer's journey time: their latest touchpoint or the last clock event,
        whichever is later. Time in stage is counted to it, as the detectors count."""
        return max((t for t in (position.last_at, self.ticked()) if t is not None), default=None)

    @abstractmethod
    def due_before(self, at: int) -> list[str]:
        """Customers for whom time alone changes something before `at`."""

    # The detail views answer the same queries on every store; each store only runs them.
    table_prefix = ""  # the schema the views' tables are in, as SQL ("" for none)

    @abstractmethod
    def _fetch(self, sql: str, params: Sequence[Any] = ()) -> list[Any]:
        """Rows of a query written with `%s` parameters."""

    def frictions(
        self,
        *,
        customer_id: str | None = None,
        open_only: bool = True,
        owner: str | None = None,
        kind: str | None = None,
        limit: int | None = None,
    ) -> list[FrictionRow]:
        """Frictions, worst first (severity, then the oldest), filtered."""
        sql, params = frictions_query(
            self.table_prefix,
            customer_id=customer_id,
            open_only=open_only,
            owner=owner,
            kind=kind,
            limit=limit,
        )
        return [friction_row(row) for row in self._fetch(sql, params)]

    def friction_page(
        self,
        *,
        open_only: bool = True,
        owner: str | None = None,
        kind: str | None = None,
        limit: int,
        offset: int = 0,
        owners: Sequence[str] | None = None,
    ) -> tuple[int, list[FrictionRow]]:
        """How many frictions there are, and a page of them, worst first; with `owners`,
        only those of customers one of them owns."""
        where, params = friction_filter(
            customer_id=None, open_only=open_only, owner=owner, kind=kind, owners=owners
        )
        total = self._fetch(
            f"SELECT COUNT(*) FROM {self.table_prefix}journey_frictions WHERE {where}", params
        )[0][0]
        sql, params = frictions_query(
            self.table_prefix,
            customer_id=None,
            open_only=open_only,
            owner=owner,
            kind=kind,
            limit=limit,
            offset=offset,
            owners=owners,
        )
        return int(total), [friction_row(row) for row in self._fetch(sql, params)]

    def friction_counts(self, by: str, *, open_only: bool = True) -> list[tuple[str | None, int]]:
        """How many frictions per kind, stage, channel or owner (one of FRICTION_GROUPS)."""
        rows = self._fetch(friction_counts_query(self.table_prefix, by, open_only))
        return [(key, n) for key, n in rows]

    def moment_outcomes(self) -> list[tuple[str, str, str | None, int]]:
        """Moments of truth per (moment, channel, outcome)."""
        rows = self._fetch(MOMENT_OUTCOMES_SQL.format(schema=self.table_prefix))
        return [(kind, channel, outcome, n) for kind, channel, outcome, n in rows]

    def consistency(self, by: str) -> list[tuple[str | None, int, int, int]]:
        """Outcomes per channel (`by="channel"`, every touchpoint with an outcome) or per rep
        (`by="rep"`, moments of truth): (key, positive, neutral, negative)."""
        sql = CHANNEL_OUTCOMES_SQL if by == "channel" else REP_OUTCOMES_SQL
        return [
            (key, int(pos or 0), int(neu or 0), int(neg or 0))
            for key, pos, neu, neg in self._fetch(sql.format(schema=self.table_prefix))
        ]

    def customers(
        self,
        *,
        stage: str | None = None,
        rep: str | None = None,
        friction: str | None = None,
        prefix: str | None = None,
        limit: int = 50,
        offset: int = 0,
        behind: CustomersBehind | None = None,
        reps: Sequence[str] | None = None,
    ) -> tuple[int, list[CustomerRow]]:
        """Customers in a stage, of a rep (or of one of `reps`), with an open friction of a
        kind, or whose id starts with `prefix` (and those `behind` a figure of the report):
        how many in all, and one page of them, the longest in their stage first."""
        where, params = "WHERE TRUE", list[Any]()
        if prefix:
            escaped = prefix.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
            where, params = (
                where + " AND p.customer_id LIKE %s ESCAPE '\\'",
                [*params, f"{escaped}%"],
            )
        if stage is not None:
            where, params = where + " AND p.stage = %s", [*params, stage]
        if rep is not None:
            where, params = where + " AND p.rep = %s", [*params, rep]
        if reps is not None:
            where, params = where + f" AND p.rep {one_of(reps)}", [*params, *reps]
        if friction is not None:
            where += (
                f" AND EXISTS (SELECT 1 FROM {self.table_prefix}journey_frictions f "
                "WHERE f.customer_id = p.customer_id AND f.kind = %s AND f.resolved_at IS NULL)"
            )
            params = [*params, friction]
        if behind is not None:
            more, also = behind.condition(self.table_prefix)
            where, params = where + more, [*params, *also]
        table = f"{self.table_prefix}journey_positions p"
        columns = (
            "p.customer_id, p.stage, p.stage_since, p.rep, p.touchpoints, p.last_at, "
            "p.open_frictions"
        )
        order = "ORDER BY p.stage_since, p.customer_id"
        if behind is not None and behind.moved is not None:
            # Moves are in the positions' stage history, which no column holds: read whole.
            found = [
                CustomerRow(*row[:-1])
                for row in self._fetch(
                    f"SELECT {columns}, p.state FROM {table} {where} {order}", params
                )
                if behind.moved_in(Position.from_state(row[0], orjson.loads(row[-1])))
            ]
            return len(found), found[offset : offset + limit]
        total = self._fetch(f"SELECT COUNT(*) FROM {table} {where}", params)[0][0]
        rows = self._fetch(
            f"SELECT {columns} FROM {table} {where} {order} LIMIT %s OFFSET %s",
            [*params, limit, offset],
        )
        return int(total), [CustomerRow(*row) for row in rows]

    def all_positions(self, chunk: int = 5_000) -> Iterator[Position]:
        """Every customer's position, a chunk at a time."""
        after = ""
        while True:
            rows = self._fetch(
                f"SELECT customer_id, state FROM {self.table_prefix}journey_positions "
                "WHERE customer_id > %s ORDER BY customer_id LIMIT %s",
                [after, chunk],
            )
            for customer_id, state in rows:
                yield Position.from_state(customer_id, orjson.loads(state))
            if len(rows) < chunk:
                return
            after = rows[-1][0]

    def friction_matrix(
        self, rows: str, columns: str, *, open_only: bool = True
    ) -> list[tuple[str | None, str | None, int]]:
        """Frictions (open ones only, unless asked) counted per two of kind, stage, channel
        and owner."""
        for by in (rows, columns):
            if by not in FRICTION_GROUPS:
                raise ValueError(f"frictions are counted by {', '.join(FRICTION_GROUPS)}")
        found = self._fetch(
            f"SELECT {rows}, {columns}, COUNT(*) FROM {self.table_prefix}journey_frictions "
            f"{'WHERE resolved_at IS NULL' if open_only else ''} GROUP BY {rows}, {columns} "
            f"ORDER BY COUNT(*) DESC, COALESCE({rows}, ''), COALESCE({columns}, '')"
        )
        return [(r, c, int(n)) for r, c, n in found]

    @abstractmethod
    def close(self) -> None: ...


def funnel_counts(
    ladder: Sequence[str], current: dict[str | None, int], peaks: dict[int, int]
) -> list[StageCount]:
    """Stage counts from customers per current stage and per highest ladder rank reached."""
    current = dict(current)
    counts = []
    for rank, stage in enumerate(ladder):
        reached = sum(n for peak, n in peaks.items() if peak >= rank)
        counts.append(StageCount(stage, reached, current.pop(stage, 0)))
    counts.extend(StageCount(stage, n, n) for stage, n in sorted(current.items(), key=str) if stage)
    return counts


def position_row(position: Position, state: bytes | str) -> tuple[Any, ...]:
    """A position as a row of the positions table, with its encoded state."""
    p = position
    return (
        p.customer_id,
        p.stage,
        p.since,
        p.peak_rank,
        p.first_at,
        p.last_at,
        p.touchpoints,
        p.rep,
        p.due,
        len(p.open_frictions),
        state,
    )


def friction_row(row: Sequence[Any]) -> FrictionRow:
    return FrictionRow(
        row[0],
        row[1],
        row[2],
        row[3],
        row[4],
        row[5],
        row[6],
        row[7],
        row[8],
        row[9],
        orjson.loads(row[10]),
    )


# The queries both stores answer the same way, with `%s` parameters and the tables' schema
# in `{schema}` (SQLite's views have none).
FRICTIONS_SQL = (
    "SELECT customer_id, friction_id, kind, severity, stage, channel, rep_id, owner, "
    "opened_at, resolved_at, events FROM {schema}journey_frictions WHERE TRUE"
)
FRICTION_COUNTS_SQL = (
    "SELECT {column}, COUNT(*) FROM {schema}journey_frictions {where} "
    "GROUP BY {column} ORDER BY COUNT(*) DESC, COALESCE({column}, '')"
)
MOMENT_OUTCOMES_SQL = (
    "SELECT kind, channel, outcome, COUNT(*) FROM {schema}journey_moments "
    "GROUP BY kind, channel, outcome ORDER BY kind, channel, COALESCE(outcome, '')"
)
CHANNEL_OUTCOMES_SQL = (
    "SELECT channel, SUM(positive), SUM(neutral), SUM(negative) FROM {schema}journey_outcomes "
    "GROUP BY channel ORDER BY channel"
)
REP_OUTCOMES_SQL = (
    "SELECT rep_id, "
    "SUM(CASE WHEN outcome = 'positive' THEN 1 ELSE 0 END), "
    "SUM(CASE WHEN outcome = 'neutral' THEN 1 ELSE 0 END), "
    "SUM(CASE WHEN outcome = 'negative' THEN 1 ELSE 0 END) "
    "FROM {schema}journey_moments WHERE rep_id IS NOT NULL GROUP BY rep_id ORDER BY rep_id"
)


def frictions_query(
    schema: str,
    *,
    customer_id: str | None,
    open_only: bool,
    owner: str | None,
    kind: str | None,
    limit: int | None,
    offset: int = 0,
    owners: Sequence[str] | None = None,
) -> tuple[str, list[Any]]:
    where, params = friction_filter(
        customer_id=customer_id, open_only=open_only, owner=owner, kind=kind, owners=owners
    )
    sql = f"{FRICTIONS_SQL.format(schema=schema)} AND {where}"
    sql += " ORDER BY severity DESC, opened_at, customer_id, friction_id"
    if limit is not None:
        sql, params = sql + " LIMIT %s OFFSET %s", [*params, limit, offset]
    return sql, params


def friction_filter(
    *,
    customer_id: str | None,
    open_only: bool,
    owner: str | None,
    kind: str | None,
    owners: Sequence[str] | None = None,
) -> tuple[str, list[Any]]:
    """The frictions asked for, as an SQL condition and its parameters."""
    where, params = "TRUE", list[Any]()
    if customer_id is not None:
        where, params = where + " AND customer_id = %s", [*params, customer_id]
    if open_only:
        where += " AND resolved_at IS NULL"
    if owner is not None:
        where, params = where + " AND (owner = %s OR rep_id = %s)", [*params, owner, owner]
    if kind is not None:
        where, params = where + " AND kind = %s", [*params, kind]
    if owners is not None:
        where, params = where + f" AND owner {one_of(owners)}", [*params, *owners]
    return where, params


def friction_counts_query(schema: str, by: str, open_only: bool) -> str:
    if by not in FRICTION_GROUPS:
        raise ValueError(f"frictions are counted by one of {', '.join(FRICTION_GROUPS)}")
    where = "WHERE resolved_at IS NULL" if open_only else ""
    return FRICTION_COUNTS_SQL.format(schema=schema, column=by, where=where)
