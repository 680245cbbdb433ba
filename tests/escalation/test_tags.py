"""Tags on chats: set by the agent holding the chat from the admins' list, required at the end
where a stage says so, told to every console that has the chat open, counted by the reports."""

import datetime as dt

import pytest
from asgiref.sync import sync_to_async
from django.test import Client
from django.urls import reverse
from django.utils import timezone

from chat.events import chat_agents_group
from escalation import frames, services
from escalation.exceptions import NotYourChat, TagRequired, UnknownTag
from escalation.models import Agent, ChatTag, Escalation, Stage, SurveyAnswer, Tag
from reporting import tags as tag_report
from reporting.selectors import ReportFilter, escalated_chats
from tests.chat.test_consumers import console_socket, frames_until
from tests.chat.test_events import Listener
from tests.factories import start_chat

ESCALATE_TO = "billing"


def agent(username: str) -> Agent:
    return Agent.objects.get(user__username=username)


@pytest.fixture
def held(demo):
    """Alex (L1 General, round robin) holds Carol's chat; three tags exist, one switched off."""
    services.set_presence(agent=agent("alex"), presence="online")
    chat = start_chat()
    Tag.objects.all().delete()  # the demo's own: this test's list is its own
    tags = {
        name: Tag.objects.create(name=name, position=i, is_active=name != "Old")
        for i, name in enumerate(["Refund", "Bug", "Old"])
    }
    return chat, tags


def test_the_holder_sets_tags_and_the_consoles_are_told(held, django_capture_on_commit_callbacks):
    chat, tags = held
    listener = Listener(chat_agents_group(chat.pk))
    with django_capture_on_commit_callbacks(execute=True):
        current = services.set_chat_tags(
            chat_id=chat.pk, agent=agent("alex"), tag_ids=[tags["Bug"].pk, tags["Refund"].pk]
        )
    assert [t.name for t in current] == ["Refund", "Bug"]  # the admins' order
    assert listener.receive_all() == [
        {
            "type": "chat.tags",
            "v": 3,
            "chat": chat.pk,
            "tags": [
                {"id": tags["Refund"].pk, "name": "Refund"},
                {"id": tags["Bug"].pk, "name": "Bug"},
            ],
            "by": "Alex",
        }
    ]
    services.set_chat_tags(chat_id=chat.pk, agent=agent("alex"), tag_ids=[tags["Bug"].pk])
    assert list(ChatTag.objects.filter(chat=chat).values_list("tag__name", flat=True)) == ["Bug"]
    flow = chat.flow.filter(kind="tagged").order_by("pk")
    assert [e.data["tags"] for e in flow] == ["Refund, Bug", "Bug"]


def test_tags_are_refused_to_others_and_outside_the_list(held):
    chat, tags = held
    with pytest.raises(NotYourChat):
        services.set_chat_tags(chat_id=chat.pk, agent=agent("sam"), tag_ids=[tags["Bug"].pk])
    for wrong in ([tags["Old"].pk], [987654], list(range(1, 12))):
        with pytest.raises(UnknownTag):
            services.set_chat_tags(chat_id=chat.pk, agent=agent("alex"), tag_ids=wrong)
    assert not ChatTag.objects.filter(chat=chat).exists()


def test_a_stage_may_require_a_tag_before_the_end(held):
    chat, tags = held
    Stage.objects.filter(name="L1 General").update(requires_tag_at_end=True)
    info = frames.chat_info(chat_id=chat.pk, agent=agent("alex"))
    assert info.requires_tag and info.tags == []
    assert [t["name"] for t in info.tag_choices] == ["Refund", "Bug"]  # not the switched-off one
    with pytest.raises(TagRequired):
        services.end_chat_by_agent(chat_id=chat.pk, agent=agent("alex"))
    chat.refresh_from_db()
    assert chat.status == "active"
    services.set_chat_tags(chat_id=chat.pk, agent=agent("alex"), tag_ids=[tags["Refund"].pk])
    services.end_chat_by_agent(chat_id=chat.pk, agent=agent("alex"))
    chat.refresh_from_db()
    assert chat.status == "ended"
    # The next reader (a manager, the next tier) sees them with the chat.
    later = frames.chat_info(chat_id=chat.pk, agent=agent("sam"))
    assert later.tags == [{"id": tags["Refund"].pk, "name": "Refund"}]
    client = Client()
    client.force_login(agent("alex").user)  # who held it may open its Metadata tab
    metadata = client.get(reverse("reporting:chat", args=[chat.pk])).content.decode()
    assert "<tr><th>Tags</th><td><bdi>Refund</bdi></td></tr>" in metadata


