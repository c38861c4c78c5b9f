"""Every table the engine keeps beside the event library's own, written once for both stores:
the parts of a store, each with the migrations that make its tables what this release reads.

Types that differ between the dialects are written as `{placeholders}` that `TYPES` fills in;
table names as `{t}name`, which the database makes schema-qualified where it has schemas.
Version 1 of each part is the layout of the first release (0.1.0); it is written with
IF NOT EXISTS so that a store made before versions were kept is adopted as it is."""

from __future__ import annotations

from projections.sql import Database
from stores.migrations import Migration, Step, forget, migrate, recreate

SQLITE, POSTGRES = ("sqlite",), ("postgres",)

TYPES = {
    "sqlite": {
        "serial": "INTEGER PRIMARY KEY AUTOINCREMENT",
        "blob": "BLOB",
        "state": "BLOB",
        "room": "",
    },
    "postgres": {
        "serial": "BIGSERIAL PRIMARY KEY",
        "blob": "BYTEA",
        # A position's state is JSON kept as text: only the engine reads it, and PostgreSQL
        # would spend more time parsing it into jsonb than writing the rest of the row.
        "state": "TEXT",
        # Room on each page for a row's next version beside it (PostgreSQL's HOT updates).
        "room": "WITH (fillfactor = 70)",
    },
}

# The decider's tables and the store's own bookkeeping, in the event store's database, where a
# page's decisions commit with the decision events.
STORE = (
    Migration(
        1,
        "the decider's tables, the outbox and the live views' generation",
        (
            Step(
                """CREATE TABLE IF NOT EXISTS {t}journey_decider_tracking (
                name TEXT PRIMARY KEY, position BIGINT NOT NULL, ticked BIGINT, definition TEXT)"""
            ),
            # No index but the key: every page rewrites its customers' rows, which then stay
            # where they are; due_at and retry_at are only asked at clock events.
            Step(
                """CREATE TABLE IF NOT EXISTS {t}journey_decider_customers (
                customer_id TEXT PRIMARY KEY, due_at BIGINT, retry_at BIGINT, position TEXT,
                actions TEXT) {room}"""
            ),
            Step(
                """CREATE TABLE IF NOT EXISTS {t}journey_owner_days (
                owner TEXT NOT NULL, day BIGINT NOT NULL, actions INTEGER NOT NULL,
                PRIMARY KEY (owner, day))"""
            ),
            Step(
                """CREATE TABLE IF NOT EXISTS {t}journey_next_actions (
                action_id TEXT PRIMARY KEY, customer_id TEXT NOT NULL, owner TEXT NOT NULL,
                action_type TEXT NOT NULL, channel TEXT NOT NULL, rule TEXT NOT NULL,
                priority DOUBLE PRECISION NOT NULL, status TEXT NOT NULL,
                decided_at BIGINT NOT NULL, due_at BIGINT, reason TEXT NOT NULL,
                status_at BIGINT, status_reason TEXT, snoozed_until BIGINT,
                log_position BIGINT NOT NULL, record TEXT NOT NULL, explanation TEXT NOT NULL)"""
            ),
            Step(
                """CREATE INDEX IF NOT EXISTS journey_next_actions_customer
                ON {t}journey_next_actions (customer_id)"""
            ),
            Step(
                """CREATE INDEX IF NOT EXISTS journey_next_actions_owner
                ON {t}journey_next_actions (owner, status)"""
            ),
            Step(
                """CREATE TABLE IF NOT EXISTS {t}journey_action_outbox (
                seq {serial}, action_id TEXT NOT NULL UNIQUE, owner TEXT NOT NULL,
                value {blob} NOT NULL, sent_at BIGINT)"""
            ),
            Step(
                """CREATE INDEX IF NOT EXISTS journey_action_outbox_unsent
                ON {t}journey_action_outbox (seq) WHERE sent_at IS NULL"""
            ),
            # On SQLite the live generation is named in a file beside the views' files.
            Step(
                """CREATE TABLE IF NOT EXISTS {t}journey_view_generation (
                id INTEGER PRIMARY KEY CHECK (id = 1), generation INTEGER NOT NULL)""",
                POSTGRES,
            ),
        ),
    ),
    Migration(
        2,
        "actions the journey ends are published again with their status: the outbox keeps a "
        "row per action and status; resolved and withdrawn actions read as cancelled; open "
        "actions expire",
        (
            Step(
                "ALTER TABLE {t}journey_action_outbox "
                "ADD COLUMN status TEXT NOT NULL DEFAULT 'open'",
                POSTGRES,
            ),
            Step(
                "ALTER TABLE {t}journey_action_outbox "
                "DROP CONSTRAINT IF EXISTS journey_action_outbox_action_id_key",
                POSTGRES,
            ),
            Step("ALTER TABLE {t}journey_action_outbox ADD UNIQUE (action_id, status)", POSTGRES),
            # SQLite cannot drop a constraint: the table is copied, keeping every row's seq.
            Step(
                """CREATE TABLE {t}journey_action_outbox_2 (
                seq {serial}, action_id TEXT NOT NULL, status TEXT NOT NULL DEFAULT 'open',
                owner TEXT NOT NULL, value {blob} NOT NULL, sent_at BIGINT,
                UNIQUE (action_id, status))""",
                SQLITE,
            ),
            Step(
                """INSERT INTO {t}journey_action_outbox_2 (seq, action_id, owner, value, sent_at)
                SELECT seq, action_id, owner, value, sent_at FROM {t}journey_action_outbox""",
                SQLITE,
            ),
            Step("DROP TABLE {t}journey_action_outbox", SQLITE),
            Step("ALTER TABLE {t}journey_action_outbox_2 RENAME TO journey_action_outbox", SQLITE),
            Step(
                """CREATE INDEX IF NOT EXISTS journey_action_outbox_unsent
                ON {t}journey_action_outbox (seq) WHERE sent_at IS NULL""",
                SQLITE,
            ),
            Step(
                """UPDATE {t}journey_next_actions SET status = 'cancelled',
                status_reason = 'the friction it answered resolved' WHERE status = 'resolved'"""
            ),
            Step(
                """UPDATE {t}journey_next_actions SET status = 'cancelled',
                status_reason = 'the customer opted out of contact' WHERE status = 'withdrawn'"""
            ),
            # Customers with open actions are looked at again at the next clock event, when
            # their actions get the expiry they were decided without. (%% is one % to the
            # PostgreSQL driver, and two wildcards, the same as one, to SQLite.)
            Step(
                """UPDATE {t}journey_decider_customers SET retry_at = 0
                WHERE actions LIKE '%%"a":[[%%'"""
            ),
        ),
    ),
    Migration(
        3,
        "personal data is sealed with a data key per person, kept wrapped by the master key",
        (
            Step(
                """CREATE TABLE IF NOT EXISTS {t}journey_keys (
                subject TEXT PRIMARY KEY, master TEXT NOT NULL, wrapped {blob} NOT NULL)"""
            ),
        ),
    ),
    Migration(
        4,
        "a count of the data keys' erasures and rotations, which tells a process its keys changed",
        (
            Step(
                """CREATE TABLE IF NOT EXISTS {t}journey_key_changes (
                one INTEGER PRIMARY KEY CHECK (one = 1), changes BIGINT NOT NULL)"""
            ),
        ),
    ),
)

