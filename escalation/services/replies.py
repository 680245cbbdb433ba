"""Canned replies: counting their use (what the console inserts, it reports)."""

from django.db.models import F
from django.utils import timezone

from escalation import selectors
from escalation.models import Agent


def count_canned_reply_use(*, agent: Agent, reply_id: int) -> bool:
    """One use of a reply the agent may use; False (nothing counted) for any other id."""
    changed = (
        selectors.canned_replies_for(agent)
        .filter(pk=reply_id)
        .update(uses=F("uses") + 1, last_used_at=timezone.now())
    )
    return changed == 1
