from __future__ import annotations

from django import forms

from detection.models import Submission
from detection.validation import ALLOWED_FORMATS


class UploadForm(forms.Form):
    """The upload field as the page shows it; `upload_gate` checks what arrives."""

    # A plain FileField: validation.validate_image_upload decodes and checks the pixels,
    # which ImageField would do with a far looser format list.
    image = forms.FileField(
        label="Photo",
        help_text="JPEG, PNG or WebP.",
        required=False,  # the gate says why a file is missing, in the same words as the API
        widget=forms.ClearableFileInput(
            attrs={"accept": ",".join(ct for _, ct, _ in ALLOWED_FORMATS.values())}
        ),
    )


class SubmissionFilterForm(forms.Form):
    status = forms.ChoiceField(
        choices=[("", "Any status"), *Submission.Status.choices], required=False
    )
    verdict = forms.ChoiceField(
        choices=[("", "Any verdict"), *Submission.Verdict.choices], required=False
    )
