"""The README's Kafka walkthrough runs, in order, against the real services."""

from __future__ import annotations

import signal
import subprocess

from tests.e2e.test_readme import JOURNEY, blocks
from tests.integration.conftest import Pipeline, wait_until


def test_the_readme_kafka_walkthrough_records_what_it_publishes(pipeline: Pipeline) -> None:
    [body] = [body for info, body in blocks("console") if info == "services"]
    background: list[subprocess.Popen[bytes]] = []
    log = (pipeline.workdir / "background.log").open("wb")
    published = 0
    for line in body.splitlines():
        command = line.removeprefix("$ ").split("  #")[0].split()
        if command[-1] == "&":
            background.append(
                subprocess.Popen(
                    [JOURNEY, *command[1:-1]],
                    cwd=pipeline.workdir,
                    env=pipeline.env,
                    stdout=log,
                    stderr=subprocess.STDOUT,
                )
            )
            # What was published is recorded before the walkthrough goes on.
            wait_until(lambda n=published: pipeline.consumed_up_to() == n, "the consumer")
            continue
        result = subprocess.run(
            [JOURNEY, *command[1:]],
            cwd=pipeline.workdir,
            env=pipeline.env,
            capture_output=True,
            text=True,
            timeout=120,
            check=False,
        )
        assert result.returncode == 0, f"{line}\n{result.stderr}"
        if command[1] == "produce":
            published = int(result.stderr.split(" records:")[0].split()[-1])
    for process in background:
        process.send_signal(signal.SIGTERM)
        status = process.wait(timeout=60)
        assert status == 0, (pipeline.workdir / "background.log").read_text()
    assert pipeline.recorded_count() == published > 0
