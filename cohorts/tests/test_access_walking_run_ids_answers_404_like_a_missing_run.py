"""Run ids are sequential, so a stranger can walk them: every URL of a count answers somebody who may not see it
exactly as it answers for a count that does not exist — same status, same body — on the pages and in the API.

alice counts in her project; charlie, an approved researcher of no project, walks the ids.
"""

from __future__ import annotations

from typing import Any

import pytest
from django.db.models import Max
from django.test import Client
from django.urls import reverse
from rest_framework.test import APIClient

from accounts.api.tokens import token_create
from cohorts.definitions.services import definition_create, definition_share
from cohorts.runs.models import RunRequest
from cohorts.tests.expressions import EXPRESSION
from cohorts.tests.runs import count_request

pytestmark = pytest.mark.django_db


@pytest.fixture
def alices_counts(alice: Any, project: Any, source: Any) -> list[RunRequest]:
    source.fingerprint = "f" * 64
    source.save(update_fields=["fingerprint"])
    definition = definition_create(owner=alice, name="Alice's cohort", expression=EXPRESSION, project=project)
    definition_share(definition=definition, by=alice, to_project=project)
    return [count_request(definition.latest_version(), alice, {source: persons}) for persons in (7, 120, 4500)]


def _answers(browser: Client, api: APIClient, pk: int) -> list[tuple[int, bytes]]:
    return [
        (response.status_code, response.content)
        for response in (
            browser.get(reverse("cohorts:run_detail", args=[pk])),
            browser.get(reverse("cohorts:run_status", args=[pk])),
            browser.get(reverse("cohorts:run_table_csv", args=[pk, "sites"])),
            browser.post(reverse("cohorts:run_cancel", args=[pk])),
            api.get(reverse("api:run-detail", args=[pk])),
            api.post(reverse("api:run-cancel", args=[pk])),
        )
    ]


def test_charlie_walking_the_ids_gets_what_a_missing_count_gets(alice, charlie, alices_counts):
    browser = Client()
    browser.force_login(charlie)
    api = APIClient()
    api.credentials(HTTP_AUTHORIZATION=f"Token {token_create(user=charlie, name='walker', days=30).secret}")
    missing = RunRequest.objects.aggregate(top=Max("pk"))["top"] + 1000
    expected = _answers(browser, api, missing)
    assert {status for status, _ in expected} == {404}

    for request in alices_counts:
        assert _answers(browser, api, request.pk) == expected, request.pk


def test_the_owner_still_reads_each_of_them(alice, alices_counts):
    browser = Client()
    browser.force_login(alice)
    for request in alices_counts:
        assert browser.get(reverse("cohorts:run_status", args=[request.pk])).status_code == 200
