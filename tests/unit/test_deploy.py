"""The compose file, the image and its lock keep what operators are promised, checked without a
Docker engine (none runs where the tests do): every service has a health check, images are
pinned, each engine process's check asks the readiness it serves, the image is built from the
locked dependencies and runs as nobody's root, and the lock says what pyproject.toml asks."""

from __future__ import annotations

import re
import shutil
import subprocess
import tomllib
from pathlib import Path
from typing import Any

import pytest
import yaml
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

ROOT = Path(__file__).parents[2]
# A release, not a line of them: never latest, never a major version alone (PostgreSQL's
# releases are major.minor; Python's and Kafka's major.minor.patch).
PINNED = re.compile(r":\d+\.\d+")
PYTHON_PINNED = re.compile(r"python:\d+\.\d+\.\d+")
LOCKS = ("requirements.lock", "requirements-build.lock")
# The platform the locks are made for (`make lock`): the image's.
IMAGE_PLATFORM = {
    "python_version": "3.11",
    "python_full_version": "3.11.11",
    "sys_platform": "linux",
    "platform_system": "Linux",
    "platform_machine": "x86_64",
    "os_name": "posix",
    "implementation_name": "cpython",
    "platform_python_implementation": "CPython",
    "extra": "",
}


def compose() -> dict[str, Any]:
    loaded: dict[str, Any] = yaml.safe_load((ROOT / "docker-compose.yml").read_text())
    return loaded


def instructions() -> list[tuple[str, str]]:
    """The Dockerfile's instructions, each on one line, without comments."""
    joined = re.sub(r"\\\n(\s*#.*\n)*", " ", (ROOT / "Dockerfile").read_text())
    lines = [line.split() for line in joined.splitlines()]
    return [
        (words[0].upper(), " ".join(words[1:])) for words in lines if words and words[0][0] != "#"
    ]


def image() -> list[tuple[str, str]]:
    """The instructions of the image's own stage, the last one."""
    steps = instructions()
    last = max(i for i, (name, _) in enumerate(steps) if name == "FROM")
    return steps[last:]


def image_env() -> dict[str, str]:
    pairs = " ".join(value for name, value in image() if name == "ENV")
    return dict(pair.split("=", 1) for pair in pairs.split())


def image_health_check() -> str:
    return " ".join(value for name, value in image() if name == "HEALTHCHECK")


def locked(name: str) -> dict[str, str]:
    """A lock's pins: the version of each package, by canonical name."""
    text = (ROOT / name).read_text()
    pins = re.findall(r"^([A-Za-z0-9._-]+)==(\S+) \\$", text, re.MULTILINE)
    assert len(pins) == len(re.findall(r"^[A-Za-z0-9]", text, re.MULTILINE)), "unpinned"
    return {canonicalize_name(package): version for package, version in pins}


def pyproject() -> dict[str, Any]:
    return tomllib.loads((ROOT / "pyproject.toml").read_text())


def assert_locked(lock: str, requirements: list[str]) -> None:
    pins = locked(lock)
    for text in requirements:
        requirement = Requirement(text)
        if requirement.marker and not requirement.marker.evaluate(IMAGE_PLATFORM):
            continue
        name = canonicalize_name(requirement.name)
        assert name in pins, f"{lock} lacks {requirement.name}: run `make lock`"
        assert requirement.specifier.contains(pins[name], prereleases=True), (
            f"{lock} pins {requirement.name}=={pins[name]}, pyproject.toml asks "
            f"{requirement.specifier}: run `make lock`"
        )


def test_every_service_has_a_health_check_and_a_pinned_image() -> None:
    services = compose()["services"]

    for name, service in services.items():
        # Those built from the Dockerfile have the image's unless they say otherwise.
        assert "healthcheck" in service or "build" in service, name
        if "image" in service:
            assert PINNED.search(service["image"]), f"{name}: {service['image']} floats"
    assert all(PYTHON_PINNED.search(value) for name, value in instructions() if name == "FROM")
    assert image_health_check()


def test_each_engine_process_is_checked_on_the_readiness_it_serves() -> None:
    services = compose()["services"]

    engine = {name: service for name, service in services.items() if "build" in service}
    assert {"ingest", "clock", "decide", "outcomes", "serve"} <= set(engine)
    assert image_env()["JOURNEY_METRICS_PORT"] == "9100"
    assert "127.0.0.1:{os.environ['JOURNEY_METRICS_PORT']}/readyz" in image_health_check()
    for name, service in engine.items():
        # The API too serves its readiness on the metrics port, beside its own.
        assert "JOURNEY_METRICS_PORT" not in service.get("environment", {}), name
        assert "healthcheck" not in service, f"{name}: the image's check is the one"
        assert service.get("restart") == "unless-stopped", name
        assert all(services[needed]["healthcheck"] for needed in service.get("depends_on", {})), (
            name
        )
    assert "127.0.0.1:8000:8000" in services["serve"]["ports"]


