"""Compiles the hottest modules of who is who, of the fold and of the decider, and the
touchpoint's validation, with mypyc (part of mypy), in place, so that a rebuild or a replay
folds, and the decider (live or in a backtest) decides, about a quarter to a third faster, and
every way in validates touchpoints faster. Where no C compiler is found, or compiling fails,
the modules stay plain Python, which works the same way, only slower.

    .venv/bin/python scripts/compile.py
    python scripts/compile.py --require    # the image's build: plain Python is a failure

`make` runs it whenever one of the modules changed; run it yourself after editing them, or
the engine keeps running what was compiled before (the tests refuse to run then).
"""

from __future__ import annotations

import os
import shutil
import sys
import warnings
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
# The touchpoint's validation, the identity graph and who is who as the fold reads the log, the
# position, the machine, the stepwise fold the decider reads, the decider's page loop and its
# deciding, and every detector; not the detectors' package itself, which finds its modules
# when it is imported.
MODULES = (
    "engine/touchpoints.py",
    "engine/identity.py",
    "projections/people.py",
    "projections/position.py",
    "projections/machine.py",
    "projections/stepwise.py",
    "consumers/briefs.py",
    "consumers/deciding.py",
    "consumers/page_decider.py",
    *sorted(
        str(path.relative_to(ROOT))
        for path in (ROOT / "projections" / "detectors").glob("*.py")
        if path.name != "__init__.py"
    ),
)


def compiled(module: str) -> list[Path]:
    """The compiled files made from a module, if any."""
    source = ROOT / module
    return sorted(source.parent.glob(f"{source.stem}.*.so")) + sorted(
        source.parent.glob(f"{source.stem}__mypyc.*.so")
    )


def main(argv: list[str]) -> int:
    # Where the modules must be compiled (the image), falling back to plain Python fails instead.
    required = "--require" in argv
    fallback, outcome = (1, "it must be compiled") if required else (0, "it runs as plain Python")
    for module in MODULES:
        for stale in compiled(module):
            stale.unlink()
    if shutil.which("cc") is None:
        print(f"no C compiler found for the fold and the decider: {outcome}", file=sys.stderr)
        return fallback
    from mypyc.build import mypycify
    from setuptools import setup

    os.chdir(ROOT)  # the compiled modules go beside their sources
    warnings.simplefilter("ignore")  # setuptools' notes on reading pyproject.toml
    try:
        setup(
            name="journey-fold",
            # One library per module: nothing outside the package is needed to import them.
            ext_modules=mypycify([str(ROOT / m) for m in MODULES], separate=True),
            script_args=["--quiet", "build_ext", "--inplace"],
        )
    except (Exception, SystemExit) as exc:  # any failure leaves the plain Python modules
        for module in MODULES:
            for partial in compiled(module):
                partial.unlink()
        print(f"compiling the fold and the decider failed ({exc}): {outcome}", file=sys.stderr)
        return fallback
    missing = [module for module in MODULES if not compiled(module)]
    if missing:
        print(f"not compiled: {', '.join(missing)}: {outcome}", file=sys.stderr)
        return fallback
    # A module whose code did not change is copied from the last build with that build's
    # time: mark each as made from the sources as they are now.
    for module in MODULES:
        for library in compiled(module):
            os.utime(library)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
