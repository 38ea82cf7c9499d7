"""The rules around a request, on a real GiBleed site (PostgreSQL), with the site's projection run in-process.

Who may request, review and see; what an upload must be; what a steward may decide.
"""

from __future__ import annotations

import csv
import io
import json
import re
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from django.core import mail
from django.core.exceptions import PermissionDenied, ValidationError
from django.urls import reverse
from django.utils import timezone

from accounts.choices import Role
from accounts.tests.factories import UserFactory, make_member
from audit.models import AuditEvent
from datasets import services
from datasets.choices import RequestState
from datasets.extraction import zip_members
from datasets.models import DatasetPolicy, DatasetRequest, SiteReview
from datasets.selectors import requests_for_user
from datasets.tests.conftest import (
    PDF,
    SELECTION,
    World,
    build_world,
    create_request,
    files_under,
    pdf_upload,
    request_form_data,
)
from datasets.tests.conftest import signed_in_client as _client
from jobs.choices import JobState

pytestmark = pytest.mark.django_db


@pytest.fixture
def world(cdm_gibleed_pg: Any, oracle_dir: Path, dataset_root: Path) -> World:
    return build_world([cdm_gibleed_pg], oracle_dir)


def _submitted(world: World, requester: Any = None, **fields: Any) -> DatasetRequest:
    request = create_request(world, requester=requester or world.partner, **fields)
    services.request_submit(request=request, user=requester or world.partner)
    return request


def _projected(request: DatasetRequest) -> DatasetRequest:
    for review in request.reviews.all():
        assert services.projection_execute(review_id=review.pk) == JobState.SUCCEEDED
    request.refresh_from_db()
    return request


def test_a_partner_submits_through_the_form_and_the_site_projection_puts_it_under_review(
    world: World, django_capture_on_commit_callbacks: Any
) -> None:
    client = _client(world.partner)
    definition_page = client.get(reverse("cohorts:definition_detail", kwargs={"pk": world.definition.pk}))
    assert reverse("datasets:request_new", kwargs={"pk": world.definition.pk}) in definition_page.content.decode()
    page = client.get(reverse("datasets:request_new", kwargs={"pk": world.definition.pk}))
    assert page.status_code == 200
    response = client.post(
        reverse("datasets:request_new", kwargs={"pk": world.definition.pk}), request_form_data(world)
    )
    assert response.status_code == 302, response.content.decode()[:2000]
    request = DatasetRequest.objects.get(requester=world.partner)
    assert request.state == RequestState.SUBMITTED
    assert request.selection == SELECTION
    assert (Path(services.dataset_root()) / request.document_path).read_bytes() == PDF
    with django_capture_on_commit_callbacks(execute=True):
        _projected(request)
    assert request.state == RequestState.UNDER_REVIEW
    review = request.reviews.get()
    assert review.cohort_persons and review.cohort_persons > 50
    assert review.projected_rows["person"] == review.cohort_persons
    assert review.projected_rows["condition_occurrence"] > 0
    assert [t.to_state for t in request.transitions.all()] == ["draft", "submitted", "under_review"]
    assert AuditEvent.objects.filter(action="dataset_under_review", object_id=str(request.pk)).exists()
    assert any("under review" in m.subject.lower() for m in mail.outbox)

    steward_page = _client(world.steward_a).get(reverse("datasets:review", kwargs={"pk": review.pk}))
    assert steward_page.status_code == 200
    assert str(review.cohort_persons) in steward_page.content.decode()


def test_nobody_approves_their_own_request(world: World) -> None:
    # steward_a also works in the project, approved by the owner and a second steward of the hospital.
    second = UserFactory(username="steward_a2", role=Role.STEWARD, organisation=world.hospital_a)
    make_member(project=world.project, user=world.steward_a, owner=world.alice, steward=second)
    request = _projected(_submitted(world, requester=world.steward_a))
    review = request.reviews.get()
    with pytest.raises(PermissionDenied, match="own request"):
        services.review_decide(review=review, steward=world.steward_a, approve=True)
    response = _client(world.steward_a).post(
        reverse("datasets:review", kwargs={"pk": review.pk}), {"decision": "approve"}
    )
    assert response.status_code == 403
    review.refresh_from_db()
    assert review.decision == "pending"


