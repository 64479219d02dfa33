"""Looking at many pictures fast: every core, with progress, and nothing looked at twice.

A few hundred files are checked in threads (Pillow's decoders release the GIL,
and starting processes would cost more than it saves). Many files are checked
in worker processes, one per core, in chunks, so that the Python work between
the decodes runs in parallel too. Results go through `file_facts`, so a file
that has not changed since an earlier audit is not opened again.

`progress(done, total)` is called as chunks finish, from the calling thread.
"""

from __future__ import annotations

import math
import multiprocessing
import os
from concurrent.futures import ProcessPoolExecutor, ThreadPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from dataclasses import asdict
from typing import Callable

from tlcore.data import file_facts, images

PROCESSES_FROM_FILES = 400  # below this many files to look at, threads are faster than starting processes
CHUNK_FILES = 64  # files a worker process checks per task
Progress = Callable[[int, int], None]


def check_images(paths_to_check: list[str], progress: Progress | None = None) -> list[images.ImageCheck]:
    """`images.check_image` for every path, reusing the checks of unchanged files.

    A file checked now also gets its perceptual hash from the same decode,
    kept for the duplicate search and the split, which then read no file.
    """
    values = file_facts.cached(file_facts.CHECK, paths_to_check, lambda missing: _check_all(missing, progress))
    return [images.ImageCheck(**value) for value in values]


def _check_all(paths_to_check: list[str], progress: Progress | None) -> list[dict]:
    rows = run_in_parallel(_check_chunk, paths_to_check, progress)
    file_facts.remember(file_facts.PICTURE_HASH, {path: row["picture_hash"] for path, row in zip(paths_to_check, rows, strict=True)})
    return [row["check"] for row in rows]


def _check_chunk(chunk: list[str]) -> list[dict]:
    rows = []
    for path in chunk:
        found: list[str] = []
        check = images.check_image(path, on_picture=lambda picture, found=found: found.append(images.perceptual_hash(picture)))
        rows.append({"check": asdict(check), "picture_hash": found[0] if found else None})
    return rows


def run_in_parallel(function, items: list, progress: Progress | None = None) -> list:
    """`function(chunk)` over chunks of `items` (returning one value per item), on every core; in order.

    `function` must be a module-level function (worker processes import it by name).
    Worker processes that cannot start (a script run without an
    `if __name__ == "__main__":` guard starts itself again in each spawned
    worker, which Python refuses) leave the rest to threads: slower, not wrong.
    """
    cores = os.cpu_count() or 1
    results: list = []
    if len(items) >= PROCESSES_FROM_FILES and cores > 1:
        # "spawn": the caller may be a threaded web server, where forking can deadlock.
        try:
            _map_into(ProcessPoolExecutor(max_workers=cores, mp_context=multiprocessing.get_context("spawn")),
                      function, _chunks(items, CHUNK_FILES), results, progress, len(items))
        except BrokenProcessPool:
            pass
    threads = min(8, cores * 2)
    remaining = items[len(results):]  # what no worker process finished (they finish whole chunks, in order)
    # Every thread gets a share, so a few dozen phone photos (tens of ms each) are not decoded one at a time.
    _map_into(ThreadPoolExecutor(max_workers=threads), function,
              _chunks(remaining, max(1, min(CHUNK_FILES, math.ceil(len(remaining) / threads)))), results, progress, len(items))
    return results


def _chunks(items: list, size: int) -> list[list]:
    return [items[start:start + size] for start in range(0, len(items), size)]


def _map_into(pool, function, chunks: list, results: list, progress: Progress | None, total: int) -> None:
    with pool:
        for values in pool.map(function, chunks):
            results.extend(values)
            if progress is not None:
                progress(len(results), total)


def seconds_left(done: int, total: int, elapsed: float) -> float | None:
    """Seconds until `total` at the pace so far; None before the first file is done."""
    if done <= 0 or elapsed <= 0:
        return None
    return elapsed / done * max(0, total - done)
