"""The user-facing texts as admins set them, read from a copy in memory.

Every notice, place-in-line update and still-searching notice renders a template; reading the
table each time made a queue publication cost one query per waiting visitor. The rows (a few
dozen) are read at once and kept for TEMPLATE_CACHE_SECONDS; an admin's change is seen at once by
the process that saved it (the signals below) and within that time by the others.
"""

import threading
import time

from django.conf import settings
from django.db.models.signals import post_delete, post_save
from django.dispatch import receiver

from escalation.messages import DEFAULT_TEXTS
from escalation.models import MessageTemplate

# (event, pipeline id or None, stage id or None) -> text
Rows = dict[tuple[str, int | None, int | None], str]

_lock = threading.Lock()
_rows: Rows | None = None
_read_at = 0.0
_changes = 0  # how many times an admin's change was seen here (see `forget`)


def _current_rows() -> Rows:
    global _rows, _read_at
    with _lock:
        fresh = time.monotonic() - _read_at < settings.TEMPLATE_CACHE_SECONDS
        if _rows is not None and fresh:
            return _rows
        changes = _changes
    rows: Rows = {
        (event, pipeline_id, stage_id): text
        for event, pipeline_id, stage_id, text in MessageTemplate.objects.values_list(
            "event", "pipeline_id", "stage_id", "text"
        )
    }
    with _lock:
        if changes == _changes:  # else a change came in while reading: keep nothing, read again
            _rows, _read_at = rows, time.monotonic()
    return rows


def template_text(*, event: str, stage_id: int | None, pipeline_id: int | None) -> str:
    """The text for `event`: the stage's override, else its pipeline's, else the default row,
    else the shipped default."""
    rows = _current_rows()
    scopes: list[tuple[int | None, int | None]] = []
    if stage_id is not None:
        scopes.append((None, stage_id))
    if pipeline_id is not None:
        scopes.append((pipeline_id, None))
    for pipeline, stage in [*scopes, (None, None)]:
        text = rows.get((event, pipeline, stage))
        if text is not None:
            return text
    return DEFAULT_TEXTS[event]


@receiver(post_save, sender=MessageTemplate, dispatch_uid="tierline-templates-saved")
@receiver(post_delete, sender=MessageTemplate, dispatch_uid="tierline-templates-deleted")
def forget(**kwargs: object) -> None:
    """An admin changed a text: read them again at the next use."""
    global _rows, _changes
    with _lock:
        _rows = None
        _changes += 1
