"""The builder's Count counts the working draft without saving a version, with every guarantee of a count of a
saved version: who may count (editors only, on the definition's project's sites), the result cache, the audit
events, one site job per site; and draft counts do not pile up (a newer one supersedes the one in flight).

People (accounts.tests.fixtures): alice owns the project and the definition, bob is an approved member who sees
the definition shared with the project (view and run, not change), charlie is outside it.
"""

from __future__ import annotations

import copy
import json
from typing import Any

import pytest
from django.test import Client
from django.urls import reverse
from django.utils import timezone

from audit.models import AuditEvent
from cohorts.definitions.models import CohortDefinitionVersion
from cohorts.definitions.services import definition_create, definition_save_version, definition_share
from cohorts.expression import ExpressionError
from cohorts.expression.hashing import expression_hash
from cohorts.runs import selectors as run_selectors
from cohorts.runs.cache_keys import run_cache_key
from cohorts.runs.choices import RunKind
from cohorts.runs.errors import DraftNotAllowed, SourceNotReady
from cohorts.runs.models import CohortRun, RunRequest
from cohorts.runs.services import run_request_create, run_request_create_for_draft
from cohorts.tests.expressions import EXPRESSION
from cohorts.tests.runs import with_cell_keys
from jobs.choices import JobState

pytestmark = pytest.mark.django_db


def client_for(user: Any) -> Client:
    client = Client()
    client.force_login(user)
    return client


def draft(pad: int) -> dict[str, Any]:
    """The saved expression with one change, as the builder would post it after an edit."""
    expression = copy.deepcopy(EXPRESSION)
    expression["CollapseSettings"] = {"CollapseType": "ERA", "EraPad": pad}
    return expression


def count_draft(user: Any, definition: Any, expression: Any, sources: list[Any]) -> Any:
    return client_for(user).post(
        reverse("cohorts:builder_count", args=[definition.pk]),
        json.dumps({"expression": expression, "sources": [s.pk for s in sources]}),
        content_type="application/json",
        HTTP_ACCEPT="application/json",
    )


@pytest.fixture
def ready_source(source) -> Any:
    # Its worker confirmed the fingerprint a moment ago: results computed on it may be served from the cache.
    source.fingerprint = "f" * 64
    source.fingerprint_checked_at = timezone.now()
    source.save(update_fields=["fingerprint", "fingerprint_checked_at"])
    return source


@pytest.fixture
def definition(alice, project, bob_member, ready_source) -> Any:
    definition = definition_create(owner=alice, name="Type 2 diabetes", expression=EXPRESSION, project=project)
    definition_share(definition=definition, by=alice, to_project=project)
    return definition


def test_counting_a_draft_saves_no_version_and_runs_the_draft_as_posted(alice, definition, ready_source):
    versions = CohortDefinitionVersion.objects.count()
    response = count_draft(alice, definition, draft(30), [ready_source])

    assert response.status_code == 201, response.content
    answer = response.json()
    assert CohortDefinitionVersion.objects.count() == versions
    request = RunRequest.objects.get(pk=answer["request"])
    assert (request.definition, request.version, request.kind) == (definition, None, RunKind.COUNT)
    (run,) = request.runs.all()
    assert (run.version, run.expression, run.state) == (None, draft(30), JobState.QUEUED)
    assert run.counted_expression == draft(30)
    assert run.cache_key == run_cache_key(
        expression_sha=expression_hash(draft(30)),
        source_key=ready_source.key,
        source_fingerprint=ready_source.fingerprint,
        kind=RunKind.COUNT,
    )
    assert answer["status_url"] == reverse("cohorts:run_status", args=[request.pk])
    assert answer["cancel_url"] == reverse("cohorts:run_cancel", args=[request.pk])
    result = answer["result"]
    assert (result["draft"], result["version"], result["finished"], result["can_cancel"]) == (True, None, False, True)
    assert result["sites"][0]["privacy"]["description"] == "perturbed (at most ±3), counts under 10 hidden"
    event = AuditEvent.objects.filter(action="count").get()
    assert (event.actor, event.object_id, event.source_key) == (alice, str(definition.pk), ready_source.key)
    assert event.detail == {"version": None, "draft": expression_hash(draft(30)), "request": request.pk, "reused": 0}


def test_a_viewer_who_cannot_edit_cannot_count_a_draft(bob, definition, ready_source):
    assert run_selectors.sources_for_user_and_definition(bob, definition).get() == ready_source  # may count it
    response = count_draft(bob, definition, draft(30), [ready_source])
    assert response.status_code == 403
    with pytest.raises(DraftNotAllowed):
        run_request_create_for_draft(user=bob, definition=definition, expression=draft(30), sources=[ready_source])
    assert not RunRequest.objects.exists() and not CohortRun.objects.exists()
    assert not AuditEvent.objects.filter(action="count").exists()


