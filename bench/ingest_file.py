"""Ingest N touchpoints from a JSON-lines file into the embedded SQLite store.

Times `journey ingest --no-project FILE` (what users run) in fresh data directories and reports
the median rate and peak RSS; in the same run, the naive eventsourcing way (`repository.get` +
`save` per touchpoint) on a sample of the same file, and the ratio of the two.

With --identities the file is identity data (bench/identities.py): touchpoints without a
customer id, some with two identifiers. With --baseline-journey, another `journey` (an older
release, say) ingests the usual data in the same run, alternating with this one run by run,
and the ratio of the two rates is reported.

The store is always the embedded one: JOURNEY_DATABASE_URL and the other variables that
choose a store are left out of the commands it runs.

    python bench/ingest_file.py [--touchpoints 1000000] [--runs 3] [--sample 10000]
                                [--identities] [--journey PATH] [--baseline-journey PATH]
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from itertools import islice
from pathlib import Path

from eventsourcing.application import AggregateNotFoundError, Application
from identities import LABEL, identity_dataset
from measuring import embedded, folded_entries, per_second, reporting
from processes import TreeRSS

from engine.journeys import CustomerJourney, stream_id
from engine.settings import Settings
from engine.touchpoints import Touchpoint, touchpoint_from_record
from journey.demo import demo_touchpoints
from schemas.files import read_records, write_jsonl

OUT = Path(__file__).parent / "out"
JOURNEY = Path(sys.executable).with_name("journey")
TOUCHPOINTS_PER_CUSTOMER = 20.6  # what the demo generator makes on average


def dataset(touchpoints: int) -> Path:
    path = OUT / f"touchpoints-{touchpoints}.jsonl"
    if not path.exists():
        OUT.mkdir(exist_ok=True)
        customers = max(1, round(touchpoints / TOUCHPOINTS_PER_CUSTOMER))
        print(f"generating {path} ({customers} customers) ...", flush=True)
        # Written aside and renamed once whole: a run stopped halfway leaves no short dataset.
        partial = path.with_suffix(".partial")
        with partial.open("w", encoding="utf-8") as handle:
            write_jsonl(handle, islice(demo_touchpoints(customers, seed=1), touchpoints))
        partial.rename(path)
    return path


def journey_ingest(path: Path, journey: Path = JOURNEY) -> tuple[float, float, int, int, float]:
    """(seconds, peak RSS in MB of all its processes, exit status, touchpoints the embedded
    store then holds, CPU seconds of all its processes) of one `journey ingest` in a fresh
    data dir."""
    data_dir = Path(tempfile.mkdtemp(prefix="bench-ingest-"))
    try:
        started = time.perf_counter()
        child = subprocess.Popen(
            [str(journey), "ingest", "--no-project", str(path)],
            env=embedded(os.environ, data_dir),
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
        )
        sampler = TreeRSS(child.pid)
        sampler.start()
        output = child.stderr.read().decode() if child.stderr else ""  # drained while it runs
        _, status, usage = os.wait4(child.pid, 0)
        seconds = time.perf_counter() - started
        sampler.done.set()
        sampler.join()
        child.returncode = os.waitstatus_to_exitcode(status)
        # On a shared machine the CPU time it took says more than the wall clock.
        cpu = usage.ru_utime + usage.ru_stime
        if child.returncode:
            print(output, file=sys.stderr)
            return seconds, sampler.peak, child.returncode, 0, cpu
        return seconds, sampler.peak, 0, folded_entries(Settings(data_dir=data_dir)), cpu
    finally:
        shutil.rmtree(data_dir, ignore_errors=True)


def naive(path: Path, sample: int) -> float:
    """Touchpoints/s the textbook way: load the customer's aggregate, record, save, one by one."""
    now_ms = int(time.time() * 1000)
    touchpoints = [
        touchpoint_from_record(item.record, now_ms=now_ms)
        for item in islice(read_records(path), sample)
        if item.record is not None
    ]
    data_dir = Path(tempfile.mkdtemp(prefix="bench-naive-"))
    try:
        app: Application[object] = Application(
            env={
                "PERSISTENCE_MODULE": "eventsourcing.sqlite",
                "SQLITE_DBNAME": str(data_dir / "events.db"),
            }
        )
        return naive_rate(app, touchpoints)
    finally:
        shutil.rmtree(data_dir, ignore_errors=True)


def naive_rate(app: Application[object], touchpoints: list[Touchpoint]) -> float:
    """Touchpoints/s recording each one by loading its customer's aggregate and saving it."""
    started = time.perf_counter()
    for tp in touchpoints:
        try:
            journey: CustomerJourney = app.repository.get(stream_id(tp.customer_id))
        except AggregateNotFoundError:
            journey = CustomerJourney(tp.customer_id)
        journey.record(tp)
        app.save(journey)
    return per_second(len(touchpoints), time.perf_counter() - started, "touchpoints (naive)")