# What the Kafka consumers keep beside the events: how far each partition has been recorded
# and the dead letters met on the way (PostgreSQL only: the embedded store reads no Kafka).
BOOKKEEPING = (
    Migration(
        1,
        "consumed offsets and dead letters",
        (
            Step(
                """CREATE TABLE IF NOT EXISTS {t}journey_consumer_offsets (
                group_id TEXT, topic TEXT, partition INTEGER, next_offset BIGINT NOT NULL,
                PRIMARY KEY (group_id, topic, partition))""",
                POSTGRES,
            ),
            Step(
                """CREATE TABLE IF NOT EXISTS {t}journey_dead_letters (
                id BIGSERIAL PRIMARY KEY, topic TEXT NOT NULL, partition INTEGER NOT NULL,
                record_offset BIGINT NOT NULL, timestamp_ms BIGINT, key BYTEA, value BYTEA,
                headers JSONB NOT NULL, reason TEXT NOT NULL, detail TEXT NOT NULL,
                recorded_at TIMESTAMPTZ NOT NULL DEFAULT now(),
                published BOOLEAN NOT NULL DEFAULT false, redriven_at TIMESTAMPTZ,
                UNIQUE (topic, partition, record_offset))""",
                POSTGRES,
            ),
        ),
    ),
)

