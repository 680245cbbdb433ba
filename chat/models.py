"""The conversation itself: sessions, their messages and their append-only flow.

`chat` knows nothing of tiers, stages or agents' groups: `escalation` decides where a chat waits
and who holds it, and writes here only through `chat.services`.
"""

import secrets
import uuid
from typing import ClassVar

from django.conf import settings
from django.contrib.postgres.indexes import GinIndex, OpClass
from django.contrib.postgres.search import SearchVector
from django.core.files.storage import Storage, storages
from django.db import models
from django.db.models import F, Q
from django.db.models.functions import Upper
from django.utils import timezone


class ChatSession(models.Model):
    class Status(models.TextChoices):
        QUEUED = "queued", "Queued"
        ACTIVE = "active", "Active"
        ENDED = "ended", "Ended"
        ABANDONED = "abandoned", "Abandoned"
        MISSED = "missed", "Missed"

    OPEN_STATUSES: ClassVar[tuple[str, ...]] = (Status.QUEUED, Status.ACTIVE)
    TRANSITIONS: ClassVar[dict[str, tuple[str, ...]]] = {
        Status.QUEUED: (
            Status.ACTIVE,
            Status.QUEUED,
            Status.ENDED,
            Status.ABANDONED,
            Status.MISSED,
        ),
        Status.ACTIVE: (Status.QUEUED, Status.ENDED),
        Status.ENDED: (),
        Status.ABANDONED: (),
        Status.MISSED: (),
    }

    public_id = models.UUIDField(default=uuid.uuid4, unique=True, editable=False)
    visitor_name = models.CharField(max_length=100)
    visitor_email = models.EmailField(blank=True)
    topic = models.CharField(max_length=100)
    status = models.CharField(max_length=16, choices=Status.choices, default=Status.QUEUED)
    # Last sequence number given to any message of this chat, and to a visitor-visible one:
    # internal notes take a `seq` but no `public_seq`, so the visitor's stream has no gaps either.
    last_seq = models.PositiveIntegerField(default=0)
    last_public_seq = models.PositiveIntegerField(default=0)
    # What the visitor's browser told us at the start (page, user agent, language, ...).
    visitor_context = models.JSONField(default=dict, blank=True)
    # Refreshed by the visitor's socket (connect, ping, disconnect); a queued chat whose visitor
    # has not been seen for VISITOR_GONE_SECONDS is abandoned by the sweep.
    visitor_seen_at = models.DateTimeField(null=True, blank=True)
    created_at = models.DateTimeField(auto_now_add=True, db_index=True)
    updated_at = models.DateTimeField(auto_now=True)
    ended_at = models.DateTimeField(null=True, blank=True, db_index=True)

    class Meta:
        indexes = [
            models.Index(fields=["status", "created_at"], name="chat_status_created"),
            # The console's "previous chats of this visitor" looks chats up by e-mail, in any
            # case (Carol@Example.com is carol@example.com), newest first; erasure by e-mail too.
            models.Index(
                Upper("visitor_email"),
                F("created_at").desc(),
                condition=~Q(visitor_email=""),
                name="chat_visitor_email_created",
            ),
            # Searching past chats by a part of the visitor's name or e-mail (PostgreSQL).
            GinIndex(
                OpClass(Upper("visitor_name"), name="gin_trgm_ops"), name="chat_visitor_name_trgm"
            ),
            GinIndex(
                OpClass(Upper("visitor_email"), name="gin_trgm_ops"),
                name="chat_visitor_email_trgm",
            ),
        ]

    def __str__(self) -> str:
        return f"Chat {self.pk} with {self.visitor_name} ({self.get_status_display()})"

    @property
    def is_open(self) -> bool:
        return self.status in self.OPEN_STATUSES

    def can_transition_to(self, status: str) -> bool:
        return status in self.TRANSITIONS[self.status]


class Message(models.Model):
    class Kind(models.TextChoices):
        VISITOR = "visitor", "Visitor"
        AGENT = "agent", "Agent"
        SYSTEM = "system", "System notice"
        INTERNAL = "internal", "Internal note"

    chat = models.ForeignKey(ChatSession, on_delete=models.CASCADE, related_name="messages")
    seq = models.PositiveIntegerField()
    public_seq = models.PositiveIntegerField(null=True, blank=True)
    kind = models.CharField(max_length=16, choices=Kind.choices)
    # System notices carry the template event they came from (agent_joined, transfer, ...).
    event = models.CharField(max_length=40, blank=True)
    author = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    author_name = models.CharField(max_length=100, blank=True)
    text = models.TextField()
    # NULL, not "": the uniqueness of client ids holds only where one was sent.
    client_id = models.CharField(max_length=64, null=True, blank=True)  # noqa: DJ001
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["chat", "seq"]
        # Searching past chats (reporting/search.py) by their words, on PostgreSQL.
        indexes = [
            GinIndex(SearchVector("text", config="simple"), name="message_text_search"),
        ]
        constraints = [
            models.UniqueConstraint(fields=["chat", "seq"], name="message_seq_unique_per_chat"),
            models.UniqueConstraint(
                fields=["chat", "public_seq"],
                condition=Q(public_seq__isnull=False),
                name="message_public_seq_unique_per_chat",
            ),
            models.UniqueConstraint(
                fields=["chat", "client_id"],
                condition=Q(client_id__isnull=False),
                name="message_client_id_unique_per_chat",
            ),
        ]

    def __str__(self) -> str:
        return f"#{self.seq} {self.kind} in chat {self.chat_id}"

    @property
    def is_visible_to_visitor(self) -> bool:
        return self.kind != self.Kind.INTERNAL


