"""A refusal is written once, in the rule: the service raises it, the API answers 403 with it, the page refuses
with 403 — and a Korean user reads it in Korean."""

from __future__ import annotations

import sys

import pytest
from django.conf import settings
from django.core.exceptions import PermissionDenied
from django.test import Client
from django.urls import reverse
from django.utils import translation
from django.utils.translation import trans_real
from rest_framework.test import APIClient

from datasets import rules, services
from datasets.models import DatasetRequest
from datasets.tests.conftest import RulesWorld


@pytest.fixture
def korean_catalogue() -> None:
    """The compiled Korean catalogue, as `make messages` leaves it (so the test also runs under plain pytest)."""
    sys.path.insert(0, str(settings.BASE_DIR / "scripts"))
    try:
        from compile_messages import compile_all
    finally:
        sys.path.pop(0)
    compile_all()
    trans_real._translations = {}
    trans_real._default = None
    trans_real._active = trans_real.Local()


def test_the_service_the_api_and_the_page_refuse_a_withdrawal_with_the_rules_sentence(
    rules_world: RulesWorld,
) -> None:
    w = rules_world
    sentence = str(rules.can_withdraw(w.steward_a, w.request))
    assert sentence

    with pytest.raises(PermissionDenied) as refused:
        services.request_withdraw(request=w.request, user=w.steward_a)
    assert str(refused.value) == sentence

    api = APIClient()
    api.force_authenticate(w.steward_a)
    response = api.post(f"/api/v1/dataset-requests/{w.request.pk}/withdraw/", {}, format="json")
    assert response.status_code == 403
    assert response.json()["error"]["message"] == sentence

    page = Client()
    page.force_login(w.steward_a)
    assert page.post(reverse("datasets:request_withdraw", kwargs={"pk": w.request.pk})).status_code == 403
    assert DatasetRequest.objects.get(pk=w.request.pk).state == "under_review"


def test_require_lets_an_allowed_act_through_and_refuses_the_rest_with_the_sentence(rules_world: RulesWorld) -> None:
    w = rules_world
    rules.require(rules.can_withdraw(w.partner, w.request))
    with pytest.raises(PermissionDenied, match="Only the requester withdraws a request."):
        rules.require(rules.can_withdraw(w.bob, w.request))


def test_a_korean_user_is_told_why_in_korean(rules_world: RulesWorld, korean_catalogue: None) -> None:
    w = rules_world
    with translation.override("ko"):
        assert str(rules.can_withdraw(w.bob, w.request)) == "요청자만 요청을 철회할 수 있습니다."
        assert str(rules.can_see_review_counts(w.bob, w.review_a)) == (
            "기관 검토의 환자 수는 그 기관의 데이터 관리자와 시스템 관리자만 볼 수 있습니다."
        )
