"""Ingest N touchpoints from a Kafka topic into PostgreSQL, exactly once.

Publishes the benchmark dataset to a fresh topic with `journey produce`, then times
`journey consume` (what users run) from its start until the offsets recorded in PostgreSQL
reach the end of every partition. In the same run: the naive eventsourcing way
(`repository.get` + `save` per touchpoint) on a sample, and a raw PostgreSQL COPY of the very
rows the consumer wrote into a table of the same layout, the fastest PostgreSQL can take them.

Uses JOURNEY_DATABASE_URL and JOURNEY_KAFKA_BOOTSTRAP when set; otherwise starts the
project's own PostgreSQL and Kafka (scripts/postgres.sh, scripts/kafka.sh). Each run's topic
and PostgreSQL schema are deleted when it ends, whether it succeeded or not.

With --identities the dataset is identity data (bench/identities.py): touchpoints without a
customer id, some with two identifiers. With --baseline-journey, another `journey` (an older
release, say) produces and consumes the usual data in the same run, alternating with this one
run by run, and the ratio of the two rates is reported. With --sealed, each run produces and
consumes the same data twice, in the clear and then sealed under a master key made for the run
(JOURNEY_MASTER_KEY), and the ratio of the two rates is reported, with the CPU time of the
consumer per touchpoint; the sealed schemas are checked to keep data keys and none of the
dataset's email addresses as sent, those in the clear to keep them. A master key that the
shell exports is left out.

    python bench/ingest_kafka.py [--touchpoints 500000] [--partitions 4] [--runs 3]
                                 [--identities] [--journey PATH]
                                 [--baseline-journey PATH | --sealed]
"""

from __future__ import annotations

import argparse
import os
import signal
import statistics
import subprocess
import sys
import time
import uuid
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from itertools import islice
from pathlib import Path

import psycopg
from eventsourcing.application import Application
from kafka.admin import KafkaAdminClient, NewTopic
from kafka.errors import KafkaError

from engine.settings import Settings
from engine.touchpoints import touchpoint_from_record
from engine.vault import MasterKeys
from schemas.files import read_records

sys.path.insert(0, str(Path(__file__).parent))
from identities import HELP_LABEL, LABEL, identity_dataset
from ingest_file import LOOKED_FOR, dataset, email_addresses, naive_rate
from measuring import data_keys, per_second, reporting, without_store

ROOT = Path(__file__).parents[1]
JOURNEY = str(Path(sys.executable).with_name("journey"))


def service(variable: str, script: str) -> str:
    if os.environ.get(variable):
        return os.environ[variable]
    started = subprocess.run(
        [str(ROOT / "scripts" / script), "start"], capture_output=True, text=True, check=True
    )
    return started.stdout.strip().splitlines()[-1]


@contextmanager
def run_topic(bootstrap: str, partitions: int) -> Iterator[str]:
    """A topic of its own for one run, deleted when the run ends however it ends, with the
    dead-letter topic the consumer makes beside it if a record was unreadable."""
    name = f"bench_{uuid.uuid4().hex[:8]}"
    admin = KafkaAdminClient(bootstrap_servers=bootstrap)
    try:
        admin.create_topics([NewTopic(name, partitions, 1)])
        yield name
    finally:
        try:
            made = sorted({name, f"{name}.dlq"} & set(admin.list_topics()))
            if made:
                admin.delete_topics(made)
        except KafkaError as exc:
            # Said, not raised: a failure of the run itself stays the one reported.
            print(f"topic {name} left on {bootstrap}: {exc!r}", file=sys.stderr)
        finally:
            admin.close()


def produce(env: dict[str, str], path: Path, journey: str = JOURNEY) -> float:
    started = time.perf_counter()
    subprocess.run([journey, "produce", str(path)], env=env, check=True, stderr=subprocess.DEVNULL)
    return time.perf_counter() - started


def consumed(url: str, schema: str, group: str) -> int:
    with psycopg.connect(url, autocommit=True) as conn:
        try:
            row = conn.execute(
                f"SELECT coalesce(sum(next_offset), 0) FROM {schema}.journey_consumer_offsets "
                "WHERE group_id = %s",
                (group,),
            ).fetchone()
        except psycopg.errors.UndefinedTable:
            return 0
    return int(row[0]) if row else 0


