"""The people, project, sites and definition of the dataset tests.

Two hospitals, each owning one GiBleed site (``pg_site`` on PostgreSQL, ``duck_site`` on a private DuckDB file);
``project`` runs on both, owned by alice (researcher); ``partner`` (pharma) is its partner viewer; ``steward_a`` and
``steward_b`` steward the two hospitals; ``charlie`` works in no project. The oracle definition h04 is shared with
the project, so its members may request datasets of it.
"""

from __future__ import annotations

import io
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile
from django.test import Client

from accounts.choices import Role
from accounts.tests.factories import OrganisationFactory, UserFactory, enroll_totp, make_member, make_project
from cohorts.definitions.services import definition_share
from worker.tests.conftest import cdm_gibleed_duckdb_private, start_worker  # noqa: F401 (fixtures)
from worker.tests.helpers import make_source, oracle_definition

DEFINITION = "h04_gibleed_censored_by_acetaminophen"
PDF = b"%PDF-1.4\n1 0 obj << /Type /Catalog >> endobj\ntrailer << /Root 1 0 R >>\n%%EOF\n"

SELECTION = {
    "person": ["gender_concept_id", "year_of_birth", "race_concept_id"],
    "visit_occurrence": ["visit_occurrence_id", "visit_concept_id", "visit_start_date", "visit_end_date"],
    "condition_occurrence": [
        "condition_occurrence_id",
        "condition_concept_id",
        "condition_start_date",
        "condition_end_date",
        "visit_occurrence_id",
    ],
    "drug_exposure": ["drug_exposure_id", "drug_concept_id", "drug_exposure_start_date", "visit_occurrence_id"],
}


@dataclass
class World:
    hospital_a: Any
    hospital_b: Any
    steward_a: Any
    steward_b: Any
    admin: Any
    alice: Any
    partner: Any
    charlie: Any
    project: Any
    definition: Any
    sites: list[Any]


def pdf_upload(name: str = "irb.pdf", data: bytes = PDF) -> SimpleUploadedFile:
    return SimpleUploadedFile(name, data, content_type="application/pdf")


def build_world(sites_cdms: list[Any], oracle_dir: Path) -> World:
    hospital_a = OrganisationFactory(name="Soyang University Hospital")
    hospital_b = OrganisationFactory(name="Chuncheon Regional Hospital")
    steward_a = UserFactory(username="steward_a", role=Role.STEWARD, organisation=hospital_a)
    steward_b = UserFactory(username="steward_b", role=Role.STEWARD, organisation=hospital_b)
    admin = UserFactory(username="admin", role=Role.ADMIN, organisation=hospital_a, is_staff=True, is_superuser=True)
    for user in (steward_a, steward_b, admin):
        enroll_totp(user)
    alice = UserFactory(username="alice", organisation=hospital_a)
    partner = UserFactory(username="pharma", role=Role.PARTNER, organisation=OrganisationFactory(name="Pharma Co"))
    charlie = UserFactory(username="charlie", organisation=hospital_b)
    organisations = [hospital_a, hospital_b]
    sites = [make_source(cdm, organisation=organisations[i]) for i, cdm in enumerate(sites_cdms)]
    project = make_project(principal_investigator=alice, created_by=admin, sources=sites, title="GI bleeding")
    # A partner joins as partner viewer (accounts.services' default for the partner role).
    make_member(project=project, user=partner, owner=alice, steward=steward_a)
    definition = oracle_definition(oracle_dir, DEFINITION, alice)
    definition.project = project
    definition.save(update_fields=["project"])
    definition_share(definition=definition, by=alice, to_project=project)
    return World(
        hospital_a=hospital_a,
        hospital_b=hospital_b,
        steward_a=steward_a,
        steward_b=steward_b,
        admin=admin,
        alice=alice,
        partner=partner,
        charlie=charlie,
        project=project,
        definition=definition,
        sites=sites,
    )


@pytest.fixture
def dataset_root(settings: Any, tmp_path: Path) -> Path:
    root = tmp_path / "datasets"
    settings.SOYANG_DATASET_ROOT = root
    settings.SOYANG_DATASET_KEY = ""
    return root


def request_form_data(world: World, *, action: str = "submit", **overrides: Any) -> dict[str, Any]:
    data: dict[str, Any] = {
        "sites": [s.pk for s in world.sites],
        "tables": list(SELECTION),
        "columns": [f"{t}.{c}" for t, cols in SELECTION.items() for c in cols],
        "days_before": 365,
        "days_after": 365,
        "purpose": "Risk of GI bleeding after NSAID exposure",
        "legal_basis": "irb",
        "document": io.BytesIO(PDF),
        "retention_days": 7,
        "output_format": "csv",
        "action": action,
    }
    data["document"].name = "irb.pdf"
    data.update(overrides)
    return data


def create_request(world: World, **fields: Any) -> Any:
    """A draft dataset request of ``world``'s definition on both sites by the partner (a year either side of the
    index date, an IRB approval attached); ``fields`` override any argument of ``services.request_create``."""
    from datasets import services

    arguments: dict[str, Any] = {
        "requester": world.partner,
        "definition": world.definition,
        "sites": world.sites,
        "selection": SELECTION,
        "days_before": 365,
        "days_after": 365,
        "purpose": "GI bleeding",
        "legal_basis": "irb",
        "retention_days": 7,
        "document": pdf_upload(),
    }
    return services.request_create(**{**arguments, **fields})


