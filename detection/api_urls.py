from __future__ import annotations

from django.urls import path

from detection import api

urlpatterns = [
    path("submissions/", api.SubmissionListCreate.as_view(), name="submission-list"),
    path(
        "submissions/<uuid:submission_id>/",
        api.SubmissionRetrieve.as_view(),
        name="submission-detail",
    ),
    path("model/", api.model_card, name="model-card"),
]
