"""Rebuild the journey-position view from N stored events on the embedded SQLite store.

Records the benchmark dataset once (bench/out/store-N), then times `journey rebuild` (what
users run) and reports the median rate and peak RSS. In the same run, the baseline: the same
fold committing one transaction per touchpoint (how eventsourcing's ProjectionRunner commits),
on a store of the dataset's first touchpoints. Both rates count the touchpoints folded: the
log also holds one journey-start event per customer, which neither folds nor commits.

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

from engine.definition import load_definition
from engine.recording import Journeys
from engine.settings import Settings
from journey.bootstrap import event_store_env
from projections.runner import ProjectionRunner
from projections.views import PageChanges
from stores.sqlite.views import SQLiteJourneyView

sys.path.insert(0, str(Path(__file__).parent))
from ingest_file import OUT, dataset
from measuring import NotMeasured, embedded, folded_entries, per_second, reporting
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
    """(log entries, seconds, peak RSS in MB of all its processes) of one `journey rebuild`."""
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


class CountedCommits(SQLiteJourneyView):
    """The journey views, counting the transactions that write them: the baseline shows that
    it commits once per touchpoint instead of taking it on trust."""

    commits = 0

    def commit(self, projection: str, changes: PageChanges, definition_digest: str) -> None:
        super().commit(projection, changes, definition_digest)
        self.commits += 1


def one_commit_per_touchpoint(data_dir: Path, touchpoints: int) -> float:
    """Touchpoints/s of the engine's fold and runner with pages of one entry, each page its
    own transaction, from empty views."""
    settings = Settings(data_dir=data_dir, page_size=1)
    journeys = Journeys(event_store_env(settings))
    view = CountedCommits(settings.views_path)
    # No store_env: the log is read in this process, page by page, as the baseline claims.
    runner = ProjectionRunner(journeys, view, load_definition(), page_size=1)
    try:
        started = time.perf_counter()
        runner.rebuild()
        seconds = time.perf_counter() - started
    finally:
        view.close()
        journeys.close()
    # The last page may be empty (journey starts after the last touchpoint): one more commit.
    if not touchpoints <= view.commits <= touchpoints + 1:
        raise NotMeasured(
            f"the baseline committed {view.commits:,} times for {touchpoints:,} touchpoints: "
            "it no longer commits once per touchpoint"
        )
    return per_second(touchpoints, seconds, "touchpoints folded by the baseline")


def record_once(path: Path, data_dir: Path) -> None:
    if data_dir.exists():
        return
    print(f"recording {path} into {data_dir} ...", flush=True)
    partial = data_dir.with_suffix(".partial")
    shutil.rmtree(partial, ignore_errors=True)
    store(path, partial)  # renamed once whole: a run stopped halfway leaves no short store
    partial.rename(data_dir)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--touchpoints", type=int, default=1_000_000)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--sample", type=int, default=20_000)
    args = parser.parse_args()

    path = dataset(args.touchpoints)
    data_dir = OUT / f"store-{args.touchpoints}"
    record_once(path, data_dir)
    folded = folded_entries(Settings(data_dir=data_dir))
    print(f"store: embedded SQLite, {data_dir / 'events.db'}; {folded:,} touchpoints to fold")
    rates: list[float] = []
    entry_rates: list[float] = []
    peaks: list[float] = []
    baselines: list[float] = []
    sample_dir = Path(tempfile.mkdtemp(prefix="bench-rebuild-sample-"))
    try:
        store(path, sample_dir / "data", limit=args.sample)
        sampled = folded_entries(Settings(data_dir=sample_dir / "data"))
        for run in range(1, args.runs + 1):
            entries, seconds, peak = journey_rebuild(data_dir)
            if entries < folded:
                raise NotMeasured(
                    f"journey rebuild read {entries:,} log entries, fewer than the "
                    f"{folded:,} touchpoints of {data_dir}: it rebuilt another store"
                )
            rates.append(per_second(folded, seconds, "touchpoints folded by journey rebuild"))
            entry_rates.append(per_second(entries, seconds, "log entries read"))
            peaks.append(peak)
            baselines.append(one_commit_per_touchpoint(sample_dir / "data", sampled))
            print(
                f"run {run}: journey rebuild {folded:,} touchpoints ({entries:,} log entries) in "
                f"{seconds:.1f} s = {rates[-1]:,.0f} touchpoints/s ({entry_rates[-1]:,.0f} "
                f"entries/s), peak RSS {peak:.0f} MB (all its processes); one commit per "
                f"touchpoint {baselines[-1]:,.0f} touchpoints/s",
                flush=True,
            )
    finally:
        shutil.rmtree(sample_dir, ignore_errors=True)
    rate, baseline = statistics.median(rates), statistics.median(baselines)
    entry_rate = statistics.median(entry_rates)
    print()
    print("store                      embedded SQLite (JOURNEY_DATABASE_URL, if set, is not used)")
    print(
        f"journey rebuild            median {rate:,.0f} touchpoints/s, {entry_rate:,.0f} log "
        "entries/s   (target >= 100,000)"
    )
    peak = statistics.median(peaks)
    print(f"peak RSS                   median {peak:.0f} MB (all its processes)")
    print(
        f"one commit per touchpoint  median {baseline:,.0f} touchpoints/s on the first "
        f"{sampled:,} touchpoints"
    )
    print(f"ratio                      {rate / baseline:.1f}x (touchpoints/s to touchpoints/s)")


if __name__ == "__main__":
    reporting(main)
