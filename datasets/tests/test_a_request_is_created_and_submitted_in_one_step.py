"""The form's "submit" and the API's ``submit=true`` create and submit a request in one service call; when the
submission is refused the draft stays, and the refusal says so."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from datasets import services
from datasets.choices import RequestState
from datasets.errors import NotSubmitted
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


def test_without_a_document_the_draft_stays_and_the_refusal_says_why(
    rules_world: RulesWorld, dataset_root: Path
) -> None:
    with pytest.raises(NotSubmitted) as refused:
        _create(rules_world, submit=True)
    assert "Attach the IRB approval or data-use agreement" in str(refused.value)
    draft = DatasetRequest.objects.get(pk=refused.value.draft.pk)
    assert draft.state == RequestState.DRAFT and not draft.reviews.exists()


def test_without_submit_it_is_a_draft(rules_world: RulesWorld, dataset_root: Path) -> None:
    assert _create(rules_world, document=pdf_upload()).state == RequestState.DRAFT
