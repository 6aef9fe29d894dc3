"""Sign-up, log-in, log-out, password change, the moderators group and the navigation."""

from __future__ import annotations

import importlib

import pytest
from django.contrib.auth.models import Group, Permission, User
from django.core.management import CommandError, call_command
from django.db import IntegrityError, transaction
from django.test import Client
from django.urls import reverse

from moderation.rules import REVIEW_CASES

pytestmark = pytest.mark.django_db

PASSWORD = "a-long-enough-passphrase-42"


def test_sign_up_creates_the_account_and_signs_in(client: Client) -> None:
    response = client.post(
        reverse("signup"),
        {
            "username": "newcomer",
            "email": "n@example.com",
            "password1": PASSWORD,
            "password2": PASSWORD,
        },
    )
    assert response.status_code == 302
    assert User.objects.filter(username="newcomer").exists()
    assert client.get(reverse("home")).context["user"].username == "newcomer"


def test_sign_up_with_mismatched_passwords_shows_the_error_and_stores_nothing(
    client: Client,
) -> None:
    response = client.post(
        reverse("signup"),
        {"username": "newcomer", "password1": PASSWORD, "password2": PASSWORD + "x"},
    )
    assert response.status_code == 400
    assert "password fields didn" in response.content.decode()
    assert not User.objects.filter(username="newcomer").exists()


def test_sign_up_with_an_email_address_already_used_in_any_case_is_refused(
    client: Client,
) -> None:
    User.objects.create_user("alice", email="Alice@Example.com", password=PASSWORD)
    response = client.post(
        reverse("signup"),
        {
            "username": "newcomer",
            "email": "alice@example.COM",
            "password1": PASSWORD,
            "password2": PASSWORD,
        },
    )
    assert response.status_code == 400
    assert "An account with this e-mail address already exists" in response.content.decode()
    assert not User.objects.filter(username="newcomer").exists()


def test_the_database_holds_one_account_per_email_address_in_any_case() -> None:
    User.objects.create_user("alice", email="alice@example.com")
    # Accounts without an address are many (the admin and the commands make such accounts).
    User.objects.create_user("bob", email="")
    User.objects.create_user("carol", email="")
    with pytest.raises(IntegrityError), transaction.atomic():
        User.objects.create_user("mallory", email="ALICE@example.com")


def test_log_in_and_log_out(client: Client) -> None:
    User.objects.create_user("alice", password=PASSWORD)
    response = client.post(reverse("login"), {"username": "alice", "password": PASSWORD})
    assert response.status_code == 302
    assert "_auth_user_id" in client.session
    response = client.post(reverse("logout"))
    assert response.status_code == 302
    assert "_auth_user_id" not in client.session


def test_wrong_password_is_refused_with_a_message(client: Client) -> None:
    User.objects.create_user("alice", password=PASSWORD)
    response = client.post(reverse("login"), {"username": "alice", "password": "wrong"})
    assert response.status_code == 200
    assert "enter a correct username and password" in response.content.decode()
    assert "_auth_user_id" not in client.session


def test_password_change(client: Client) -> None:
    user = User.objects.create_user("alice", password=PASSWORD)
    client.force_login(user)
    response = client.post(
        reverse("password_change"),
        {
            "old_password": PASSWORD,
            "new_password1": PASSWORD + "-new",
            "new_password2": PASSWORD + "-new",
        },
    )
    assert response.status_code == 302
    user.refresh_from_db()
    assert user.check_password(PASSWORD + "-new")


def test_moderators_group_holds_the_review_permission() -> None:
    group = Group.objects.get(name="moderators")
    app_label, codename = REVIEW_CASES.split(".")
    assert group.permissions.filter(content_type__app_label=app_label, codename=codename).exists()
    moderator = User.objects.create_user("mod", password=PASSWORD)
    moderator.groups.add(group)
    assert User.objects.get(pk=moderator.pk).has_perm(REVIEW_CASES)
    assert not User.objects.create_user("plain", password=PASSWORD).has_perm(REVIEW_CASES)
    assert Permission.objects.filter(codename=codename).count() == 1


