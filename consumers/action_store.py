"""What the decider keeps, in the event store's own database so that a page's decisions, its
state, its outbox rows and its log position commit in one transaction with the decision
events: the journey positions it decides from, each customer's action state, the open and
closed actions (the actions view), the outbox, per-owner daily counts, and its tracking.

Reads go through the store's own connection; writes run on the event store's cursor, inside
the transaction that appends the decision events (see `Journeys.append`)."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any, NamedTuple

import orjson

from consumers.deciding import ActionState, Decision, Ended
from engine.errors import JourneyError
from engine.ledger import BatchWrite
from projections.position import Position
from projections.sql import Database, one_of

DECIDER = "decider"
_CHUNK = 500

# Statuses of an action in the view: open until a rep or the journey closes it.
OPEN_STATUSES = ("open", "accepted", "snoozed")
_UPSERT_CUSTOMERS = (
    "INSERT INTO {t}journey_decider_customers (customer_id, due_at, retry_at, position, "
    "actions) VALUES (%s, %s, %s, %s, %s) ON CONFLICT (customer_id) DO UPDATE SET "
    "due_at = excluded.due_at, retry_at = excluded.retry_at, position = excluded.position, "
    "actions = excluded.actions"
)
_ACTION_COLUMNS = (
    "action_id, customer_id, owner, action_type, channel, rule, priority, status, decided_at, "
    "due_at, reason, status_at, status_reason, snoozed_until, log_position, record, explanation"
)


class DeciderConflict(JourneyError):
    """Another decider moved on from the position this one started its page at: its work
    stands, this one's page is dropped."""


class ActionRow(NamedTuple):
    """An action as the actions view holds it."""

    action_id: str
    customer_id: str
    owner: str
    action_type: str
    channel: str
    rule: str
    priority: float
    status: str
    decided_at: int
    due_at: int | None
    reason: str
    status_at: int | None
    status_reason: str | None
    snoozed_until: int | None
    log_position: int
    record: dict[str, Any]
    explanation: dict[str, Any]

    @property
    def is_open(self) -> bool:
        return self.status in OPEN_STATUSES


class StatusChange(NamedTuple):
    action_id: str
    status: str
    at: int
    reason: str | None = None
    snoozed_until: int | None = None


@dataclass(slots=True)
class DeciderPage:
    """What one page of the log changed, for the decider's tables."""

    start: int  # the position the page began after; the write checks nobody moved it
    position: int
    ticked: int | None
    definition: str  # the digest of the journey definition the positions are folded with
    # Every customer of the page, with both: a row is written whole.
    positions: dict[str, Position] = field(default_factory=dict)
    states: dict[str, ActionState] = field(default_factory=dict)
    owner_days: dict[tuple[str, int], int] = field(default_factory=dict)
    # What the page decided, in order: customer id, decision, the log position it was at.
    decided: list[tuple[str, Decision, int]] = field(default_factory=list)
    actions: list[tuple[Any, ...]] = field(default_factory=list)  # new rows of the view
    changes: list[StatusChange] = field(default_factory=list)
    ended: list[tuple[str, Ended]] = field(default_factory=list)  # customer id, and what
    # Both, in the order they happened: (True, an index of `ended`) or (False, of `decided`).
    happened: list[tuple[bool, int]] = field(default_factory=list)
    # Each action's versions to publish: id, status, owner, value.
    outbox: list[tuple[str, str, str, bytes]] = field(default_factory=list)


