import django.contrib.postgres.indexes
import django.db.models.functions.text
from django.contrib.postgres.operations import TrigramExtension
from django.db import migrations
from django.contrib.postgres.indexes import OpClass

from helpdesk.migration_ops import AddPostgresIndexConcurrently


class Migration(migrations.Migration):
    # Chats are a big table: build the indexes without locking out writes.
    atomic = False

    dependencies = [
        ("chat", "0008_message_text_search"),
    ]

    operations = [
        TrigramExtension(),  # on PostgreSQL only (pg_trgm is a trusted extension)
        AddPostgresIndexConcurrently(
            model_name="chatsession",
            index=django.contrib.postgres.indexes.GinIndex(
                OpClass(django.db.models.functions.text.Upper("visitor_name"), name="gin_trgm_ops"),
                name="chat_visitor_name_trgm",
            ),
        ),
        AddPostgresIndexConcurrently(
            model_name="chatsession",
            index=django.contrib.postgres.indexes.GinIndex(
                OpClass(django.db.models.functions.text.Upper("visitor_email"), name="gin_trgm_ops"),
                name="chat_visitor_email_trgm",
            ),
        ),
    ]
