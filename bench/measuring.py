"""What every benchmark needs to report a figure it can stand by: the store it names, sealed
or not as it says, whatever the shell exports, and a rate only when something was measured."""

from __future__ import annotations

import sys
from collections.abc import Callable, Mapping
from pathlib import Path

from engine.recording import Journeys
from engine.settings import POSTGRES_KEYS, Settings
from journey.bootstrap import event_store_env
from projections.log import JourneyLog
from stores import open_store
from stores.keys import DatabaseKeyStore

# What picks the store, or where it is. The README has users export JOURNEY_DATABASE_URL for
# the services; kept, it would move a benchmark of the embedded store onto PostgreSQL.
STORE_VARIABLES = ("JOURNEY_DATABASE_URL", "JOURNEY_DATA_DIR", *POSTGRES_KEYS)
# What seals personal data: kept, a master key the shell exports would seal a benchmark meant to
# run in the clear (or be refused by a store recorded in the clear). A sealed run names its own.
SEALING_VARIABLES = ("JOURNEY_MASTER_KEY", "JOURNEY_MASTER_KEY_FILE")
_PAGE = 100_000


class NotMeasured(RuntimeError):
    """A figure that would be meaningless: nothing was counted, or no time passed."""


def without_store(
    environ: Mapping[str, str], extra: Mapping[str, str] | None = None
) -> dict[str, str]:
    """`environ` without the variables that choose a store or seal it, then `extra`: what a
    benchmark runs `journey` with, so that the store it runs on is the one `extra` names, and
    sealed only if `extra` names a master key."""
    left_out = (*STORE_VARIABLES, *SEALING_VARIABLES)
    env = {key: value for key, value in environ.items() if key not in left_out}
    env.update(extra or {})
    return env


def embedded(environ: Mapping[str, str], data_dir: Path) -> dict[str, str]:
    """`environ` pointing `journey` at the embedded SQLite store in `data_dir`."""
    return without_store(environ, {"JOURNEY_DATA_DIR": str(data_dir)})


def per_second(count: int, seconds: float, what: str) -> float:
    """`count` of `what` per second; raises NotMeasured, naming what went wrong, rather than
    report a rate of nothing or divide by a zero duration."""
    if count <= 0:
        raise NotMeasured(f"nothing measured: {count} {what} in {seconds:.3f} s")
    if seconds <= 0:
        raise NotMeasured(f"{count:,} {what} in no measurable time ({seconds} s)")
    return count / seconds


def folded_entries(settings: Settings) -> int:
    """The log entries a rebuild folds (touchpoints and clock events) in the store `settings`
    name; journey starts and the decider's own events are in the log but not folded."""
    app = Journeys(event_store_env(settings))
    try:
        log, count, after = JourneyLog(app), 0, 0
        while page := log.folded(after, _PAGE):
            count += len(page)
            after = page[-1][0]
        return count
    finally:
        app.close()


def data_keys(settings: Settings) -> int:
    """The keys the store `settings` name keeps, its index key and data keys: none unless it
    was recorded sealed."""
    db = open_store(settings).database()
    try:
        return DatabaseKeyStore(db).count_keys()
    finally:
        db.close()


def reporting(main: Callable[[], None]) -> None:
    """Runs a benchmark's main, ending it with one line that says what was not measured."""
    try:
        main()
    except NotMeasured as exc:
        sys.exit(f"{Path(sys.argv[0]).name}: {exc}")
