"""Hardening: every page carries a Content Security Policy without 'unsafe-inline', frames are refused, and no
template of the portal relies on inline script or style (which that policy would block in the browser)."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from django.conf import settings
from django.test import Client

pytestmark = pytest.mark.django_db

TEMPLATE_DIRS = [Path(settings.BASE_DIR) / "templates"]
INLINE_SCRIPT = re.compile(r"<script(?![^>]*\bsrc=)(?![^>]*type=\"application/json\")[^>]*>", re.IGNORECASE)
EVENT_HANDLER = re.compile(r"\son[a-z]+\s*=\s*[\"']", re.IGNORECASE)
STYLE_ATTRIBUTE = re.compile(r"\sstyle\s*=\s*[\"']", re.IGNORECASE)
INLINE_STYLE = re.compile(r"<style[\s>]", re.IGNORECASE)


def _policy(response) -> dict[str, list[str]]:
    header = response["Content-Security-Policy"]
    return {part.split()[0]: part.split()[1:] for part in header.split(";") if part.strip()}


def test_pages_carry_a_content_security_policy_without_unsafe_inline() -> None:
    response = Client().get("/accounts/login/")
    assert response.status_code == 200
    policy = _policy(response)
    for directive in ("script-src", "style-src", "default-src"):
        assert policy[directive] == ["'self'"], directive
    assert "'unsafe-inline'" not in response["Content-Security-Policy"]
    assert "'unsafe-eval'" not in response["Content-Security-Policy"]
    assert policy["frame-ancestors"] == ["'none'"]
    assert policy["object-src"] == ["'none'"]
    assert response["X-Frame-Options"] == "DENY"
    assert response["X-Content-Type-Options"] == "nosniff"


def test_no_template_uses_inline_script_event_handlers_or_style_attributes() -> None:
    offenders: list[str] = []
    for directory in TEMPLATE_DIRS:
        for path in sorted(directory.rglob("*.html")):
            text = path.read_text(encoding="utf-8")
            for name, pattern in (
                ("inline <script>", INLINE_SCRIPT),
                ("on*= handler", EVENT_HANDLER),
                ("style= attribute", STYLE_ATTRIBUTE),
                ("<style> block", INLINE_STYLE),
            ):
                for match in pattern.finditer(text):
                    line = text.count("\n", 0, match.start()) + 1
                    offenders.append(f"{path.relative_to(settings.BASE_DIR)}:{line}: {name}")
    assert not offenders, "blocked by the Content Security Policy:\n" + "\n".join(offenders)


def test_pages_drawing_charts_allow_plotlys_own_style_elements_by_hash_and_nothing_inline(client) -> None:
    from accounts.choices import Role
    from accounts.tests.factories import OrganisationFactory, SourceFactory, UserFactory, make_project
    from cohorts.definitions.services import definition_create
    from cohorts.runs.charts import PLOTLY_STYLE_HASHES
    from cohorts.tests.expressions import EXPRESSION
    from cohorts.tests.runs import count_request

    hospital = OrganisationFactory()
    source = SourceFactory(key="site", organisation=hospital, fingerprint="c" * 64)
    alice = UserFactory(username="alice", organisation=hospital)
    admin = UserFactory(username="admin", role=Role.ADMIN, organisation=hospital)
    project = make_project(principal_investigator=alice, created_by=admin, sources=[source])
    definition = definition_create(owner=alice, name="Charts", expression=EXPRESSION, project=project)
    request = count_request(definition.latest_version(), alice, {source: 42})
    client.force_login(alice)
    response = client.get(f"/cohorts/runs/{request.pk}/")
    assert response.status_code == 200
    policy = _policy(response)
    assert policy["style-src-elem"] == ["'self'", *PLOTLY_STYLE_HASHES]
    assert policy["script-src"] == ["'self'"] and policy["style-src"] == ["'self'"]
    assert "unsafe" not in response["Content-Security-Policy"]
