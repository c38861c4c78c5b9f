"""The HTTP API under many readers: customer reads (GET /api/customers/{id}) by --clients
clients at once, with nothing else running and while Kafka ingest records --rate touchpoints
a second, for this checkout's `journey serve` and for the one of --baseline (a git ref,
checked out beside it), in the same run, on the same data.

Records --customers generated customers (`journey generate`, `journey ingest`, `journey
decide`) in a fresh PostgreSQL schema, then for each server: starts it, reads every customer
once (uncounted: a server that has run a while), and lets wrk read random customers for --duration
seconds, first with one client (the latency of one read), then with --clients. Then starts
`journey consume` and `journey decide --follow` and a process producing --rate page views a
second (for other customers: the readers' customers are not written, but every view they
read moves on) and measures each server again under that load, giving how many touchpoints
a second were recorded meanwhile. Phases alternate between the servers so that a noisy
neighbour hurts both alike.

Needs wrk (Debian: apt-get install wrk): a client in C, so that the load generator takes
little of the machine's two cores. Uses JOURNEY_DATABASE_URL and JOURNEY_KAFKA_BOOTSTRAP
when set; otherwise the project's own PostgreSQL and Kafka (scripts/postgres.sh,
scripts/kafka.sh), left running. Logs go to bench/out/api-*.log.

    .venv/bin/python bench/api.py [--customers 2000] [--clients 30] [--duration 15]
                                  [--rate 2000] [--baseline c19e4aa] [--rounds 2]
"""

from __future__ import annotations

import argparse
import os
import re
import shutil
import statistics
import subprocess
import sys
import time
import urllib.request
import uuid
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager, suppress
from dataclasses import dataclass
from pathlib import Path

import psycopg
from latency import (
    JOURNEY,
    OUT,
    ROOT,
    Load,
    console,
    fresh_schema,
    local,
    service,
    topics,
    wait_for,
)
from rich.table import Table

TARGET_IDLE_RPS = 1_000
TARGET_IDLE_P99_MS = 100.0
TARGET_LOADED_P99_MS = 250.0
# The compiled modules (scripts/compile.py's), copied to the baseline where its sources of
# them are the same as this checkout's.
COMPILED = (
    "engine/touchpoints.py",
    "engine/identity.py",
    "projections/people.py",
    "projections/position.py",
    "projections/machine.py",
    "projections/stepwise.py",
    "projections/detectors",
    "consumers/briefs.py",
    "consumers/deciding.py",
    "consumers/page_decider.py",
)


@dataclass(frozen=True)
class Reads:
    """What wrk measured: requests a second, latency percentiles in ms, failed answers."""

    rps: float
    p50: float
    p99: float
    failed: int


@dataclass
class Server:
    name: str
    command: list[str]
    cwd: Path
    env: dict[str, str]
    port: int

    @contextmanager
    def running(self, label: str) -> Iterator[None]:
        log_path = OUT / f"api-{self.name}-{label}.log"
        with log_path.open("wb") as log:
            process = subprocess.Popen(
                [*self.command, "serve", "--port", str(self.port)],
                cwd=self.cwd,
                env=self.env,
                stdout=log,
                stderr=subprocess.STDOUT,
            )
        try:
            wait_for(lambda: self._answers(process, log_path), f"{self.name} to serve", 120)
            yield
        finally:
            process.terminate()
            try:
                process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()

    def _answers(self, process: subprocess.Popen[bytes], log_path: Path) -> bool:
        if process.poll() is not None:
            raise RuntimeError(f"{self.name} exited; see {log_path}")
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{self.port}/api/funnel", timeout=5):
                return True
        except OSError:
            return False