def test_an_outsider_gets_404_as_for_a_definition_that_does_not_exist(charlie, definition, ready_source):
    assert count_draft(charlie, definition, draft(30), [ready_source]).status_code == 404
    assert not RunRequest.objects.exists()


def test_a_site_outside_the_definitions_project_is_refused(alice, definition, ready_source, other_source):
    other_source.fingerprint = "e" * 64
    other_source.save(update_fields=["fingerprint"])
    response = count_draft(alice, definition, draft(30), [ready_source, other_source])
    assert response.status_code == 400
    assert response.json()["errors"][0]["message"] == (
        f"You cannot count this definition on the site(s) {other_source.pk}."
    )
    with pytest.raises(SourceNotReady, match=f"You cannot count this definition on: {other_source.key}."):
        run_request_create_for_draft(
            user=alice, definition=definition, expression=draft(30), sources=[ready_source, other_source]
        )
    assert not RunRequest.objects.exists() and not CohortRun.objects.exists()


def test_an_invalid_draft_gets_the_errors_of_its_blocks_and_starts_nothing(alice, definition, ready_source):
    bad = draft(30)
    bad["PrimaryCriteria"]["CriteriaList"] = []
    response = count_draft(alice, definition, bad, [ready_source])
    assert response.status_code == 400
    errors = response.json()["errors"]
    assert errors and all({"path", "message", "block"} <= set(error) for error in errors)
    assert any(error["block"] == "entry" for error in errors)
    with pytest.raises(ExpressionError):
        run_request_create_for_draft(user=alice, definition=definition, expression=bad, sources=[ready_source])
    assert not RunRequest.objects.exists() and not CohortRun.objects.exists()


def test_a_draft_counted_before_answers_at_once_from_the_cache(alice, definition, ready_source):
    first = count_draft(alice, definition, draft(30), [ready_source]).json()
    (run,) = RunRequest.objects.get(pk=first["request"]).runs.all()
    CohortRun.objects.filter(pk=run.pk).update(
        state=JobState.SUCCEEDED,
        result=with_cell_keys({"persons": 120, "rows": 120, "attrition": [], "fingerprint": ready_source.fingerprint}),
    )

    again = count_draft(alice, definition, draft(30), [ready_source]).json()

    assert again["request"] != first["request"]
    assert list(RunRequest.objects.get(pk=again["request"]).runs.all()) == [run]
    assert CohortRun.objects.count() == 1
    result = again["result"]
    assert result["finished"] and result["total"]["display"] == "120"
    assert result["total_privacy"]["description"] == "perturbed (at most ±3), counts under 10 hidden"
    assert AuditEvent.objects.filter(action="count").order_by("-pk").first().detail["reused"] == 1


def test_a_draft_equal_to_the_latest_version_is_counted_as_that_version(alice, definition, ready_source):
    version = definition.latest_version()
    saved = run_request_create(user=alice, version=version, sources=[ready_source])
    drafted = run_request_create_for_draft(
        user=alice, definition=definition, expression=copy.deepcopy(version.expression), sources=[ready_source]
    )
    assert drafted.version == version and not drafted.is_draft
    assert list(drafted.runs.all()) == list(saved.runs.all())
    assert CohortRun.objects.get().version == version
    assert AuditEvent.objects.filter(action="count").order_by("-pk").first().detail["version"] == version.number


def test_a_new_draft_count_cancels_the_one_still_in_flight(alice, definition, ready_source, settings):
    settings.SOYANG_MAX_CONCURRENT_RUNS = 1  # a superseded draft count does not hold the user's only slot
    first = run_request_create_for_draft(user=alice, definition=definition, expression=draft(1), sources=[ready_source])
    second = run_request_create_for_draft(
        user=alice, definition=definition, expression=draft(2), sources=[ready_source]
    )

    first.refresh_from_db()
    assert first.cancelled_at is not None and second.cancelled_at is None
    assert first.runs.get().state == JobState.CANCELLED
    assert second.runs.get().state == JobState.QUEUED
    event = AuditEvent.objects.get(action="run_cancel")
    assert (event.actor, event.detail) == (alice, {"request": first.pk, "superseded_by": second.pk})


def test_counting_the_same_draft_again_keeps_its_run_going(alice, definition, ready_source):
    first = run_request_create_for_draft(user=alice, definition=definition, expression=draft(1), sources=[ready_source])
    run = first.runs.get()
    CohortRun.objects.filter(pk=run.pk).update(state=JobState.RUNNING)
    second = run_request_create_for_draft(
        user=alice, definition=definition, expression=draft(1), sources=[ready_source]
    )
    run.refresh_from_db()
    assert second.runs.get() == run
    assert (run.state, run.cancel_requested) == (JobState.RUNNING, False)


