"""Versioned tables on every store: a part's migrations are applied once, in order, however
many processes open it at the same time."""

from __future__ import annotations

import multiprocessing
from multiprocessing.synchronize import Barrier

from engine.settings import Settings
from stores import open_store
from stores.migrations import stored_version
from stores.tables import PARTS, VIEWS, open_part

PROCESSES = 4


def _open_views(settings: Settings, start: Barrier, applied: multiprocessing.Queue[int]) -> None:
    (views,) = [part for part in open_store(settings).parts() if part.part == "views"]
    database = views.open()
    try:
        start.wait(timeout=60)
        applied.put(len(open_part(database, "views")))
    finally:
        database.close()


def test_processes_opening_a_new_store_at_once_apply_its_migrations_once(
    settings: Settings,
) -> None:
    settings.data_dir.mkdir(parents=True, exist_ok=True)
    settings.views_path.touch()  # an empty file, as a first open leaves it
    context = multiprocessing.get_context("spawn")
    start = context.Barrier(PROCESSES)
    applied: multiprocessing.Queue[int] = context.Queue()
    processes = [
        context.Process(target=_open_views, args=(settings, start, applied))
        for _ in range(PROCESSES)
    ]
    for process in processes:
        process.start()
    for process in processes:
        process.join(timeout=120)
    assert [process.exitcode for process in processes] == [0] * PROCESSES
    counts = sorted(applied.get(timeout=5) for _ in processes)

    # One process applied every migration; the others found nothing left to do. (Applied
    # twice, the rename of SQLite's tracking table would fail: its old name is gone.)
    assert counts == [0] * (PROCESSES - 1) + [len(VIEWS)]
    (views,) = [part for part in open_store(settings).parts() if part.part == "views"]
    database = views.open()
    try:
        assert stored_version(database, "views") == PARTS["views"][-1].version
    finally:
        database.close()