#: Every person column the catalogue releases: the quasi-identifiers of the k-anonymity tests.
ALL_PERSON_COLUMNS = {
    "person": ["gender_concept_id", "year_of_birth", "race_concept_id", "ethnicity_concept_id"],
    "condition_occurrence": ["condition_concept_id", "condition_start_date"],
}


def extract_ready(world: World, selection: dict[str, list[str]], dataset_root: Path, start: Any) -> Any:
    """The one site's extract of a partner's request for ``selection``, extracted by a real worker of the site
    after its steward's approval (a ten-year window either side of the index date); ``start`` is the
    ``start_worker`` fixture."""
    from datasets import services
    from datasets.choices import RequestState
    from worker.tests.helpers import wait_for

    (site,) = world.sites
    worker = start(f"site.{site.key}", env={"SOYANG_DATASET_ROOT": str(dataset_root)})
    request = create_request(world, selection=selection, days_before=3650, days_after=3650)

    def state_in(*states: str) -> bool:
        request.refresh_from_db()
        return request.state in states

    services.request_submit(request=request, user=world.partner)
    wait_for(lambda: state_in(RequestState.UNDER_REVIEW), timeout=120, what="the projection")
    services.review_decide(review=request.reviews.get(), steward=world.steward_a, approve=True)
    wait_for(lambda: state_in(RequestState.READY, RequestState.FAILED), timeout=120, what="the extraction")
    assert request.state == RequestState.READY, (request.reason, worker.log()[-3000:])
    return request.extracts.select_related("source", "request").get()


def signed_in_client(user: Any) -> Client:
    """A page client signed in as ``user``."""
    client = Client()
    client.force_login(user)
    return client


def files_under(root: Path) -> list[Path]:
    """Every file under the dataset root except approval documents."""
    if not root.exists():
        return []
    return sorted(p for p in root.rglob("*") if p.is_file() and "documents" not in p.relative_to(root).parts)


@dataclass
class RulesWorld:
    """People around one dataset request, for the rules of ``datasets.rules`` (no warehouse behind the sites).

    The request is the partner's (its owner), on the sites of hospitals A and B; alice owns the project and bob is
    an analyst of it (members, not requesters); charlie is an approved researcher of no project; steward_a and
    steward_b steward the request's two sites, steward_c a third hospital's site the request does not ask.
    """

    partner: Any
    alice: Any
    bob: Any
    charlie: Any
    steward_a: Any
    steward_b: Any
    steward_c: Any
    admin: Any
    definition: Any
    request: Any
    review_a: Any
    review_b: Any
    extract_a: Any


@pytest.fixture
def rules_world(db: Any) -> RulesWorld:
    from accounts.tests.factories import SourceFactory
    from cohorts.definitions.services import definition_create
    from cohorts.tests.expressions import EXPRESSION
    from datasets.models import DatasetRequest, Extract, Projection, SiteReview
    from jobs.choices import JobState

    hospitals = [OrganisationFactory(name=f"Hospital {letter}") for letter in "ABC"]
    sites = [SourceFactory(key=f"site_{h.name[-1].lower()}", organisation=h) for h in hospitals]
    stewards = [
        UserFactory(username=f"steward_{s.key[-1]}", role=Role.STEWARD, organisation=h)
        for s, h in zip(sites, hospitals, strict=True)
    ]
    admin = UserFactory(username="admin", role=Role.ADMIN, organisation=hospitals[0], is_staff=True, is_superuser=True)
    alice = UserFactory(username="alice", organisation=hospitals[0])
    bob = UserFactory(username="bob", organisation=hospitals[1])
    charlie = UserFactory(username="charlie", organisation=hospitals[1])
    partner = UserFactory(username="pharma", role=Role.PARTNER, organisation=OrganisationFactory(name="Pharma Co"))
    project = make_project(principal_investigator=alice, created_by=admin, sources=sites[:2], title="GI bleeding")
    make_member(project=project, user=bob, owner=alice, steward=stewards[0])
    make_member(project=project, user=partner, owner=alice, steward=stewards[0])
    definition = definition_create(owner=alice, name="GI bleeding", expression=EXPRESSION, project=project)
    definition_share(definition=definition, by=alice, to_project=project)
    request = DatasetRequest.objects.create(
        version=definition.latest_version(),
        project=project,
        requester=partner,
        selection={"person": ["gender_concept_id"]},
        purpose="rules",
        legal_basis="irb",
        state="under_review",
    )
    request.sites.set(sites[:2])
    reviews = [SiteReview.objects.create(request=request, source=site) for site in sites[:2]]
    for review in reviews:
        Projection.objects.create(review=review, state=JobState.SUCCEEDED)
    for user in (*stewards, admin):
        enroll_totp(user)  # the portal's pages require it of stewards and admins
    return RulesWorld(
        partner=partner,
        alice=alice,
        bob=bob,
        charlie=charlie,
        steward_a=stewards[0],
        steward_b=stewards[1],
        steward_c=stewards[2],
        admin=admin,
        definition=definition,
        request=request,
        review_a=reviews[0],
        review_b=reviews[1],
        extract_a=Extract.objects.create(request=request, source=sites[0]),
    )