class ActionStore:
    def __init__(self, db: Database) -> None:
        """`db` holds the decider's tables (the store makes them)."""
        self._db = db
        # The action states read with the positions of the decider's page in hand, by
        # customer (None: they have none), for its next question: one query serves both.
        # Only from the page's beginning to its write, which changes them; None outside.
        self._states_read: dict[str, str | None] | None = None

    def begin_page(self) -> None:
        """The decider begins a page: its customers' action states are read with their
        positions, until its write."""
        self._states_read = {}

    # Reads, on the store's own connection.

    def tracking(self) -> tuple[int, int | None]:
        """The log position the decider has reached (0: none) and the last clock event's
        time it folded."""
        rows = self._db.fetch(
            "SELECT position, ticked FROM {t}journey_decider_tracking WHERE name = %s", (DECIDER,)
        )
        return (int(rows[0][0]), rows[0][1]) if rows else (0, None)

    def ticked(self) -> int | None:
        return self.tracking()[1]

    def wait_for(self, position: int, timeout: float) -> bool:
        """Waits until another decider (in another process, or on another connection) has
        reached `position`;
        False if it has not after `timeout` seconds."""
        return self._db.wait(DECIDER, lambda: self.tracking()[0] >= position, timeout)

    def definition(self) -> str | None:
        """The digest of the journey definition the decider's positions were folded with."""
        rows = self._db.fetch(
            "SELECT definition FROM {t}journey_decider_tracking WHERE name = %s", (DECIDER,)
        )
        return rows[0][0] if rows else None

    def refolded(self, positions: Iterable[Position], definition: str) -> None:
        """Replaces the positions the decider keeps (folded again under another journey
        definition), leaving the customers' action states and its log position as they are."""
        rows = [
            (position.due, orjson.dumps(position.to_state()).decode(), position.customer_id)
            for position in positions
        ]
        with self._db.transaction():
            for start in range(0, len(rows), _CHUNK):
                self._db.execute_many(
                    "UPDATE {t}journey_decider_customers SET due_at = %s, position = %s "
                    "WHERE customer_id = %s",
                    rows[start : start + _CHUNK],
                )
            self._db.execute(
                "UPDATE {t}journey_decider_tracking SET definition = %s WHERE name = %s",
                (definition, DECIDER),
            )

    def load_positions(self, customer_ids: Iterable[str]) -> dict[str, Position]:
        wanted = list(customer_ids)
        rows = self._customers(wanted)
        read = self._states_read
        if read is not None:
            read.update(dict.fromkeys(wanted))
            read.update((customer_id, actions) for customer_id, _, actions in rows)
        return {
            customer_id: Position.from_state(customer_id, orjson.loads(position))
            for customer_id, position, _ in rows
            if position is not None
        }

    def load_states(self, customer_ids: Iterable[str]) -> dict[str, ActionState]:
        read = self._states_read or {}
        wanted = list(customer_ids)
        rows = [(c, read[c]) for c in wanted if c in read]
        unread = [c for c in wanted if c not in read]
        if unread:
            rows += [(customer_id, actions) for customer_id, _, actions in self._customers(unread)]
        return {
            customer_id: ActionState.from_state(customer_id, orjson.loads(actions))
            for customer_id, actions in rows
            if actions is not None
        }

    def _customers(self, customer_ids: Iterable[str]) -> list[tuple[Any, ...]]:
        return self._where_in(
            "SELECT customer_id, position, actions FROM {t}journey_decider_customers "
            "WHERE customer_id IN ({ids})",
            customer_ids,
        )

    def _where_in(self, select: str, ids: Iterable[str]) -> list[tuple[Any, ...]]:
        """The rows of `select` for these ids, asked a chunk of them at a time (`{ids}` is
        where the chunk goes)."""
        wanted = list(ids)
        rows: list[tuple[Any, ...]] = []
        for start in range(0, len(wanted), _CHUNK):
            chunk = wanted[start : start + _CHUNK]
            rows += self._db.fetch(select.replace("{ids}", ",".join(["%s"] * len(chunk))), chunk)
        return rows

    def due_before(self, at: int) -> list[str]:
        rows = self._db.fetch(
            "SELECT customer_id FROM {t}journey_decider_customers WHERE due_at < %s", (at,)
        )
        return [row[0] for row in rows]

    def retry_before(self, at: int) -> list[str]:
        rows = self._db.fetch(
            "SELECT customer_id FROM {t}journey_decider_customers WHERE retry_at <= %s", (at,)
        )
        return [row[0] for row in rows]

    def owner_counts(self, keys: Iterable[tuple[str, int]]) -> dict[tuple[str, int], int]:
        counts = {}
        for owner, day in keys:
            rows = self._db.fetch(
                "SELECT actions FROM {t}journey_owner_days WHERE owner = %s AND day = %s",
                (owner, day),
            )
            counts[owner, day] = int(rows[0][0]) if rows else 0
        return counts

    def action(self, action_id: str) -> ActionRow | None:
        rows = self._db.fetch(
            f"SELECT {_ACTION_COLUMNS} FROM {{t}}journey_next_actions WHERE action_id = %s",
            (action_id,),
        )
        return _action_row(rows[0]) if rows else None

    def actions(
        self,
        *,
        customer_id: str | None = None,
        owner: str | None = None,
        open_only: bool = True,
        limit: int | None = None,
        offset: int = 0,
        owners: Sequence[str] | None = None,
    ) -> list[ActionRow]:
        """Actions, the most important first (open before closed, then priority); with
        `owners`, only theirs."""
        where, params = _action_filter(customer_id, owner, open_only, owners)
        sql = (
            f"SELECT {_ACTION_COLUMNS} FROM {{t}}journey_next_actions WHERE {where}"
            f" ORDER BY CASE WHEN status IN ({', '.join(repr(s) for s in OPEN_STATUSES)}) "
            "THEN 0 ELSE 1 END, priority DESC, decided_at, action_id"
        )
        if limit is not None:
            sql, params = sql + " LIMIT %s OFFSET %s", [*params, limit, offset]
        return [_action_row(row) for row in self._db.fetch(sql, params)]

    def action_page(
        self,
        *,
        customer_id: str | None = None,
        owner: str | None = None,
        open_only: bool = True,
        limit: int,
        offset: int = 0,
        owners: Sequence[str] | None = None,
    ) -> tuple[int, list[ActionRow]]:
        """How many actions there are, and a page of them, the most important first."""
        where, params = _action_filter(customer_id, owner, open_only, owners)
        rows = self._db.fetch(
            f"SELECT count(*) FROM {{t}}journey_next_actions WHERE {where}", params
        )
        page = self.actions(
            customer_id=customer_id,
            owner=owner,
            open_only=open_only,
            limit=limit,
            offset=offset,
            owners=owners,
        )
        return int(rows[0][0]), page

    def owners(self, at: int) -> list[tuple[str, int, int]]:
        """Every owner actions were decided for, by name: (owner, actions to do at `at`, of
        which overdue). To do: open or accepted, or snoozed until `at` or before."""
        waiting = [s for s in OPEN_STATUSES if s != "snoozed"]
        to_do = (
            f"(status IN ({', '.join(repr(s) for s in waiting)}) "
            "OR (status = 'snoozed' AND COALESCE(snoozed_until, 0) <= %s))"
        )
        rows = self._db.fetch(
            f"SELECT owner, SUM(CASE WHEN {to_do} THEN 1 ELSE 0 END), "
            f"SUM(CASE WHEN {to_do} AND due_at < %s THEN 1 ELSE 0 END) "
            "FROM {t}journey_next_actions GROUP BY owner ORDER BY owner",
            (at, at, at),
        )
        return [(owner, int(n or 0), int(late or 0)) for owner, n, late in rows]

    def records(self, action_ids: Iterable[str]) -> dict[str, dict[str, Any]]:
        """The NextAction records of these actions, as they were decided."""
        rows = self._where_in(
            "SELECT action_id, record FROM {t}journey_next_actions WHERE action_id IN ({ids})",
            action_ids,
        )
        return {action_id: orjson.loads(record) for action_id, record in rows}

    def due_times(self, action_ids: Iterable[str]) -> dict[str, int]:
        """When these actions were due (or decided, if they had no due time)."""
        rows = self._where_in(
            "SELECT action_id, COALESCE(due_at, decided_at) FROM {t}journey_next_actions "
            "WHERE action_id IN ({ids})",
            action_ids,
        )
        return {action_id: int(due) for action_id, due in rows}

    def unsent(self, limit: int) -> list[tuple[int, str, str, bytes]]:
        """Outbox rows not yet acknowledged by the broker, oldest first: (seq, action id,
        owner, value)."""
        rows = self._db.fetch(
            "SELECT seq, action_id, owner, value FROM {t}journey_action_outbox "
            "WHERE sent_at IS NULL ORDER BY seq LIMIT %s",
            (limit,),
        )
        return [(int(seq), action_id, owner, bytes(value)) for seq, action_id, owner, value in rows]

    def mark_sent(self, seqs: Sequence[int], at: int) -> None:
        def mark(chunk: Sequence[int]) -> None:
            self._db.execute(
                "UPDATE {t}journey_action_outbox SET sent_at = %s "
                f"WHERE seq IN ({','.join(['%s'] * len(chunk))})",
                [at, *chunk],
            )

        if len(seqs) <= _CHUNK:
            mark(seqs)  # one statement: all or nothing by itself
            return
        with self._db.transaction():
            for start in range(0, len(seqs), _CHUNK):
                mark(seqs[start : start + _CHUNK])

    def outbox_counts(self) -> tuple[int, int]:
        """(actions decided, records not yet sent: decisions and the ends of actions)."""
        rows = self._db.fetch(
            "SELECT SUM(CASE WHEN status = 'open' THEN 1 ELSE 0 END), COUNT(*) - COUNT(sent_at) "
            "FROM {t}journey_action_outbox"
        )
        return int(rows[0][0] or 0), int(rows[0][1] or 0)

    def unsent_count(self) -> int:
        """Actions decided and not yet sent (cheap: the unsent rows have an index of their
        own)."""
        rows = self._db.fetch("SELECT COUNT(*) FROM {t}journey_action_outbox WHERE sent_at IS NULL")
        return int(rows[0][0])

    def close(self) -> None:
        self._db.close()

    # Writes, on the event store's cursor.

    def write(self, page: DeciderPage) -> BatchWrite:
        """The page's writes, for the transaction that appends its decision events."""
        self._states_read = None
        statement = self._db.statement
        notice = self._db.notice(DECIDER)

        def run(cursor: Any) -> None:
            cursor.execute(
                statement("SELECT position FROM {t}journey_decider_tracking WHERE name = %s"),
                (DECIDER,),
            )
            row = cursor.fetchone()
            stored = 0 if row is None else row[0] if isinstance(row, tuple) else row["position"]
            if stored != page.start:
                raise DeciderConflict(f"the decider is at {stored}, not {page.start}")
            cursor.execute(
                statement(
                    "INSERT INTO {t}journey_decider_tracking (name, position, ticked, definition) "
                    "VALUES (%s, %s, %s, %s) ON CONFLICT (name) DO UPDATE SET "
                    "position = excluded.position, ticked = excluded.ticked, "
                    "definition = excluded.definition"
                ),
                (DECIDER, page.position, page.ticked, page.definition),
            )
            customers = _customer_rows(page)
            if customers:
                cursor.executemany(statement(_UPSERT_CUSTOMERS), customers)
            if page.owner_days:
                cursor.executemany(
                    statement(
                        "INSERT INTO {t}journey_owner_days (owner, day, actions) "
                        "VALUES (%s, %s, %s) ON CONFLICT (owner, day) "
                        "DO UPDATE SET actions = excluded.actions"
                    ),
                    [(owner, day, n) for (owner, day), n in page.owner_days.items()],
                )
            if page.actions:
                marks = ", ".join(["%s"] * 17)
                cursor.executemany(
                    statement(
                        f"INSERT INTO {{t}}journey_next_actions ({_ACTION_COLUMNS}) "
                        f"VALUES ({marks}) ON CONFLICT (action_id) DO NOTHING"
                    ),
                    page.actions,
                )
            if page.changes:
                cursor.executemany(
                    statement(
                        "UPDATE {t}journey_next_actions SET status = %s, status_at = %s, "
                        "status_reason = %s, snoozed_until = %s WHERE action_id = %s"
                    ),
                    [
                        (c.status, c.at, c.reason, c.snoozed_until, c.action_id)
                        for c in page.changes
                    ],
                )
            if page.outbox:
                cursor.executemany(
                    statement(
                        "INSERT INTO {t}journey_action_outbox (action_id, status, owner, value) "
                        "VALUES (%s, %s, %s, %s) ON CONFLICT (action_id, status) DO NOTHING"
                    ),
                    page.outbox,
                )
            if notice is not None:
                cursor.execute(*notice)  # delivered when the transaction commits

        return run


