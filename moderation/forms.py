"""Forms for the queue filters, decisions (single and bulk) and the decision log filters."""

from __future__ import annotations

from typing import Any

from django import forms
from django.contrib.auth.models import User
from django.http import QueryDict

from detection.models import Submission
from moderation.models import BANK_LABEL_MAX_LENGTH, Decision, HashBank, ReviewCase, ReviewEvent
from moderation.rules import review_case_note_problem, review_case_note_required
from moderation.selectors import (
    AGE_FILTERS,
    LOG_KINDS,
    STATE_FILTERS,
    STATE_OPEN,
    LogFilters,
    QueueFilters,
    hash_banks_known_manipulated,
    review_cases_with_clusters,
)

VERDICT_CHOICES = [("", "Any verdict"), *Submission.Verdict.choices]


# A text field, not type="date": a browser shows a date field in its locale's order
# (mm/dd/yyyy in en-US), while every page writes dates as YYYY-MM-DD.
ISO_DATE = forms.DateInput(
    format="%Y-%m-%d",
    attrs={"placeholder": "YYYY-MM-DD", "pattern": r"\d{4}-\d{2}-\d{2}", "inputmode": "numeric"},
)


def _note_field() -> forms.CharField:
    return forms.CharField(
        required=False,
        max_length=2000,
        widget=forms.Textarea(attrs={"rows": 3, "placeholder": "Why (kept internal)"}),
    )


class QueueFilterForm(forms.Form):
    state = forms.ChoiceField(choices=STATE_FILTERS, required=False)
    verdict = forms.ChoiceField(choices=VERDICT_CHOICES, required=False, label="Model verdict")
    min_probability = forms.IntegerField(
        min_value=0, max_value=100, required=False, label="P(fake) from %"
    )
    max_probability = forms.IntegerField(
        min_value=0, max_value=100, required=False, label="P(fake) to %"
    )
    age = forms.ChoiceField(choices=AGE_FILTERS, required=False)

    def clean(self) -> dict[str, Any]:
        cleaned = super().clean() or {}
        low, high = cleaned.get("min_probability"), cleaned.get("max_probability")
        if low is not None and high is not None and low > high:
            raise forms.ValidationError("The lower probability bound is above the upper one.")
        return cleaned

    def filters(self) -> QueueFilters:
        """The filters to apply; an invalid form filters nothing beyond the default."""
        if not self.is_valid():
            return QueueFilters()
        data = self.cleaned_data
        low, high = data.get("min_probability"), data.get("max_probability")
        return QueueFilters(
            state=data.get("state") or STATE_OPEN,
            verdict=data.get("verdict") or "",
            min_probability=low / 100 if low is not None else None,
            max_probability=high / 100 if high is not None else None,
            age=data.get("age") or "",
        )

    def querystring(self) -> str:
        """The valid filters, re-encoded: safe to put back into a redirect URL."""
        query = QueryDict(mutable=True)
        if self.is_valid():
            for name, value in self.cleaned_data.items():
                if value not in (None, ""):
                    query[name] = str(value)
        return query.urlencode()


