"""Chunks of the synthetic population built in a pool of processes, with output independent of the pool size.

Why the output cannot depend on the number of processes:

* a chunk's arrays depend only on ``(seed, chunk index, first person, size)`` (:func:`generator.build_chunk`);
* ids stay dense and in chunk order: a chunk numbers its rows from 1, then adds the number of rows the earlier
  chunks have in each table. Those counts are known as soon as a chunk is *generated* (before any text is
  formatted), so worker *k* publishes its cumulative counts in shared memory right after worker *k - 1* has, and
  only waits for the generation, never the formatting, of the chunks before it;
* every worker writes headerless part files (one per table) and the parent appends them to ``TABLE.csv`` in chunk
  order, so the bytes of a file are those of a one-process run.

The pool hands out chunks in index order (first in, first out), so the chunk a worker waits for has always been
picked up by another worker already: the chain of waits cannot deadlock. A failing chunk marks itself failed,
which wakes and fails the chunks waiting behind it instead of leaving them blocked.

Memory: each process holds one chunk at a time (a few hundred MiB per 10,000 persons), the parent only copies
files, so peak memory grows with ``jobs * chunk_size``, never with the number of persons.
"""

from __future__ import annotations

import multiprocessing
import os
import shutil
from collections.abc import Callable, Iterator
from concurrent.futures import Future, ProcessPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from warehouse.synthetic import generator
from warehouse.synthetic.writer import CDM_TABLES, CsvWriter, PartFormatter

# How long a chunk waits for the chunk before it to publish its counts; only reached if that one hangs.
WAIT_SECONDS = 3600.0
_T = len(generator.ID_TABLES)
_FAILED = -1
_READY = 1


@dataclass(frozen=True)
class ChunkTask:
    """One chunk to build: which persons, and where its part files go."""

    seed: int
    index: int
    first_person: int
    size: int
    parts: Path


# Per-process state: the model (vocabulary lookups, arrays) is built once per worker, not once per chunk.
_model: generator.Model | None = None
_formatter: PartFormatter | None = None
_shared: tuple[Any, Any, Any] | None = None  # (condition, cumulative counts, chunk states)


def _init_worker(condition: Any, cumulative: Any, states: Any) -> None:
    global _shared
    _shared = (condition, cumulative, states)


def _state() -> tuple[generator.Model, PartFormatter]:
    global _model, _formatter
    if _model is None:
        _model = generator.Model()
    if _formatter is None:
        _formatter = PartFormatter()
    return _model, _formatter


def part_path(parts: Path, index: int, table: str) -> Path:
    return parts / f"{index:07d}.{table}.csv"


def _write_parts(task: ChunkTask, tables: generator.Tables, formatter: PartFormatter) -> dict[str, int]:
    return {
        table: formatter.write(table, data, part_path(task.parts, task.index, table)) for table, data in tables.items()
    }


def _offsets_from_shared(index: int, counts: dict[str, int], failed: bool) -> dict[str, int]:
    """Wait for chunk ``index - 1``, then publish this chunk's cumulative counts; return its id offsets."""
    assert _shared is not None, "worker not initialised"
    condition, cumulative, states = _shared
    with condition:
        if index > 0 and not condition.wait_for(lambda: states[index - 1] != 0, timeout=WAIT_SECONDS):
            states[index] = _FAILED
            condition.notify_all()
            raise TimeoutError(f"chunk {index - 1} did not publish its row counts")
        if failed or (index > 0 and states[index - 1] == _FAILED):
            states[index] = _FAILED
            condition.notify_all()
            if failed:
                return {}
            raise RuntimeError(f"chunk {index - 1} failed")
        base = index * _T
        previous = [0] * _T if index == 0 else list(cumulative[base - _T : base])
        for i, table in enumerate(generator.ID_TABLES):
            cumulative[base + i] = previous[i] + counts[table]
        states[index] = _READY
        condition.notify_all()
    return dict(zip(generator.ID_TABLES, previous, strict=True))


def _run_pooled(task: ChunkTask) -> dict[str, int]:
    """Worker entry point: build, wait for the id offsets, shift, write parts. Returns rows per table."""
    model, formatter = _state()
    try:
        tables, counts = generator.build_chunk(model, task.seed, task.index, task.first_person, task.size)
    except BaseException:
        _offsets_from_shared(task.index, {}, failed=True)
        raise
    generator.shift_ids(tables, _offsets_from_shared(task.index, counts, failed=False))
    return _write_parts(task, tables, formatter)


def _sequential(tasks: list[ChunkTask]) -> Iterator[dict[str, int]]:
    """The same steps in this process: offsets are simply the running totals."""
    model, formatter = generator.Model(), PartFormatter()
    offsets = dict.fromkeys(generator.ID_TABLES, 0)
    try:
        for task in tasks:
            tables, counts = generator.build_chunk(model, task.seed, task.index, task.first_person, task.size)
            generator.shift_ids(tables, offsets)
            offsets = {table: offsets[table] + counts[table] for table in generator.ID_TABLES}
            rows = _write_parts(task, tables, formatter)
            del tables  # free the chunk before the next one is built
            yield rows
    finally:
        formatter.close()


def _pooled(tasks: list[ChunkTask], jobs: int) -> Iterator[dict[str, int]]:
    # spawn, not fork: the parent may hold DuckDB connections and threads, which a forked child must not inherit.
    ctx = multiprocessing.get_context("spawn")
    condition = ctx.Condition()
    cumulative = ctx.Array("q", len(tasks) * _T, lock=False)
    states = ctx.Array("b", len(tasks), lock=False)
    executor = ProcessPoolExecutor(
        max_workers=jobs, mp_context=ctx, initializer=_init_worker, initargs=(condition, cumulative, states)
    )
    futures: list[Future[dict[str, int]]] = []
    try:
        futures = [executor.submit(_run_pooled, task) for task in tasks]
        for future in futures:
            yield future.result()
    finally:
        for future in futures:
            future.cancel()
        executor.shutdown(wait=True, cancel_futures=True)


def write_chunks(
    writer: CsvWriter,
    *,
    persons: int,
    seed: int,
    chunk_size: int,
    jobs: int | None = None,
    progress: Callable[[int], None] | None = None,
) -> None:
    """Generate all chunks with ``jobs`` processes (default: one per CPU) and append them to ``writer``'s files.

    ``progress`` gets the number of persons written after each chunk.
    """
    if jobs is None:
        jobs = os.cpu_count() or 1
    if jobs < 1:
        raise ValueError("jobs must be at least 1")
    parts = writer.directory / ".parts"
    if parts.exists():
        shutil.rmtree(parts)
    parts.mkdir()
    tasks = [
        ChunkTask(seed, index, first, size, parts) for index, first, size in generator.chunk_sizes(persons, chunk_size)
    ]
    jobs = min(jobs, len(tasks))
    results = _sequential(tasks) if jobs == 1 else _pooled(tasks, jobs)
    done = 0
    try:
        for task, rows in zip(tasks, results, strict=True):
            for table in CDM_TABLES:
                if table in rows:
                    writer.append_file(table, part_path(parts, task.index, table), rows[table])
            done += task.size
            if progress:
                progress(done)
    finally:
        shutil.rmtree(parts, ignore_errors=True)
