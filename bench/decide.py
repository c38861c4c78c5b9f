"""The decider's throughput: how fast it decides next actions over a recorded history, for
this checkout and for the one of --baseline (a git ref, checked out beside it), in the same
run, on the same data.

Each run records the generated history of --customers customers (the demo's stories, `journey
generate`) on a fresh embedded store (SQLite), moves the clock a day past its end, and times
one `catch_up` of the decider over all of it: journey positions folded, every rule's
candidates, arbitration, the actions' ends, events and outbox rows. Runs alternate between the
two checkouts, --rounds times, so that a noisy neighbour hurts both alike; the medians and
their ratio are printed.

    .venv/bin/python bench/decide.py [--customers 3000] [--rounds 3] [--baseline e4ef189]
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
from pathlib import Path

from api import baseline_checkout
from rich.console import Console
from rich.table import Table

ROOT = Path(__file__).resolve().parents[1]
console = Console()

# Run in a child process with the checkout's tree first on the path.
RUN = """
import json, sys, tempfile, time
sys.path.insert(0, sys.argv[1])
from engine.settings import Settings
from journey.bootstrap import build_engine
from journey.demo import demo_touchpoints

engine = build_engine(Settings.from_env({"JOURNEY_DATA_DIR": tempfile.mkdtemp()}))
touchpoints = list(demo_touchpoints(customers=int(sys.argv[2]), seed=11, start=1772442000000))
for start in range(0, len(touchpoints), 5000):
    engine.journeys.record(touchpoints[start : start + 5000])
engine.journeys.tick(max(tp.occurred_at for tp in touchpoints) + 86_400_000)
began = time.perf_counter()
done = engine.decider.catch_up()
seconds = time.perf_counter() - began
print(json.dumps({"seconds": seconds, "touchpoints": len(touchpoints),
                  "decisions": done.decisions, "ended": getattr(done, "ended", 0)}))
"""


def run(tree: Path, customers: int) -> dict[str, float]:
    done = subprocess.run(
        [sys.executable, "-c", RUN, str(tree), str(customers)],
        capture_output=True,
        text=True,
        check=False,
    )
    if done.returncode != 0:
        sys.exit(f"the decider failed in {tree}:\n{done.stderr}")
    result: dict[str, float] = json.loads(done.stdout.splitlines()[-1])
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--customers", type=int, default=3000)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--baseline", default="e4ef189")
    args = parser.parse_args()
    baseline = baseline_checkout(args.baseline, "decide-baseline")
    trees = {"this checkout": ROOT, f"baseline {args.baseline}": baseline}
    runs: dict[str, list[dict[str, float]]] = {label: [] for label in trees}
    try:
        for round_ in range(1, args.rounds + 1):
            for label, tree in trees.items():
                runs[label].append(run(tree, args.customers))
                last = runs[label][-1]
                console.print(
                    f"round {round_}, {label}: {last['touchpoints'] / last['seconds']:,.0f} "
                    f"touchpoints/s, {last['decisions']:,} decided, {last['ended']:,} ended"
                )
    finally:
        subprocess.run(
            ["git", "worktree", "remove", "--force", str(baseline)], check=False, cwd=ROOT
        )
    table = Table(title=f"The decider over {args.customers:,} customers (medians of {args.rounds})")
    for column in ("checkout", "touchpoints/s", "runs", "decided", "ended"):
        table.add_column(column, justify="right" if column != "checkout" else "left")
    rates = {}
    for label, results in runs.items():
        each = [r["touchpoints"] / r["seconds"] for r in results]
        rates[label] = statistics.median(each)
        table.add_row(
            label,
            f"{rates[label]:,.0f}",
            ", ".join(f"{rate:,.0f}" for rate in each),
            f"{results[-1]['decisions']:,.0f}",
            f"{results[-1]['ended']:,.0f}",
        )
    console.print(table)
    this, base = rates.values()
    console.print(f"this checkout decides at {this / base:.2f}x the baseline's rate")


if __name__ == "__main__":
    main()
