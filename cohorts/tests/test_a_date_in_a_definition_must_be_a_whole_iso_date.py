"""Every date of a cohort expression is a whole calendar date written YYYY-MM-DD, nothing before or after it:
otherwise the parser names the field, and the API import, the page import and the builder's save refuse the
definition with that message (400) and store nothing. Circe writes dates this way, so ATLAS exports still parse."""

from __future__ import annotations

import copy
import json
from typing import Any

import pytest
from django.test import Client
from django.urls import reverse
from rest_framework.test import APIClient

from accounts.api.tokens import token_create
from cohorts.definitions.models import CohortDefinition, CohortDefinitionVersion
from cohorts.definitions.services import definition_create
from cohorts.expression import ExpressionError, parse_expression
from cohorts.tests.expressions import EXPRESSION

INJECTED = "2010-01-01' or '1'='1"
NOT_WHOLE_DATES = [
    INJECTED,
    "2010-01-01 ",
    " 2010-01-01",
    "2010-01-01\n",
    "2010-01-01T00:00:00",
    "2010-1-1",
    "2010-02-30",
    "20100101",
    "٢٠١٠-٠١-٠١",  # digits, but not ASCII ones
]
CRITERION = "PrimaryCriteria.CriteriaList[0].ConditionOccurrence"
VALUE_PATH = f"{CRITERION}.OccurrenceStartDate.Value"


def _with_dates(**dates: Any) -> dict[str, Any]:
    """EXPRESSION with a between-dates occurrence range, an observation-period criterion and a censor window."""
    expression = copy.deepcopy(EXPRESSION)
    condition = expression["PrimaryCriteria"]["CriteriaList"][0]["ConditionOccurrence"]
    condition["OccurrenceStartDate"] = {"Op": "bt", "Value": dates.get("value", "2010-01-01"), "Extent": "2012-12-31"}
    if "extent" in dates:
        condition["OccurrenceStartDate"]["Extent"] = dates["extent"]
    period = {"PeriodStartDate": {"Op": "gt", "Value": dates.get("period_start", "2005-01-01")}}
    period["UserDefinedPeriod"] = {"StartDate": dates.get("user_start", "2006-01-01"), "EndDate": "2020-12-31"}
    expression["PrimaryCriteria"]["CriteriaList"].append({"ObservationPeriod": period})
    expression["CensorWindow"] = {"StartDate": "2001-01-01", "EndDate": dates.get("censor_end", "2030-12-31")}
    return expression


def _errors(expression: dict[str, Any]) -> list[tuple[str, str]]:
    with pytest.raises(ExpressionError) as caught:
        parse_expression(expression)
    return list(caught.value.errors)


def test_whole_dates_parse_everywhere_a_date_is_read() -> None:
    parse_expression(_with_dates())


@pytest.mark.parametrize("bad", NOT_WHOLE_DATES)
def test_each_date_field_refuses_what_is_not_a_whole_date_and_names_its_path(bad: str) -> None:
    observation = "PrimaryCriteria.CriteriaList[1].ObservationPeriod"
    for key, path in (
        ("value", VALUE_PATH),
        ("extent", f"{CRITERION}.OccurrenceStartDate.Extent"),
        ("period_start", f"{observation}.PeriodStartDate.Value"),
        ("user_start", f"{observation}.UserDefinedPeriod.StartDate"),
        ("censor_end", "CensorWindow.EndDate"),
    ):
        errors = _errors(_with_dates(**{key: bad}))
        assert [p for p, _ in errors] == [path], (key, errors)
        assert "YYYY-MM-DD" in errors[0][1]


@pytest.mark.django_db
def test_the_api_import_refuses_it_with_400_and_stores_nothing(alice: Any, project: Any) -> None:
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Token {token_create(user=alice, name='script', days=1).secret}")
    body = {"name": "injected", "project": project.pk, "expression": json.dumps(_with_dates(value=INJECTED))}
    response = client.post("/api/v1/cohort-definitions/import/", body, format="json")
    assert response.status_code == 400, response.content
    error = response.json()["error"]
    assert "YYYY-MM-DD" in error["fields"][f"expression.{VALUE_PATH}"][0]
    assert VALUE_PATH in error["message"]
    assert not CohortDefinition.objects.exists()


@pytest.mark.django_db
def test_the_page_import_refuses_it_with_400_and_stores_nothing(alice: Any, project: Any) -> None:
    client = Client()
    client.force_login(alice)
    data = {"name": "injected", "project": project.pk, "json_text": json.dumps(_with_dates(value=INJECTED))}
    response = client.post(reverse("cohorts:definition_import"), data)
    assert response.status_code == 400
    page = response.content.decode()
    assert VALUE_PATH in page and "YYYY-MM-DD" in page
    assert not CohortDefinition.objects.exists()


@pytest.mark.django_db
def test_the_builder_save_refuses_it_with_400_and_stores_nothing(alice: Any, project: Any) -> None:
    definition = definition_create(owner=alice, name="Type 2 diabetes", expression=EXPRESSION, project=project)
    client = Client()
    client.force_login(alice)
    url = reverse("cohorts:builder_save", kwargs={"pk": definition.pk})
    body = json.dumps({"expression": _with_dates(censor_end=INJECTED), "note": "injected"})
    response = client.post(url, body, content_type="application/json")
    assert response.status_code == 400
    errors = response.json()["errors"]
    assert [(e["path"], "YYYY-MM-DD" in e["message"]) for e in errors] == [("CensorWindow.EndDate", True)]
    assert CohortDefinitionVersion.objects.filter(definition=definition).count() == 1
    response = client.post(
        reverse("cohorts:builder_create"),
        json.dumps({"expression": _with_dates(extent=INJECTED), "name": "new", "project": project.pk}),
        content_type="application/json",
    )
    assert response.status_code == 400
    assert CohortDefinition.objects.count() == 1
