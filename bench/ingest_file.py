"""Ingest N touchpoints from a JSON-lines file into the embedded SQLite store.

Times `journey ingest --no-project FILE` (what users run) in fresh data directories and reports
the median rate and peak RSS; in the same run, the naive eventsourcing way (`repository.get` +
`save` per touchpoint) on a sample of the same file, and the ratio of the two.

With --identities the file is identity data (bench/identities.py): touchpoints without a
customer id, some with two identifiers. With --baseline-journey, another `journey` (an older
release, say) ingests the usual data in the same run, alternating with this one run by run,
and the ratio of the two rates is reported. With --sealed, each run ingests the same data
twice, in the clear and then sealed under a master key made for the run (JOURNEY_MASTER_KEY),
and the ratio of the two rates is reported; the sealed stores are checked to keep data keys
and none of the dataset's email addresses as sent, the stores in the clear to keep them.

The store is always the embedded one: JOURNEY_DATABASE_URL and the other variables that
choose a store, and the master keys that seal it, are left out of the commands it runs.

    python bench/ingest_file.py [--touchpoints 1000000] [--runs 3] [--sample 10000]
                                [--identities] [--journey PATH]
                                [--baseline-journey PATH | --sealed]
"""

from __future__ import annotations

import argparse
import mmap
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Sequence
from itertools import islice
from pathlib import Path
from typing import NamedTuple

import orjson
from eventsourcing.application import AggregateNotFoundError, Application
from identities import HELP_LABEL, LABEL, identity_dataset
from measuring import data_keys, embedded, folded_entries, per_second, reporting
from processes import TreeRSS

from engine.journeys import CustomerJourney, stream_id
from engine.settings import Settings
from engine.touchpoints import Touchpoint, touchpoint_from_record
from engine.vault import MasterKeys
from journey.demo import demo_touchpoints
from schemas.files import read_records, write_jsonl

OUT = Path(__file__).parent / "out"
JOURNEY = Path(sys.executable).with_name("journey")
TOUCHPOINTS_PER_CUSTOMER = 20.6  # what the demo generator makes on average
LOOKED_FOR = 10  # email addresses of the dataset that a sealed store must not hold as sent


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


class Ingest(NamedTuple):
    """One `journey ingest` in a fresh data dir."""

    seconds: float
    peak: float  # RSS in MB of all its processes
    status: int
    stored: int  # touchpoints the embedded store then holds
    cpu: float  # seconds of all its processes
    keys: int = 0  # data keys the store keeps: none unless it was sealed
    in_clear: int = 0  # how many of the identifiers looked for its database holds as sent


def journey_ingest(
    path: Path,
    journey: Path = JOURNEY,
    master_key: str | None = None,
    looked_for: Sequence[bytes] = (),
) -> Ingest:
    """One `journey ingest` in a fresh data dir, sealed under `master_key` if given."""
    data_dir = Path(tempfile.mkdtemp(prefix="bench-ingest-"))
    env = embedded(os.environ, data_dir)
    if master_key is not None:
        env["JOURNEY_MASTER_KEY"] = master_key
    try:
        started = time.perf_counter()
        child = subprocess.Popen(
            [str(journey), "ingest", "--no-project", str(path)],
            env=env,
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
            return Ingest(seconds, sampler.peak, child.returncode, 0, cpu)
        settings = Settings(data_dir=data_dir)
        return Ingest(
            seconds,
            sampler.peak,
            0,
            folded_entries(settings),
            cpu,
            data_keys(settings),
            held_as_sent(data_dir, looked_for),
        )
    finally:
        shutil.rmtree(data_dir, ignore_errors=True)


def email_addresses(path: Path, count: int) -> list[bytes]:
    """The first `count` distinct email addresses of the dataset, as sent."""
    found: dict[bytes, None] = {}
    with path.open("rb") as handle:
        for line in handle:
            email = orjson.loads(line).get("email")
            if email:
                found[email.encode()] = None
                if len(found) == count:
                    break
    return list(found)


def held_as_sent(data_dir: Path, looked_for: Sequence[bytes]) -> int:
    """How many of `looked_for` the store's files in `data_dir` hold anywhere, byte for byte."""
    held: set[bytes] = set()
    for file in sorted(data_dir.iterdir()):
        if not file.is_file() or not file.stat().st_size:
            continue
        with file.open("rb") as handle, mmap.mmap(handle.fileno(), 0, prot=mmap.PROT_READ) as data:
            held.update(value for value in looked_for if data.find(value) >= 0)
    return len(held)


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


def ingested(
    path: Path,
    count: int,
    journey: Path,
    master_key: str | None = None,
    looked_for: Sequence[bytes] = (),
) -> tuple[float, float, float, float]:
    """(touchpoints/s, seconds, peak RSS in MB, CPU microseconds per touchpoint) of one
    `journey ingest` that stored them all, sealed under `master_key` if given. With
    `looked_for`, a sealed store must hold none of those identifiers as sent, and a store in
    the clear must hold them (or the search proves nothing)."""
    run = journey_ingest(path, journey, master_key, looked_for)
    if run.status:
        sys.exit(f"{journey} ingest failed with status {run.status}")
    if run.stored != count:
        sys.exit(
            f"{journey} ingest left {run.stored:,} of the {count:,} touchpoints in the embedded "
            "store: it recorded them elsewhere, or not at all"
        )
    how = "sealed" if master_key else "in the clear"
    if bool(master_key) != bool(run.keys):
        sys.exit(f"{journey} ingest {how} left {run.keys:,} data keys in the store")
    if looked_for and bool(master_key) == bool(run.in_clear):
        sys.exit(
            f"{journey} ingest {how} left {run.in_clear} of the dataset's first "
            f"{len(looked_for)} email addresses in the store as sent"
        )
    rate = per_second(count, run.seconds, "touchpoints ingested")
    return rate, run.seconds, run.peak, run.cpu / count * 1e6


def arguments() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--touchpoints", type=int, default=1_000_000)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--sample", type=int, default=10_000, help="touchpoints for the naive way")
    parser.add_argument("--identities", action="store_true", help=f"ingest {HELP_LABEL}")
    parser.add_argument("--journey", type=Path, default=JOURNEY, help="the journey measured")
    parser.add_argument(
        "--baseline-journey",
        type=Path,
        help="a journey that ingests the usual data in the same run, before each run's own",
    )
    parser.add_argument(
        "--sealed",
        action="store_true",
        help="ingest the same data in the clear, then sealed under a master key, in each run",
    )
    args = parser.parse_args()
    if args.sealed and args.baseline_journey:
        parser.error("--sealed and --baseline-journey each compare with another run: pick one")
    return args