# The journey views: one set per generation (a file on SQLite, a schema on PostgreSQL).
VIEW_TABLES = (
    "journey_tracking",
    "journey_people",
    "journey_positions",
    "journey_clock",
    "journey_frictions",
    "journey_moments",
    "journey_outcomes",
)
VIEWS = (
    Migration(
        1,
        "positions, the clock, frictions, moments of truth and outcome tallies",
        (
            Step(
                """CREATE TABLE IF NOT EXISTS {t}projection_tracking (
                projection TEXT PRIMARY KEY, position INTEGER NOT NULL, definition TEXT)""",
                SQLITE,
            ),
            Step(
                """CREATE TABLE IF NOT EXISTS {t}journey_tracking (
                projection TEXT PRIMARY KEY, position BIGINT NOT NULL, definition TEXT)""",
                POSTGRES,
            ),
            Step(
                """CREATE TABLE IF NOT EXISTS {t}journey_positions (
                customer_id TEXT PRIMARY KEY, stage TEXT, stage_since BIGINT,
                peak_rank INTEGER, first_at BIGINT, last_at BIGINT, touchpoints INTEGER,
                rep TEXT, due_at BIGINT, open_frictions INTEGER, state {state} NOT NULL)"""
            ),
            Step(
                "CREATE INDEX IF NOT EXISTS journey_positions_stage ON {t}journey_positions (stage)"
            ),
            Step(
                "CREATE INDEX IF NOT EXISTS journey_positions_due ON {t}journey_positions (due_at)"
            ),
            Step(
                """CREATE TABLE IF NOT EXISTS {t}journey_clock (
                id INTEGER PRIMARY KEY CHECK (id = 1), at BIGINT, ticked BIGINT)"""
            ),
            Step(
                """CREATE TABLE IF NOT EXISTS {t}journey_frictions (
                customer_id TEXT NOT NULL, friction_id TEXT NOT NULL, kind TEXT NOT NULL,
                severity INTEGER NOT NULL, stage TEXT, channel TEXT, rep_id TEXT, owner TEXT,
                opened_at BIGINT NOT NULL, resolved_at BIGINT, events TEXT NOT NULL,
                PRIMARY KEY (customer_id, friction_id))"""
            ),
            Step(
                """CREATE INDEX IF NOT EXISTS journey_frictions_open
                ON {t}journey_frictions (resolved_at, severity, opened_at)"""
            ),
            Step(
                """CREATE TABLE IF NOT EXISTS {t}journey_moments (
                customer_id TEXT NOT NULL, seq INTEGER NOT NULL, kind TEXT NOT NULL,
                at BIGINT NOT NULL, event_id TEXT NOT NULL, channel TEXT, rep_id TEXT,
                outcome TEXT, resolved_at BIGINT, resolved_by TEXT, resolution TEXT,
                PRIMARY KEY (customer_id, seq))"""
            ),
            Step(
                """CREATE TABLE IF NOT EXISTS {t}journey_outcomes (
                customer_id TEXT NOT NULL, channel TEXT NOT NULL, positive INTEGER,
                neutral INTEGER, negative INTEGER, PRIMARY KEY (customer_id, channel))"""
            ),
        ),
    ),
    Migration(
        2,
        "the views' tracking table has one name on both stores: journey_tracking",
        (Step("ALTER TABLE {t}projection_tracking RENAME TO journey_tracking", SQLITE),),
    ),
    Migration(
        3,
        "the keys a person's touchpoints were recorded under, where they are not the person's id",
        (
            Step(
                """CREATE TABLE IF NOT EXISTS {t}journey_people (
                key TEXT PRIMARY KEY, person TEXT NOT NULL)"""
            ),
            Step("CREATE INDEX IF NOT EXISTS journey_people_person ON {t}journey_people (person)"),
        ),
    ),
)

# The views of analysts' own projections.
PROJECTIONS = (
    Migration(
        1,
        "the projections' live views and their positions",
        (
            Step(
                """CREATE TABLE IF NOT EXISTS {t}custom_views (
                name TEXT PRIMARY KEY, generation INTEGER NOT NULL, projection TEXT NOT NULL)"""
            ),
            Step(
                """CREATE TABLE IF NOT EXISTS {t}custom_tracking (
                name TEXT NOT NULL, generation INTEGER NOT NULL, position BIGINT NOT NULL,
                PRIMARY KEY (name, generation))"""
            ),
        ),
    ),
)

PARTS = {"store": STORE, "bookkeeping": BOOKKEEPING, "views": VIEWS, "projections": PROJECTIONS}


def open_part(db: Database, part: str) -> list[Migration]:
    """Brings `part`'s tables in `db` up to this release, and returns what that applied."""
    return migrate(db, part, PARTS[part], TYPES[db.dialect])


def views_dropped(database: Database) -> None:
    """Drops the journey views' tables, and forgets their version, in one transaction."""
    with database.transaction():
        for table in VIEW_TABLES:
            database.execute(f"DROP TABLE IF EXISTS {{t}}{table}")
        forget(database, "views")


def views_emptied(database: Database) -> None:
    """Drops the journey views' tables and makes them anew, empty, in one transaction."""
    recreate(database, "views", VIEW_TABLES, VIEWS, TYPES[database.dialect])


def opened(database: Database, part: str) -> Database:
    """`database`, with `part`'s tables brought up to this release (closed if that fails)."""
    try:
        open_part(database, part)
    except BaseException:
        database.close()
        raise
    return database
