"""API tokens: kept hashed, shown once, expiring, revoked by a password change, and the
admin shows only their prefix."""

from __future__ import annotations

import importlib
from datetime import timedelta
from typing import Any
from unittest import mock

import pytest
from django.apps import apps
from django.contrib.auth.models import User
from django.core import serializers
from django.core.management import call_command
from django.test import Client
from django.urls import reverse
from django.utils import timezone

from deepfake_site.services import api_token_rotate
from detection.tests.factories import UserFactory

pytestmark = pytest.mark.django_db

PASSWORD = "pw-for-tests-123"


def new_api_key(browser: Client) -> str:
    """Create (or rotate) the signed-in user's token on the token page, as a person would."""
    key: str = browser.post(reverse("detection:api-token")).context["new_key"]
    assert key
    return key


def api_status(key: str) -> int:
    return Client(HTTP_AUTHORIZATION=f"Token {key}").get(reverse("api:submission-list")).status_code


def change_password(browser: Client, *, old: str) -> int:
    new = "a-brand-new-passphrase-7"
    return browser.post(
        reverse("password_change"),
        {"old_password": old, "new_password1": new, "new_password2": new},
    ).status_code


@pytest.fixture
def browser(client: Client) -> Client:
    client.force_login(UserFactory.create(username="owner"))
    return client


def test_the_key_is_nowhere_in_the_database(browser: Client) -> None:
    key = new_api_key(browser)
    assert api_status(key) == 200
    rows = [row for model in apps.get_models() for row in model._default_manager.all()]
    everything = serializers.serialize("json", rows)
    assert key not in everything
    assert key[8:] not in everything


def test_the_key_is_shown_once_then_only_its_prefix(browser: Client) -> None:
    key = new_api_key(browser)
    page = browser.get(reverse("detection:api-token")).content.decode()
    assert key not in page
    assert key[:8] in page
    assert "Rotate token" in page


def test_a_token_stops_working_after_its_lifetime(browser: Client, settings: Any) -> None:
    settings.API_TOKEN_TTL_DAYS = 30
    key = new_api_key(browser)
    later = timezone.now() + timedelta(days=29)
    with mock.patch("django.utils.timezone.now", return_value=later):
        assert api_status(key) == 200
    expired = timezone.now() + timedelta(days=31)
    with mock.patch("django.utils.timezone.now", return_value=expired):
        assert api_status(key) == 401


def test_the_token_page_shows_when_the_token_expires(browser: Client, settings: Any) -> None:
    settings.API_TOKEN_TTL_DAYS = 30
    new_api_key(browser)
    page = browser.get(reverse("detection:api-token")).content.decode()
    expiry = timezone.localdate() + timedelta(days=30)
    assert f"expires on {expiry:%B} {expiry.day}, {expiry.year}" in page


def test_changing_the_password_revokes_every_token(client: Client) -> None:
    user = User.objects.create_user("alice", password=PASSWORD)
    client.force_login(user)
    key = new_api_key(client)
    assert change_password(client, old=PASSWORD) == 302
    assert api_status(key) == 401
    page = client.get(reverse("detection:api-token")).content.decode()
    assert "no token yet" in page


def test_an_administrator_setting_a_password_revokes_the_users_tokens(client: Client) -> None:
    user = User.objects.create_user("alice", password=PASSWORD)
    client.force_login(user)
    key = new_api_key(client)
    admin = Client()
    admin.force_login(UserFactory.create(username="boss", is_staff=True, is_superuser=True))
    response = admin.post(
        reverse("admin:auth_user_password_change", args=[user.pk]),
        {"password1": "a-brand-new-passphrase-7", "password2": "a-brand-new-passphrase-7"},
    )
    assert response.status_code == 302
    assert api_status(key) == 401


def test_a_failed_password_change_keeps_the_tokens(client: Client) -> None:
    user = User.objects.create_user("alice", password=PASSWORD)
    client.force_login(user)
    key = new_api_key(client)
    assert change_password(client, old="wrong") == 200
    assert api_status(key) == 200


def test_the_admin_shows_a_tokens_prefix_never_its_key(browser: Client) -> None:
    key = new_api_key(browser)
    admin = Client()
    admin.force_login(UserFactory.create(username="boss", is_staff=True, is_superuser=True))
    index = admin.get(reverse("admin:index"))
    changelists = [
        entry["admin_url"] for app in index.context["app_list"] for entry in app["models"]
    ]
    pages = [admin.get(url).content.decode() for url in changelists]
    assert not any(key in page for page in pages)
    assert sum(key[:8] in page for page in pages) == 1


@pytest.mark.django_db(transaction=True)
def test_the_migration_deletes_the_clear_text_tokens_drf_left() -> None:
    from django.contrib.auth.models import Permission
    from django.contrib.contenttypes.models import ContentType
    from django.db import connection
    from django.db.migrations.recorder import MigrationRecorder

    migration = importlib.import_module("deepfake_site.migrations.0001_drop_clear_text_api_tokens")
    user = UserFactory.create()
    with connection.cursor() as cursor:
        cursor.execute("CREATE TABLE authtoken_token (key varchar(40), user_id integer)")
        cursor.execute("INSERT INTO authtoken_token VALUES (%s, %s)", ["a" * 40, user.pk])
    MigrationRecorder(connection).record_applied("authtoken", "0001_initial")
    token_type = ContentType.objects.create(app_label="authtoken", model="token")
    Permission.objects.create(content_type=token_type, codename="view_token", name="Can view")

    with connection.schema_editor() as editor:
        migration.drop_clear_text_api_tokens(apps, editor)

    assert "authtoken_token" not in connection.introspection.table_names()
    assert not MigrationRecorder(connection).migration_qs.filter(app="authtoken").exists()
    assert not ContentType.objects.filter(app_label="authtoken").exists()
    assert not Permission.objects.filter(codename="view_token").exists()


def test_restarting_with_the_same_admin_password_keeps_the_admins_tokens(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # docker compose runs bootstrap_admin at every start of the web container.
    monkeypatch.setenv("DJANGO_SUPERUSER_USERNAME", "root")
    monkeypatch.setenv("DJANGO_SUPERUSER_PASSWORD", PASSWORD)
    call_command("bootstrap_admin")
    key = api_token_rotate(user=User.objects.get(username="root"))
    call_command("bootstrap_admin")
    assert api_status(key) == 200
    monkeypatch.setenv("DJANGO_SUPERUSER_PASSWORD", PASSWORD + "-changed")
    call_command("bootstrap_admin")
    assert api_status(key) == 401
