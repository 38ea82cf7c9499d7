"""accounts is generic: no model of it refers to another Soyang app (ARCHITECTURE.md), whereas the sites refer to
projects and organisations."""

from __future__ import annotations

from django.apps import apps

from accounts.models import Project

SOYANG_APPS = {"portal", "audit", "accounts", "warehouse", "disclosure", "jobs", "cohorts", "datasets", "worker"}


def test_no_model_of_accounts_refers_to_another_soyang_app() -> None:
    outward = [
        f"{model.__name__}.{field.name} -> {field.related_model._meta.label}"
        for model in apps.get_app_config("accounts").get_models()
        for field in model._meta.get_fields()
        if field.is_relation
        and field.concrete
        and field.related_model._meta.app_label in SOYANG_APPS - {"accounts", "audit"}
    ]
    assert outward == []


def test_a_project_still_lists_its_sites_through_the_relation_the_sites_declare() -> None:
    relation = Project._meta.get_field("sources")
    assert relation.auto_created and not relation.concrete
    assert relation.related_model._meta.label == "warehouse.Source"
