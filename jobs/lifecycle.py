"""The lifecycle of a site job (``jobs.models.SiteJob``): claim, renew, release, cancel, finish, give up.

Concurrency invariants, the same for every kind of job:
- A job is claimed by a conditional update: queued → running, or running with a lapsed lease → running with a new
  lease (taken over from a worker that died or lost its connection). "Another worker got there first" is a normal
  outcome (no token), never an error.
- The holder renews its lease while it works; only the holder of the current lease token finishes the job, so a
  job taken over has exactly one outcome.
- A holder that cannot reach the site releases its lease (it lapses now), so that the task's retry claims the job
  at once; once the retries are exhausted the job is given up: failed, unless someone holds a live lease on it.
- Cancelling a queued job ends it at once; a running one is flagged and its holder stops and records it.
"""

from __future__ import annotations

import uuid
from datetime import timedelta
from typing import Any

from django.db.models import F, Q
from django.utils import timezone

from jobs.choices import ACTIVE_STATES, JobState
from jobs.models import SiteJob


def job_claim(model: type[SiteJob], pk: int, *, lease: timedelta, worker: str = "", **conditions: Any) -> str | None:
    """Claim job ``pk`` for ``lease``; returns the lease token, or None when it is not claimable (final, held by a
    live lease, cancelled while queued, or not matching the further lookups in ``conditions``)."""
    token = uuid.uuid4().hex
    now = timezone.now()
    manager = model._default_manager
    held = {"lease_token": token, "lease_expires_at": now + lease, "attempts": F("attempts") + 1, "worker": worker}
    claimed = manager.filter(pk=pk, state=JobState.QUEUED, cancel_requested=False, **conditions).update(
        state=JobState.RUNNING, started_at=now, **held
    )
    if not claimed:
        claimed = manager.filter(pk=pk, state=JobState.RUNNING, lease_expires_at__lt=now, **conditions).update(**held)
    return token if claimed else None


def job_renew(model: type[SiteJob], pk: int, token: str, *, lease: timedelta, **fields: Any) -> bool:
    """Extend the holder's lease (and record ``fields``, e.g. progress); False when the lease is no longer its own."""
    return bool(
        model._default_manager.filter(pk=pk, lease_token=token, state=JobState.RUNNING).update(
            lease_expires_at=timezone.now() + lease, **fields
        )
    )


def job_record(model: type[SiteJob], pk: int, token: str, **fields: Any) -> bool:
    """Record ``fields`` (progress) on the job while the caller holds its lease."""
    return bool(model._default_manager.filter(pk=pk, lease_token=token).update(**fields))


def job_release(model: type[SiteJob], pk: int, token: str) -> None:
    """Give the lease back (the site is unreachable): the task's retry may claim the job at once."""
    model._default_manager.filter(pk=pk, lease_token=token).update(lease_expires_at=timezone.now())


def job_finish(model: type[SiteJob], pk: int, token: str, state: str, **fields: Any) -> bool:
    """Record the outcome, only by the holder of the current lease; False when the job is no longer its own."""
    return bool(
        model._default_manager.filter(pk=pk, state=JobState.RUNNING, lease_token=token).update(
            state=state, finished_at=timezone.now(), lease_expires_at=None, **fields
        )
    )


def job_cancel_requested(model: type[SiteJob], pk: int) -> bool:
    return model._default_manager.filter(pk=pk, cancel_requested=True).exists()


def job_cancel(model: type[SiteJob], pk: int, *, error: str = "Cancelled.") -> None:
    """Cancel job ``pk``: a queued job is cancelled at once, a running one is flagged for its holder, which stops
    and records the cancellation; a final job is left as it is."""
    manager = model._default_manager
    manager.filter(pk=pk, state=JobState.QUEUED).update(
        state=JobState.CANCELLED, cancel_requested=True, finished_at=timezone.now(), error=error
    )
    manager.filter(pk=pk, state=JobState.RUNNING).update(cancel_requested=True)


def job_give_up(model: type[SiteJob], pk: int, *, error: str) -> bool:
    """Fail a job whose retries are exhausted (its site stayed unreachable), whoever held it last; only while nobody
    holds a live lease on it: another worker may have reached the site meanwhile. False when nothing changed."""
    now = timezone.now()
    return bool(
        model._default_manager.filter(
            Q(lease_expires_at__isnull=True) | Q(lease_expires_at__lt=now), pk=pk, state__in=ACTIVE_STATES
        ).update(state=JobState.FAILED, finished_at=now, lease_expires_at=None, error=error)
    )


def job_enqueue_failed(model: type[SiteJob], pk: int, *, error: str) -> bool:
    """A job whose message never reached the broker: failed while still queued, so that nobody waits for it."""
    return bool(
        model._default_manager.filter(pk=pk, state=JobState.QUEUED).update(
            state=JobState.FAILED, finished_at=timezone.now(), error=error
        )
    )
