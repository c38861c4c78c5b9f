"""Rebuild the journey-position view from N stored events on the embedded SQLite store.

Records the benchmark dataset once (bench/out/store-N), then times `journey rebuild` (what
users run) and reports the median events/s and peak RSS. In the same run, the baseline: the
same fold committing one transaction per event (how eventsourcing's ProjectionRunner commits),
on a store of the dataset's first touchpoints.

The store is always the embedded one: JOURNEY_DATABASE_URL and the other variables that
choose a store are left out of the commands it runs.

    python bench/rebuild.py [--touchpoints 1000000] [--runs 3] [--sample 20000]
"""

from __future__ import annotations

import argparse
import os
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from engine.settings import Settings
from journey.bootstrap import build_engine

sys.path.insert(0, str(Path(__file__).parent))
from ingest_file import OUT, dataset
from measuring import embedded, per_second, reporting
from processes import TreeRSS

JOURNEY = str(Path(sys.executable).with_name("journey"))


def store(path: Path, data_dir: Path, limit: int | None = None) -> None:
    """Records the dataset's first `limit` touchpoints (all by default) in the embedded store
    in `data_dir`."""
    source = path
    if limit is not None:
        source = data_dir.parent / f"{data_dir.name}.jsonl"
        with path.open(encoding="utf-8") as full, source.open("w", encoding="utf-8") as part:
            for number, line in enumerate(full):
                if number == limit:
                    break
                part.write(line)
    done = subprocess.run(
        [JOURNEY, "ingest", "--no-project", str(source)],
        env=embedded(os.environ, data_dir),
        check=False,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )
    if done.returncode:
        sys.exit(f"journey ingest into {data_dir} failed:\n{done.stderr}")


def journey_rebuild(data_dir: Path) -> tuple[int, float, float]:
    """(events, seconds, peak RSS in MB of all its processes) of one `journey rebuild`."""
    started = time.perf_counter()
    child = subprocess.Popen(
        [JOURNEY, "rebuild"],
        env=embedded(os.environ, data_dir),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )
    sampler = TreeRSS(child.pid)
    sampler.start()
    output = child.stderr.read() if child.stderr else ""  # drained while it runs
    _, status, _ = os.wait4(child.pid, 0)
    seconds = time.perf_counter() - started
    sampler.done.set()
    sampler.join()
    found = re.search(r"Rebuilt from (\d+) events", output)
    if os.waitstatus_to_exitcode(status) or found is None:
        sys.exit(f"journey rebuild failed:\n{output}")
    return int(found.group(1)), seconds, sampler.peak


def one_commit_per_event(data_dir: Path) -> float:
    engine = build_engine(Settings(data_dir=data_dir, page_size=1))
    try:
        started = time.perf_counter()
        done = engine.runner.rebuild()
        seconds = time.perf_counter() - started
        return per_second(done.events, seconds, "events folded by the baseline")
    finally:
        engine.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--touchpoints", type=int, default=1_000_000)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--sample", type=int, default=20_000)
    args = parser.parse_args()

    path = dataset(args.touchpoints)
    data_dir = OUT / f"store-{args.touchpoints}"
    print(f"store: embedded SQLite, {data_dir / 'events.db'}")
    if not data_dir.exists():
        print(f"recording {path} into {data_dir} ...", flush=True)
        partial = data_dir.with_suffix(".partial")
        shutil.rmtree(partial, ignore_errors=True)
        store(path, partial)  # renamed once whole: a run stopped halfway leaves no short store
        partial.rename(data_dir)
    rates, peaks, baselines = [], [], []
    sample_dir = Path(tempfile.mkdtemp(prefix="bench-rebuild-sample-"))
    try:
        store(path, sample_dir / "data", limit=args.sample)
        for run in range(1, args.runs + 1):
            events, seconds, peak = journey_rebuild(data_dir)
            rates.append(per_second(events, seconds, "events rebuilt"))
            peaks.append(peak)
            baselines.append(one_commit_per_event(sample_dir / "data"))
            print(
                f"run {run}: journey rebuild {events:,} events in {seconds:.1f} s = "
                f"{rates[-1]:,.0f} events/s, peak RSS {peak:.0f} MB (all its processes); "
                f"one commit per event "
                f"{baselines[-1]:,.0f} events/s",
                flush=True,
            )
    finally:
        shutil.rmtree(sample_dir, ignore_errors=True)
    rate, baseline = statistics.median(rates), statistics.median(baselines)
    print()
    print("store                 embedded SQLite (JOURNEY_DATABASE_URL, if set, is not used)")
    print(f"journey rebuild       median {rate:,.0f} events/s   (target >= 100,000)")
    print(f"peak RSS              median {statistics.median(peaks):.0f} MB (all its processes)")
    print(f"one commit per event  median {baseline:,.0f} events/s on {args.sample} touchpoints")
    print(f"ratio                 {rate / baseline:.1f}x")


if __name__ == "__main__":
    reporting(main)