def _customer_rows(page: DeciderPage) -> list[tuple[Any, ...]]:
    """A row per customer of the page: their position and action state as they now stand."""
    encode = orjson.dumps
    rows = []
    for customer_id, position in sorted(page.positions.items()):
        state = page.states[customer_id]
        position_json = encode(position.to_state()).decode()
        rows.append(
            (
                customer_id,
                position.due,
                state.retry_at,
                position_json,
                encode(state.to_state()).decode(),
            )
        )
    return rows


def _action_row(row: Sequence[Any]) -> ActionRow:
    return ActionRow._make([*row[:15], orjson.loads(row[15]), orjson.loads(row[16])])


def _action_filter(
    customer_id: str | None,
    owner: str | None,
    open_only: bool,
    owners: Sequence[str] | None = None,
) -> tuple[str, list[Any]]:
    where, params = "TRUE", list[Any]()
    if customer_id is not None:
        where, params = where + " AND customer_id = %s", [*params, customer_id]
    if owner is not None:
        where, params = where + " AND owner = %s", [*params, owner]
    if owners is not None:
        where, params = where + f" AND owner {one_of(owners)}", [*params, *owners]
    if open_only:
        where += f" AND status IN ({', '.join(repr(s) for s in OPEN_STATUSES)})"
    return where, params
