"""The "Agents" and "Managers" roles, and the shipped default message texts.

The texts are copied here, not imported (a migration is a snapshot); escalation/messages.py holds
the same defaults for rendering when a row is missing.
"""

from django.contrib.auth.management import create_permissions
from django.db import migrations

ROLES = {
    "Agents": [("escalation", "use_console")],
    "Managers": [("escalation", "view_reports")],
}

DEFAULT_TEXTS = {
    "queued": "Thanks, {visitor}. You are in the queue for {team}; an agent will be with you soon.",
    "position": "You are number {position} in line, {wait}.",
    "position_no_estimate": "You are number {position} in line.",
    "agent_joined": "{agent} from {team} joined the chat.",
    "transfer": "You are being transferred to {team} ({tier}). Estimated wait: {wait}.",
    "new_wait": "You are number {position} in line for {team}, {wait}.",
    "timeout": "Nobody from {team} could take your chat yet.",
    "fallback": "We are moving your chat to {team} ({tier}).",
    "previous_tier": "We are taking you back to {team} ({tier}).",
    "offline": (
        "Sorry, nobody is available right now. Please leave a message and we will get back to you."
    ),
    "message_left": "Thank you, we have your message and will reply by e-mail.",
    "agent_left": "{agent} left the chat.",
    "ended": "The chat has ended. Thank you for contacting us.",
    "missed": "Sorry, nobody could take your chat. The chat has ended.",
}


def create_roles_and_texts(apps, schema_editor):
    # Permissions are normally created after migrate; the roles need them now.
    for app_config in apps.get_app_configs():
        app_config.models_module = True
        create_permissions(app_config, apps=apps, verbosity=0)
        app_config.models_module = None
    Group = apps.get_model("auth", "Group")
    Permission = apps.get_model("auth", "Permission")
    for name, perms in ROLES.items():
        group, _ = Group.objects.get_or_create(name=name)
        for app_label, codename in perms:
            group.permissions.add(
                Permission.objects.get(content_type__app_label=app_label, codename=codename)
            )
    MessageTemplate = apps.get_model("escalation", "MessageTemplate")
    for event, text in DEFAULT_TEXTS.items():
        MessageTemplate.objects.get_or_create(
            event=event, pipeline=None, stage=None, defaults={"text": text}
        )


def remove_roles(apps, schema_editor):
    apps.get_model("auth", "Group").objects.filter(name__in=ROLES).delete()


class Migration(migrations.Migration):
    dependencies = [
        ("escalation", "0001_initial"),
        ("auth", "0012_alter_user_first_name_max_length"),
        ("contenttypes", "0002_remove_content_type_name"),
    ]

    operations = [migrations.RunPython(create_roles_and_texts, remove_roles)]
