"""The form's "submit" and the API's ``submit=true`` create and submit a request in one service call and one
transaction: when the submission is refused nothing is left behind (no draft for the stewards to see, no audit
entry of a request that does not exist, no stored document), and the refusal says why."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from django.core.exceptions import ValidationError

from audit.models import AuditEvent
from datasets import services
from datasets.choices import RequestState
from datasets.models import DatasetRequest
from datasets.tests.conftest import RulesWorld, pdf_upload


def _create(w: RulesWorld, **fields: Any) -> DatasetRequest:
    arguments: dict[str, Any] = {
        "requester": w.partner,
        "definition": w.definition,
        "sites": [w.review_a.source],
        "selection": {"person": ["gender_concept_id"]},
        "days_before": 30,
        "days_after": 30,
        "purpose": "GI bleeding",
        "legal_basis": "irb",
        "retention_days": 7,
    }
    return services.request_create(**{**arguments, **fields})


def test_a_request_with_its_document_is_submitted_at_once(rules_world: RulesWorld, dataset_root: Path) -> None:
    request = _create(rules_world, document=pdf_upload(), submit=True)
    assert request.state == RequestState.SUBMITTED
    assert [t.to_state for t in request.transitions.all()] == ["draft", "submitted"]
    assert request.reviews.count() == 1


def test_a_refused_submission_writes_nothing_and_says_why(rules_world: RulesWorld, dataset_root: Path) -> None:
    requests, events = DatasetRequest.objects.count(), AuditEvent.objects.count()
    with pytest.raises(ValidationError) as refused:
        _create(rules_world, submit=True)
    assert "Attach the IRB approval or data-use agreement" in str(refused.value)
    assert DatasetRequest.objects.count() == requests
    assert AuditEvent.objects.count() == events
    assert not list(dataset_root.rglob("*.*"))


def test_without_submit_it_is_a_draft(rules_world: RulesWorld, dataset_root: Path) -> None:
    assert _create(rules_world, document=pdf_upload()).state == RequestState.DRAFT
