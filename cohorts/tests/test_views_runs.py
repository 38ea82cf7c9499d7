"""Count pages: starting a count, its status, cancelling, CSV — with the access and refusal rules.

Runs here are written directly in their final or queued states (no worker): the end-to-end flow with a real
worker is ``worker/tests/test_browser_count_flow.py``.
"""

from __future__ import annotations

import csv
import io
from typing import Any

import pytest
from celery import Celery, current_app
from django.test import Client
from django.urls import reverse

from cohorts.definitions.services import definition_create, definition_share
from cohorts.runs.choices import RunKind
from cohorts.runs.models import CohortRun, RunRequest
from cohorts.tests.expressions import EXPRESSION
from cohorts.tests.runs import finished_run, with_cell_keys
from jobs.choices import JobState

pytestmark = pytest.mark.django_db


def client_for(user: Any) -> Client:
    client = Client()
    client.force_login(user)
    return client


@pytest.fixture
def ready_source(source) -> Any:
    source.fingerprint = "f" * 64
    source.save(update_fields=["fingerprint"])
    return source


@pytest.fixture
def second_site(project, other_source) -> Any:
    """A second site of the project: a result shows a site only to those who may count on it there."""
    project.sources.add(other_source)
    return other_source


@pytest.fixture
def definition(alice, project, bob_member, ready_source) -> Any:
    definition = definition_create(owner=alice, name="Type 2 diabetes", expression=EXPRESSION, project=project)
    definition_share(definition=definition, by=alice, to_project=project)
    return definition


def make_request(definition: Any, user: Any, source: Any, *, state: str, persons: int | None = None) -> RunRequest:
    """A request with one run in ``state`` (and a result when ``persons`` is given), as a worker would leave it."""
    version = definition.latest_version()
    request = RunRequest.objects.create(
        definition=version.definition, version=version, kind=RunKind.DEMOGRAPHICS, requested_by=user
    )
    result = None
    if persons is not None:
        result = {
            "persons": persons,
            "rows": persons,
            "inclusion_rules": [],
            "attrition": [{"name": "rule one", "persons": persons}],
            "demographics": {
                "persons": persons,
                "age_pyramid": [
                    {"age_group": "40-49", "gender_concept_id": 8532, "gender": "FEMALE", "persons": persons}
                ],
                "gender": [{"concept_id": 8532, "name": "FEMALE", "persons": persons}],
                "race": [],
                "ethnicity": [],
                "index_year": [{"year": 2020, "persons": persons}],
                "top_at_index": {"conditions": [{"concept_id": 201826, "name": "=HYPERLINK()", "persons": persons}]},
            },
        }
    run = CohortRun.objects.create(
        version=version,
        source=source,
        kind=RunKind.DEMOGRAPHICS,
        cache_key=f"k{RunRequest.objects.count()}",
        source_fingerprint=source.fingerprint,
        requested_by=user,
        state=state,
        result=None if result is None else with_cell_keys(result),
    )
    request.runs.add(run)
    return request


def test_an_outsider_gets_404_on_every_page_of_a_count(alice, charlie, definition, ready_source):
    request = make_request(definition, alice, ready_source, state=JobState.QUEUED)
    client = client_for(charlie)
    for name in ("run_detail", "run_status"):
        assert client.get(reverse(f"cohorts:{name}", args=[request.pk])).status_code == 404
    assert client.get(reverse("cohorts:run_table_csv", args=[request.pk, "sites"])).status_code == 404
    assert client.post(reverse("cohorts:run_cancel", args=[request.pk])).status_code == 404
    response = client.post(reverse("cohorts:run_create", args=[definition.pk]), {"sources": [ready_source.pk]})
    assert response.status_code == 404
    assert RunRequest.objects.count() == 1
    assert CohortRun.objects.get().state == JobState.QUEUED


def test_status_shows_small_counts_as_under_the_threshold_with_the_rule(alice, definition, ready_source):
    request = make_request(definition, alice, ready_source, state=JobState.SUCCEEDED, persons=7)
    response = client_for(alice).get(reverse("cohorts:run_status", args=[request.pk]))
    assert response.status_code == 200
    assert response["Cache-Control"].startswith("max-age=0")
    status = response.json()
    (site,) = status["sites"]
    assert status["finished"] and not status["can_cancel"]
    assert site["persons"] == {"value": None, "display": "<10", "hidden": True}
    assert site["privacy"]["description"] == "perturbed (at most ±3), counts under 10 hidden"


