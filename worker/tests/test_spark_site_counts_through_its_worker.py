"""A Spark site does a researcher's site work through its own Celery worker, and releases exactly what a DuckDB
site on the same data and with the same record-key secret releases: the count and its attrition (by person and
by event), the characterization with the site's population, the concept counts, and a comparison's overlaps.

GiBleed on the session's Spark (Parquet tables) beside GiBleed in a DuckDB file; one worker takes both sites'
queues. Each Spark run costs seconds, so the journey is a few runs, compared run for run with DuckDB's.
"""

from __future__ import annotations

import uuid
from typing import Any

import pytest

from cohorts.concept_sets.counts import concept_counts_enqueue
from cohorts.runs.choices import RunKind
from cohorts.runs.comparison_services import comparison_create
from cohorts.runs.models import ComparisonRun
from cohorts.runs.selectors import run_request_result
from cohorts.runs.services import run_request_create, site_queue
from disclosure.record_keys import record_key_secret_variable
from jobs.choices import FINAL_STATES, JobState
from warehouse.models import ConceptCount, Source
from worker.tests.conftest import cdm_gibleed_duckdb_private  # noqa: F401 (fixture)
from worker.tests.helpers import (
    make_running_project,
    make_source,
    make_user,
    oracle_definition,
    oracle_expected,
    oracle_released,
    wait_final,
    wait_for,
)

pytestmark = pytest.mark.django_db(transaction=True)

NAME = "h04_gibleed_censored_by_acetaminophen"
#: Two inclusion rules: attrition steps to compare.
RULES = "pl_22168"


@pytest.fixture
def sites(
    cdm_gibleed_spark: Any,
    cdm_gibleed_duckdb_private: Any,  # noqa: F811
    monkeypatch: pytest.MonkeyPatch,
    start_worker: Any,
) -> tuple[Source, Source]:
    """A Spark site and a DuckDB site on GiBleed sharing one record-key secret, and one worker for both."""
    secret = uuid.uuid4().hex + uuid.uuid4().hex
    spark = make_source(cdm_gibleed_spark, key=f"spark{uuid.uuid4().hex[:6]}")
    duck = make_source(cdm_gibleed_duckdb_private, key=f"duck{uuid.uuid4().hex[:6]}")
    for source in (spark, duck):
        # Set in this process before the worker starts: the worker inherits it, and the test reads the same.
        monkeypatch.setenv(record_key_secret_variable(source.key), secret)
    start_worker(f"{site_queue(spark.key)},{site_queue(duck.key)}")
    return spark, duck


#: What a site's shown result says of the site and the run (besides its times) rather than of the cohort.
_OF_THE_RUN = {"run", "site", "source", "key", "engine", "engine_note", "database_seconds", "progress", "worker"}


def _site(request: Any) -> dict[str, Any]:
    """The numbers a researcher is shown of the request's one site (not the site's name, engine or timings)."""
    (site,) = run_request_result(request=request, role="researcher")["sites"]
    return {
        key: value
        for key, value in site.items()
        if key not in _OF_THE_RUN and "seconds" not in key and not key.endswith("_at")
    }


def test_a_spark_site_counts_on_its_worker_and_releases_what_duckdb_releases(
    sites: tuple[Source, Source], oracle_dir: Any
) -> None:
    spark, duck = sites
    alice = make_user()
    version = oracle_definition(oracle_dir, RULES, alice).latest_version()

    spark_request = run_request_create(user=alice, version=version, sources=[spark])
    duck_request = run_request_create(user=alice, version=version, sources=[duck])
    (on_spark,) = wait_final(spark_request, timeout=180)
    (on_duck,) = wait_final(duck_request, timeout=180)

    assert on_spark.state == JobState.SUCCEEDED, on_spark.error
    assert on_duck.state == JobState.SUCCEEDED, on_duck.error
    assert on_spark.result["engine"] == "spark" and on_duck.result["engine"] == "duckdb"
    assert on_spark.result["persons"] == oracle_expected(oracle_dir, RULES)["persons"]
    assert on_spark.result["fingerprint"] == Source.objects.get(pk=spark.pk).fingerprint
    # The aggregates and their cell keys, step by step, by person and by event: the same on both engines.
    for field in ("persons", "persons_key", "records", "key", "attrition", "inclusion"):
        if field in on_duck.result:
            assert on_spark.result[field] == on_duck.result[field], field
    # Hence the same released numbers: the count a researcher sees, and its attrition.
    released = _site(spark_request)
    assert released == _site(duck_request)
    assert released["persons"]["value"] == oracle_released(oracle_dir, RULES, spark)
    assert len(released["attrition"]) == 2  # one step per inclusion rule


def test_a_spark_site_characterizes_counts_concepts_and_compares_on_its_worker_as_duckdb_does(
    sites: tuple[Source, Source], oracle_dir: Any
) -> None:
    spark, duck = sites
    alice = make_user()
    version = oracle_definition(oracle_dir, NAME, alice).latest_version()

    # Characterization, with the site's whole population beside the cohort.
    spark_request = run_request_create(user=alice, version=version, sources=[spark], kind=RunKind.DEMOGRAPHICS)
    duck_request = run_request_create(user=alice, version=version, sources=[duck], kind=RunKind.DEMOGRAPHICS)
    (on_spark,) = wait_final(spark_request, timeout=180)
    (on_duck,) = wait_final(duck_request, timeout=180)
    assert on_spark.state == JobState.SUCCEEDED, on_spark.error
    assert on_duck.state == JobState.SUCCEEDED, on_duck.error
    demographics = on_spark.result["demographics"]
    assert demographics["persons"] == on_spark.result["persons"] == oracle_expected(oracle_dir, NAME)["persons"]
    assert demographics.get("population"), "the site's population is described beside the cohort"
    assert demographics == on_duck.result["demographics"]
    assert _site(spark_request) == _site(duck_request)

    # The concept counts the concept-set pages show, with their cell keys.
    concept_counts_enqueue(source=spark)
    concept_counts_enqueue(source=duck)

    def counted(source: Source) -> list[tuple[Any, ...]]:
        return list(
            ConceptCount.objects.filter(source=source)
            .order_by("concept_id")
            .values_list("concept_id", "record_count", "person_count", "record_key", "person_key")
        )

    wait_for(lambda: counted(spark) and counted(duck), timeout=180, what="both sites' concept counts")
    assert len(counted(spark)) > 100
    assert counted(spark) == counted(duck)

    # A comparison: the persons each combination of two cohorts holds, with their keys.
    project = make_running_project(investigator=alice, sources=[spark, duck], title="Spark overlap")
    versions = []
    for name in (NAME, RULES):
        definition = oracle_definition(oracle_dir, name, alice)
        definition.project = project
        definition.save(update_fields=["project"])
        versions.append(definition.latest_version())
    comparison = comparison_create(user=alice, versions=versions, sources=[spark, duck])

    def finished() -> list[ComparisonRun] | None:
        runs = list(ComparisonRun.objects.filter(comparison=comparison, state__in=FINAL_STATES))
        return runs if len(runs) == 2 else None

    runs = {run.source_id: run for run in wait_for(finished, timeout=180, what="the comparison at both sites")}
    for run in runs.values():
        assert run.state == JobState.SUCCEEDED, run.error
    assert runs[spark.pk].result["combinations"] == runs[duck.pk].result["combinations"]
    assert runs[spark.pk].result["cohorts"] == runs[duck.pk].result["cohorts"]
    assert runs[spark.pk].result["union"] == runs[duck.pk].result["union"]