class DecisionForm(forms.Form):
    decision = forms.ChoiceField(choices=Decision.choices)
    note = _note_field()
    # A decision settles the case's whole cluster of pending near-copies unless this is set.
    only_this_case = forms.BooleanField(
        required=False, label="Decide only this case, not its near-copies"
    )

    def __init__(self, *args: Any, case: ReviewCase, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.case = case

    def clean(self) -> dict[str, Any]:
        cleaned = super().clean() or {}
        decision = cleaned.get("decision")
        if decision:
            problem = review_case_note_problem(
                verdict=self.case.verdict, decision=decision, note=cleaned.get("note") or ""
            )
            if problem:
                self.add_error("note", problem)
        return cleaned


class ReleaseForm(forms.Form):
    note = _note_field()


class BulkDecisionForm(forms.Form):
    cases = forms.ModelMultipleChoiceField(
        queryset=ReviewCase.objects.all(),
        error_messages={"required": "Select at least one case."},
    )
    decision = forms.ChoiceField(choices=Decision.choices)
    note = _note_field()
    # The queue's query string, so that the moderator returns to the same filtered view.
    filters = forms.CharField(required=False, widget=forms.HiddenInput)

    def clean(self) -> dict[str, Any]:
        cleaned = super().clean() or {}
        decision = cleaned.get("decision")
        cases = cleaned.get("cases") or []
        note = (cleaned.get("note") or "").strip()
        if decision and not note:
            owing = [
                case
                for case in review_cases_with_clusters(cases=cases)
                if review_case_note_required(verdict=case.verdict, decision=decision)
            ]
            if owing:
                # All or nothing: a batch never half-applies because some cases owed a note.
                self.add_error(
                    "note",
                    f"{len(owing)} of the selected cases need a note for this decision (it "
                    "goes against the model's verdict, or it escalates; pending near-copies "
                    "decided with them count).",
                )
        return cleaned

    def queue_querystring(self) -> str:
        return QueueFilterForm(QueryDict(self.cleaned_data.get("filters") or "")).querystring()


class ReopenInheritedForm(forms.Form):
    note = _note_field()


class AddToBankForm(forms.Form):
    bank = forms.ModelChoiceField(
        queryset=HashBank.objects.none(), empty_label=None, label="Known-manipulated bank"
    )
    label = forms.CharField(
        required=False,
        max_length=BANK_LABEL_MAX_LENGTH,
        help_text="Kept with the hash; exported after it. Empty: the case's id.",
    )

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        bank_field = self.fields["bank"]
        assert isinstance(bank_field, forms.ModelChoiceField)
        bank_field.queryset = hash_banks_known_manipulated()


class BankImportForm(forms.Form):
    text = forms.CharField(
        required=False,
        widget=forms.Textarea(attrs={"rows": 12, "cols": 80}),
        label="Hashes",
        help_text="One 64-hexadecimal-digit PDQ hash per line, optionally followed by a "
        "comma and a label. Blank lines and lines starting with # are skipped.",
    )
    file = forms.FileField(required=False, label="Or a text file")
    # A bank of 100,000 hashes with labels fits comfortably; beyond that, split the file.
    MAX_BYTES = 20_000_000

    def clean(self) -> dict[str, Any]:
        cleaned = super().clean() or {}
        upload = cleaned.get("file")
        if upload is not None:
            if upload.size > self.MAX_BYTES:
                raise forms.ValidationError("The file is larger than 20 MB.")
            try:
                cleaned["text"] = upload.read().decode("utf-8-sig")
            except UnicodeDecodeError:
                raise forms.ValidationError("The file is not UTF-8 text.") from None
        if not (cleaned.get("text") or "").strip():
            raise forms.ValidationError("Paste the hashes or choose a file.")
        return cleaned


class DecisionLogFilterForm(forms.Form):
    since = forms.DateField(required=False, widget=ISO_DATE)
    until = forms.DateField(required=False, widget=ISO_DATE)
    moderator = forms.ModelChoiceField(
        queryset=User.objects.none(),
        required=False,
        to_field_name="username",
        empty_label="Anyone",
    )
    kind = forms.ChoiceField(required=False, label="Decision")
    verdict = forms.ChoiceField(choices=VERDICT_CHOICES, required=False, label="Model verdict")

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        moderator_field = self.fields["moderator"]
        assert isinstance(moderator_field, forms.ModelChoiceField)
        # Everyone who ever decided something, including people no longer moderators.
        moderator_field.queryset = (
            User.objects.filter(review_events__kind__in=LOG_KINDS).distinct().order_by("username")
        )
        kind_field = self.fields["kind"]
        assert isinstance(kind_field, forms.ChoiceField)
        kind_field.choices = [
            ("", "Any"),
            *((kind.value, kind.label) for kind in map(ReviewEvent.Kind, LOG_KINDS)),
        ]

    def clean(self) -> dict[str, Any]:
        cleaned = super().clean() or {}
        since, until = cleaned.get("since"), cleaned.get("until")
        if since and until and since > until:
            raise forms.ValidationError("The start date is after the end date.")
        return cleaned

    def filters(self) -> LogFilters:
        if not self.is_valid():
            return LogFilters()
        data = self.cleaned_data
        moderator = data.get("moderator")
        return LogFilters(
            since=data.get("since"),
            until=data.get("until"),
            moderator=moderator.username if moderator else "",
            kind=data.get("kind") or "",
            verdict=data.get("verdict") or "",
        )