@pytest.mark.parametrize("table", ["sites", "attrition", "age_pyramid", "gender", "index_year", "top_conditions"])
def test_csv_holds_the_protected_numbers_only(alice, definition, ready_source, table):
    request = make_request(definition, alice, ready_source, state=JobState.SUCCEEDED, persons=7)
    response = client_for(alice).get(reverse("cohorts:run_table_csv", args=[request.pk, table]))
    assert response.status_code == 200
    assert response["Content-Type"].startswith("text/csv")
    body = response.content.decode()
    if table == "sites":
        assert "<10" in body
    else:
        # No breakdown without a shown total: the table says so instead of listing buckets.
        assert "No breakdown: the cohort's count is under the site's threshold" in body
    assert ",7," not in body and not body.rstrip().endswith(",7")
    if table == "top_conditions":
        # A shown cohort lists its top concepts: the name is there, as text only.
        shown = make_request(definition, alice, ready_source, state=JobState.SUCCEEDED, persons=70)
        body = client_for(alice).get(reverse("cohorts:run_table_csv", args=[shown.pk, table])).content.decode()
        assert "'=HYPERLINK()" in body  # no formula reaches a spreadsheet


def test_csv_of_an_unknown_table_is_404(alice, definition, ready_source):
    request = make_request(definition, alice, ready_source, state=JobState.SUCCEEDED, persons=70)
    assert client_for(alice).get(reverse("cohorts:run_table_csv", args=[request.pk, "persons"])).status_code == 404


def test_the_run_page_loads_plotly_from_the_portal_and_no_inline_script(alice, definition, ready_source):
    request = make_request(definition, alice, ready_source, state=JobState.SUCCEEDED, persons=70)
    body = client_for(alice).get(reverse("cohorts:run_detail", args=[request.pk])).content.decode()
    assert reverse("cohorts:plotly_js") in body
    assert "cdn" not in body.lower()
    # Every script tag has a src: a strict CSP (script-src 'self') can be added without breaking the page.
    assert body.count("<script") == body.count("<script src=")
    asset = Client().get(reverse("cohorts:plotly_js"))
    assert asset.status_code == 200
    assert b"plotly" in b"".join(asset.streaming_content)[:2000].lower()


def test_a_member_sees_a_shared_count_but_only_its_requester_cancels_it(alice, bob, definition, ready_source):
    request = make_request(definition, alice, ready_source, state=JobState.QUEUED)
    assert client_for(bob).get(reverse("cohorts:run_status", args=[request.pk])).json()["can_cancel"] is False
    assert client_for(bob).post(reverse("cohorts:run_cancel", args=[request.pk])).status_code == 403
    assert CohortRun.objects.get().state == JobState.QUEUED

    response = client_for(alice).post(reverse("cohorts:run_cancel", args=[request.pk]), HTTP_ACCEPT="application/json")
    assert response.status_code == 200
    assert response.json()["cancelled"] is True
    assert CohortRun.objects.get().state == JobState.CANCELLED


def test_count_with_a_dead_broker_answers_503_and_writes_nothing(alice, definition, ready_source, monkeypatch):
    # Celery prefers the CELERY_BROKER_URL environment variable to any app's own broker: without it here.
    monkeypatch.delenv("CELERY_BROKER_URL", raising=False)
    live = current_app._get_current_object()
    dead = Celery("soyang-dead-broker-view", broker="redis://127.0.0.1:1/0")
    dead.conf.broker_connection_timeout = 1
    dead.set_current()
    try:
        client = client_for(alice)
        url = reverse("cohorts:run_create", args=[definition.pk])
        page = client.post(url, {"sources": [ready_source.pk], "kind": "count"})
        api = client.post(url, {"sources": [ready_source.pk], "kind": "count"}, HTTP_ACCEPT="application/json")
    finally:
        live.set_current()
    assert page.status_code == 503
    assert "not reachable" in page.content.decode()
    assert api.status_code == 503
    assert "not reachable" in api.json()["error"]
    assert not RunRequest.objects.exists()
    assert not CohortRun.objects.exists()


def test_count_over_the_concurrent_limit_answers_429_with_the_message(alice, definition, ready_source, settings):
    settings.SOYANG_MAX_CONCURRENT_RUNS = 0
    response = client_for(alice).post(
        reverse("cohorts:run_create", args=[definition.pk]), {"sources": [ready_source.pk], "kind": "count"}
    )
    assert response.status_code == 429
    assert "the limit is 0" in response.content.decode()
    assert not RunRequest.objects.exists()


def test_count_on_a_site_outside_the_project_is_refused(alice, definition, other_source):
    other_source.fingerprint = "e" * 64
    other_source.save(update_fields=["fingerprint"])
    response = client_for(alice).post(
        reverse("cohorts:run_create", args=[definition.pk]), {"sources": [other_source.pk], "kind": "count"}
    )
    assert response.status_code == 400
    assert not RunRequest.objects.exists()


def test_detail_offers_the_project_sites_to_those_who_may_run(alice, charlie, definition, ready_source, other_source):
    response = client_for(alice).get(reverse("cohorts:definition_detail", args=[definition.pk]))
    offered = list(response.context["run_form"].fields["sources"].queryset)
    assert offered == [ready_source]


