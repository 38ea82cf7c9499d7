"""A dataset is requested for a definition one holds the request permission on, inside a running project one works
in: the project's members (owner, analyst, partner viewer) and admins may; outsiders and stewards who only approved
people into the project may not; when the project has ended, not even the definition's owner."""

from __future__ import annotations

import datetime as dt

import pytest
from django.utils import timezone

from accounts.models import Project
from datasets import rules
from datasets.selectors import definitions_requestable
from datasets.tests.conftest import RulesWorld

PEOPLE = ("partner", "alice", "bob", "charlie", "steward_a", "steward_b", "steward_c", "admin")


@pytest.mark.parametrize("who", ["partner", "alice", "bob", "admin"])
def test_the_projects_members_and_admins_may_request(rules_world: RulesWorld, who: str) -> None:
    assert rules.can_request_dataset(getattr(rules_world, who), rules_world.definition)


@pytest.mark.parametrize("who", ["charlie", "steward_a", "steward_c"])
def test_outsiders_and_stewards_outside_the_project_may_not(rules_world: RulesWorld, who: str) -> None:
    verdict = rules.can_request_dataset(getattr(rules_world, who), rules_world.definition)
    assert not verdict and str(verdict) == "You may not request a dataset for this definition."


def test_once_the_project_has_ended_not_even_the_definitions_owner_may(rules_world: RulesWorld) -> None:
    w = rules_world
    Project.objects.filter(pk=w.definition.project_id).update(expires_on=timezone.localdate() - dt.timedelta(days=1))
    # The owner keeps the permission on their own definition, but works in no running project with it.
    verdict = rules.can_request_dataset(w.alice, w.definition)
    assert not verdict and str(verdict) == "Datasets are requested inside a running project you work in."
    # The members held it through the project only.
    verdict = rules.can_request_dataset(w.bob, w.definition)
    assert not verdict and str(verdict) == "You may not request a dataset for this definition."


@pytest.mark.parametrize("ended", [False, True])
def test_the_rule_for_one_definition_and_the_list_of_requestable_definitions_agree(
    rules_world: RulesWorld, ended: bool
) -> None:
    w = rules_world
    if ended:
        Project.objects.filter(pk=w.definition.project_id).update(
            expires_on=timezone.localdate() - dt.timedelta(days=1)
        )
    for who in PEOPLE:
        user = getattr(w, who)
        listed = definitions_requestable(user).filter(pk=w.definition.pk).exists()
        assert bool(rules.can_request_dataset(user, w.definition)) == listed, who