def wrk(port: int, script: Path, clients: int, seconds: float) -> Reads:
    """Random customer reads by `clients` connections for `seconds`."""
    threads = 1 if clients < 2 else 2
    out = subprocess.run(
        [
            "wrk",
            f"-t{threads}",
            f"-c{clients}",
            f"-d{seconds:g}s",
            "--timeout",
            "10s",
            "--latency",
            "-s",
            str(script),
            f"http://127.0.0.1:{port}",
        ],
        capture_output=True,
        text=True,
        check=True,
    ).stdout

    def ms(label: str) -> float:
        found = re.search(rf"^\s+{label}\s+([\d.]+)(us|ms|s)\s*$", out, re.MULTILINE)
        if found is None:
            raise RuntimeError(f"wrk printed no {label} latency:\n{out}")
        value, unit = float(found[1]), found[2]
        return value / 1000 if unit == "us" else value * 1000 if unit == "s" else value

    rps = re.search(r"Requests/sec:\s+([\d.]+)", out)
    failed = re.search(r"Non-2xx or 3xx responses:\s+(\d+)", out)
    errors = re.search(r"Socket errors: .*?timeout (\d+)", out)
    return Reads(
        float(rps[1]) if rps else 0.0,
        ms("50%"),
        ms("99%"),
        (int(failed[1]) if failed else 0) + (int(errors[1]) if errors else 0),
    )


def warm(port: int, customers: list[str]) -> None:
    """Every customer read once, eight at a time: a server that has run a while."""

    def read(customer: str) -> None:
        url = f"http://127.0.0.1:{port}/api/customers/{customer}"
        with urllib.request.urlopen(url, timeout=30) as response:
            response.read()

    with ThreadPoolExecutor(8) as pool:
        list(pool.map(read, customers))


def answers(port: int) -> tuple[float, float]:
    """Customer answers served so far (kept, read), as the server's metrics count them; zero
    for a server that does not count them."""
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=10) as response:
        text = response.read().decode()
    counts = dict(
        re.findall(r'^journey_customer_answers_total\{answer="(\w+)"\} (\S+)$', text, re.M)
    )
    return float(counts.get("kept", 0)), float(counts.get("read", 0))


def read_script(customers: list[str]) -> Path:
    path = OUT / "api-reads.lua"
    ids = ",".join(f'"{customer}"' for customer in customers)
    path.write_text(
        f"local ids = {{{ids}}}\n"
        "math.randomseed(7)\n"
        "request = function()\n"
        '  return wrk.format("GET", "/api/customers/" .. ids[math.random(#ids)])\n'
        "end\n",
        encoding="utf-8",
    )
    return path


def baseline_checkout(ref: str, name: str = "api-baseline") -> Path:
    """`ref` checked out beside this one (as bench/out/`name`), with this checkout's compiled
    modules where their sources are the same, else compiled from its own (else, without a C
    compiler, it runs them as plain Python, and is said to)."""
    path = OUT / name
    if path.exists():
        subprocess.run(["git", "worktree", "remove", "--force", str(path)], cwd=ROOT, check=False)
    subprocess.run(
        ["git", "worktree", "add", "--detach", str(path), ref],
        cwd=ROOT,
        check=True,
        capture_output=True,
    )
    same = (
        subprocess.run(
            ["git", "diff", "--quiet", ref, "--", *COMPILED], check=False, cwd=ROOT
        ).returncode
        == 0
    )
    if same:
        for folder in ("engine", "projections", "consumers"):
            for compiled in ROOT.glob(f"{folder}/**/*.so"):
                shutil.copy2(compiled, path / compiled.relative_to(ROOT))
    elif (
        subprocess.run(
            [sys.executable, "scripts/compile.py", "--require"],
            check=False,
            cwd=path,
            capture_output=True,
        ).returncode
        != 0
    ):
        console.print(f"[yellow]the baseline {ref} could not be compiled: it runs uncompiled[/]")
    for compiled in ROOT.glob("*__mypyc*.so"):
        shutil.copy2(compiled, path / compiled.name)
    return path


def recorded(url: str, schema: str) -> int:
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute(f"SET search_path TO {schema}")
        row = conn.execute("SELECT coalesce(max(notification_id), 0) FROM journeys_events")
        found = row.fetchone()
    return int(found[0]) if found else 0


