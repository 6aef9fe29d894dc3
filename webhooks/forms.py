"""The webhook settings page's forms; the services check the URL and the events again."""

from __future__ import annotations

from django import forms

from webhooks.models import Event


class EndpointForm(forms.Form):
    url = forms.URLField(
        label="URL",
        max_length=2000,
        assume_scheme="https",
        help_text="An http(s) address on the internet; each delivery is a signed JSON POST.",
    )
    events = forms.MultipleChoiceField(
        choices=Event.choices,
        widget=forms.CheckboxSelectMultiple,
        initial=Event.values,
        error_messages={"required": "Choose at least one event."},
    )


class EndpointChangeForm(EndpointForm):
    is_active = forms.BooleanField(
        label="On",
        required=False,
        help_text="Off stops deliveries; turning it on again clears its failure count.",
    )