def test_other_peoples_requests_answer_404_and_a_steward_of_another_site_cannot_decide(world: World) -> None:
    request = _projected(_submitted(world))
    review = request.reviews.get()
    for user in (world.charlie, world.alice, world.steward_b):
        client = _client(user)
        assert client.get(reverse("datasets:request_detail", kwargs={"pk": request.pk})).status_code == 404
        assert (
            client.post(reverse("datasets:review", kwargs={"pk": review.pk}), {"decision": "approve"}).status_code
            == 404
        )
    assert not requests_for_user(world.charlie).exists()
    with pytest.raises(PermissionDenied):
        services.review_decide(review=review, steward=world.steward_b, approve=True)
    # The admin sees it, and may not decide for the site (403).
    admin = _client(world.admin)
    assert admin.get(reverse("datasets:request_detail", kwargs={"pk": request.pk})).status_code == 200
    assert admin.post(reverse("datasets:review", kwargs={"pk": review.pk}), {"decision": "approve"}).status_code == 403


def test_an_oversized_upload_is_refused_with_a_message_and_nothing_is_written(world: World, settings: Any) -> None:
    settings.SOYANG_DATASET_MAX_UPLOAD_BYTES = 1024
    data = request_form_data(world)
    data["document"] = pdf_upload(data=PDF + b"0" * 2048)
    response = _client(world.partner).post(reverse("datasets:request_new", kwargs={"pk": world.definition.pk}), data)
    assert response.status_code == 400
    assert "larger than the limit" in response.content.decode()
    assert not DatasetRequest.objects.exists()
    assert not list(Path(settings.SOYANG_DATASET_ROOT).rglob("*.*"))


def test_submitting_without_a_document_is_refused_and_leaves_no_draft_for_the_stewards(
    world: World, settings: Any
) -> None:
    data = request_form_data(world)
    del data["document"]
    response = _client(world.partner).post(reverse("datasets:request_new", kwargs={"pk": world.definition.pk}), data)
    assert response.status_code == 400
    assert "Attach the IRB approval or data-use agreement" in response.content.decode()
    assert not DatasetRequest.objects.exists()
    # The steward's queue has nothing to show.
    queue = _client(world.steward_a).get(reverse("datasets:request_list")).content.decode()
    assert "Risk of GI bleeding" not in queue


def test_a_file_that_is_not_pdf_png_or_jpeg_is_refused_whatever_its_name(world: World, settings: Any) -> None:
    data = request_form_data(world)
    data["document"] = pdf_upload(name="irb.pdf", data=b"MZ\x90\x00 not really a pdf")
    response = _client(world.partner).post(reverse("datasets:request_new", kwargs={"pk": world.definition.pk}), data)
    assert response.status_code == 400
    assert "must be a PDF, PNG or JPEG" in response.content.decode()
    assert not DatasetRequest.objects.exists()
    assert not list(Path(settings.SOYANG_DATASET_ROOT).rglob("*.*"))


def test_a_tampered_form_asking_for_source_values_or_another_projects_site_is_refused(world: World) -> None:
    client = _client(world.partner)
    url = reverse("datasets:request_new", kwargs={"pk": world.definition.pk})
    tampered = request_form_data(world, columns=["person.person_source_value"])
    assert client.post(url, tampered).status_code == 400
    with pytest.raises(ValidationError, match="cannot be requested"):
        services.request_create(
            requester=world.partner,
            definition=world.definition,
            sites=world.sites,
            selection={"person": ["person_source_value"]},
            days_before=1,
            days_after=1,
            purpose="x",
            legal_basis="irb",
            retention_days=7,
        )
    assert not DatasetRequest.objects.exists()
    # A person outside the project cannot reach the form at all.
    assert _client(world.charlie).get(url).status_code == 404


def test_a_request_over_the_sites_row_limit_is_refused_with_the_numbers(world: World) -> None:
    DatasetPolicy.objects.create(source=world.sites[0], row_limit=100)
    request = _projected(_submitted(world))
    review = request.reviews.get()
    with pytest.raises(ValidationError) as refused:
        services.review_decide(review=review, steward=world.steward_a, approve=True)
    message = " ".join(refused.value.messages)
    assert f"{review.projected_total} rows" in message and "limit of 100" in message
    review.refresh_from_db()
    assert review.decision == "pending"


