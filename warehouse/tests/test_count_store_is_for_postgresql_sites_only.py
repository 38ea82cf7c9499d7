"""A count store is a PostgreSQL site's: a Spark or DuckDB source cannot be given one, and a Spark site's count
never looks for one (even on a row marked so before this rule) but counts on the site's own engine."""

from __future__ import annotations

from typing import Any

import pytest
from django.core.exceptions import ValidationError

from cohorts.runs.stores import counting_engine
from warehouse.models import Source

pytestmark = pytest.mark.django_db


@pytest.mark.parametrize(("engine", "url"), [("spark", "sc://127.0.0.1:15002"), ("duckdb", "duckdb:///tmp/x.duckdb")])
def test_a_source_that_is_not_postgresql_refuses_a_count_store(engine: str, url: str) -> None:
    source = Source(key="site", name="Site", engine=engine, url=url, count_store=True)
    with pytest.raises(ValidationError) as refused:
        source.full_clean()
    assert "count_store" in refused.value.message_dict
    source.count_store = False
    source.full_clean()


def test_a_spark_site_counts_on_its_own_engine_and_never_touches_a_store(cdm_gibleed_spark: Any) -> None:
    source = Source.objects.create(
        key="sparksite", name="Spark site", engine="spark", url=cdm_gibleed_spark.url, count_store=True
    )
    counting = counting_engine(source, cdm_gibleed_spark.engine)
    assert counting.engine is cdm_gibleed_spark.engine and counting.name == "spark" and not counting.note
    source.refresh_from_db()
    assert source.count_store_state == "" and source.count_store_checked_at is None
