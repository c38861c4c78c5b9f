"""The backtest's throughput over a history of 1,000,000 events of 100,000 customers, with the
live decider's rate measured on the same history in the same run.

The history is the demo's (`journey generate`), each customer's first --touchpoints /
--customers touchpoints in arrival order, recorded on a fresh embedded store (SQLite) in
batches as channel systems would send them. After each batch the clock moves to the batch's
latest time and the live decider catches up (timed: that is its rate), then sales people
report on a share of the actions it just decided (done, dismissed, snoozed, accepted), as
outcomes in the log. Then `backtest` replays the whole log --runs times with the current
definition, which must propose exactly what was logged, and the median rate is printed.
Both rates count the same log entries: touchpoints, clock events and outcomes. The store is
a temporary directory, removed at the end.

    .venv/bin/python bench/backtest.py [--customers 100000] [--touchpoints 1000000]
                                       [--runs 3] [--profile]
"""

from __future__ import annotations

import argparse
import cProfile
import hashlib
import pstats
import resource
import statistics
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from consumers.backtest import backtest  # noqa: E402
from consumers.outcomes import record_outcomes  # noqa: E402
from engine.actions import ActionOutcome  # noqa: E402
from engine.settings import Settings  # noqa: E402
from engine.touchpoints import Touchpoint  # noqa: E402
from journey.bootstrap import Engine, build_engine  # noqa: E402
from journey.demo import demo_touchpoints  # noqa: E402

TARGET_RATE = 50_000  # events/s
START = 1_772_442_000_000  # 2026-03-02
HOUR = 3_600_000
BATCH = 20_000  # touchpoints a channel system sends at a time
# What sales people do with the actions they get, by share of them (the rest: nothing).
OUTCOMES = (("done", 30), ("dismissed", 10), ("snoozed", 10), ("accepted", 10))


def history(customers: int, touchpoints: int) -> list[Touchpoint]:
    """The demo's history, each customer's first touchpoints, in arrival order."""
    each = max(1, touchpoints // customers)
    kept: dict[str, int] = {}
    found = []
    for tp in demo_touchpoints(customers=customers, seed=11, start=START):
        if kept.get(tp.customer_id, 0) < each:
            kept[tp.customer_id] = kept.get(tp.customer_id, 0) + 1
            found.append(tp)
    return found


def record_and_decide(engine: Engine, touchpoints: list[Touchpoint]) -> tuple[int, float]:
    """Records the history a batch at a time, the clock and the live decider following, and
    reps reporting on what it decided. Returns (log entries decided on, seconds deciding)."""
    entries = len(touchpoints)
    deciding = 0.0
    clock = 0
    decided_up_to = 0
    for start in range(0, len(touchpoints), BATCH):
        batch = touchpoints[start : start + BATCH]
        engine.journeys.record(batch)
        latest = max(tp.occurred_at for tp in batch)
        if latest > clock:
            clock = latest
            engine.journeys.tick(clock)
            entries += 1
        began = time.perf_counter()
        engine.decider.catch_up()
        deciding += time.perf_counter() - began
        entries += report(engine, decided_up_to, clock)
        decided_up_to = engine.actions.tracking()[0]
    began = time.perf_counter()
    engine.decider.catch_up()
    return entries, deciding + time.perf_counter() - began


def report(engine: Engine, after: int, clock: int) -> int:
    """Outcomes on a share of the open actions decided after log position `after`."""
    rows = engine.actions._db.fetch(  # the bench reads the actions view directly
        "SELECT action_id, customer_id, owner, decided_at FROM {t}journey_next_actions "
        "WHERE log_position > %s AND status = 'open'",
        (after,),
    )
    outcomes = []
    for action_id, customer_id, owner, decided_at in rows:
        roll = int(hashlib.sha256(action_id.encode()).hexdigest()[:4], 16) % 100
        for status, share in OUTCOMES:
            if roll < share:
                at = max(decided_at, clock) + HOUR
                outcomes.append(
                    ActionOutcome(
                        f"bench-{action_id}",
                        action_id,
                        customer_id,
                        status,
                        "not now" if status == "dismissed" else None,
                        at + 72 * HOUR if status == "snoozed" else None,
                        owner,
                        at,
                    )
                )
                break
            roll -= share
    record_outcomes(engine.journeys, outcomes)
    return len(outcomes)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--customers", type=int, default=100_000)
    parser.add_argument("--touchpoints", type=int, default=1_000_000)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--profile", action="store_true", help="cProfile one more backtest")
    args = parser.parse_args()
    print(f"target: backtest >= {TARGET_RATE:,} events/s", flush=True)
    touchpoints = history(args.customers, args.touchpoints)
    print(f"history: {len(touchpoints):,} touchpoints of {args.customers:,} customers", flush=True)
    with tempfile.TemporaryDirectory(prefix="bench-backtest-") as data_dir:
        engine = build_engine(Settings.from_env({"JOURNEY_DATA_DIR": data_dir}))
        try:
            entries, seconds = record_and_decide(engine, touchpoints)
            live = entries / seconds
            logged = engine.actions.actions(open_only=False)
            until = engine.actions.tracking()[0]
            print(
                f"live decider: {entries:,} log entries in {seconds:.1f} s, {live:,.0f}/s; "
                f"{len(logged):,} actions decided",
                flush=True,
            )
            rates = []
            for run in range(1, args.runs + 1):
                result = backtest(engine.log, engine.definition, logged, until)
                totals = result.totals
                if (totals.added, totals.dropped, totals.changed) != (0, 0, 0):
                    sys.exit(f"the backtest differs from the logged decisions: {totals}")
                rates.append(result.events / result.seconds)
                print(
                    f"run {run}: {result.events:,} log entries of {result.customers:,} "
                    f"customers in {result.seconds:.1f} s, {rates[-1]:,.0f}/s; "
                    f"{totals.proposed:,} proposed = logged, outcomes {dict(totals.outcomes)}",
                    flush=True,
                )
            if args.profile:
                profile = cProfile.Profile()
                profile.runcall(backtest, engine.log, engine.definition, logged, until)
                pstats.Stats(profile).sort_stats("tottime").print_stats(25)
        finally:
            engine.close()
    rate = statistics.median(rates)
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(
        f"backtest: {rate:,.0f} events/s (median of {args.runs}; runs of "
        f"{min(rates):,.0f} to {max(rates):,.0f}), {rate / live:.1f}x the live decider's "
        f"{live:,.0f}/s in the same run; peak RSS {peak:,.0f} MB; target {TARGET_RATE:,}/s "
        f"{'met' if rate >= TARGET_RATE else 'not met'}"
    )


if __name__ == "__main__":
    main()
