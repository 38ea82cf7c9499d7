"""Pages of cohort definitions and their counts (mounted at /cohorts/)."""

from __future__ import annotations

from django.urls import path

from cohorts.concept_sets import views as concept_set_views
from cohorts.definitions import builder_views
from cohorts.definitions import views as definition_views
from cohorts.runs import comparison_views
from cohorts.runs import views as run_views

app_name = "cohorts"

urlpatterns = [
    path("", definition_views.definition_list, name="definition_list"),
    path("import/", definition_views.definition_import, name="definition_import"),
    path("new/", builder_views.definition_new, name="definition_new"),
    path("new/save.json", builder_views.builder_create, name="builder_create"),
    path("builder/describe.json", builder_views.builder_describe, name="builder_describe"),
    path("<int:pk>/edit/", builder_views.definition_edit, name="definition_edit"),
    path("<int:pk>/save.json", builder_views.builder_save, name="builder_save"),
    path("<int:pk>/count.json", builder_views.builder_count, name="builder_count"),
    path("<int:pk>/", definition_views.definition_detail, name="definition_detail"),
    path("<int:pk>/export.json", definition_views.definition_export, name="definition_export"),
    path("<int:pk>/share/", definition_views.definition_share, name="definition_share"),
    path("<int:pk>/unshare/", definition_views.definition_unshare, name="definition_unshare"),
    path("<int:pk>/duplicate/", definition_views.definition_duplicate, name="definition_duplicate"),
    path("<int:pk>/versions/", definition_views.definition_versions, name="definition_versions"),
    path("<int:pk>/versions/compare/", definition_views.version_compare, name="version_compare"),
    path("<int:pk>/versions/<int:number>/restore/", definition_views.version_restore, name="version_restore"),
    path("<int:pk>/summary/", definition_views.definition_summary, name="definition_summary"),
    path("<int:pk>/runs/", run_views.run_create, name="run_create"),
    path("runs/<int:pk>/", run_views.run_detail, name="run_detail"),
    path("sets/new/", run_views.run_set_new, name="run_set_new"),
    path("sets/", run_views.run_set_detail, name="run_set_detail"),
    path("comparisons/", comparison_views.comparison_list, name="comparison_list"),
    path("comparisons/new/", comparison_views.comparison_new, name="comparison_new"),
    path("comparisons/<int:pk>/", comparison_views.comparison_detail, name="comparison_detail"),
    path("comparisons/<int:pk>/status.json", comparison_views.comparison_status, name="comparison_status"),
    path("comparisons/<int:pk>/cancel/", comparison_views.comparison_cancel, name="comparison_cancel"),
    path("comparisons/<int:pk>/overlap.csv", comparison_views.comparison_csv, name="comparison_csv"),
    path("runs/<int:pk>/status.json", run_views.run_status, name="run_status"),
    path("runs/<int:pk>/cancel/", run_views.run_cancel, name="run_cancel"),
    path("runs/<int:pk>/<slug:table>.csv", run_views.run_table_csv, name="run_table_csv"),
    path("sites/<int:pk>/count-store/sync/", run_views.count_store_sync, name="count_store_sync"),
    path("assets/plotly.min.js", run_views.plotly_js, name="plotly_js"),
    # Vocabulary search and concept sets (concept_sets/views.py): search.json and concept-sets/<pk>.json are the
    # cohort builder's contract.
    path("concepts/", concept_set_views.concept_search_page, name="concept_search_page"),
    path("concepts/search.json", concept_set_views.concept_search_json, name="concept_search_json"),
    path("concepts/<int:concept_id>/", concept_set_views.concept_detail_page, name="concept_detail_page"),
    path("concepts/<int:concept_id>.json", concept_set_views.concept_detail_json, name="concept_detail_json"),
    path("concept-sets/", concept_set_views.concept_set_list, name="concept_set_list"),
    path("concept-sets/new/", concept_set_views.concept_set_new, name="concept_set_new"),
    path("concept-sets/resolve.json", concept_set_views.concept_set_resolve, name="concept_set_resolve"),
    path("concept-sets/<int:pk>/", concept_set_views.concept_set_edit, name="concept_set_edit"),
    path("concept-sets/<int:pk>.json", concept_set_views.concept_set_json, name="concept_set_json"),
    path("concept-sets/<int:pk>/delete/", concept_set_views.concept_set_delete, name="concept_set_delete"),
]