def test_demo_accounts_sign_in_with_the_printed_passwords(
    capsys: pytest.CaptureFixture[str],
) -> None:
    call_command("create_demo_accounts")
    printed = {
        line.split()[0]: line.split()[1]
        for line in capsys.readouterr().out.splitlines()
        if line.startswith("  ")
    }
    assert set(printed) == {"uploader", "moderator", "admin"}
    for username, password in printed.items():
        browser = Client()
        browser.post(reverse("login"), {"username": username, "password": password})
        assert "_auth_user_id" in browser.session, username
    assert User.objects.get(username="moderator").has_perm(REVIEW_CASES)
    assert User.objects.get(username="admin").is_superuser


def test_bootstrap_admin_is_idempotent(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("DJANGO_SUPERUSER_USERNAME", "root")
    monkeypatch.setenv("DJANGO_SUPERUSER_PASSWORD", PASSWORD)
    call_command("bootstrap_admin")
    monkeypatch.setenv("DJANGO_SUPERUSER_PASSWORD", PASSWORD + "2")
    call_command("bootstrap_admin")
    admin = User.objects.get(username="root")
    assert admin.is_superuser and admin.is_staff
    assert admin.check_password(PASSWORD + "2")


def test_demo_accounts_are_made_even_when_a_visitor_took_their_address() -> None:
    User.objects.create_user("visitor", email="uploader@example.com")
    call_command("create_demo_accounts")
    assert User.objects.filter(username="uploader").exists()


def test_bootstrap_admin_refuses_an_email_address_of_another_account(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    User.objects.create_user("visitor", email="root@example.com")
    monkeypatch.setenv("DJANGO_SUPERUSER_USERNAME", "root")
    monkeypatch.setenv("DJANGO_SUPERUSER_PASSWORD", PASSWORD)
    monkeypatch.setenv("DJANGO_SUPERUSER_EMAIL", "Root@Example.com")
    with pytest.raises(CommandError, match="already belongs to another account"):
        call_command("bootstrap_admin")
    assert not User.objects.filter(username="root").exists()


def test_navigation_shows_admin_only_to_staff(client: Client) -> None:
    client.force_login(User.objects.create_user("alice", password=PASSWORD))
    assert reverse("admin:index") not in client.get(reverse("home")).content.decode()
    client.force_login(User.objects.create_user("boss", password=PASSWORD, is_staff=True))
    assert reverse("admin:index") in client.get(reverse("home")).content.decode()


def test_anonymous_visitor_is_offered_sign_up_and_log_in(client: Client) -> None:
    page = client.get(reverse("home")).content.decode()
    assert reverse("signup") in page and reverse("login") in page


@pytest.mark.django_db(transaction=True)
def test_the_unique_email_migration_stops_on_shared_addresses_and_changes_nothing() -> None:
    from django.apps import apps
    from django.db import connection

    migration = importlib.import_module(
        "deepfake_site.migrations.0002_one_account_per_email_address"
    )
    with connection.schema_editor() as editor:
        migration.remove_unique_email_index(apps, editor)
    try:
        User.objects.create_user("alice", email="alice@example.com")
        User.objects.create_user("alice2", email="Alice@example.com")
        with connection.schema_editor() as editor, pytest.raises(RuntimeError) as refusal:
            migration.add_unique_email_index(apps, editor)
        assert "1 e-mail address(es) belong to more than one account: alice@example.com" in str(
            refusal.value
        )
        assert User.objects.filter(email__iexact="alice@example.com").count() == 2
        User.objects.filter(username="alice2").update(email="")
    finally:
        with connection.schema_editor() as editor:
            migration.add_unique_email_index(apps, editor)
    with pytest.raises(IntegrityError), transaction.atomic():
        User.objects.create_user("mallory", email="ALICE@example.com")


def test_the_admin_refuses_an_email_address_of_another_account(client: Client) -> None:
    User.objects.create_user("alice", email="alice@example.com")
    bob = User.objects.create_user("bob", email="bob@example.com")
    client.force_login(User.objects.create_superuser("boss", password=PASSWORD))
    form = {
        "username": "bob",
        "email": "ALICE@example.com",
        "is_active": "on",
        "date_joined_0": "2026-01-01",
        "date_joined_1": "00:00:00",
    }
    response = client.post(reverse("admin:auth_user_change", args=[bob.pk]), form)
    assert response.status_code == 200
    assert "An account with this e-mail address already exists" in response.content.decode()
    bob.refresh_from_db()
    assert bob.email == "bob@example.com"
    # Its own address, in another case, is not "another account's".
    form["email"] = "BOB@example.com"
    response = client.post(reverse("admin:auth_user_change", args=[bob.pk]), form)
    assert response.status_code == 302
