from __future__ import annotations

from django.urls import path, re_path

from detection import api

app_name = "api"

urlpatterns = [
    path("submissions/", api.SubmissionListCreate.as_view(), name="submission-list"),
    path(
        "submissions/<uuid:submission_id>/",
        api.SubmissionRetrieve.as_view(),
        name="submission-detail",
    ),
    # Last: every other path under the API answers in the API's own error format.
    re_path(r"^.*$", api.not_found, name="not-found"),
]
