"""Thin Celery tasks: they take ids and call services.

Every task acknowledges late and is rejected (so redelivered) when its worker process dies, with one
message prefetched at a time: a killed worker loses no work.
"""

from __future__ import annotations

from celery import shared_task

from cohorts.execution import run_execute as run_execute_service
from cohorts.execution import run_give_up
from warehouse.engines import TransientEngineError

#: How often a run is retried when its site's database is unreachable or locked, before it fails.
TRANSIENT_RETRIES = 6


@shared_task(
    name="worker.tasks.run_execute",
    bind=True,
    acks_late=True,
    reject_on_worker_lost=True,
    max_retries=TRANSIENT_RETRIES,
)
def run_execute(self, *, run_id: int) -> str:
    try:
        outcome = run_execute_service(run_id=run_id, worker=self.request.hostname or "")
    except TransientEngineError as exc:
        if self.request.retries >= TRANSIENT_RETRIES:
            run_give_up(run_id=run_id, reason=str(exc))
            return "failed"
        # Exponential backoff: 1, 2, 4, 8… seconds, capped.
        raise self.retry(exc=exc, countdown=min(60, 2**self.request.retries)) from exc
    if outcome.retry_in is not None:
        # Another worker holds the run's lease; look again once it would have lapsed. Unbounded on purpose:
        # the run ends when that worker finishes it or dies.
        raise self.retry(countdown=outcome.retry_in, max_retries=None)
    return outcome.state
