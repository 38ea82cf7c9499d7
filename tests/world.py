"""The world of the authorization matrices (tests/test_authorization_matrix.py, tests/api/): the same people and
projects for the pages and the API.

People, by role: anonymous; ``pending`` (signed-up, not approved); ``member`` (bob, researcher analyst of project
P); ``partner`` (pharma, partner viewer of P); ``outsider`` (charlie, approved researcher of no project);
``steward`` (data steward of the hospital whose source P uses; TOTP enrolled); ``admin`` (TOTP enrolled). Project
Q runs on another hospital's source, owned by dave; nobody above but the admin is in it. ``World.P`` holds the
objects of P (the "own" side), ``World.Q`` those of Q (the "other" side), by kind.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from accounts.choices import AccountStatus, Role
from accounts.tests.factories import (
    OrganisationFactory,
    SourceFactory,
    UserFactory,
    enroll_totp,
    make_member,
    make_project,
)
from cohorts.definitions.services import definition_create, definition_share
from cohorts.runs.choices import RunKind
from cohorts.runs.models import CohortRun, Comparison, ComparisonCohort, ComparisonRun, RunRequest
from cohorts.tests.expressions import EXPRESSION
from cohorts.tests.runs import with_cell_keys
from disclosure.models import ExactCountGrant
from jobs.choices import JobState

P_DEFINITION = "Alpha cohort of project P"
Q_DEFINITION = "Omega secret cohort of project Q"

ROLES = ("anonymous", "pending", "member", "partner", "outsider", "steward", "admin")


@dataclass
class World:
    users: dict[str, Any]
    P: dict[str, Any] = field(default_factory=dict)  # objects of project P (the "own" side)
    Q: dict[str, Any] = field(default_factory=dict)  # objects of project Q (the "other" side)


def _ready_source(key: str, organisation: Any) -> Any:
    return SourceFactory(key=key, organisation=organisation, fingerprint="f" * 64)


def _finished_request(definition: Any, user: Any, source: Any) -> RunRequest:
    version = definition.latest_version()
    request = RunRequest.objects.create(
        definition=version.definition, version=version, kind=RunKind.COUNT, requested_by=user
    )
    run = CohortRun.objects.create(
        version=version,
        source=source,
        kind=RunKind.COUNT,
        cache_key=f"authz-{definition.pk}",
        source_fingerprint=source.fingerprint,
        requested_by=user,
        state=JobState.SUCCEEDED,
        result=with_cell_keys({"persons": 42, "rows": 42, "inclusion_rules": [], "attrition": []}),
    )
    request.runs.add(run)
    return request


def _comparison(definitions: list[Any], user: Any, source: Any) -> Comparison:
    """A comparison of ``definitions`` by ``user`` that the site's worker finished (two cohorts, 3 combinations)."""
    comparison = Comparison.objects.create(requested_by=user)
    for position, definition in enumerate(definitions):
        ComparisonCohort.objects.create(comparison=comparison, position=position, version=definition.latest_version())
    cells = {1: 30, 2: 20, 3: 12}
    ComparisonRun.objects.create(
        comparison=comparison,
        source=source,
        state=JobState.SUCCEEDED,
        result={
            "cohorts": [{"persons": 42, "key": 7}, {"persons": 32, "key": 9}],
            "combinations": [{"mask": m, "persons": n, "key": m} for m, n in cells.items()],
            "union": {"persons": 62, "key": 6},
        },
    )
    return comparison


def _dataset_objects(definition: Any, requester: Any, source: Any, root: Any) -> dict[str, Any]:
    """A dataset request under review at the source (projection done), with its document and a pending extract."""
    from accounts.permissions import grant
    from datasets.models import DatasetRequest, Extract, Projection, SiteReview

    root.joinpath("documents").mkdir(parents=True, exist_ok=True)
    document = f"documents/authz-{definition.pk}.pdf"
    root.joinpath(document).write_bytes(b"%PDF-1.4 authz")
    request = DatasetRequest.objects.create(
        version=definition.latest_version(),
        project=definition.project,
        requester=requester,
        selection={"person": ["gender_concept_id"]},
        purpose="authz",
        legal_basis="irb",
        document_path=document,
        document_type="application/pdf",
        state="under_review",
    )
    request.sites.set([source])
    grant(request, codenames=["view_datasetrequest"], to_user=requester)
    review = SiteReview.objects.create(request=request, source=source, cohort_persons=42, projected_rows={"person": 42})
    Projection.objects.create(review=review, state=JobState.SUCCEEDED)
    extract = Extract.objects.create(request=request, source=source)
    return {"dataset_request": request, "review": review, "extract": extract}


