"""Every API error has one JSON shape — {"error": {"code", "message", "fields"?}} — for 400, parse errors, 401,
403, 404, 405, 413, 415 and 429, and no /api/ URL answers an HTML page. The schema and its viewers are served
from the portal itself (no CDN)."""

from __future__ import annotations

import re
from collections.abc import Callable

import pytest
from django.core.management import call_command
from django.test import override_settings
from rest_framework.test import APIClient

from tests.world import World

pytestmark = pytest.mark.django_db
API = "/api/v1"
Clients = Callable[[str], APIClient]


def _error(response, status: int, code: str) -> dict:
    assert response.status_code == status, response.content
    assert response["Content-Type"].startswith("application/json"), response["Content-Type"]
    error = response.json()["error"]
    assert error["code"] == code, error
    assert isinstance(error["message"], str) and len(error["message"]) > 10
    assert "<html" not in response.content.decode("utf-8", "replace").lower()
    return error


def test_each_error_status_has_the_one_shape(api_world: World, api_client: Clients) -> None:
    member = api_client("member")
    definition = api_world.P["definition"].pk
    _error(APIClient().get(f"{API}/sources/"), 401, "not_authenticated")
    _error(member.post(f"{API}/cohort-definitions/{definition}/versions/", {}, format="json"), 403, "permission_denied")
    _error(member.get(f"{API}/cohort-definitions/{api_world.Q['definition'].pk}/"), 404, "not_found")
    _error(member.put(f"{API}/sources/1/", {}, format="json"), 405, "method_not_allowed")
    fields = _error(member.post(f"{API}/runs/", {}, format="json"), 400, "validation_error")["fields"]
    assert set(fields) == {"definition", "sources"}


def test_malformed_json_is_a_parse_error_that_says_where(api_world: World, api_client: Clients) -> None:
    response = api_client("member").post(f"{API}/runs/", data='{"definition": 1,', content_type="application/json")
    message = _error(response, 400, "parse_error")["message"]
    assert "not valid JSON" in message and "line 1" in message


def test_a_body_that_is_not_json_is_refused_with_415(api_world: World, api_client: Clients) -> None:
    response = api_client("member").post(
        f"{API}/runs/", data="definition=1", content_type="application/x-www-form-urlencoded"
    )
    _error(response, 415, "unsupported_media_type")


@override_settings(SOYANG_API_MAX_BODY_BYTES=1000)
def test_an_oversized_body_is_refused_with_413_before_parsing(api_world: World, api_client: Clients) -> None:
    body = '{"name": "' + "x" * 2000 + '"}'
    response = api_client("member").post(f"{API}/cohort-definitions/", data=body, content_type="application/json")
    message = _error(response, 413, "request_too_large")["message"]
    assert "1,000 bytes" in message


@override_settings(SOYANG_API_USER_RATE="3/minute")
def test_a_user_over_their_rate_is_throttled_with_429_and_retry_after(api_world: World, api_client: Clients) -> None:
    member = api_client("member")
    for _ in range(3):
        assert member.get(f"{API}/sources/").status_code == 200
    response = member.get(f"{API}/sources/")
    assert "try again in" in _error(response, 429, "throttled")["message"]
    assert int(response["Retry-After"]) > 0
    # Per user: somebody else is not slowed down by bob.
    assert api_client("partner").get(f"{API}/sources/").status_code == 200


def test_an_unknown_api_path_answers_json_404(api_world: World, api_client: Clients) -> None:
    for url in ("/api/", "/api/v1/", "/api/v2/sources/", "/api/v1/no-such-collection/", "/api/v1/runs/abc/"):
        _error(api_client("member").get(url), 404, "not_found")


def test_the_schema_and_its_viewers_are_served_without_a_cdn() -> None:
    client = APIClient()
    schema = client.get("/api/schema/", HTTP_ACCEPT="application/vnd.oai.openapi+json")
    assert schema.status_code == 200
    paths = schema.json()["paths"]
    assert "/api/v1/cohort-definitions/import/" in paths and "/api/v1/runs/{id}/cancel/" in paths
    for page in ("/api/docs/", "/api/redoc/"):
        response = client.get(page)
        assert response.status_code == 200
        html = response.content.decode()
        assert not re.search(r"(src|href)=\"https?://", html), html
        assert "/static/drf_spectacular_sidecar/" in html
    # Swagger UI's start-up code is a separate script (the CSP forbids inline scripts).
    docs = client.get("/api/docs/").content.decode()
    assert "<script>" not in docs and "<style" not in docs
    assert client.get("/api/docs/?script=").status_code == 200


def test_the_schema_generates_and_validates_without_a_single_warning(tmp_path) -> None:
    # Every endpoint typed: drf-spectacular's own validation, failing on any warning (as CI would run it).
    call_command("spectacular", "--validate", "--fail-on-warn", "--file", str(tmp_path / "schema.yaml"))
    assert "/api/v1/runs/{id}/cancel/" in (tmp_path / "schema.yaml").read_text()
