"""Pages of cohort definitions and their counts (mounted at /cohorts/)."""

from __future__ import annotations

from django.urls import path

from cohorts import views

app_name = "cohorts"

urlpatterns = [
    path("", views.definition_list, name="definition_list"),
    path("import/", views.definition_import, name="definition_import"),
    path("new/", views.definition_new, name="definition_new"),
    path("<int:pk>/", views.definition_detail, name="definition_detail"),
    path("<int:pk>/export.json", views.definition_export, name="definition_export"),
    path("<int:pk>/share/", views.definition_share, name="definition_share"),
    path("<int:pk>/runs/", views.run_create, name="run_create"),
    path("runs/<int:pk>/", views.run_detail, name="run_detail"),
    path("runs/<int:pk>/status.json", views.run_status, name="run_status"),
    path("runs/<int:pk>/cancel/", views.run_cancel, name="run_cancel"),
    path("runs/<int:pk>/<slug:table>.csv", views.run_table_csv, name="run_table_csv"),
    path("assets/plotly.min.js", views.plotly_js, name="plotly_js"),
]
