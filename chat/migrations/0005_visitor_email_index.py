import django.db.models.functions.text
from django.db import migrations, models

from helpdesk.migration_ops import AddIndexConcurrentlyWherePossible


class Migration(migrations.Migration):
    # Chats are the biggest table: build the index without locking out writes.
    atomic = False

    dependencies = [
        ("chat", "0004_after_agent"),
    ]

    operations = [
        AddIndexConcurrentlyWherePossible(
            model_name="chatsession",
            index=models.Index(
                django.db.models.functions.text.Upper("visitor_email"),
                models.F("created_at").desc(),
                condition=models.Q(("visitor_email", ""), _negated=True),
                name="chat_visitor_email_created",
            ),
        ),
    ]
