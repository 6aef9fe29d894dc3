from __future__ import annotations

from django.urls import path

from detection import model_card, views

app_name = "detection"

urlpatterns = [
    path("upload/", views.upload, name="upload"),
    path("submissions/", views.submission_list, name="submission-list"),
    path("submissions/<uuid:submission_id>/", views.submission_detail, name="submission-detail"),
    path(
        "submissions/<uuid:submission_id>/status/",
        views.submission_status,
        name="submission-status",
    ),
    path(
        "submissions/<uuid:submission_id>/image/", views.submission_image, name="submission-image"
    ),
    path(
        "submissions/<uuid:submission_id>/video/", views.submission_video, name="submission-video"
    ),
    path(
        "submissions/<uuid:submission_id>/poster/",
        views.submission_poster,
        name="submission-poster",
    ),
    path(
        "submissions/<uuid:submission_id>/thumbnail/",
        views.submission_thumbnail,
        name="submission-thumbnail",
    ),
    path(
        "submissions/<uuid:submission_id>/overlay/",
        views.submission_overlay,
        name="submission-overlay",
    ),
    path(
        "submissions/<uuid:submission_id>/faces/<int:index>/crop/",
        views.face_crop,
        name="face-crop",
    ),
    path(
        "submissions/<uuid:submission_id>/faces/<int:index>/heatmap/",
        views.face_heatmap,
        name="face-heatmap",
    ),
    path("accounts/api-token/", views.api_token, name="api-token"),
    path("model/", model_card.model_card, name="model-card"),
]