class FlowEvent(models.Model):
    """One step of a chat's append-only timeline; the Flow tab and the reports read these."""

    class Kind(models.TextChoices):
        CREATED = "created", "Created"
        QUEUED = "queued", "Queued"
        ASSIGNED = "assigned", "Assigned"
        FIRST_AGENT_MESSAGE = "first_agent_message", "First agent message"
        ESCALATED = "escalated", "Escalated"
        RETURNED = "returned", "Returned to queue"
        TIMED_OUT = "timed_out", "Timed out"
        FELL_BACK = "fell_back", "Fell back"
        AGENT_LEFT = "agent_left", "Agent left"
        LEFT_MESSAGE = "left_message", "Visitor left a message"
        ABANDONED = "abandoned", "Visitor left"
        DROPPED = "dropped", "Visitor left; moved to the drop stage"
        OFFERED = "offered", "Offered to an agent"
        ACCEPTED = "accepted", "Offer accepted"
        DECLINED = "declined", "Offer declined"
        LAPSED = "lapsed", "Offer lapsed"
        ENDED = "ended", "Ended"
        AFTER_AGENT = "after_agent", "After the agent (survey or message form offered)"
        SURVEY_ANSWERED = "survey_answered", "Survey answered"
        TAGGED = "tagged", "Tags changed"
        ATTACHMENT = "attachment", "File sent"
        CONSULTED = "consulted", "Colleague consulted"
        CONSULT_ANSWERED = "consult_answered", "Consult answered"
        CONSULT_CLOSED = "consult_closed", "Consult closed"
        HANDOVER_REQUESTED = "handover_requested", "Hand-over requested (the agent stays)"
        HANDOVER_JOINED = "handover_joined", "Hand-over receiver joined"
        HANDOVER_COMPLETED = "handover_completed", "Hand-over receiver took over"
        HANDOVER_FAILED = "handover_failed", "Hand-over did not happen; the agent stays"

    chat = models.ForeignKey(ChatSession, on_delete=models.CASCADE, related_name="flow")
    kind = models.CharField(max_length=32, choices=Kind.choices)
    at = models.DateTimeField(db_index=True)
    actor = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    data = models.JSONField(default=dict, blank=True)

    class Meta:
        ordering = ["chat", "id"]
        indexes = [models.Index(fields=["kind", "at"], name="flow_kind_at")]

    def __str__(self) -> str:
        return f"{self.kind} of chat {self.chat_id} at {self.at:%Y-%m-%d %H:%M:%S}"


def attachment_storage() -> Storage:
    """The "attachments" storage of settings.STORAGES (a callable, so that migrations do not
    record the backend)."""
    return storages["attachments"]


def attachment_path(instance: "Attachment", filename: str) -> str:
    """A random name on disk: never the uploader's, which is shown but never used as a path."""
    extension = filename.rpartition(".")[2].lower() if "." in filename else ""
    suffix = f".{extension}" if extension.isascii() and extension.isalnum() else ""
    return f"attachments/{instance.created_at:%Y/%m}/{secrets.token_hex(16)}{suffix}"


class Attachment(models.Model):
    """A file sent in a chat. It is posted as a message of the chat (event "attachment", its
    text the file's name), so it has that message's numbers and replays with the transcript."""

    class Uploader(models.TextChoices):
        VISITOR = "visitor", "Visitor"
        AGENT = "agent", "Agent"

    chat = models.ForeignKey(ChatSession, on_delete=models.CASCADE, related_name="attachments")
    message = models.OneToOneField(Message, on_delete=models.CASCADE, related_name="attachment")
    uploader = models.CharField(max_length=10, choices=Uploader.choices)
    agent_user = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    name = models.CharField(max_length=100)  # as sent, cleaned (chat.attachments)
    content_type = models.CharField(max_length=100)
    size_bytes = models.PositiveBigIntegerField()
    file = models.FileField(storage=attachment_storage, upload_to=attachment_path, max_length=200)
    created_at = models.DateTimeField(default=timezone.now)

    def __str__(self) -> str:
        return f"{self.name} in chat {self.chat_id}"

    @property
    def is_image(self) -> bool:
        return self.content_type.startswith("image/")


class OutboundEmail(models.Model):
    """One e-mail Tierline sends about a chat (a transcript for its visitor, a left message for
    an agent), sent by a Celery task with retries. Its content is rendered when it is sent, so an
    erased chat's e-mail is not sent at all (erasure deletes these rows)."""

    class Kind(models.TextChoices):
        TRANSCRIPT = "transcript", "Transcript for the visitor"
        LEFT_MESSAGE = "left_message", "Left message, for an agent"

    class Status(models.TextChoices):
        PENDING = "pending", "Waiting to be sent"
        SENT = "sent", "Sent"
        FAILED = "failed", "Failed"

    chat = models.ForeignKey(ChatSession, on_delete=models.CASCADE, related_name="emails")
    kind = models.CharField(max_length=20, choices=Kind.choices)
    to = models.EmailField()
    status = models.CharField(max_length=10, choices=Status.choices, default=Status.PENDING)
    attempts = models.PositiveSmallIntegerField(default=0)
    due_at = models.DateTimeField(default=timezone.now)  # when the next try is due
    last_error = models.CharField(max_length=300, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)
    sent_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        indexes = [
            models.Index(fields=["chat", "kind"], name="email_chat_kind"),
            models.Index(
                fields=["due_at"], condition=Q(status="pending"), name="email_pending_due"
            ),
        ]

    def __str__(self) -> str:
        return f"{self.get_kind_display()} to {self.to} ({self.status})"