def consume(
    env: dict[str, str], url: str, schema: str, total: int, workers: int, *, journey: str = JOURNEY
) -> tuple[float, float, float, float]:
    """(seconds from start until every record is recorded, the rate once the first batch is
    in, peak RSS in MB of its largest process, CPU seconds of all its processes until it
    stopped) of one `journey consume --workers N`."""
    started = time.perf_counter()
    child = subprocess.Popen(
        [journey, "consume", "--workers", str(workers)],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    group = env["JOURNEY_CONSUMER_GROUP"]
    first: tuple[float, int] | None = None
    peak = 0.0
    while (done := consumed(url, schema, group)) < total:
        if child.poll() is not None:
            sys.exit(f"journey consume ended early: {child.stderr.read().decode()[-2000:]}")
        if first is None and done:
            first = (time.perf_counter(), done)
        peak = max(peak, peak_rss_mb(child.pid))
        time.sleep(0.2)
    peak = max(peak, peak_rss_mb(child.pid))
    finished = time.perf_counter()
    seconds = finished - started
    steady = (total - first[1]) / (finished - first[0]) if first else total / seconds
    child.send_signal(signal.SIGTERM)
    _, status, usage = os.wait4(child.pid, 0)
    child.returncode = os.waitstatus_to_exitcode(status)
    if child.returncode != 0:
        sys.exit("journey consume did not stop cleanly")
    return seconds, steady, peak, usage.ru_utime + usage.ru_stime


def peak_rss_mb(pid: int) -> float:
    """The largest peak resident size (VmHWM) among a process and its descendants. (The
    rusage of a child would count the pages of this process it was forked from.)"""
    largest = 0.0
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                largest = int(line.split()[1]) / 1024
        children = Path(f"/proc/{pid}/task/{pid}/children").read_text().split()
    except OSError:
        return largest
    return max([largest, *(peak_rss_mb(int(child)) for child in children)])


def copy_rate(url: str, schema: str, touchpoints: int) -> float:
    """Touchpoints/s of a binary COPY of the consumer's rows into a table of the same layout."""
    with psycopg.connect(url) as conn, conn.cursor() as cursor:
        dump = bytearray()
        with cursor.copy(
            f"COPY (SELECT originator_id, originator_version, topic, state "
            f"FROM {schema}.journeys_events) TO STDOUT (FORMAT BINARY)"
        ) as copy:
            for block in copy:
                dump += block
        cursor.execute(
            f"CREATE TABLE {schema}.copied (LIKE {schema}.journeys_events INCLUDING ALL)"
        )
        conn.commit()
        started = time.perf_counter()
        with cursor.copy(
            f"COPY {schema}.copied (originator_id, originator_version, topic, state) "
            "FROM STDIN (FORMAT BINARY)"
        ) as copy:
            copy.write(bytes(dump))
        conn.commit()
        return per_second(touchpoints, time.perf_counter() - started, "rows copied")


def naive(url: str, path: Path, sample: int) -> float:
    """Touchpoints/s the textbook way on PostgreSQL: get the aggregate, record, save."""
    now_ms = int(time.time() * 1000)
    touchpoints = [
        touchpoint_from_record(item.record, now_ms=now_ms)
        for item in islice(read_records(path), sample)
        if item.record is not None
    ]
    schema = f"bench_naive_{uuid.uuid4().hex[:8]}"
    parts = psycopg.conninfo.conninfo_to_dict(url)
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute(f"CREATE SCHEMA {schema}")
    app: Application[object] = Application(
        env={
            "PERSISTENCE_MODULE": "eventsourcing.postgres",
            "POSTGRES_DBNAME": str(parts["dbname"]),
            "POSTGRES_HOST": str(parts.get("host", "127.0.0.1")),
            "POSTGRES_PORT": str(parts.get("port", "5432")),
            "POSTGRES_USER": str(parts.get("user", "")),
            "POSTGRES_PASSWORD": str(parts.get("password", "")),
            "POSTGRES_SCHEMA": schema,
            "CREATE_TABLE": "true",
        }
    )
    try:
        return naive_rate(app, touchpoints)
    finally:
        app.close()
        drop(url, schema)


def held_as_sent(url: str, schema: str, looked_for: list[bytes]) -> int:
    """How many of `looked_for` the schema's stored events hold anywhere, byte for byte."""
    with psycopg.connect(url, autocommit=True) as conn:
        return sum(
            bool(
                conn.execute(
                    f"SELECT EXISTS (SELECT 1 FROM {schema}.journeys_events "
                    "WHERE position(%s IN state) > 0)",
                    (value,),
                ).fetchone()[0]  # type: ignore[index]
            )
            for value in looked_for
        )


def drop(url: str, schema: str) -> None:
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute(f"DROP SCHEMA IF EXISTS {schema} CASCADE")


@dataclass(frozen=True)
class Run:
    produced_in: float
    rate: float  # touchpoints/s from the start of `journey consume`
    seconds: float
    steady: float  # touchpoints/s after the first batch
    peak: float
    copy: float  # touchpoints/s of a raw COPY of the same rows
    cpu: float = 0.0  # microseconds per touchpoint, all the consumer's processes


@dataclass(frozen=True)
class Sealed:
    """How a run seals: under `master_key`, or in the clear; `looked_for` are identifiers of
    the dataset that a sealed schema must not hold as sent, and one in the clear must."""

    master_key: str | None = None
    looked_for: list[bytes] = field(default_factory=list)


def one_run(
    args: argparse.Namespace,
    url: str,
    bootstrap: str,
    path: Path,
    count: int,
    *,
    journey: str,
    sealed: Sealed = Sealed(),
) -> Run:
    """`journey produce` then `journey consume` of `path` on a topic and schema of their own."""
    with run_topic(bootstrap, args.partitions) as name:
        env = without_store(
            os.environ,
            {
                "JOURNEY_DATABASE_URL": url,
                "POSTGRES_SCHEMA": name,
                "JOURNEY_KAFKA_BOOTSTRAP": bootstrap,
                "JOURNEY_TOUCHPOINTS_TOPIC": name,
                "JOURNEY_CONSUMER_GROUP": name,
            },
        )
        if sealed.master_key is not None:
            env["JOURNEY_MASTER_KEY"] = sealed.master_key
        try:
            produced_in = produce(env, path, journey)
            seconds, steady, peak, cpu = consume(
                env, url, name, count, args.workers, journey=journey
            )
            rate = per_second(count, seconds, "touchpoints consumed")
            if sealed.looked_for:
                check_sealing(env, url, name, sealed)
            copied = copy_rate(url, name, count)
            return Run(produced_in, rate, seconds, steady, peak, copied, cpu / count * 1e6)
        finally:
            drop(url, name)


def check_sealing(env: dict[str, str], url: str, schema: str, sealed: Sealed) -> None:
    """Exits unless a sealed run's schema keeps data keys and none of the identifiers looked
    for, and one in the clear keeps no key, and them."""
    how = "sealed" if sealed.master_key else "in the clear"
    keys = data_keys(Settings.from_env(env))
    if bool(sealed.master_key) != bool(keys):
        sys.exit(f"journey consume {how} left {keys:,} data keys in schema {schema}")
    held = held_as_sent(url, schema, sealed.looked_for)
    if bool(sealed.master_key) == bool(held):
        sys.exit(
            f"journey consume {how} left {held} of the dataset's first "
            f"{len(sealed.looked_for)} email addresses in schema {schema} as sent"
        )


def arguments() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--touchpoints", type=int, default=500_000)
    parser.add_argument("--partitions", type=int, default=4)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--workers", type=int, default=2, help="journey consume --workers")
    parser.add_argument("--sample", type=int, default=3_000, help="touchpoints for the naive way")
    parser.add_argument("--identities", action="store_true", help=f"ingest {HELP_LABEL}")
    parser.add_argument("--journey", default=JOURNEY, help="the journey measured")
    parser.add_argument(
        "--baseline-journey",
        help="a journey that produces and consumes the usual data in the same run, before "
        "each run's own",
    )
    parser.add_argument(
        "--sealed",
        action="store_true",
        help="produce and consume the same data in the clear, then sealed, in each run",
    )
    args = parser.parse_args()
    if args.sealed and args.baseline_journey:
        parser.error("--sealed and --baseline-journey each compare with another run: pick one")
    return args


def main() -> None:
    args = arguments()

    url = service("JOURNEY_DATABASE_URL", "postgres.sh")
    bootstrap = service("JOURNEY_KAFKA_BOOTSTRAP", "kafka.sh")
    plain = dataset(args.touchpoints)
    path = identity_dataset(plain) if args.identities else plain
    what = LABEL if args.identities else "the usual data"
    count = sum(1 for _ in path.open(encoding="utf-8"))
    print(f"dataset: {count} touchpoints, {path} ({what}); PostgreSQL {url}; Kafka {bootstrap}")
    print(f"topic of {args.partitions} partitions; journey consume --workers {args.workers}")
    print(f"journey: {args.journey}")
    if args.baseline_journey:
        print(f"baseline journey: {args.baseline_journey} on the usual data, {plain}")
    sealed, clear = Sealed(), Sealed()
    if args.sealed:
        looked_for = email_addresses(path, LOOKED_FOR)
        sealed = Sealed(MasterKeys.new_line("bench"), looked_for)
        clear = Sealed(None, looked_for)
        print("sealed: JOURNEY_MASTER_KEY, a key made for this run; each run in the clear first")
    runs, bases, naive_rates = [], [], []
    for number in range(1, args.runs + 1):
        said = ""
        if args.baseline_journey or args.sealed:
            base = (
                one_run(args, url, bootstrap, path, count, journey=args.journey, sealed=clear)
                if args.sealed
                else one_run(args, url, bootstrap, plain, count, journey=args.baseline_journey)
            )
            bases.append(base)
            said = (
                f"; {'in the clear' if args.sealed else 'baseline'} {base.rate:,.0f}/s in "
                f"{base.seconds:.1f} s, {base.cpu:.1f} CPU us each, peak RSS {base.peak:.0f} MB"
            )
        run = one_run(args, url, bootstrap, path, count, journey=args.journey, sealed=sealed)
        runs.append(run)
        naive_rates.append(naive(url, path, args.sample))
        print(
            f"run {number}: produced in {run.produced_in:.1f} s; journey consume"
            f"{' sealed' if args.sealed else ''} {run.rate:,.0f} touchpoints/s in "
            f"{run.seconds:.1f} s ({run.steady:,.0f}/s after the first batch), "
            f"{run.cpu:.1f} CPU us each, peak RSS {run.peak:.0f} MB; "
            f"naive {naive_rates[-1]:,.0f}/s; COPY {run.copy:,.0f}/s{said}; "
            f"load average {os.getloadavg()[0]:.1f}",
            flush=True,
        )
    rate = statistics.median(run.rate for run in runs)
    naive_rate, copy = statistics.median(naive_rates), statistics.median(r.copy for r in runs)
    steady = statistics.median(run.steady for run in runs)
    print()
    print(f"journey consume median {rate:,.0f} touchpoints/s   (target >= 30,000)")
    print(f"after 1st batch median {steady:,.0f} touchpoints/s (no start-up)")
    print(f"peak RSS        median {statistics.median(run.peak for run in runs):.0f} MB")
    print(f"naive baseline  median {naive_rate:,.0f} touchpoints/s on the first {args.sample}")
    print(f"ratio           {rate / naive_rate:.1f}x                   (target >= 30x)")
    print(f"raw COPY        median {copy:,.0f} touchpoints/s; consume reaches {rate / copy:.0%}")
    if bases:
        compared(args, what, runs, bases)


def compared(args: argparse.Namespace, what: str, runs: list[Run], bases: list[Run]) -> None:
    """The runs against those before them: the baseline journey's, or those in the clear."""
    rate, base_rate = (statistics.median(r.rate for r in done) for done in (runs, bases))
    steady, base_steady = (statistics.median(r.steady for r in done) for done in (runs, bases))
    cpu, base_cpu = (statistics.median(r.cpu for r in done) for done in (runs, bases))
    if args.sealed:
        own, other = f"{what}, sealed", f"{what}, in the clear"
    else:
        own, other = f"{what}, {args.journey}", f"the usual data, baseline {args.baseline_journey}"
    print()
    print(
        f"{own}: median {rate:,.0f} touchpoints/s ({_runs(r.rate for r in runs)}); "
        f"{steady:,.0f}/s after the first batch"
    )
    print(
        f"{other}: median {base_rate:,.0f} touchpoints/s ({_runs(r.rate for r in bases)}); "
        f"{base_steady:,.0f}/s after the first batch"
    )
    print(
        f"ratio to the {'clear' if args.sealed else 'baseline'}: {rate / base_rate:.2f} "
        f"({steady / base_steady:.2f} after the first batch)"
        + ("   (target >= 0.80)" if args.sealed else "")
    )
    print(
        f"CPU time per touchpoint (all the consumer's processes): {cpu:.1f} us against "
        f"{base_cpu:.1f} us ({_runs((r.cpu for r in runs), '.1f')} / "
        f"{_runs((r.cpu for r in bases), '.1f')}); the first over the second's "
        f"{cpu / base_cpu:.2f}"
    )


def _runs(rates: Iterable[float], spec: str = ",.0f") -> str:
    return ", ".join(f"{rate:{spec}}" for rate in rates)


if __name__ == "__main__":
    reporting(main)
