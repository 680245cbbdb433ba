from typing import Any

import factory
from django.contrib.auth import get_user_model
from django.contrib.auth.models import Group

from escalation.models import (
    Agent,
    AgentGroup,
    EscalationOption,
    Pipeline,
    RoutingPolicy,
    Stage,
    Tier,
    Topic,
)

PASSWORD = "pw-for-tests"


class UserFactory(factory.django.DjangoModelFactory):  # type: ignore[misc]
    class Meta:
        model = get_user_model()
        django_get_or_create = ("username",)
        skip_postgeneration_save = True

    username = factory.Sequence(lambda n: f"user{n}")
    password = factory.PostGenerationMethodCall("set_password", PASSWORD)

    @factory.post_generation
    def roles(self, create: bool, extracted: list[str] | None, **kwargs: Any) -> None:
        for name in extracted or []:
            self.groups.add(Group.objects.get(name=name))
        self.save()


class TierFactory(factory.django.DjangoModelFactory):  # type: ignore[misc]
    class Meta:
        model = Tier
        django_get_or_create = ("level",)

    level = 1
    name = factory.LazyAttribute(lambda o: f"Level {o.level}")


class AgentGroupFactory(factory.django.DjangoModelFactory):  # type: ignore[misc]
    class Meta:
        model = AgentGroup
        django_get_or_create = ("name",)

    name = factory.Sequence(lambda n: f"Group {n}")
    tier = factory.SubFactory(TierFactory)
    routing_policy = RoutingPolicy.MANUAL
    default_capacity = 2


class AgentFactory(factory.django.DjangoModelFactory):  # type: ignore[misc]
    class Meta:
        model = Agent
        skip_postgeneration_save = True

    user = factory.SubFactory(UserFactory, roles=["Agents"])
    display_name = factory.LazyAttribute(lambda o: o.user.username.title())
    presence = Agent.Presence.ONLINE

    @factory.post_generation
    def member_of(self, create: bool, extracted: list[AgentGroup] | None, **kwargs: Any) -> None:
        if extracted:
            self.groups.set(extracted)


class PipelineFactory(factory.django.DjangoModelFactory):  # type: ignore[misc]
    class Meta:
        model = Pipeline
        django_get_or_create = ("name",)

    name = factory.Sequence(lambda n: f"Pipeline {n}")


class StageFactory(factory.django.DjangoModelFactory):  # type: ignore[misc]
    class Meta:
        model = Stage
        skip_postgeneration_save = True

    pipeline = factory.SubFactory(PipelineFactory)
    name = factory.Sequence(lambda n: f"Stage {n}")
    tier = factory.SubFactory(TierFactory)
    wait_timeout_seconds = 300

    @factory.post_generation
    def served_by(self, create: bool, extracted: list[AgentGroup] | None, **kwargs: Any) -> None:
        if extracted:
            self.groups.set(extracted)


class TopicFactory(factory.django.DjangoModelFactory):  # type: ignore[misc]
    class Meta:
        model = Topic
        django_get_or_create = ("name",)

    name = factory.Sequence(lambda n: f"Topic {n}")
    pipeline = factory.SubFactory(PipelineFactory)


class StageOptionFactory(factory.django.DjangoModelFactory):  # type: ignore[misc]
    """An escalation option from `stage` to `target_stage` that queues when nobody is free and
    needs no note."""

    class Meta:
        model = EscalationOption

    stage = factory.SubFactory(StageFactory)
    keyword = factory.Sequence(lambda n: f"option{n}")
    label = factory.LazyAttribute(lambda o: o.keyword.title())
    target_kind = "stage"
    target_stage = factory.SubFactory(StageFactory)
    no_agent_rule = "queue"
    note_required = False


# --- A visitor's side ----------------------------------------------------------------------------
VISITOR_DEFAULTS: dict[str, Any] = {
    "visitor_name": "Carol",
    "visitor_email": "carol@example.com",
    "topic_name": "Billing",
    "first_message": "Hello",
    "visitor_context": {},
}


def start_chat(**overrides: Any) -> Any:
    """A visitor's chat, started through the service as the start form does (Carol, Billing,
    "Hello", unless overridden)."""
    from escalation import services

    return services.start_chat(**{**VISITOR_DEFAULTS, **overrides})


def visitor_client(chat: Any) -> Any:
    """A browser that holds the chat: its visitor cookie, as the start form sets it."""
    from django.test import Client

    from chat.selectors import make_visitor_token
    from chat.views import VISITOR_COOKIE

    client = Client()
    client.cookies[VISITOR_COOKIE] = f"{chat.pk}:{make_visitor_token(chat)}"
    return client


# --- Files ---------------------------------------------------------------------------------------
def png_bytes(
    width: int = 24, height: int = 16, rgb: tuple[int, int, int] = (30, 120, 220)
) -> bytes:
    """A real PNG image of one colour (browsers draw it; the sniffing sees a PNG)."""
    import struct
    import zlib

    def chunk(kind: bytes, data: bytes) -> bytes:
        body = kind + data
        return struct.pack(">I", len(data)) + body + struct.pack(">I", zlib.crc32(body))

    row = b"\x00" + bytes(rgb) * width
    header = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return (
        b"\x89PNG\r\n\x1a\n"
        + chunk(b"IHDR", header)
        + chunk(b"IDAT", zlib.compress(row * height))
        + chunk(b"IEND", b"")
    )


PDF_BYTES = (
    b"%PDF-1.4\n1 0 obj<</Type/Catalog/Pages 2 0 R>>endobj\n"
    b"2 0 obj<</Type/Pages/Kids[]/Count 0>>endobj\ntrailer<</Root 1 0 R>>\n%%EOF\n"
)


def upload(name: str, content: bytes, content_type: str = "") -> Any:
    """A file as Django hands an upload to a view."""
    from django.core.files.uploadedfile import SimpleUploadedFile

    return SimpleUploadedFile(name, content, content_type=content_type)
