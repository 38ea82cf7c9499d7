"""The one decorator of every Soyang task.

Every task acknowledges its message late and has it rejected (so delivered again) when its worker process dies,
with one message prefetched at a time (``CELERY_WORKER_PREFETCH_MULTIPLIER``): a killed worker loses no work, and
the job's lease (``jobs.lifecycle``) makes the second delivery take the work over rather than repeat it.

A task given a ``give_up`` retries while the site's database is unreachable (``jobs.errors.SiteUnreachable``), with a
capped exponential backoff, then calls ``give_up`` with the task's keyword arguments and the reason. A job held
by another worker's live lease (``JobHeld``) is looked at again once that lease would have lapsed.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import Any

from celery import Task, shared_task

from jobs.errors import JobHeld, SiteUnreachable

#: How often a job is retried while its site's database is unreachable or locked, before it is given up.
TRANSIENT_RETRIES = 6
#: Longest wait between two tries: 1, 2, 4, 8… seconds, capped.
BACKOFF_CAP_SECONDS = 60


def backoff(retries: int) -> int:
    """Seconds before try ``retries + 1``."""
    return int(min(BACKOFF_CAP_SECONDS, 2**retries))


def soyang_task(name: str, *, give_up: Callable[..., object] | None = None) -> Callable[[Callable[..., Any]], Task]:
    """Register ``body`` (keyword arguments only: ids) as the task ``name``; see the module's docstring."""

    def decorate(body: Callable[..., Any]) -> Task:
        @shared_task(
            name=name,
            bind=True,
            acks_late=True,
            reject_on_worker_lost=True,
            max_retries=TRANSIENT_RETRIES if give_up is not None else 0,
        )
        @functools.wraps(body)
        def task(self: Task, **kwargs: Any) -> Any:
            try:
                return body(**kwargs)
            except JobHeld as held:
                # Unbounded on purpose: the job ends when the lease holder finishes it or dies.
                raise self.retry(countdown=held.retry_in, max_retries=None) from held
            except SiteUnreachable as exc:
                if give_up is None:
                    raise
                if self.request.retries >= TRANSIENT_RETRIES:
                    give_up(reason=str(exc), **kwargs)
                    return "failed"
                raise self.retry(exc=exc, countdown=backoff(self.request.retries)) from exc

        return task

    return decorate
