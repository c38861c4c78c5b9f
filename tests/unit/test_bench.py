"""The benchmarks measure the store they name whatever the shell exports, and say what was not
measured rather than divide by nothing."""

from __future__ import annotations

import importlib.util
from pathlib import Path
from types import ModuleType

import pytest

from engine.settings import Settings

BENCH = Path(__file__).resolve().parents[2] / "bench"
SHELL = {
    "PATH": "/usr/bin",
    "JOURNEY_DATABASE_URL": "postgresql://journey:journey@127.0.0.1:5432/journey",
    "POSTGRES_DBNAME": "journey",
    "POSTGRES_SCHEMA": "elsewhere",
    "JOURNEY_DATA_DIR": "/somewhere/else",
}


@pytest.fixture(scope="module")
def measuring() -> ModuleType:
    # The benchmarks are scripts, not a package: the module is loaded from its file.
    spec = importlib.util.spec_from_file_location("bench_measuring", BENCH / "measuring.py")
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_an_embedded_store_benchmark_ignores_the_database_the_shell_exports(
    measuring: ModuleType, tmp_path: Path
) -> None:
    env = measuring.embedded(SHELL, tmp_path)

    settings = Settings.from_env(env)
    assert settings.store == "sqlite"
    assert settings.data_dir == tmp_path
    assert env["PATH"] == "/usr/bin"


def test_a_postgres_benchmark_uses_its_own_url_and_schema_only(measuring: ModuleType) -> None:
    ours = "postgresql://bench:bench@127.0.0.1:6000/bench"

    env = measuring.without_store(SHELL, {"JOURNEY_DATABASE_URL": ours})

    assert Settings.from_env(env).postgres["POSTGRES_PORT"] == "6000"
    assert "POSTGRES_SCHEMA" not in env


@pytest.mark.parametrize(("count", "seconds"), [(0, 1.5), (1_000, 0.0)])
def test_a_rate_of_nothing_says_what_was_not_measured(
    measuring: ModuleType, count: int, seconds: float
) -> None:
    with pytest.raises(measuring.NotMeasured, match="touchpoints"):
        measuring.per_second(count, seconds, "touchpoints")


def test_a_rate_is_the_count_over_the_time(measuring: ModuleType) -> None:
    assert measuring.per_second(3_000, 1.5, "touchpoints") == 2_000