def test_every_look_at_a_result_and_every_download_is_in_the_audit_log(alice, definition, ready_source):
    from audit.models import AuditEvent

    request = make_request(definition, alice, ready_source, state=JobState.SUCCEEDED, persons=70)
    client = client_for(alice)
    assert client.get(reverse("cohorts:run_detail", args=[request.pk])).status_code == 200
    assert client.get(reverse("cohorts:run_table_csv", args=[request.pk, "gender"])).status_code == 200
    viewed = AuditEvent.objects.get(action="view_result", actor=alice)
    exported = AuditEvent.objects.get(action="export", actor=alice)
    assert viewed.source_key == exported.source_key == ready_source.key
    assert viewed.detail == {"request": request.pk}
    assert exported.detail == {"request": request.pk, "table": "gender"}


def add_site_run(request: RunRequest, source: Any, user: Any, *, persons: int, race: list[tuple[int, int]]) -> None:
    """A second site's succeeded demographics run on ``request``: race buckets (concept id, persons)."""
    source.fingerprint = "e" * 64
    source.save(update_fields=["fingerprint"])
    demographics = {
        "persons": persons,
        "age_pyramid": [{"age_group": "40-49", "gender_concept_id": 8532, "gender": "FEMALE", "persons": persons}],
        "gender": [{"concept_id": 8532, "name": "FEMALE", "persons": persons}],
        "race": [{"concept_id": concept_id, "name": f"race {concept_id}", "persons": n} for concept_id, n in race],
        "ethnicity": [],
        "index_year": [{"year": 2020, "persons": persons}],
        "top_at_index": {"conditions": [{"concept_id": 201826, "name": "=HYPERLINK()", "persons": persons}]},
    }
    run = finished_run(
        request.version,
        source,
        user,
        kind=RunKind.DEMOGRAPHICS,
        cache_key=f"k{CohortRun.objects.count()}-second",
        result={
            "persons": persons,
            "rows": persons,
            "inclusion_rules": [],
            "attrition": [],
            "demographics": demographics,
        },
    )
    request.runs.add(run)


def test_status_withholds_the_merged_demographics_when_a_site_is_hidden(alice, definition, ready_source, second_site):
    request = make_request(definition, alice, ready_source, state=JobState.SUCCEEDED, persons=7)
    add_site_run(request, second_site, alice, persons=60, race=[(8527, 45), (8515, 15)])
    status = client_for(alice).get(reverse("cohorts:run_status", args=[request.pk])).json()
    # The merged total is "60 + <10", not shown: no merged breakdown, and the result says so.
    assert status["total"]["display"] == "60 + <10" and status["total"]["value"] is None
    assert "merged_demographics" not in status and status["merged_breakdown_withheld"] is True
    # Timestamps are left out: "…23.686740" holds "67" by chance.
    assert "67" not in str(_without_timestamps(status))


def test_a_single_site_result_has_no_merged_demographics(alice, definition, ready_source):
    request = make_request(definition, alice, ready_source, state=JobState.SUCCEEDED, persons=70)
    assert "merged_demographics" not in client_for(alice).get(reverse("cohorts:run_status", args=[request.pk])).json()


@pytest.mark.parametrize("table", ["age_pyramid", "gender", "race", "index_year", "top_conditions"])
def test_csv_adds_the_merged_rows_as_all_sites(alice, definition, ready_source, second_site, table):
    request = make_request(definition, alice, ready_source, state=JobState.SUCCEEDED, persons=7)
    add_site_run(request, second_site, alice, persons=60, race=[(8527, 45), (8515, 15)])
    body = client_for(alice).get(reverse("cohorts:run_table_csv", args=[request.pk, table])).content.decode()
    merged_rows = [line for line in body.splitlines() if line.startswith("all sites,")]
    assert merged_rows
    # A site's total is hidden, so the merged total is too: one "all sites" row says there is no breakdown.
    (merged_row,) = merged_rows
    assert merged_row.endswith(",No breakdown of all sites together: a site's count is under its threshold")
    assert not any(char.isdigit() for char in merged_row)
    assert ",67," not in body and ",7," not in body


def _without_timestamps(value: Any) -> Any:
    """``value`` (a decoded JSON document) without its ``*_at`` fields."""
    if isinstance(value, dict):
        return {key: _without_timestamps(item) for key, item in value.items() if not key.endswith("_at")}
    if isinstance(value, list):
        return [_without_timestamps(item) for item in value]
    return value


@pytest.mark.parametrize("table", ["sites", "attrition"])
def test_csv_writes_shown_counts_as_numbers_a_spreadsheet_sums(alice, definition, ready_source, table):
    request = make_request(definition, alice, ready_source, state=JobState.SUCCEEDED, persons=5000)
    status = client_for(alice).get(reverse("cohorts:run_status", args=[request.pk])).json()
    shown = status["sites"][0]["persons"]["value"] if table == "sites" else status["sites"][0]["attrition"][0]["value"]
    body = client_for(alice).get(reverse("cohorts:run_table_csv", args=[request.pk, table])).content.decode()
    header, first, *_ = list(csv.reader(io.StringIO(body)))
    # "4,998" would be text to a spreadsheet; the released number is written as digits.
    assert first[header.index("persons")] == str(shown) and shown > 4990