def test_a_steward_narrows_but_never_widens_a_request(world: World) -> None:
    request = _projected(_submitted(world))
    review = request.reviews.get()
    with pytest.raises(ValidationError, match="not requested"):
        services.review_decide(
            review=review, steward=world.steward_a, approve=True, narrowed_selection={"measurement": ["measurement_id"]}
        )
    with pytest.raises(ValidationError, match="narrowed window"):
        services.review_decide(review=review, steward=world.steward_a, approve=True, narrowed_days_before=400)
    services.review_decide(
        review=review,
        steward=world.steward_a,
        approve=True,
        narrowed_selection={"person": ["gender_concept_id"], "condition_occurrence": ["condition_concept_id"]},
        narrowed_days_after=30,
    )
    review = SiteReview.objects.get(pk=review.pk)
    assert review.approved_selection() == {
        "person": ["gender_concept_id"],
        "condition_occurrence": ["condition_concept_id"],
    }
    assert review.approved_window() == (365, 30)
    request.refresh_from_db()
    assert request.state == RequestState.EXTRACTING
    assert [t.to_state for t in request.transitions.all()][-2:] == ["approved", "extracting"]


def test_a_rejection_needs_a_reason_and_ends_the_request(world: World) -> None:
    request = _projected(_submitted(world))
    review = request.reviews.get()
    with pytest.raises(ValidationError, match="reason"):
        services.review_decide(review=review, steward=world.steward_a, approve=False)
    services.review_decide(review=review, steward=world.steward_a, approve=False, reason="Purpose too broad")
    request.refresh_from_db()
    assert request.state == RequestState.REJECTED
    assert "Purpose too broad" in request.reason


def _extracted(world: World, request: DatasetRequest) -> DatasetRequest:
    """Approve at the site and run its extraction in-process (the worker's service, on the real warehouse)."""
    services.review_decide(review=request.reviews.get(), steward=world.steward_a, approve=True)
    for extract in request.extracts.all():
        assert services.extraction_execute(extract_id=extract.pk) == JobState.SUCCEEDED
    request.refresh_from_db()
    return request


def test_year_month_mode_reduces_every_date_of_the_dataset(world: World) -> None:
    DatasetPolicy.objects.create(source=world.sites[0], date_mode="year_month", k_anonymity=3)
    request = _extracted(world, _projected(_submitted(world)))
    assert request.state == RequestState.READY
    response = _client(world.partner).post(
        reverse("datasets:extract_download", kwargs={"pk": request.extracts.get().pk})
    )
    assert response.status_code == 200
    members = zip_members(response.content)
    manifest = json.loads(members["manifest.json"])
    assert manifest["policy"]["date_mode"] == "year_month" and manifest["policy"]["k_anonymity"] == 3
    rows = list(csv.DictReader(io.StringIO(members["condition_occurrence.csv"].decode())))
    assert rows and all(re.fullmatch(r"\d{4}-\d{2}", r["condition_start_date"]) for r in rows)
    assert all(re.fullmatch(r"(\d{4}-\d{2})?", r["condition_end_date"]) for r in rows)


def test_an_expired_link_is_refused_even_before_the_cleanup_runs(world: World) -> None:
    request = _extracted(world, _projected(_submitted(world)))
    extract = request.extracts.get()
    url = reverse("datasets:extract_download", kwargs={"pk": extract.pk})
    detail = reverse("datasets:request_detail", kwargs={"pk": request.pk})
    partner_page = _client(world.partner).get(detail).content.decode()
    assert url in partner_page and "Ready" in partner_page
    steward_page = _client(world.steward_a).get(detail).content.decode()
    assert url not in steward_page and str(request.reviews.get().cohort_persons) in steward_page
    assert "Revoke" in steward_page
    assert _client(world.partner).get(reverse("datasets:request_list")).status_code == 200
    DatasetRequest.objects.filter(pk=request.pk).update(expires_at=timezone.now() - timedelta(minutes=1))
    response = _client(world.partner).post(url)
    assert response.status_code == 410 and "expired" in response.content.decode()
    extract.refresh_from_db()
    assert extract.download_count == 0
    assert AuditEvent.objects.filter(action="export", outcome="refused", object_id=str(request.pk)).exists()
    assert services.requests_expire() == 1
    request.refresh_from_db()
    assert request.state == RequestState.EXPIRED
    assert files_under(services.dataset_root()) == []
