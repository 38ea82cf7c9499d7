"""The membership decision form sends the decider back where it came from only when ``next`` is a path of
this site: another host, a scheme-relative URL or a script URL goes to the approvals page instead."""

from __future__ import annotations

import pytest
from django.test import Client

from accounts.services import membership_request


@pytest.mark.parametrize(
    "target",
    [
        "https://evil.example/phish",
        "//evil.example/phish",
        "http:/\\evil.example",
        "javascript:alert(1)",
        "\\\\evil.example",
    ],
)
def test_a_next_elsewhere_is_not_followed(project, bob, steward, target) -> None:
    membership = membership_request(project=project, user=bob)
    client = Client()
    client.force_login(steward)
    response = client.post(f"/projects/requests/{membership.pk}/decide/", {"decision": "", "next": target})
    assert response.status_code == 302
    assert response.url == "/approvals/"


def test_a_next_on_this_site_is_followed(project, bob, steward) -> None:
    membership = membership_request(project=project, user=bob)
    client = Client()
    client.force_login(steward)
    response = client.post(
        f"/projects/requests/{membership.pk}/decide/", {"decision": "", "next": f"/projects/{project.pk}/"}
    )
    assert response.status_code == 302
    assert response.url == f"/projects/{project.pk}/"
