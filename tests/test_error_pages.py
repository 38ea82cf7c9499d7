"""Refusals and missing pages read as Soyang's pages, with the reason where there is one to give."""

from __future__ import annotations

from typing import Any

import pytest
from django.test import Client
from django.urls import reverse

from tests.world import build_world

pytestmark = pytest.mark.django_db


@pytest.fixture
def world(settings: Any, tmp_path: Any) -> Any:
    settings.SOYANG_DATASET_ROOT = tmp_path / "datasets"
    return build_world()


def _client(user: Any) -> Client:
    client = Client()
    client.force_login(user)
    return client


def test_a_refused_action_says_why_on_a_page_of_the_portal(world: Any) -> None:
    # The partner views the project's definition but may not change it.
    definition = world.P["definition"]
    response = _client(world.users["partner"]).get(reverse("cohorts:definition_edit", args=[definition.pk]))
    body = response.content.decode()
    assert response.status_code == 403
    assert "You may not do this" in body and "Back to the start page" in body
    # The reason the view gave, not a bare "403 Forbidden".
    assert "Only the owner of this definition can change it; duplicate it to build your own." in body


def test_a_missing_page_is_a_page_of_the_portal_without_the_url_list(world: Any) -> None:
    response = _client(world.users["member"]).get("/cohorts/999999/")
    body = response.content.decode()
    assert response.status_code == 404
    assert "There is nothing here" in body and "Back to the start page" in body
    assert "urlpatterns" not in body and "Using the URLconf" not in body