@pytest.mark.django_db(transaction=True, serialized_rollback=True)
async def test_the_console_sets_tags_over_its_socket(held):
    chat, tags = held
    ws = await console_socket(Client(), user=await sync_to_async(lambda: agent("alex").user)())
    assert (await ws.connect())[0]
    await frames_until(ws, "hello")
    await ws.send_json_to({"type": "subscribe", "chat": chat.pk})
    await frames_until(ws, "replay.done")
    for bad in (["1"], [True], [0], "x"):
        await ws.send_json_to({"type": "tags", "chat": chat.pk, "tags": bad, "ref": "t"})
        error = (await frames_until(ws, "error"))[-1]
        assert error["code"] == "bad_frame"
    await ws.send_json_to({"type": "tags", "chat": chat.pk, "tags": [tags["Bug"].pk]})
    told = (await frames_until(ws, "chat.tags"))[-1]
    assert told["tags"] == [{"id": tags["Bug"].pk, "name": "Bug"}] and told["by"] == "Alex"
    await ws.send_json_to({"type": "tags", "chat": chat.pk, "tags": [tags["Old"].pk]})
    assert (await frames_until(ws, "error"))[-1]["code"] == "unknown_tag"
    await ws.disconnect()


@pytest.fixture
def tagged_history(demo):
    """Hand-worked: in the period, chat 0 (Refund, Bug; escalated by Alex; rated 2), chat 1
    (Refund; rated 5), chat 2 (Bug); chat 3 (Refund) started before the period."""
    services.set_presence(agent=agent("alex"), presence="online")
    Tag.objects.all().delete()  # the demo's own: this test's list is its own
    refund, bug = Tag.objects.create(name="Refund"), Tag.objects.create(name="Bug")
    chats = [start_chat(visitor_name=f"V{i}") for i in range(4)]
    for chat, chat_tags in zip(chats, [[refund, bug], [refund], [bug], [refund]], strict=True):
        for tag in chat_tags:
            ChatTag.objects.create(chat=chat, tag=tag)
    services.escalate_chat(
        chat_id=chats[0].pk,
        agent=agent("alex"),
        keyword=ESCALATE_TO,
        note="Disputed invoice",
        reason="",
        requested_by=Escalation.RequestedBy.BUTTON,
    )
    now = timezone.now()
    SurveyAnswer.objects.create(chat=chats[0], rating=2, answered_at=timezone.now())
    SurveyAnswer.objects.create(chat=chats[1], rating=5, answered_at=timezone.now())
    type(chats[3]).objects.filter(pk=chats[3].pk).update(created_at=now - dt.timedelta(days=40))
    today = timezone.localdate()
    return ReportFilter(start=today - dt.timedelta(days=6), end=today), chats, refund


def test_the_by_tag_report_counts_what_was_worked_out_by_hand(tagged_history, client, manager_user):
    f, _, _ = tagged_history
    assert tag_report.by_tag(f) == [
        {"tag": "Bug", "chats": 2, "escalated": 1, "rate": 0.5, "answers": 1, "average": 2.0},
        {"tag": "Refund", "chats": 2, "escalated": 1, "rate": 0.5, "answers": 2, "average": 3.5},
    ]
    client.force_login(manager_user)
    query = {"start": f.start.isoformat(), "end": f.end.isoformat()}
    page = client.get(reverse("reporting:tags"), query).content.decode()
    assert (
        "<td><bdi>Refund</bdi></td><td>2</td><td>1</td><td>50%</td><td>2</td><td>3.50 of 5</td>"
        in page
    )
    exported = client.get(reverse("reporting:tags"), {**query, "format": "csv"})
    csv = b"".join(exported.streaming_content).decode()
    assert csv.splitlines() == [
        ",".join(tag_report.CSV_HEADER),
        "Bug,2,1,0.500,1,2.00",
        "Refund,2,1,0.500,2,3.50",
    ]
    empty = {"start": "2020-01-01", "end": "2020-01-02"}
    assert (
        "No tagged chats started" in client.get(reverse("reporting:tags"), empty).content.decode()
    )


def test_the_escalated_list_narrows_to_a_tag(tagged_history, client, manager_user):
    f, chats, refund = tagged_history
    tagged = ReportFilter(start=f.start, end=f.end, tag_id=refund.pk)
    assert [e.chat_id for e in escalated_chats(tagged)] == [chats[0].pk]
    bug_only = Tag.objects.get(name="Bug")
    ChatTag.objects.filter(chat=chats[0], tag=refund).delete()
    assert list(escalated_chats(ReportFilter(start=f.start, end=f.end, tag_id=refund.pk))) == []
    assert (
        len(list(escalated_chats(ReportFilter(start=f.start, end=f.end, tag_id=bug_only.pk)))) == 1
    )
    client.force_login(manager_user)
    page = client.get(reverse("reporting:escalated"), {"tag": refund.pk}).content.decode()
    assert 'name="tag"' in page  # offered here, where it applies
    assert 'name="tag"' not in client.get(reverse("reporting:over_time")).content.decode()
