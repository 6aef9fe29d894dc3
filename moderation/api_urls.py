from __future__ import annotations

from django.urls import path

from moderation import api

urlpatterns = [
    path("cases/", api.CaseList.as_view(), name="case-list"),
    path("cases/next/", api.CaseNext.as_view(), name="case-next"),
    path("cases/<uuid:case_id>/", api.CaseDetail.as_view(), name="case-detail"),
    path("cases/<uuid:case_id>/claim/", api.CaseClaim.as_view(), name="case-claim"),
    path("cases/<uuid:case_id>/decision/", api.CaseDecision.as_view(), name="case-decision"),
    path("cases/<uuid:case_id>/release/", api.CaseRelease.as_view(), name="case-release"),
    path(
        "submissions/<uuid:submission_id>/evidence/",
        api.Evidence.as_view(),
        name="submission-evidence",
    ),
]
