from django.db import migrations, models

from helpdesk.migration_ops import AddIndexConcurrentlyWherePossible


class Migration(migrations.Migration):
    # Queue entries and assignments grow with every chat: build without locking out writes.
    atomic = False

    dependencies = [
        ("escalation", "0018_consults"),
    ]

    operations = [
        AddIndexConcurrentlyWherePossible(
            model_name="queueentry",
            index=models.Index(fields=["entered_at"], name="entry_entered"),
        ),
        AddIndexConcurrentlyWherePossible(
            model_name="assignment",
            index=models.Index(fields=["started_at"], name="assignment_started"),
        ),
    ]
