from __future__ import annotations

from typing import Any

from django import forms
from django.conf import settings
from django.core.files.uploadedfile import UploadedFile

from detection.models import Submission
from detection.validation import ALLOWED_FORMATS


class UploadForm(forms.Form):
    # A plain FileField: validation.validate_image_upload decodes and checks the pixels,
    # which ImageField would do with a far looser format list.
    image = forms.FileField(
        label="Photo",
        help_text="JPEG, PNG or WebP.",
        required=False,  # clean_image says why the file is missing
        widget=forms.ClearableFileInput(
            attrs={"accept": ",".join(ct for _, ct, _ in ALLOWED_FORMATS.values())}
        ),
    )

    def __init__(self, *args: Any, upload_too_large: bool = False, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.upload_too_large = upload_too_large

    def clean_image(self) -> UploadedFile:
        # The upload handler drops a file past the byte limit, so it arrives missing.
        if self.upload_too_large:
            raise forms.ValidationError(
                f"The file is larger than the {settings.UPLOAD_MAX_BYTES / 1_000_000:g} MB limit."
            )
        image = self.cleaned_data.get("image")
        if not image:
            raise forms.ValidationError("Choose a photo to upload.")
        return image


class SubmissionFilterForm(forms.Form):
    status = forms.ChoiceField(
        choices=[("", "Any status"), *Submission.Status.choices], required=False
    )
    verdict = forms.ChoiceField(
        choices=[("", "Any verdict"), *Submission.Verdict.choices], required=False
    )