def ingested(path: Path, count: int, journey: Path) -> tuple[float, float, float, float]:
    """(touchpoints/s, seconds, peak RSS in MB, CPU microseconds per touchpoint) of one
    `journey ingest` that stored them all."""
    seconds, peak, status, stored, cpu = journey_ingest(path, journey)
    if status:
        sys.exit(f"{journey} ingest failed with status {status}")
    if stored != count:
        sys.exit(
            f"{journey} ingest left {stored:,} of the {count:,} touchpoints in the embedded "
            "store: it recorded them elsewhere, or not at all"
        )
    rate = per_second(count, seconds, "touchpoints ingested")
    return rate, seconds, peak, cpu / count * 1e6


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--touchpoints", type=int, default=1_000_000)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--sample", type=int, default=10_000, help="touchpoints for the naive way")
    parser.add_argument("--identities", action="store_true", help=f"ingest {LABEL}")
    parser.add_argument("--journey", type=Path, default=JOURNEY, help="the journey measured")
    parser.add_argument(
        "--baseline-journey",
        type=Path,
        help="a journey that ingests the usual data in the same run, before each run's own",
    )
    args = parser.parse_args()

    plain = dataset(args.touchpoints)
    path = identity_dataset(plain) if args.identities else plain
    count = sum(1 for _ in path.open(encoding="utf-8"))
    what = LABEL if args.identities else "the usual data"
    print(f"dataset: {count} touchpoints, {path.stat().st_size / 1e6:.0f} MB, {path}: {what}")
    print(f"journey: {args.journey}")
    if args.baseline_journey:
        print(f"baseline journey: {args.baseline_journey} on the usual data, {plain}")
    print("store: embedded SQLite, a fresh data directory per run")
    rates, peaks, cpus, naive_rates, base_rates, base_cpus = [], [], [], [], [], []
    for run in range(1, args.runs + 1):
        said = ""
        if args.baseline_journey:
            base_rate, base_seconds, _, base_cpu = ingested(plain, count, args.baseline_journey)
            base_rates.append(base_rate)
            base_cpus.append(base_cpu)
            said = (
                f"; baseline {base_rate:,.0f} touchpoints/s in {base_seconds:.1f} s, "
                f"{base_cpu:.1f} CPU us each"
            )
        rate, seconds, peak, cpu = ingested(path, count, args.journey)
        rates.append(rate)
        peaks.append(peak)
        cpus.append(cpu)
        naive_rates.append(naive(path, args.sample))
        print(
            f"run {run}: journey ingest {rates[-1]:,.0f} touchpoints/s in {seconds:.1f} s, "
            f"{cpu:.1f} CPU us each, peak RSS {peak:.0f} MB; "
            f"naive {naive_rates[-1]:,.0f} touchpoints/s{said}",
            flush=True,
        )
    rate, naive_rate = statistics.median(rates), statistics.median(naive_rates)
    print()
    print("store           embedded SQLite (JOURNEY_DATABASE_URL, if set, is not used)")
    print(f"journey ingest  median {rate:,.0f} touchpoints/s   (target >= 50,000)")
    print(
        f"peak RSS        median {statistics.median(peaks):.0f} MB        (target < 500; all its "
        "processes)"
    )
    print(f"naive baseline  median {naive_rate:,.0f} touchpoints/s on the first {args.sample}")
    print(f"ratio           {rate / naive_rate:.1f}x                   (target >= 25x)")
    if base_rates:
        base = statistics.median(base_rates)
        print()
        print(f"{what}, {args.journey}: median {rate:,.0f} touchpoints/s ({_runs(rates)})")
        print(
            f"the usual data, baseline {args.baseline_journey}: median {base:,.0f} "
            f"touchpoints/s ({_runs(base_rates)})"
        )
        cpu, base_cpu = statistics.median(cpus), statistics.median(base_cpus)
        print(f"ratio to the baseline: {rate / base:.2f}")
        print(
            f"CPU time per touchpoint (all its processes): {cpu:.1f} us against {base_cpu:.1f} us "
            f"({_runs(cpus, '.1f')} / {_runs(base_cpus, '.1f')}); the baseline's over this "
            f"one's {base_cpu / cpu:.2f}"
        )


def _runs(rates: list[float], spec: str = ",.0f") -> str:
    return ", ".join(f"{rate:{spec}}" for rate in rates)


if __name__ == "__main__":
    reporting(main)