def record_customers(env: dict[str, str], url: str, schema: str, customers: int) -> list[str]:
    """Generated customers recorded and decided on; their ids."""

    def journey(*command: str) -> None:
        with (OUT / f"api-{command[0]}.log").open("wb") as log:
            subprocess.run([JOURNEY, *command], env=env, stdout=log, stderr=log, check=True)

    data = OUT / "api-touchpoints.jsonl"
    started = time.perf_counter()
    journey("generate", "--customers", str(customers), "--out", str(data))
    journey("ingest", str(data))
    journey("decide", "--no-publish")
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute(f"SET search_path TO {schema}")
        ids = [row[0] for row in conn.execute("SELECT customer_id FROM journey_positions")]
    console.print(
        f"{len(ids):,} customers, {recorded(url, schema):,} events recorded and decided in "
        f"{time.perf_counter() - started:.0f} s (schema {schema})"
    )
    return ids


class Bench:
    def __init__(self, args: argparse.Namespace, servers: list[Server], customers: list[str]):
        self.args = args
        self.servers = servers
        self.customers = customers
        self.script = read_script(customers)
        self.results: dict[tuple[str, str, int], list[Reads]] = {}

    def measure(self, phase: str) -> None:
        """Each server in turn, alternating which goes first."""
        for round_ in range(self.args.rounds):
            for server in self.servers if round_ % 2 == 0 else reversed(self.servers):
                with server.running(f"{phase}-{round_}"):
                    warm(server.port, self.customers)
                    for clients in (
                        (1, self.args.clients) if phase == "idle" else (self.args.clients,)
                    ):
                        before = answers(server.port)
                        reads = wrk(server.port, self.script, clients, self.args.duration)
                        after = answers(server.port)
                        self.results.setdefault((server.name, phase, clients), []).append(reads)
                        kept, read = (after[0] - before[0]), (after[1] - before[1])
                        console.print(
                            f"  {phase:7} {server.name:22} {clients:3} clients: "
                            f"{reads.rps:8,.0f} req/s, p50 {reads.p50:6.1f} ms, "
                            f"p99 {reads.p99:6.1f} ms, {reads.failed} failed"
                            + (f"; {kept / (kept + read):.0%} answers kept" if kept + read else "")
                        )

    def report(self, ingest_rate: float) -> None:
        args = self.args
        table = Table(title=f"GET /api/customers/{{id}} on PostgreSQL, medians of {args.rounds}")
        for column in ("server", "phase", "clients", "req/s", "p50 ms", "p99 ms", "failed"):
            table.add_column(column, justify="left" if column in ("server", "phase") else "right")
        for (name, phase, clients), runs in self.results.items():
            table.add_row(
                name,
                phase,
                str(clients),
                f"{statistics.median(r.rps for r in runs):,.0f}",
                f"{statistics.median(r.p50 for r in runs):.1f}",
                f"{statistics.median(r.p99 for r in runs):.1f}",
                str(sum(r.failed for r in runs)),
            )
        console.print(table)
        console.print(f"Kafka ingest recorded {ingest_rate:,.0f} touchpoints/s while loaded")

        def median(name: str, phase: str, figure: str) -> float:
            runs = self.results[(name, phase, args.clients)]
            return float(statistics.median(getattr(r, figure) for r in runs))

        ours, theirs = self.servers[1].name, self.servers[0].name
        console.print(
            f"{args.clients} clients, idle: {median(ours, 'idle', 'rps'):,.0f} req/s "
            f"({median(ours, 'idle', 'rps') / median(theirs, 'idle', 'rps'):.1f}x the "
            f"baseline; target {TARGET_IDLE_RPS:,}), p99 {median(ours, 'idle', 'p99'):.0f} ms "
            f"(target {TARGET_IDLE_P99_MS:.0f}); loaded: p99 "
            f"{median(ours, 'loaded', 'p99'):.0f} ms (baseline "
            f"{median(theirs, 'loaded', 'p99'):.0f}; target {TARGET_LOADED_P99_MS:.0f})"
        )


