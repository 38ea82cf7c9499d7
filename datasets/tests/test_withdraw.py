"""A requester withdraws their own dataset request, until the sites approve it (draft, submitted, under review).

On a real GiBleed site (PostgreSQL), the site's projection run in-process: the withdrawal is on the timeline,
audited and e-mailed; nobody else may withdraw, nor anybody once the request was approved or closed; a steward
can no longer decide the withdrawn request, its projection is skipped and it leaves the stewards' queues.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from django.contrib.messages import get_messages
from django.core import mail
from django.core.exceptions import PermissionDenied, ValidationError
from django.urls import reverse
from rest_framework.test import APIClient

from accounts.api.tokens import token_create
from audit.models import AuditEvent
from datasets import services
from datasets.choices import WITHDRAWABLE_STATES, RequestState, SiteDecision
from datasets.errors import InvalidTransition
from datasets.models import DatasetRequest, RequestTransition
from datasets.selectors import reviews_awaiting
from datasets.tests.conftest import World, build_world, create_request
from datasets.tests.conftest import signed_in_client as _client
from jobs.choices import JobState

pytestmark = pytest.mark.django_db

REASON = "The study was cancelled by the sponsor."


@pytest.fixture
def world(cdm_gibleed_pg: Any, oracle_dir: Path, dataset_root: Path) -> World:
    return build_world([cdm_gibleed_pg], oracle_dir)


def _api(user: Any) -> APIClient:
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Token {token_create(user=user, name='script', days=1).secret}")
    return client


def _draft(world: World) -> DatasetRequest:
    return create_request(world)


def _submitted(world: World) -> DatasetRequest:
    request = _draft(world)
    services.request_submit(request=request, user=world.partner)
    request.refresh_from_db()
    return request


def _under_review(world: World) -> DatasetRequest:
    request = _submitted(world)
    for review in request.reviews.all():
        assert services.projection_execute(review_id=review.pk) == JobState.SUCCEEDED
    request.refresh_from_db()
    assert request.state == RequestState.UNDER_REVIEW
    return request


def _withdrawal_events(request: DatasetRequest) -> Any:
    return AuditEvent.objects.filter(action="dataset_withdrawn", object_id=str(request.pk))


def test_the_requester_withdraws_a_submitted_request_and_its_projection_is_skipped(
    world: World, dataset_root: Path, django_capture_on_commit_callbacks: Any, settings: Any
) -> None:
    settings.SOYANG_BASE_URL = "https://soyang.hospital.example/"
    request = _submitted(world)
    review = request.reviews.get()
    assert list(reviews_awaiting(world.steward_a)) == [review]

    with django_capture_on_commit_callbacks(execute=True):
        services.request_withdraw(request=request, user=world.partner, reason=f"  {REASON} ", ip_address="10.0.0.7")

    request.refresh_from_db()
    assert request.state == RequestState.WITHDRAWN
    assert request.reason == REASON
    last = request.transitions.last()
    assert (last.from_state, last.to_state, last.actor, last.note) == ("submitted", "withdrawn", world.partner, REASON)
    assert [t.to_state for t in request.transitions.all()] == ["draft", "submitted", "withdrawn"]
    event = _withdrawal_events(request).get()
    assert (event.actor, event.ip_address, event.outcome) == (world.partner, "10.0.0.7", "success")
    assert event.detail == {"from": "submitted", "to": "withdrawn", "note": REASON}
    assert event.source_key == world.sites[0].key
    # The requester and the stewards of the request's site, each told once; the other hospital's steward not.
    assert sorted(address for m in mail.outbox for address in m.to) == sorted(
        [world.partner.email, world.steward_a.email]
    )
    assert all("Withdrawn" in m.subject and REASON in m.body for m in mail.outbox)
    # The link works from a mail client: absolute, on the portal's address.
    assert all(f"https://soyang.hospital.example/datasets/{request.pk}/" in m.body for m in mail.outbox)
    # Kept, as on rejection: the approval document is part of the record of what was asked.
    assert (dataset_root / request.document_path).is_file()

    # The site's projection, not started yet, is skipped: no cohort is generated for a withdrawn request.
    assert services.projection_execute(review_id=review.pk) == "skipped"
    review.refresh_from_db()
    assert review.projection_state == JobState.QUEUED and review.cohort_persons is None
    assert not reviews_awaiting(world.steward_a).exists()


def test_the_requester_withdraws_under_review_from_the_page_and_no_steward_decides_it_afterwards(
    world: World, django_capture_on_commit_callbacks: Any
) -> None:
    request = _under_review(world)
    review = request.reviews.get()
    steward = _client(world.steward_a)
    review_url = reverse("datasets:review", kwargs={"pk": review.pk})
    assert review_url in steward.get(reverse("datasets:request_list")).content.decode()
    detail_url = reverse("datasets:request_detail", kwargs={"pk": request.pk})
    assert review_url in steward.get(detail_url).content.decode()
    assert 'id="queue-dataset-reviews">1</span>' in steward.get(reverse("home")).content.decode()

    partner = _client(world.partner)
    with django_capture_on_commit_callbacks(execute=True):
        response = partner.post(reverse("datasets:request_withdraw", kwargs={"pk": request.pk}), {"reason": REASON})
    assert response.status_code == 302
    assert response["Location"] == reverse("datasets:request_detail", kwargs={"pk": request.pk})
    assert [str(m) for m in get_messages(response.wsgi_request)] == [
        "Request withdrawn: no site will review it any more."
    ]
    request.refresh_from_db()
    assert request.state == RequestState.WITHDRAWN and request.reason == REASON
    assert [t.to_state for t in request.transitions.all()] == ["draft", "submitted", "under_review", "withdrawn"]
    event = _withdrawal_events(request).get()
    assert event.actor == world.partner and event.ip_address == "127.0.0.1"
    assert {address for m in mail.outbox for address in m.to} == {world.partner.email, world.steward_a.email}

    # The steward's decision is no longer open, in the service and on the page; nothing is decided.
    with pytest.raises(InvalidTransition, match="not open"):
        services.review_decide(review=review, steward=world.steward_a, approve=True)
    with pytest.raises(InvalidTransition, match="not open"):
        services.review_decide(review=review, steward=world.steward_a, approve=False, reason="Too broad")
    refused = steward.post(review_url, {"decision": "approve"})
    assert refused.status_code == 400 and "not open" in refused.content.decode()
    review.refresh_from_db()
    assert review.decision == SiteDecision.PENDING and review.reviewer is None
    request.refresh_from_db()
    assert request.state == RequestState.WITHDRAWN and not request.extracts.exists()
    assert not AuditEvent.objects.filter(action__in=["approve", "reject"], object_id=str(request.pk)).exists()

    # Out of the stewards' queues: the datasets page and the home page's count.
    assert not reviews_awaiting(world.steward_a).exists()
    assert review_url not in steward.get(reverse("datasets:request_list")).content.decode()
    assert 'id="queue-dataset-reviews">0</span>' in steward.get(reverse("home")).content.decode()
    # A steward may no longer revoke it either: it is closed.
    detail = steward.get(reverse("datasets:request_detail", kwargs={"pk": request.pk})).content.decode()
    assert reverse("datasets:request_revoke", kwargs={"pk": request.pk}) not in detail
    # Nor does its page offer the review link.
    assert review_url not in detail


def test_a_draft_is_withdrawn_without_telling_the_stewards_who_never_saw_it(
    world: World, django_capture_on_commit_callbacks: Any
) -> None:
    request = _draft(world)
    with django_capture_on_commit_callbacks(execute=True):
        services.request_withdraw(request=request, user=world.partner)
    request.refresh_from_db()
    assert request.state == RequestState.WITHDRAWN and request.reason == ""
    assert [t.to_state for t in request.transitions.all()] == ["draft", "withdrawn"]
    assert _withdrawal_events(request).count() == 1
    assert [m.to for m in mail.outbox] == [[world.partner.email]]


def _unchanged(request: DatasetRequest, state: str, transitions: int) -> None:
    request.refresh_from_db()
    assert request.state == state
    assert RequestTransition.objects.filter(request=request).count() == transitions
    assert not _withdrawal_events(request).exists()


def test_nobody_but_the_requester_withdraws(world: World) -> None:
    request = _submitted(world)
    transitions = request.transitions.count()
    # The site's steward and the admin see the request but may not withdraw it.
    for user in (world.steward_a, world.admin):
        with pytest.raises(PermissionDenied, match="Only the requester"):
            services.request_withdraw(request=request, user=user, reason="not mine")
        assert _client(user).post(reverse("datasets:request_withdraw", kwargs={"pk": request.pk})).status_code == 403
    # Those who do not see it get 404, as for a request that does not exist.
    for user in (world.charlie, world.alice, world.steward_b):
        assert _client(user).post(reverse("datasets:request_withdraw", kwargs={"pk": request.pk})).status_code == 404
    # A page answers POST only.
    assert (
        _client(world.partner).get(reverse("datasets:request_withdraw", kwargs={"pk": request.pk})).status_code == 405
    )
    _unchanged(request, RequestState.SUBMITTED, transitions)


def test_an_approved_request_cannot_be_withdrawn(world: World) -> None:
    request = _under_review(world)
    services.review_decide(review=request.reviews.get(), steward=world.steward_a, approve=True)
    request.refresh_from_db()
    assert request.state == RequestState.EXTRACTING  # approved by its only site: the extraction began
    transitions = request.transitions.count()
    with pytest.raises(InvalidTransition, match="only until the sites approve it; this one is Extracting"):
        services.request_withdraw(request=request, user=world.partner, reason="too late")
    response = _client(world.partner).post(reverse("datasets:request_withdraw", kwargs={"pk": request.pk}))
    assert response.status_code == 302
    assert any("only until the sites approve it" in str(m) for m in get_messages(response.wsgi_request))
    _unchanged(request, RequestState.EXTRACTING, transitions)


@pytest.mark.parametrize("state", [s for s in RequestState.values if s not in WITHDRAWABLE_STATES])
def test_no_request_past_the_review_can_be_withdrawn(world: World, state: str) -> None:
    request = _draft(world)
    DatasetRequest.objects.filter(pk=request.pk).update(state=state)
    with pytest.raises(InvalidTransition, match="only until the sites approve it"):
        services.request_withdraw(request=request, user=world.partner)
    _unchanged(request, state, 1)


def test_a_request_is_withdrawn_once(world: World) -> None:
    request = _submitted(world)
    services.request_withdraw(request=request, user=world.partner, reason=REASON)
    transitions = request.transitions.count()
    with pytest.raises(InvalidTransition, match="this one is Withdrawn"):
        services.request_withdraw(request=request, user=world.partner, reason="again")
    request.refresh_from_db()
    assert request.state == RequestState.WITHDRAWN and request.reason == REASON
    assert request.transitions.count() == transitions
    assert _withdrawal_events(request).count() == 1


def test_an_overlong_reason_is_refused_and_nothing_changes(world: World) -> None:
    request = _submitted(world)
    with pytest.raises(ValidationError, match="longer than 2000"):
        services.request_withdraw(request=request, user=world.partner, reason="x" * 2001)
    _unchanged(request, RequestState.SUBMITTED, 2)


def test_the_api_withdraws_for_the_requester_only_and_once(world: World) -> None:
    request = _under_review(world)
    url = f"/api/v1/dataset-requests/{request.pk}/withdraw/"
    transitions = request.transitions.count()

    refused = _api(world.steward_a).post(url, {"reason": REASON}, format="json")
    assert refused.status_code == 403 and "requester" in refused.json()["error"]["message"]
    hidden = _api(world.charlie).post(url, {}, format="json")
    assert hidden.status_code == 404 and hidden.json()["error"]["code"] == "not_found"
    bad = _api(world.partner).post(url, {"reason": 12}, format="json")
    assert bad.status_code == 400 and "error" in bad.json()
    too_long = _api(world.partner).post(url, {"reason": "x" * 2001}, format="json")
    assert too_long.status_code == 400
    requester = _api(world.partner)
    for raw in ('{"reason": "x",', "[]", '"just text"', "null"):
        malformed = requester.post(url, raw, content_type="application/json")
        assert malformed.status_code == 400 and "error" in malformed.json(), raw
    for value in ("a\u0000b", ["a"], {"a": 1}, True):
        wrong = requester.post(url, {"reason": value}, format="json")
        assert wrong.status_code == 400 and "error" in wrong.json(), value
    _unchanged(request, RequestState.UNDER_REVIEW, transitions)

    partner = _api(world.partner)
    withdrawn = partner.post(url, {"reason": REASON}, format="json")
    assert withdrawn.status_code == 200, withdrawn.content
    body = withdrawn.json()
    assert body["state"] == "withdrawn" and body["reason"] == REASON
    assert [r["decision"] for r in body["reviews"]] == ["pending"]
    timeline = partner.get(f"/api/v1/dataset-requests/{request.pk}/timeline/").json()
    assert timeline[-1]["to_state"] == "withdrawn" and timeline[-1]["actor"] == world.partner.username
    assert _withdrawal_events(request).get().actor == world.partner

    again = partner.post(url, format="json")
    assert again.status_code == 409
    assert again.json()["error"]["code"] == "conflict" and "Withdrawn" in again.json()["error"]["message"]
    # The steward's decision through the API is refused the same way.
    decide = _api(world.steward_a).post(
        f"/api/v1/dataset-requests/{request.pk}/reviews/{world.sites[0].key}/approve/", {}, format="json"
    )
    assert decide.status_code == 409


def test_an_empty_api_body_withdraws_without_a_reason(world: World) -> None:
    request = _submitted(world)
    response = _api(world.partner).post(f"/api/v1/dataset-requests/{request.pk}/withdraw/")
    assert response.status_code == 200, response.content
    assert response.json()["state"] == "withdrawn" and response.json()["reason"] == ""


def test_the_withdraw_form_is_shown_only_to_the_requester_while_allowed(world: World) -> None:
    request = _draft(world)
    detail = reverse("datasets:request_detail", kwargs={"pk": request.pk})
    action = f'action="{reverse("datasets:request_withdraw", kwargs={"pk": request.pk})}"'

    def shown(user: Any) -> bool:
        page = _client(user).get(detail)
        assert page.status_code == 200
        text = page.content.decode()
        assert (action in text) == ("Withdraw this request" in text)
        return action in text

    assert shown(world.partner)  # a draft
    services.request_submit(request=request, user=world.partner)
    assert shown(world.partner)  # submitted
    assert not shown(world.steward_a) and not shown(world.admin)  # they see it, it is not theirs
    for review in request.reviews.all():
        services.projection_execute(review_id=review.pk)
    assert shown(world.partner)  # under review
    assert not shown(world.steward_a) and not shown(world.admin)
    services.request_withdraw(request=request, user=world.partner)
    assert not shown(world.partner)  # withdrawn already

    approved = _under_review(world)
    services.review_decide(review=approved.reviews.get(), steward=world.steward_a, approve=True)
    page = _client(world.partner).get(reverse("datasets:request_detail", kwargs={"pk": approved.pk}))
    assert reverse("datasets:request_withdraw", kwargs={"pk": approved.pk}) not in page.content.decode()
