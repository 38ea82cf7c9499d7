"""Thin Celery tasks: they take ids and call services.

Every task acknowledges late and is rejected (so redelivered) when its worker process dies, with one
message prefetched at a time: a killed worker loses no work.
"""

from __future__ import annotations

from celery import shared_task

from cohorts.execution import run_execute as run_execute_service
from warehouse.engines import TransientEngineError


@shared_task(
    name="worker.tasks.run_execute",
    bind=True,
    acks_late=True,
    reject_on_worker_lost=True,
    autoretry_for=(TransientEngineError,),
    retry_backoff=2,
    retry_backoff_max=60,
    retry_jitter=True,
    max_retries=5,
)
def run_execute(self, *, run_id: int) -> str:
    outcome = run_execute_service(run_id=run_id, worker=self.request.hostname or "")
    if outcome.retry_in is not None:
        # Another worker holds the run's lease; look again once it would have lapsed. Unbounded on purpose:
        # the run ends when that worker finishes it or dies.
        raise self.retry(countdown=outcome.retry_in, max_retries=None)
    return outcome.state
