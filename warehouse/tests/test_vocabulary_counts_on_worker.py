"""Concept counts are computed by the site's own Celery worker (queue site.<key>), queued by the command, each with
its cell key made from the site's record keys."""

from __future__ import annotations

import time
from io import StringIO
from typing import Any

import pytest
from django.core.management import call_command

from disclosure.cellkey import record_key
from disclosure.record_keys import record_key_secret, record_keys_rebuild
from warehouse.models import ConceptCount
from worker.tests.conftest import start_worker  # noqa: F401  (the real worker process fixture)
from worker.tests.helpers import make_source

pytestmark = pytest.mark.django_db(transaction=True)

GI_BLEED = 192671


def test_refresh_command_queues_the_counts_for_the_sites_worker_which_stores_aggregates(
    start_worker: Any,  # noqa: F811
    cdm_gibleed_pg: Any,
) -> None:
    source = make_source(cdm_gibleed_pg)
    # Other tests' sources share this warehouse (and its key table) under other keys: key it with this site's.
    record_keys_rebuild(cdm_gibleed_pg.engine, source=source)
    out = StringIO()
    call_command("refresh_concept_counts", source=source.key, stdout=out)
    assert "queued" in out.getvalue()
    assert not ConceptCount.objects.filter(source=source).exists()  # nobody consumes site.<key> yet

    start_worker(f"site.{source.key}")
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline and not ConceptCount.objects.filter(source=source).exists():
        time.sleep(0.3)
    bleed = ConceptCount.objects.get(source=source, concept_id=GI_BLEED)
    assert (bleed.record_count, bleed.person_count) == (479, 479)
    secret = record_key_secret(source.key)
    persons = cdm_gibleed_pg.engine.fetchall(
        "SELECT DISTINCT person_id FROM gibleed.condition_occurrence WHERE condition_concept_id = %(id)s",
        {"id": GI_BLEED},
    )
    key = sum(record_key(secret, int(person)) for (person,) in persons) % 256
    assert (bleed.record_key, bleed.person_key) == (key, key)  # one record per person: the same cell
    assert ConceptCount.objects.filter(source=source).count() > 100


def test_refresh_command_of_an_unknown_source_fails_with_a_message() -> None:
    from django.core.management.base import CommandError

    with pytest.raises(CommandError, match="no source with key 'nowhere'"):
        call_command("refresh_concept_counts", source="nowhere")