def _concept_sets(bob: Any, project_p: Any, dave: Any, project_q: Any) -> tuple[Any, Any]:
    """One concept set in each project (bob's in P, dave's in Q), over a one-concept vocabulary."""
    from cohorts.concept_sets.services import concept_set_create
    from warehouse.models import Concept

    Concept.objects.get_or_create(
        concept_id=201826,
        defaults={
            "concept_name": "Type 2 diabetes mellitus",
            "domain_id": "Condition",
            "vocabulary_id": "SNOMED",
            "concept_class_id": "Clinical Finding",
            "standard_concept": "S",
            "concept_code": "44054006",
        },
    )
    expression = {"items": [{"concept": {"CONCEPT_ID": 201826}, "includeDescendants": True}]}
    return (
        concept_set_create(user=bob, project=project_p, name="P diabetes", expression=expression),
        concept_set_create(user=dave, project=project_q, name=Q_DEFINITION, expression=expression),
    )


def _ended_grant(project: Any, source: Any, granted_by: Any) -> ExactCountGrant:
    """An exact-count grant of the project at the site whose last day has passed: an object of the grants pages
    that changes no count the matrices read."""
    import datetime as dt

    from django.utils import timezone

    yesterday = timezone.localdate() - dt.timedelta(days=1)
    return ExactCountGrant.objects.create(
        project=project, source=source, reason="IRB-2026-001 exact counts", ends_at=yesterday, granted_by=granted_by
    )


def build_world() -> World:
    """The world itself, for fixtures of other scopes (tests/api builds it once per module)."""
    from django.conf import settings

    hospital = OrganisationFactory(name="Soyang University Hospital")
    other_hospital = OrganisationFactory(name="Chuncheon Regional Hospital")
    source = _ready_source("syuh", hospital)
    other_source = _ready_source("crh", other_hospital)

    steward = UserFactory(username="steward", role=Role.STEWARD, organisation=hospital)
    enroll_totp(steward)
    admin = UserFactory(username="admin", role=Role.ADMIN, organisation=hospital, is_staff=True, is_superuser=True)
    enroll_totp(admin)
    alice = UserFactory(username="alice", organisation=hospital)
    bob = UserFactory(username="bob", organisation=other_hospital)
    partner = UserFactory(username="pharma", role=Role.PARTNER, organisation=OrganisationFactory(name="Pharma Co"))
    charlie = UserFactory(username="charlie", organisation=other_hospital)
    pending = UserFactory(username="pending", organisation=hospital, status=AccountStatus.PENDING)
    dave = UserFactory(username="dave", organisation=other_hospital)
    erin = UserFactory(username="erin", organisation=hospital)
    frank = UserFactory(username="frank", organisation=other_hospital)

    project_p = make_project(principal_investigator=alice, created_by=steward, sources=[source], title="Project P")
    project_q = make_project(principal_investigator=dave, created_by=admin, sources=[other_source], title="Project Q")
    make_member(project=project_p, user=bob, owner=alice, steward=steward)
    make_member(project=project_p, user=partner, owner=alice, steward=steward)

    from accounts.api.tokens import token_create
    from accounts.services import membership_request

    def_p = definition_create(owner=alice, name=P_DEFINITION, expression=EXPRESSION, project=project_p)
    definition_share(definition=def_p, by=alice, to_project=project_p)
    def_q = definition_create(owner=dave, name=Q_DEFINITION, expression=EXPRESSION, project=project_q)
    definition_share(definition=def_q, by=dave, to_project=project_q)

    w = World(
        users={
            "anonymous": None,
            "pending": pending,
            "member": bob,
            "partner": partner,
            "outsider": charlie,
            "steward": steward,
            "admin": admin,
        }
    )
    set_p, set_q = _concept_sets(bob, project_p, dave, project_q)
    # A second definition in each project, for the comparisons (a comparison holds 2 to 4).
    def_p2 = definition_create(owner=alice, name="P statin users", expression=EXPRESSION, project=project_p)
    definition_share(definition=def_p2, by=alice, to_project=project_p)
    def_q2 = definition_create(owner=dave, name="Q statin users", expression=EXPRESSION, project=project_q)
    definition_share(definition=def_q2, by=dave, to_project=project_q)
    w.P = {
        "concept_set": set_p,
        "project": project_p,
        "definition": def_p,
        "run": _finished_request(def_p, bob, source),
        "comparison": _comparison([def_p, def_p2], bob, source),
        "membership": membership_request(project=project_p, user=erin),
        # An account the site's steward reviews: pending, of the steward's own hospital.
        "account": pending,
        # A personal API token of the member's (tokens are their owner's alone, whatever the role).
        "token": token_create(user=bob, name="bob's notebook", days=30).token,
        **_dataset_objects(def_p, partner, source, settings.SOYANG_DATASET_ROOT),
        "grant": _ended_grant(project_p, source, steward),
        "source": source,
    }
    w.Q = {
        "concept_set": set_q,
        "project": project_q,
        "definition": def_q,
        "run": _finished_request(def_q, dave, other_source),
        "comparison": _comparison([def_q, def_q2], dave, other_source),
        "membership": membership_request(project=project_q, user=frank),
        # An approved researcher of the other hospital: not the hospital steward's to suspend.
        "account": dave,
        "token": token_create(user=dave, name="dave's notebook", days=30).token,
        **_dataset_objects(def_q, dave, other_source, settings.SOYANG_DATASET_ROOT),
        "grant": _ended_grant(project_q, other_source, admin),
        "source": other_source,
    }
    return w
