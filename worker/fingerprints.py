"""The periodic fingerprint check: each active site's worker reads its CDM's fingerprint every few minutes.

A cached count is served only while its site confirmed its fingerprint recently
(``SOYANG_FINGERPRINT_MAX_AGE_SECONDS``, ``cohorts.runs.services``); counts confirm it, and so does this check on
a site nobody counts on, so that a reload by the hospital's ETL is seen within one interval even when no count
runs, and a site whose worker is down stops having its old results served. The portal cannot read a site's
CDM itself: the beat task puts one check on each site's queue (as the results prune does, ``worker.retention``).
"""

from __future__ import annotations

from django.conf import settings

from jobs.enqueue import job_send
from jobs.queues import site_queue
from warehouse.models import Source

CHECK_TASK_NAME = "worker.tasks.source_fingerprint_check"


def fingerprint_checks_enqueue() -> int:
    """Celery beat, on the portal: one fingerprint check on the queue of each active site that has data (loaded
    or attached). Returns how many were sent. A check not started within one interval (the site's worker is
    down) expires, so a site back after an outage runs one check rather than a backlog."""
    interval = int(settings.SOYANG_FINGERPRINT_CHECK_INTERVAL_SECONDS)
    sent = 0
    for source in Source.objects.filter(is_active=True).exclude(fingerprint="").only("pk", "key").order_by("key"):
        job_send(CHECK_TASK_NAME, kwargs={"source_id": source.pk}, queue=site_queue(source.key), expires=interval)
        sent += 1
    return sent
