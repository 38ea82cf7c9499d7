"""Pages of cohort definitions and their counts (mounted at /cohorts/)."""

from __future__ import annotations

from django.urls import path

from cohorts import views, views_builder, views_concepts

app_name = "cohorts"

urlpatterns = [
    path("", views.definition_list, name="definition_list"),
    path("import/", views.definition_import, name="definition_import"),
    path("new/", views_builder.definition_new, name="definition_new"),
    path("new/save.json", views_builder.builder_create, name="builder_create"),
    path("builder/describe.json", views_builder.builder_describe, name="builder_describe"),
    path("<int:pk>/edit/", views_builder.definition_edit, name="definition_edit"),
    path("<int:pk>/save.json", views_builder.builder_save, name="builder_save"),
    path("<int:pk>/", views.definition_detail, name="definition_detail"),
    path("<int:pk>/export.json", views.definition_export, name="definition_export"),
    path("<int:pk>/share/", views.definition_share, name="definition_share"),
    path("<int:pk>/unshare/", views.definition_unshare, name="definition_unshare"),
    path("<int:pk>/duplicate/", views.definition_duplicate, name="definition_duplicate"),
    path("<int:pk>/versions/", views.definition_versions, name="definition_versions"),
    path("<int:pk>/versions/compare/", views.version_compare, name="version_compare"),
    path("<int:pk>/versions/<int:number>/restore/", views.version_restore, name="version_restore"),
    path("<int:pk>/summary/", views.definition_summary, name="definition_summary"),
    path("<int:pk>/runs/", views.run_create, name="run_create"),
    path("runs/<int:pk>/", views.run_detail, name="run_detail"),
    path("runs/<int:pk>/status.json", views.run_status, name="run_status"),
    path("runs/<int:pk>/cancel/", views.run_cancel, name="run_cancel"),
    path("runs/<int:pk>/<slug:table>.csv", views.run_table_csv, name="run_table_csv"),
    path("assets/plotly.min.js", views.plotly_js, name="plotly_js"),
    # Vocabulary search and concept sets (views_concepts): search.json and concept-sets/<pk>.json are the
    # cohort builder's contract.
    path("concepts/", views_concepts.concept_search_page, name="concept_search_page"),
    path("concepts/search.json", views_concepts.concept_search_json, name="concept_search_json"),
    path("concepts/<int:concept_id>/", views_concepts.concept_detail_page, name="concept_detail_page"),
    path("concepts/<int:concept_id>.json", views_concepts.concept_detail_json, name="concept_detail_json"),
    path("concept-sets/", views_concepts.concept_set_list, name="concept_set_list"),
    path("concept-sets/new/", views_concepts.concept_set_new, name="concept_set_new"),
    path("concept-sets/resolve.json", views_concepts.concept_set_resolve, name="concept_set_resolve"),
    path("concept-sets/<int:pk>/", views_concepts.concept_set_edit, name="concept_set_edit"),
    path("concept-sets/<int:pk>.json", views_concepts.concept_set_json, name="concept_set_json"),
    path("concept-sets/<int:pk>/delete/", views_concepts.concept_set_delete, name="concept_set_delete"),
]