def test_the_image_runs_as_an_unprivileged_user() -> None:
    users = [value for name, value in image() if name == "USER"]

    assert users, "the image runs as root"
    assert users[-1].split(":")[0] not in ("root", "0")
    assert [value for name, value in image() if name == "ENTRYPOINT"] == ['["journey"]']


def test_the_image_installs_the_locked_dependencies_before_the_code() -> None:
    steps = instructions()
    copies = [value for name, value in steps if name == "COPY" and "--from" not in value]
    runs = " ".join(value for name, value in steps if name == "RUN")

    # A change of the code installs nothing again: the locks go in before any code.
    first_code = next(i for i, value in enumerate(copies) if value.startswith("engine"))
    assert all(any(value.startswith(lock) for value in copies[:first_code]) for lock in LOCKS)
    assert "--require-hashes --no-deps -r /tmp/requirements.lock" in runs
    # An image whose fold is not compiled fails to build.
    assert "scripts/compile.py --require" in runs


def test_the_build_context_holds_what_the_image_copies_and_nothing_else() -> None:
    patterns = [
        line
        for line in (ROOT / ".dockerignore").read_text().splitlines()
        if line and not line.startswith("#")
    ]
    copied = {
        source.rstrip("/")
        for name, value in instructions()
        if name == "COPY" and "--from" not in value
        for source in value.split()[:-1]
    }

    assert patterns[0] == "*"
    assert {pattern[1:] for pattern in patterns if pattern.startswith("!")} == copied
    # A fold compiled here, for this machine's Python, never reaches the image.
    assert "**/*.so" in patterns


def test_the_lock_pins_every_dependency_pyproject_asks_for() -> None:
    dependencies = pyproject()["project"]["dependencies"]

    assert_locked("requirements.lock", dependencies)
    # A dependency dropped from pyproject.toml leaves the lock too.
    direct = {canonicalize_name(Requirement(text).name) for text in dependencies}
    text = (ROOT / "requirements.lock").read_text()
    for entry in re.split(r"\n(?=[a-z0-9])", text):
        name = canonicalize_name(entry.split("==")[0])
        if "journey-engine (pyproject.toml)" in entry:
            assert name in direct, f"pyproject.toml asks no more for {name}: run `make lock`"


def test_the_build_tools_are_locked_as_pyproject_asks() -> None:
    project = pyproject()
    mypy = [text for text in project["project"]["optional-dependencies"]["dev"] if "mypy" in text]

    assert_locked("requirements-build.lock", [*project["build-system"]["requires"], *mypy])


def test_every_locked_package_is_hashed() -> None:
    for lock in LOCKS:
        text = (ROOT / lock).read_text()
        entries = re.split(r"\n(?=[a-z0-9])", text.split("\n", 2)[2])
        for entry in entries:
            assert "--hash=sha256:" in entry, f"{lock}: {entry.split(' ')[0]} has no hash"


def docker_compose() -> bool:
    if shutil.which("docker") is None:
        return False
    answer = subprocess.run(
        ["docker", "compose", "version"], capture_output=True, timeout=60, check=False
    )
    return answer.returncode == 0


@pytest.mark.skipif(not docker_compose(), reason="no `docker compose` here to read the file")
def test_docker_compose_reads_the_compose_file_without_complaint() -> None:
    checked = subprocess.run(
        ["docker", "compose", "--file", str(ROOT / "docker-compose.yml"), "config", "--quiet"],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
        cwd=ROOT,
    )

    assert checked.returncode == 0, checked.stderr
    assert not checked.stderr.strip(), checked.stderr


@pytest.mark.skipif(shutil.which("hadolint") is None, reason="no hadolint here")
def test_hadolint_finds_nothing_in_the_dockerfile() -> None:
    linted = subprocess.run(
        ["hadolint", "--no-color", str(ROOT / "Dockerfile")],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )

    assert linted.returncode == 0, linted.stdout + linted.stderr


def test_the_page_and_the_api_read_the_tokens_file_the_operator_names() -> None:
    serve = compose()["services"]["serve"]

    assert serve["environment"]["JOURNEY_TOKENS_FILE"] == (
        "${JOURNEY_TOKENS_FILE:+/run/journey/tokens.toml}"
    )
    assert "${JOURNEY_TOKENS_FILE:-/dev/null}:/run/journey/tokens.toml:ro" in serve["volumes"]