def loaded(bench: Bench, env: dict[str, str], url: str, schema: str, rate: float) -> float:
    """Measures the servers while `journey consume` records `rate` touchpoints a second and
    `journey decide --follow` decides on them; returns the rate recorded meanwhile."""
    bootstrap, topic = env["JOURNEY_KAFKA_BOOTSTRAP"], env["JOURNEY_TOUCHPOINTS_TOPIC"]
    with topics(bootstrap, [topic], 4):
        workers = [
            subprocess.Popen(
                [JOURNEY, *command],
                env=env,
                stdout=(OUT / f"api-{command[0]}.log").open("wb"),
                stderr=subprocess.STDOUT,
            )
            for command in (
                ["consume", "--workers", "2", "--instance", env["JOURNEY_CONSUMER_GROUP"]],
                ["decide", "--follow", "--no-publish"],
            )
        ]
        load = Load(bootstrap, topic, rate, 20_000, env["JOURNEY_CONSUMER_GROUP"])
        load.start()
        try:
            at_start = recorded(url, schema)
            wait_for(lambda: recorded(url, schema) > at_start, "ingest to start", 60)
            before, began = recorded(url, schema), time.perf_counter()
            bench.measure("loaded")
            return (recorded(url, schema) - before) / (time.perf_counter() - began)
        finally:
            load.stop()
            for process in workers:
                process.terminate()
                with suppress(subprocess.TimeoutExpired):
                    process.wait(timeout=60)


def main() -> None:
    parser = argparse.ArgumentParser(description=" ".join(__doc__.split("\n\n")[0].split()))
    parser.add_argument("--customers", type=int, default=2_000, help="customers recorded")
    parser.add_argument("--clients", type=int, default=30, help="readers at once")
    parser.add_argument("--duration", type=float, default=15.0, help="seconds per measurement")
    parser.add_argument("--rate", type=float, default=2_000.0, help="touchpoints/s of ingest")
    parser.add_argument("--baseline", default="c19e4aa", help="the git ref compared with")
    parser.add_argument("--rounds", type=int, default=2, help="measurements per server/phase")
    parser.add_argument("--schema", default="bench_api", help="PostgreSQL schema (dropped)")
    args = parser.parse_args()
    if shutil.which("wrk") is None:
        sys.exit("bench/api.py needs wrk: apt-get install wrk")

    OUT.mkdir(parents=True, exist_ok=True)
    url = service("JOURNEY_DATABASE_URL", "postgres.sh")
    bootstrap = service("JOURNEY_KAFKA_BOOTSTRAP", "kafka.sh")
    local(url, psycopg.conninfo.conninfo_to_dict(url).get("host"))
    for server in bootstrap.split(","):
        local(bootstrap, server.strip().rpartition(":")[0])
    tag = f"api-{uuid.uuid4().hex[:8]}"
    env = {
        **os.environ,
        "JOURNEY_DATABASE_URL": url,
        "POSTGRES_SCHEMA": args.schema,
        "JOURNEY_KAFKA_BOOTSTRAP": bootstrap,
        "JOURNEY_TOUCHPOINTS_TOPIC": f"{tag}-touchpoints",
        "JOURNEY_ACTIONS_TOPIC": f"{tag}-actions",
        "JOURNEY_CONSUMER_GROUP": tag,
        "JOURNEY_DATA_DIR": str(OUT / f"{tag}-data"),
    }
    env.pop("JOURNEY_METRICS_PORT", None)
    fresh_schema(url, args.schema)
    customers = record_customers(env, url, args.schema, args.customers)
    checkout = baseline_checkout(args.baseline)
    servers = [
        Server(
            f"baseline {args.baseline}",
            [sys.executable, "-m", "journey"],
            checkout,
            {**env, "PYTHONPATH": str(checkout)},
            18_101,
        ),
        Server("this checkout", [JOURNEY], ROOT, env, 18_102),
    ]
    bench = Bench(args, servers, customers)
    try:
        bench.measure("idle")
        ingest_rate = loaded(bench, env, url, args.schema, args.rate)
    finally:
        subprocess.run(
            ["git", "worktree", "remove", "--force", str(checkout)], check=False, cwd=ROOT
        )
    bench.report(ingest_rate)


if __name__ == "__main__":
    main()