def test_going_back_to_a_superseded_draft_takes_its_cancellation_back(alice, definition, ready_source):
    first = run_request_create_for_draft(user=alice, definition=definition, expression=draft(1), sources=[ready_source])
    run = first.runs.get()
    CohortRun.objects.filter(pk=run.pk).update(state=JobState.RUNNING)
    run_request_create_for_draft(user=alice, definition=definition, expression=draft(2), sources=[ready_source])
    run.refresh_from_db()
    assert run.cancel_requested  # its worker is asked to stop it

    back = run_request_create_for_draft(user=alice, definition=definition, expression=draft(1), sources=[ready_source])
    run.refresh_from_db()
    assert back.runs.get() == run
    assert (run.state, run.cancel_requested) == (JobState.RUNNING, False)


def test_draft_counts_of_other_definitions_or_users_are_left_alone(alice, bob, definition, project, ready_source):
    other = definition_create(owner=alice, name="Other", expression=EXPRESSION, project=project)
    kept = run_request_create_for_draft(user=alice, definition=other, expression=draft(1), sources=[ready_source])
    saved = run_request_create(user=alice, version=definition.latest_version(), sources=[ready_source])
    run_request_create_for_draft(user=alice, definition=definition, expression=draft(2), sources=[ready_source])
    kept.refresh_from_db()
    saved.refresh_from_db()
    assert kept.cancelled_at is None and saved.cancelled_at is None


def test_a_draft_count_is_its_requesters_alone_and_not_listed(alice, bob, definition, ready_source):
    request = run_request_create_for_draft(
        user=alice, definition=definition, expression=draft(1), sources=[ready_source]
    )
    CohortRun.objects.filter(pk=request.runs.get().pk).update(
        state=JobState.SUCCEEDED,
        result=with_cell_keys({"persons": 120, "rows": 120, "attrition": [], "fingerprint": ready_source.fingerprint}),
    )
    assert client_for(alice).get(reverse("cohorts:run_status", args=[request.pk])).status_code == 200
    page = client_for(alice).get(reverse("cohorts:run_detail", args=[request.pk]))
    assert "Unsaved draft from the builder" in page.content.decode()
    for name in ("run_status", "run_detail"):
        assert client_for(bob).get(reverse(f"cohorts:{name}", args=[request.pk])).status_code == 404
    assert not run_selectors.run_requests_for_user(alice).exists()
    assert run_selectors.latest_counts([definition.pk], user=alice) == {}
    assert run_selectors.latest_counts_per_site(definition, user=alice) == []


def test_a_saved_versions_count_that_reused_a_drafts_run_is_the_definitions_latest(alice, definition, ready_source):
    drafted = run_request_create_for_draft(
        user=alice, definition=definition, expression=draft(5), sources=[ready_source]
    )
    run = drafted.runs.get()
    CohortRun.objects.filter(pk=run.pk).update(
        state=JobState.SUCCEEDED,
        result=with_cell_keys({"persons": 120, "rows": 120, "attrition": [], "fingerprint": ready_source.fingerprint}),
    )
    version = definition_save_version(definition=definition, expression=draft(5), author=alice, note="the draft")
    saved = run_request_create(user=alice, version=version, sources=[ready_source])
    assert saved.runs.get() == run and run.version is None

    (row,) = run_selectors.latest_counts_per_site(definition, user=alice)
    assert (row["version"], row["persons"]["display"]) == (version.number, "120")
    assert run_selectors.latest_counts([definition.pk], user=alice)[definition.pk]["request"] == saved.pk


def test_the_builders_status_wait_answers_with_the_result_once_the_count_is_over(alice, definition, ready_source):
    request = run_request_create_for_draft(
        user=alice, definition=definition, expression=draft(1), sources=[ready_source]
    )
    url = reverse("cohorts:run_status", args=[request.pk])
    client = client_for(alice)
    assert client.get(url, {"wait": "soon"}).json() == {"error": "wait: a number of seconds."}
    assert client.get(url, {"wait": "0.05"}).json()["finished"] is False  # still queued when the wait ends
    CohortRun.objects.filter(pk=request.runs.get().pk).update(
        state=JobState.SUCCEEDED,
        result=with_cell_keys({"persons": 120, "rows": 120, "attrition": [], "fingerprint": ready_source.fingerprint}),
    )
    status = client.get(url, {"wait": "2"}).json()
    assert status["finished"] and status["total"]["display"] == "120"
