"""A body just over a limit answers 413 with a sentence, never a 500 or a bare 400: in the API's error shape for the
API and the JSON endpoints of the pages (builder, concept sets), as a page for the page forms (the ATLAS import,
a dataset request with its document). Nothing is saved. Each body is real and one byte over its limit."""

from __future__ import annotations

from typing import Any

import pytest
from django.conf import settings
from django.test import Client
from django.urls import reverse
from rest_framework.test import APIClient

from accounts.api.tokens import token_create
from cohorts.definitions.forms import MAX_IMPORT_BYTES
from cohorts.definitions.models import CohortDefinition
from cohorts.definitions.services import definition_create
from cohorts.tests.expressions import EXPRESSION
from datasets.models import DatasetRequest

pytestmark = pytest.mark.django_db
BOUNDARY = "BoUnDaRyStRiNg"


def _json_over(limit: int) -> str:
    """A JSON object of exactly ``limit + 1`` bytes."""
    head, tail = '{"expression": {}, "name": "', '"}'
    return head + "x" * (limit + 1 - len(head) - len(tail)) + tail


def _multipart_over(limit: int, *, file_field: str, fields: dict[str, str]) -> bytes:
    """A multipart body of exactly ``limit + 1`` bytes whose file fills what the fields leave."""
    parts = [
        f'--{BOUNDARY}\r\nContent-Disposition: form-data; name="{name}"\r\n\r\n{value}\r\n'.encode()
        for name, value in fields.items()
    ]
    head = (
        f'--{BOUNDARY}\r\nContent-Disposition: form-data; name="{file_field}"; filename="big.json"\r\n'
        "Content-Type: application/octet-stream\r\n\r\n"
    ).encode()
    tail = f"\r\n--{BOUNDARY}--\r\n".encode()
    used = sum(len(part) for part in parts) + len(head) + len(tail)
    body = b"".join(parts) + head + b"x" * (limit + 1 - used) + tail
    assert len(body) == limit + 1
    return body


def _json_error(response: Any) -> str:
    assert response.status_code == 413, response.content[:300]
    assert response["Content-Type"].startswith("application/json")
    error = response.json()["error"]
    assert error["code"] == "request_too_large"
    assert "larger than" in error["message"]
    return str(error["message"])


def _page_error(response: Any) -> str:
    assert response.status_code == 413, response.content[:300]
    assert response["Content-Type"].startswith("text/html")
    page = response.content.decode()
    assert "The request is too large" in page and "nothing was saved" in page
    return page


@pytest.fixture
def signed_in(alice: Any) -> Client:
    client = Client()
    client.force_login(alice)
    return client


@pytest.fixture
def definition(alice: Any, project: Any) -> CohortDefinition:
    return definition_create(owner=alice, name="Type 2 diabetes", expression=EXPRESSION, project=project)


def test_the_api_refuses_a_json_body_over_its_limit_and_over_djangos_with_413(alice: Any, project: Any) -> None:
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Token {token_create(user=alice, name='script', days=1).secret}")
    url = "/api/v1/cohort-definitions/"
    for limit in (settings.SOYANG_API_MAX_BODY_BYTES, settings.DATA_UPLOAD_MAX_MEMORY_SIZE, 3 * 1024 * 1024):
        message = _json_error(client.post(url, data=_json_over(limit), content_type="application/json"))
        assert f"{settings.SOYANG_API_MAX_BODY_BYTES:,} bytes" in message
    # Signed in through the browser (session and CSRF) the same.
    browser = APIClient()
    browser.force_login(alice)
    big = _json_over(settings.DATA_UPLOAD_MAX_MEMORY_SIZE)
    _json_error(browser.post(url, data=big, content_type="application/json"))
    assert not CohortDefinition.objects.exists()


def test_the_builders_json_endpoints_refuse_a_body_over_the_limit_with_413(signed_in: Client, definition: Any) -> None:
    body = _json_over(settings.DATA_UPLOAD_MAX_MEMORY_SIZE)
    for name, kwargs in (
        ("cohorts:builder_create", {}),
        ("cohorts:builder_describe", {}),
        ("cohorts:builder_save", {"pk": definition.pk}),
    ):
        _json_error(signed_in.post(reverse(name, kwargs=kwargs), body, content_type="application/json"))
    assert definition.versions.count() == 1
    # At the limit, the endpoint answers for itself (here: the empty expression is not a valid cohort).
    response = signed_in.post(reverse("cohorts:builder_describe"), body[1:], content_type="application/json")
    assert response.status_code == 400


def test_the_concept_set_json_endpoints_refuse_a_body_over_the_limit_with_413(signed_in: Client) -> None:
    body = _json_over(settings.DATA_UPLOAD_MAX_MEMORY_SIZE)
    for url in (reverse("cohorts:concept_set_resolve"), reverse("cohorts:concept_set_new")):
        _json_error(signed_in.post(url, body, content_type="application/json"))


def test_a_form_post_over_the_limit_answers_a_413_page(signed_in: Client) -> None:
    limit = settings.DATA_UPLOAD_MAX_MEMORY_SIZE
    prefix = "name=n&json_text="
    body = prefix + "x" * (limit + 1 - len(prefix))
    response = signed_in.post(
        reverse("cohorts:definition_import"), body, content_type="application/x-www-form-urlencoded"
    )
    _page_error(response)


def test_the_atlas_import_page_refuses_a_file_over_its_limit_with_a_413_page(signed_in: Client) -> None:
    limit = MAX_IMPORT_BYTES + settings.DATA_UPLOAD_MAX_MEMORY_SIZE
    body = _multipart_over(limit, file_field="json_file", fields={"name": "big"})
    response = signed_in.generic(
        "POST", reverse("cohorts:definition_import"), body, content_type=f"multipart/form-data; boundary={BOUNDARY}"
    )
    _page_error(response)
    # A multipart text field over Django's own limit in a body under the page's: the same page, not a bare 400.
    field = _multipart_over(settings.DATA_UPLOAD_MAX_MEMORY_SIZE + 1000, file_field="json_file", fields={})
    field = field.replace(b'name="json_file"; filename="big.json"', b'name="json_text"')
    response = signed_in.generic(
        "POST", reverse("cohorts:definition_import"), field, content_type=f"multipart/form-data; boundary={BOUNDARY}"
    )
    _page_error(response)
    assert not CohortDefinition.objects.exists()


def test_the_dataset_request_page_refuses_a_document_over_its_limit_with_a_413_page(
    signed_in: Client, definition: Any
) -> None:
    limit = int(settings.SOYANG_DATASET_MAX_UPLOAD_BYTES) + settings.DATA_UPLOAD_MAX_MEMORY_SIZE
    body = _multipart_over(limit, file_field="document", fields={"purpose": "a study"})
    response = signed_in.generic(
        "POST",
        reverse("datasets:request_new", kwargs={"pk": definition.pk}),
        body,
        content_type=f"multipart/form-data; boundary={BOUNDARY}",
    )
    _page_error(response)
    assert not DatasetRequest.objects.exists()


def test_a_page_asking_for_json_gets_the_error_shape(signed_in: Client) -> None:
    limit = settings.DATA_UPLOAD_MAX_MEMORY_SIZE
    body = "q=" + "x" * (limit - 1)
    response = signed_in.post(
        reverse("cohorts:definition_import"),
        body,
        content_type="application/x-www-form-urlencoded",
        HTTP_ACCEPT="application/json",
    )
    _json_error(response)
