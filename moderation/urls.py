from __future__ import annotations

from django.urls import path

from moderation import views

app_name = "moderation"

urlpatterns = [
    path("", views.queue, name="queue"),
    path("next/", views.next_case, name="next-case"),
    path("bulk/", views.bulk_decide, name="bulk-decide"),
    path("cases/<uuid:case_id>/", views.case_detail, name="case-detail"),
    path("cases/<uuid:case_id>/claim/", views.case_claim, name="case-claim"),
    path("cases/<uuid:case_id>/decide/", views.case_decide, name="case-decide"),
    path("cases/<uuid:case_id>/release/", views.case_release, name="case-release"),
    path("cases/<uuid:case_id>/add-to-bank/", views.case_add_to_bank, name="case-add-to-bank"),
    path(
        "submissions/<uuid:submission_id>/reopen/",
        views.submission_reopen_inherited,
        name="submission-reopen-inherited",
    ),
    path("log/", views.decision_log, name="decision-log"),
    path("log.csv", views.decision_log_csv, name="decision-log-csv"),
    path("metrics/", views.metrics, name="metrics"),
]
