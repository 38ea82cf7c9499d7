"""A differencing attempt across two requests: count on every site, then on all but one, and subtract.

The per-site counts and the totals the service layer hands out must not let anybody recover a hidden site's count,
whatever the role; crafted results stand in for the sites' answers (the worker stores exactly this shape).
"""

from __future__ import annotations

import pytest

from accounts.choices import Role
from accounts.tests.factories import OrganisationFactory, SourceFactory, UserFactory, make_project
from cohorts.definitions.services import definition_create
from cohorts.runs.selectors import run_request_result
from cohorts.tests.expressions import EXPRESSION
from cohorts.tests.runs import count_request

pytestmark = pytest.mark.django_db


@pytest.fixture
def two_sites():
    hospital, other = OrganisationFactory(), OrganisationFactory()
    big = SourceFactory(key="big", organisation=hospital, fingerprint="a" * 64)
    small = SourceFactory(key="small", organisation=other, fingerprint="b" * 64)
    alice = UserFactory(username="alice", organisation=hospital)
    steward = UserFactory(username="admin", role=Role.ADMIN, organisation=hospital)
    project = make_project(principal_investigator=alice, created_by=steward, sources=[big, small])
    definition = definition_create(owner=alice, name="Rare disease", expression=EXPRESSION, project=project)
    return definition.latest_version(), alice, big, small


@pytest.mark.parametrize("role", ["researcher", "partner"])
def test_subtracting_a_request_on_fewer_sites_does_not_reveal_the_hidden_site(two_sites, role) -> None:
    version, alice, big, small = two_sites
    both = run_request_result(request=count_request(version, alice, {big: 123, small: 4}), role=role)
    big_only = run_request_result(request=count_request(version, alice, {big: 123}), role=role)

    by_key = {site["source"]: site for site in both["sites"]}
    assert by_key["small"]["persons"] == {"value": None, "display": "<10", "hidden": True}
    # No breakdown without a shown total: not even the attrition steps, hidden or not.
    assert by_key["small"]["attrition"] == [] and by_key["small"]["breakdown_withheld"]
    # The total of both sites is not a number: "<the big site> + <10".
    assert both["total"]["value"] is None and both["total"]["hidden"]
    assert both["total"]["display"].endswith("+ <10")
    # What the two requests give in numbers is the same: their difference is 0, not the small site's 4.
    assert both["total"]["lower_bound"] == big_only["total"]["value"]
    assert "4" not in both["total"]["display"].replace(big_only["total"]["display"], "")


def test_every_number_handed_out_for_a_hidden_site_is_withheld_in_the_csv_too(two_sites) -> None:
    from cohorts.runs.selectors import run_result_table

    version, alice, big, small = two_sites
    result = run_request_result(request=count_request(version, alice, {big: 123, small: 4}), role="researcher")
    _header, rows = run_result_table(result, "sites")
    cells = [str(cell) for row in rows for cell in row]
    assert "4" not in cells and "127" not in cells
    assert "123 + <10" in cells
