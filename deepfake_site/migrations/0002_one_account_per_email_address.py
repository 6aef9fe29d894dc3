"""One account per e-mail address, in any case; accounts without an address are not limited.

auth.User belongs to Django, so the unique index is added here rather than declared on the
model. A database that already has two accounts with one address stops this migration with
the list, and nothing is changed: which account keeps the address is a person's decision.
"""

from django.db import migrations, models
from django.db.models.functions import Lower

ONE_ACCOUNT_PER_EMAIL = models.UniqueConstraint(
    Lower("email"), condition=~models.Q(email=""), name="auth_user_email_ci_unique"
)


def add_unique_email_index(apps, schema_editor):
    user = apps.get_model("auth", "User")
    shared = list(
        user.objects.using(schema_editor.connection.alias)
        .exclude(email="")
        .values(address=Lower("email"))
        .annotate(accounts=models.Count("id"))
        .filter(accounts__gt=1)
        .values_list("address", flat=True)
    )
    if shared:
        raise RuntimeError(
            f"{len(shared)} e-mail address(es) belong to more than one account: "
            f"{', '.join(sorted(shared)[:10])}. Give each of those accounts its own address or "
            "none (admin > Users, or manage.py shell), then run migrate again."
        )
    schema_editor.add_constraint(user, ONE_ACCOUNT_PER_EMAIL)


def remove_unique_email_index(apps, schema_editor):
    schema_editor.remove_constraint(apps.get_model("auth", "User"), ONE_ACCOUNT_PER_EMAIL)


class Migration(migrations.Migration):
    dependencies = [
        ("deepfake_site", "0001_drop_clear_text_api_tokens"),
    ]

    operations = [
        migrations.RunPython(add_unique_email_index, remove_unique_email_index),
    ]
