"""The README's examples run as tests, so the documentation cannot drift from the engine.

Python blocks run as they are. Console blocks run their `journey` commands in order, in one
fresh folder; where the README shows what a command prints, the output must match. A code
block whose info string names a file (```toml mine.toml) is written to that file first.
"""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest

README = Path(__file__).parents[2] / "README.md"
BLOCK = re.compile(r"^```(\w+)([^\n]*)\n(.*?)^```", re.DOTALL | re.MULTILINE)
JOURNEY = str(Path(sys.executable).with_name("journey"))


def blocks(kind: str) -> list[tuple[str, str]]:
    text = README.read_text()
    return [(info.strip(), body) for lang, info, body in BLOCK.findall(text) if lang == kind]


@pytest.mark.parametrize("code", [body for _, body in blocks("python")])
def test_the_python_examples_run(
    code: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    exec(compile(code, str(README), "exec"), {"__name__": "readme"})


def test_the_console_examples_run_and_print_what_the_readme_shows(tmp_path: Path) -> None:
    for info, body in [*blocks("toml"), *blocks("json")]:
        if info:
            (tmp_path / info).write_text(body)
    checked = 0
    for info, body in blocks("console"):
        if info == "services":
            continue  # needs Kafka and PostgreSQL: tests/integration/test_readme_services.py
        lines = body.splitlines()
        for index, line in enumerate(lines):
            command = line.removeprefix("$ ").split("  #")[0].split()
            if not line.startswith("$ journey"):
                continue
            expected = []
            for following in lines[index + 1 :]:
                if following.startswith("$ "):
                    break
                expected.append(following)
            result = subprocess.run(
                [JOURNEY, "--data-dir", str(tmp_path / "data"), *command[1:]],
                cwd=tmp_path,
                capture_output=True,
                text=True,
                timeout=300,
                check=False,
            )
            if expected:
                assert (result.stdout + result.stderr).strip().splitlines() == expected, line
            else:
                assert result.returncode == 0, f"{line}\n{result.stderr}"
            checked += 1
    assert checked >= 8
