"""The structure ARCHITECTURE.md describes, checked on the models: every relation between two Soyang apps runs
downwards in the apps' layering (the same order as the import contract in pyproject.toml), so no two apps' models
depend on each other. Imports are checked by lint-imports in ``make test``."""

from __future__ import annotations

import tomllib
from pathlib import Path

from django.apps import apps
from django.conf import settings

REPO_ROOT = Path(__file__).resolve().parents[1]


def _layers() -> list[set[str]]:
    """The layers of the import contract in pyproject.toml, highest first: one order for imports and models."""
    config = tomllib.loads((REPO_ROOT / "pyproject.toml").read_text())
    (contract,) = [c for c in config["tool"]["importlinter"]["contracts"] if c["id"] == "layers"]
    return [{app.strip() for app in layer.split("|")} for layer in contract["layers"]]


RANK = {app: rank for rank, layer in enumerate(_layers()) for app in layer}


def _relations_between_apps() -> set[tuple[str, str, str]]:
    """(from app, to app, model.field) for every concrete relation field declared by a Soyang model."""
    found = set()
    for model in apps.get_models():
        source = model._meta.app_label
        if source not in RANK:
            continue
        for field in model._meta.get_fields():
            if not (field.is_relation and field.concrete) or field.related_model is None:
                continue
            target = field.related_model._meta.app_label
            if target in RANK and target != source:
                found.add((source, target, f"{model._meta.label}.{field.name}"))
    return found


def _to_the_user_model(field: str) -> bool:
    app_label, model_name, field_name = field.split(".")
    related = apps.get_model(app_label, model_name)._meta.get_field(field_name).related_model
    return related._meta.label == settings.AUTH_USER_MODEL


def test_every_model_relation_between_apps_points_down_the_layers() -> None:
    # The user model is the one exception: every app reaches it through Django's AUTH_USER_MODEL setting (audit's
    # actor too), never by importing accounts. It still counts in the cycle check below.
    upwards = sorted(
        f"{field}: {source} -> {target}"
        for source, target, field in _relations_between_apps()
        if RANK[target] <= RANK[source] and not _to_the_user_model(field)
    )
    assert upwards == []


def test_no_two_apps_refer_to_each_other_through_their_models() -> None:
    edges = {(source, target) for source, target, _field in _relations_between_apps()}
    assert sorted(f"{a} <-> {b}" for a, b in edges if (b, a) in edges and a < b) == []


def test_the_layering_names_every_soyang_app() -> None:
    ours = {config.label for config in apps.get_app_configs() if Path(config.path).parent == REPO_ROOT}
    assert ours - set(RANK) == set()
