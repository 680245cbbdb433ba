from django.contrib.postgres.operations import AddIndexConcurrently
from django.db import migrations, models


class Migration(migrations.Migration):
    # Chats are the biggest table: build the index without locking out writes.
    atomic = False

    dependencies = [
        ("chat", "0004_after_agent"),
    ]

    operations = [
        AddIndexConcurrently(
            model_name="chatsession",
            index=models.Index(
                condition=models.Q(("visitor_email", ""), _negated=True),
                fields=["visitor_email", "-created_at"],
                name="chat_visitor_email_created",
            ),
        ),
    ]
