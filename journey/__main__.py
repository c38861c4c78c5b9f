"""The `journey` command's entry point (also `python -m journey`).

It loads the command line only when it runs: the processes the engine starts for its work
(reading files, folding partitions of a rebuild) import this module again, and have no use
for the command line's own imports.
"""

from __future__ import annotations


def main() -> None:
    from journey.cli import main as run

    run()


if __name__ == "__main__":
    main()
