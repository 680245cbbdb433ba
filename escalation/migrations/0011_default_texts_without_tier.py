"""The shipped transfer, fallback and previous-tier texts no longer name the tier: visitors are
told the team's public name ("the billing team"), not the desk's internal levels; and the
dropped text no longer starts with the team's name (a public name reads as part of a sentence).
A default row an admin has edited is left as it is."""

from django.db import migrations

CHANGED = {
    "transfer": (
        "You are being transferred to {team} ({tier}). Estimated wait: {wait}.",
        "You are being transferred to {team}. Estimated wait: {wait}.",
    ),
    "fallback": (
        "We are moving your chat to {team} ({tier}).",
        "We are moving your chat to {team}.",
    ),
    "previous_tier": (
        "We are taking you back to {team} ({tier}).",
        "We are taking you back to {team}.",
    ),
    "dropped": (
        "You left the queue. {team} will get back to you.",
        "You left the queue. Someone from {team} will get back to you.",
    ),
}


def forwards(apps, schema_editor):
    MessageTemplate = apps.get_model("escalation", "MessageTemplate")
    for event, (old, new) in CHANGED.items():
        MessageTemplate.objects.filter(event=event, pipeline=None, stage=None, text=old).update(
            text=new
        )


def backwards(apps, schema_editor):
    MessageTemplate = apps.get_model("escalation", "MessageTemplate")
    for event, (old, new) in CHANGED.items():
        MessageTemplate.objects.filter(event=event, pipeline=None, stage=None, text=new).update(
            text=old
        )


class Migration(migrations.Migration):
    dependencies = [("escalation", "0010_public_names")]

    operations = [migrations.RunPython(forwards, backwards)]
