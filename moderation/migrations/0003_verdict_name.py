from django.db import migrations


class Migration(migrations.Migration):
    """The model's verdict has one name in every app: `verdict`, as on Submission."""

    dependencies = [("moderation", "0002_review_cases_and_events")]

    operations = [migrations.RenameField("reviewcase", "band", "verdict")]
