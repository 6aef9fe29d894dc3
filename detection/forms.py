from __future__ import annotations

from django import forms

from detection.models import Submission
from detection.validation import ALLOWED_FORMATS
from detection.video_validation import ACCEPTED_CONTENT_TYPES


class MultipleFilesInput(forms.ClearableFileInput):
    allow_multiple_selected = True


class UploadForm(forms.Form):
    """The upload field as the page shows it; `upload_gate` checks what arrives."""

    # A plain FileField: validation.validate_image_upload decodes and checks the pixels,
    # which ImageField would do with a far looser format list. The page only renders it:
    # the gate reads every `image` part of the request itself.
    image = forms.FileField(
        label="Photos or videos",
        help_text="JPEG, PNG or WebP photos, MP4, WebM or MOV videos; several at once if you like.",
        required=False,  # the gate says why a file is missing, in the same words as the API
        widget=MultipleFilesInput(
            attrs={
                "accept": ",".join(
                    [*(ct for _, ct, _ in ALLOWED_FORMATS.values()), *ACCEPTED_CONTENT_TYPES]
                )
            }
        ),
    )


class SubmissionFilterForm(forms.Form):
    status = forms.ChoiceField(
        choices=[("", "Any status"), *Submission.Status.choices], required=False
    )
    verdict = forms.ChoiceField(
        choices=[("", "Any verdict"), *Submission.Verdict.choices], required=False
    )
