"""The lifecycle every site job shares (``jobs.lifecycle``), on a concrete job (a count's ``CohortRun``): one holder
at a time, taken over only once its lease has lapsed, the outcome recorded by the current holder only."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.utils import timezone

from accounts.tests.factories import SourceFactory
from cohorts.definitions.services import definition_create
from cohorts.runs.choices import RunKind
from cohorts.runs.models import CohortRun
from cohorts.tests.expressions import EXPRESSION
from jobs.choices import JobState
from jobs.lifecycle import job_cancel, job_claim, job_finish, job_give_up, job_release, job_renew
from worker.tests.helpers import make_user

pytestmark = pytest.mark.django_db

LEASE = timedelta(minutes=5)


@pytest.fixture
def job() -> CohortRun:
    user = make_user()
    definition = definition_create(owner=user, name="lifecycle", expression=EXPRESSION)
    return CohortRun.objects.create(
        version=definition.latest_version(),
        source=SourceFactory(key="lifecycle"),
        kind=RunKind.COUNT,
        cache_key="lifecycle",
        source_fingerprint="f" * 64,
        requested_by=user,
    )


def fresh(job: CohortRun) -> CohortRun:
    job.refresh_from_db()
    return job


def lapse(job: CohortRun) -> None:
    CohortRun.objects.filter(pk=job.pk).update(lease_expires_at=timezone.now() - timedelta(seconds=1))


def test_one_worker_holds_a_job_until_its_lease_lapses_then_another_takes_it_over(job: CohortRun) -> None:
    first = job_claim(CohortRun, job.pk, lease=LEASE, worker="one")
    assert first and fresh(job).state == JobState.RUNNING and job.attempts == 1 and job.worker == "one"
    assert job_claim(CohortRun, job.pk, lease=LEASE, worker="two") is None
    assert job_renew(CohortRun, job.pk, first, lease=LEASE)

    lapse(job)
    second = job_claim(CohortRun, job.pk, lease=LEASE, worker="two")
    assert second and second != first
    assert fresh(job).attempts == 2 and job.worker == "two"
    # The overtaken worker records nothing, renews nothing; the holder does.
    assert not job_renew(CohortRun, job.pk, first, lease=LEASE)
    assert not job_finish(CohortRun, job.pk, first, JobState.FAILED, error="late")
    assert job_finish(CohortRun, job.pk, second, JobState.SUCCEEDED)
    assert fresh(job).state == JobState.SUCCEEDED and job.error == "" and job.lease_expires_at is None
    # Final is absorbing.
    lapse(job)
    assert job_claim(CohortRun, job.pk, lease=LEASE) is None


def test_a_released_job_is_claimed_again_at_once_and_given_up_only_when_nobody_holds_it(job: CohortRun) -> None:
    token = job_claim(CohortRun, job.pk, lease=LEASE)
    assert token
    assert not job_give_up(CohortRun, job.pk, error="unreachable")  # a live lease: its holder may still succeed
    job_release(CohortRun, job.pk, token)
    again = job_claim(CohortRun, job.pk, lease=LEASE)
    assert again and again != token
    job_release(CohortRun, job.pk, again)
    assert job_give_up(CohortRun, job.pk, error="unreachable")
    assert fresh(job).state == JobState.FAILED and job.error == "unreachable"


def test_a_queued_job_is_cancelled_at_once_a_running_one_is_asked_to_stop(job: CohortRun) -> None:
    job_cancel(CohortRun, job.pk)
    assert fresh(job).state == JobState.CANCELLED and job.cancel_requested and job.finished_at is not None
    assert job_claim(CohortRun, job.pk, lease=LEASE) is None

    CohortRun.objects.filter(pk=job.pk).update(state=JobState.QUEUED, cancel_requested=False, finished_at=None)
    token = job_claim(CohortRun, job.pk, lease=LEASE)
    assert token
    job_cancel(CohortRun, job.pk)
    assert fresh(job).state == JobState.RUNNING and job.cancel_requested
    assert job_finish(CohortRun, job.pk, token, JobState.CANCELLED)
    assert fresh(job).state == JobState.CANCELLED