def main() -> None:
    args = arguments()

    plain = dataset(args.touchpoints)
    path = identity_dataset(plain) if args.identities else plain
    count = sum(1 for _ in path.open(encoding="utf-8"))
    what = LABEL if args.identities else "the usual data"
    print(f"dataset: {count} touchpoints, {path.stat().st_size / 1e6:.0f} MB, {path}: {what}")
    print(f"journey: {args.journey}")
    if args.baseline_journey:
        print(f"baseline journey: {args.baseline_journey} on the usual data, {plain}")
    master_key, looked_for = None, []
    if args.sealed:
        master_key = MasterKeys.new_line("bench")
        looked_for = email_addresses(path, LOOKED_FOR)
        print("sealed: JOURNEY_MASTER_KEY, a key made for this run; each run in the clear first")
    print("store: embedded SQLite, a fresh data directory per run")
    rates, peaks, cpus, naive_rates, base_rates, base_cpus = [], [], [], [], [], []
    for run in range(1, args.runs + 1):
        said = ""
        if args.baseline_journey or args.sealed:
            base_rate, base_seconds, base_peak, base_cpu = (
                ingested(path, count, args.journey, None, looked_for)
                if args.sealed
                else ingested(plain, count, args.baseline_journey)
            )
            base_rates.append(base_rate)
            base_cpus.append(base_cpu)
            said = (
                f"; {'in the clear' if args.sealed else 'baseline'} {base_rate:,.0f} "
                f"touchpoints/s in {base_seconds:.1f} s, {base_cpu:.1f} CPU us each, peak RSS "
                f"{base_peak:.0f} MB"
            )
        rate, seconds, peak, cpu = ingested(path, count, args.journey, master_key, looked_for)
        rates.append(rate)
        peaks.append(peak)
        cpus.append(cpu)
        naive_rates.append(naive(path, args.sample))
        print(
            f"run {run}: journey ingest{' sealed' if args.sealed else ''} "
            f"{rates[-1]:,.0f} touchpoints/s in {seconds:.1f} s, "
            f"{cpu:.1f} CPU us each, peak RSS {peak:.0f} MB; "
            f"naive {naive_rates[-1]:,.0f} touchpoints/s{said}; "
            f"load average {os.getloadavg()[0]:.1f}",
            flush=True,
        )
    rate, naive_rate = statistics.median(rates), statistics.median(naive_rates)
    print()
    sealed = ", sealed" if args.sealed else ""
    print(f"store           embedded SQLite{sealed} (JOURNEY_DATABASE_URL, if set, is not used)")
    print(f"journey ingest  median {rate:,.0f} touchpoints/s   (target >= 50,000)")
    print(
        f"peak RSS        median {statistics.median(peaks):.0f} MB        (target < 500; all its "
        "processes)"
    )
    print(f"naive baseline  median {naive_rate:,.0f} touchpoints/s on the first {args.sample}")
    print(f"ratio           {rate / naive_rate:.1f}x                   (target >= 25x)")
    if args.sealed:
        sealed_against_clear(
            (rates, cpus), (base_rates, base_cpus), looked_for=len(looked_for), what=what
        )
    elif base_rates:
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


def sealed_against_clear(
    sealed: tuple[list[float], list[float]],
    clear: tuple[list[float], list[float]],
    *,
    looked_for: int,
    what: str,
) -> None:
    """The sealed runs' rates and CPU microseconds per touchpoint against those in the clear."""
    (rates, cpus), (clear_rates, clear_cpus) = sealed, clear
    rate, clear = statistics.median(rates), statistics.median(clear_rates)
    cpu, clear_cpu = statistics.median(cpus), statistics.median(clear_cpus)
    print()
    print(f"{what}, sealed: median {rate:,.0f} touchpoints/s ({_runs(rates)})")
    print(f"{what}, in the clear: median {clear:,.0f} touchpoints/s ({_runs(clear_rates)})")
    print(f"ratio sealed to clear: {rate / clear:.2f}   (target >= 0.80)")
    print(
        f"CPU time per touchpoint (all its processes): sealed {cpu:.1f} us against "
        f"{clear_cpu:.1f} us ({_runs(cpus, '.1f')} / {_runs(clear_cpus, '.1f')}); the sealed "
        f"over the clear's {cpu / clear_cpu:.2f}"
    )
    print(
        f"checked: every sealed store kept data keys and none of the dataset's first "
        f"{looked_for} email addresses as sent; every store in the clear kept no key, and them"
    )


def _runs(rates: list[float], spec: str = ",.0f") -> str:
    return ", ".join(f"{rate:{spec}}" for rate in rates)


if __name__ == "__main__":
    reporting(main)
