"""Handing a job to a worker: a message sent by task name (``jobs`` knows no task, and no app imports ``worker``),
on the queue of the site that does the work, once the transaction that wrote the job has committed.

After the commit, never before: a worker that received the message before the commit would not find the row.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any

from celery import current_app
from celery.result import AsyncResult
from django.db import transaction

from jobs.errors import BrokerUnreachable

logger = logging.getLogger(__name__)

#: A broker that blinks is retried briefly while the caller waits; one that stays away is the caller's to handle.
PUBLISH_RETRY_POLICY = {"max_retries": 2, "interval_start": 0.2, "interval_step": 0.5}


def broker_check(timeout: float = 2.0) -> None:
    """Fail fast with BrokerUnreachable when the broker does not answer, so that a caller writes nothing then."""
    try:
        with current_app.connection_for_write() as connection:
            connection.ensure_connection(max_retries=1, timeout=timeout)
    except Exception as exc:  # kombu raises several transport-specific errors
        raise BrokerUnreachable(str(exc) or type(exc).__name__) from exc


def job_send(task_name: str, *, queue: str, kwargs: dict[str, Any], **options: Any) -> AsyncResult:
    """Send the task now, with Celery's ``options`` (``expires``, ``retry``…). Raises the transport's error when the
    broker does not answer."""
    return current_app.send_task(task_name, kwargs=kwargs, queue=queue, **options)


def job_enqueue_on_commit(
    task_name: str, *, queue: str, kwargs: dict[str, Any], on_failure: Callable[[], object] | None = None
) -> None:
    """Send the task once the current transaction commits (at once outside one). When the broker went away
    meanwhile, the failure is logged and ``on_failure`` records it on the job (by default the job stays queued,
    visible to the people who wait for it)."""

    def send() -> None:
        try:
            job_send(task_name, queue=queue, kwargs=kwargs, retry=True, retry_policy=PUBLISH_RETRY_POLICY)
        except Exception:  # the broker went away between the caller's write and the commit
            logger.exception("could not enqueue %s %s", task_name, kwargs)
            if on_failure is not None:
                on_failure()

    transaction.on_commit(send)
