"""API tokens moved from DRF's authtoken (keys in clear) to django-rest-knox (hashed).

Hashing the old keys would keep them working, yet they may have leaked in clear (dumps,
backups): they are deleted instead, and clients create a new token on the token page. This
does what `migrate authtoken zero` would have, for databases made while the app was installed.
"""

from django.db import migrations
from django.db.migrations.recorder import MigrationRecorder


def drop_clear_text_api_tokens(apps, schema_editor):
    connection = schema_editor.connection
    if "authtoken_token" in connection.introspection.table_names():
        schema_editor.execute(
            schema_editor.sql_delete_table % {"table": schema_editor.quote_name("authtoken_token")}
        )
    # Its permissions go with the content type.
    content_type = apps.get_model("contenttypes", "ContentType")
    content_type.objects.using(connection.alias).filter(app_label="authtoken").delete()
    # So that installing the app again would create its table again.
    MigrationRecorder(connection).migration_qs.filter(app="authtoken").delete()


class Migration(migrations.Migration):
    dependencies = [
        ("auth", "0012_alter_user_first_name_max_length"),
        ("contenttypes", "0002_remove_content_type_name"),
    ]

    operations = [
        migrations.RunPython(drop_clear_text_api_tokens, migrations.RunPython.noop),
    ]
