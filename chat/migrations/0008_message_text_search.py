import django.contrib.postgres.indexes
import django.contrib.postgres.search
from django.db import migrations

from helpdesk.migration_ops import AddPostgresIndexConcurrently


class Migration(migrations.Migration):
    # Messages are the biggest table: build the index without locking out writes.
    atomic = False

    dependencies = [
        ("chat", "0007_tagged_flow_kind"),
    ]

    operations = [
        AddPostgresIndexConcurrently(
            model_name="message",
            index=django.contrib.postgres.indexes.GinIndex(
                django.contrib.postgres.search.SearchVector("text", config="simple"),
                name="message_text_search",
            ),
        ),
    ]
