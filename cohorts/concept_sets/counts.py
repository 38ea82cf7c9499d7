"""The record and person counts per concept that the concept-set pages show beside each concept: computed at the
site by its worker (``warehouse.vocabulary.counts`` does the counting), queued here on the site's queue.

Each count is stored with its cell key, computed at the site from the site's record keys
(``disclosure.record_keys``), so that the portal perturbs it like every other count it releases
(``selectors.concept_counts_for_user``).
"""

from __future__ import annotations

import logging

from disclosure.record_keys import RecordKeyError, record_keys_ensure, record_keys_fill
from jobs.enqueue import job_send
from jobs.queues import site_queue
from warehouse.models import Source
from warehouse.services import source_connect
from warehouse.vocabulary.counts import UnkeyedPersons, concept_counts_refresh

logger = logging.getLogger(__name__)

#: The worker's task that counts at one site (sent by name: cohorts does not import the worker package).
CONCEPT_COUNTS_TASK = "worker.tasks.concept_counts_refresh"


def concept_counts_enqueue(*, source: Source) -> str:
    """Queue the refresh of ``source``'s counts for its worker, the process allowed to reach its database; returns
    the task's id."""
    return str(job_send(CONCEPT_COUNTS_TASK, queue=site_queue(source.key), kwargs={"source_id": source.pk}).id)


def concept_counts_refresh_at_site(*, source_id: int) -> int:
    """Count at the site, in this process (the site's worker, or the operator's ``--now``); returns the concepts
    counted. The worker calls this service of the app that shows the counts, never the warehouse directly.

    The record-key table is made (or completed) on a writable connection; the counting itself runs on a read-only
    one, as it always did. Persons left without a key (the CDM reloaded since) are keyed and the site counted
    again, once; if some are still missing, ``RecordKeyError`` and the stored counts stay as they were.
    """
    source = Source.objects.get(pk=source_id)
    with source_connect(source) as engine:
        record_keys = record_keys_ensure(engine, source=source)
    try:
        return _count(source, record_keys)
    except UnkeyedPersons:
        with source_connect(source) as engine:
            keyed = record_keys_fill(engine, source=source)
        logger.info("source %s: %s persons keyed after a reload of the CDM; concepts counted again", source.key, keyed)
    try:
        return _count(source, record_keys)
    except UnkeyedPersons as exc:
        raise RecordKeyError(f"{exc} Keying the site's persons did not help.") from exc


def _count(source: Source, record_keys: str) -> int:
    with source_connect(source, read_only=True) as engine:
        return concept_counts_refresh(source=source, engine=engine, record_keys=record_keys)
