"""Site-wide pages: the home page, sign-up and password change (Django's auth views do the
rest)."""

from __future__ import annotations

from typing import Any

from django.contrib.auth import login, logout
from django.contrib.auth import views as auth_views
from django.contrib.auth.forms import PasswordChangeForm
from django.http import HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.views.decorators.http import require_http_methods

from .forms import CountedPasswordChangeForm, SignUpForm
from .throttling import signup_rate_exceeded, signup_rate_limited_message


def home(request: HttpRequest) -> HttpResponse:
    return render(request, "home.html")


@require_http_methods(["GET", "POST"])
def signup(request: HttpRequest) -> HttpResponse:
    if request.user.is_authenticated:
        return redirect("home")
    if request.method == "POST" and signup_rate_exceeded(request):
        return render(
            request,
            "registration/signup.html",
            {"form": SignUpForm(), "refusal": signup_rate_limited_message()},
            status=429,
        )
    form = SignUpForm(request.POST or None)
    if request.method == "POST" and form.is_valid():
        user = form.save()
        login(request, user, backend="django.contrib.auth.backends.ModelBackend")
        return redirect("home")
    return render(
        request, "registration/signup.html", {"form": form}, status=400 if form.errors else 200
    )


class PasswordChangeView(auth_views.PasswordChangeView):
    form_class = CountedPasswordChangeForm

    def get_form_kwargs(self) -> dict[str, Any]:
        kwargs = super().get_form_kwargs()
        kwargs["request"] = self.request
        return kwargs

    def form_invalid(self, form: PasswordChangeForm) -> HttpResponse:
        if getattr(self.request, "axes_locked_out", False):
            # Locked out like a failed log-in: the session that failed to prove it knows the
            # password ends too. AxesMiddleware answers with the lockout page.
            logout(self.request)
        return super().form_invalid(form)
