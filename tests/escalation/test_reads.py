"""The message writer's reads (chat.realtime.reads): on PostgreSQL each runs as hand-written SQL
with array parameters, all of a batch's in one pipeline. Each must give exactly what its
queryset gives (the queryset is what SQLite runs, and the definition), row for row, on data that
exercises every branch; together they give what they give alone; a failing one raises; and the
writer's connection, checked only once a second now, is replaced when it broke in between."""

from typing import Any

import pytest
from django.contrib.auth.models import Permission, User
from django.contrib.sessions.backends.db import SessionStore
from django.db import DatabaseError, OperationalError, connection, transaction

from chat import services as chat_services
from chat.models import ChatSession, Message
from chat.realtime import writer
from chat.realtime.reads import Read, run_together
from escalation import selectors, services
from escalation.models import Agent, Handover
from escalation.services.posting import Post, post_messages
from escalation.services.route import lock_route_holders_read
from tests.escalation.test_handover import request, warm_billing  # noqa: F401 - a fixture
from tests.escalation.test_transfer import agent, online, start
from tests.factories import AgentFactory, UserFactory

pytestmark = pytest.mark.postgres


def plain(value: Any) -> Any:
    """Model instances as their field values (a model's == compares primary keys only)."""
    if isinstance(value, dict):
        return {key: plain(item) for key, item in value.items()}
    if isinstance(value, ChatSession | Message):
        return {f.attname: getattr(value, f.attname, None) for f in value._meta.concrete_fields}
    return value


def session_for(user: User, *, expired: bool = False) -> str:
    store = SessionStore()
    store["_auth_user_id"] = str(user.pk)
    store.set_expiry(-60 if expired else 3600)
    store.create()
    return str(store.session_key)


@pytest.fixture
def scene(warm_billing):  # noqa: F811 - the fixture imported above
    """Carol's chat held by Alex, who replied, with Sam joined (warm); a second chat waiting and
    a third ended; messages with client ids; console logins of every kind."""
    joined = warm_billing
    request(joined)
    services.accept_handover(handover_id=Handover.objects.get(chat=joined).pk, agent=agent("sam"))
    services.post_agent_message(chat_id=joined.pk, agent=agent("alex"), text="Hi", client_id="a1")
    services.post_visitor_message(chat_id=joined.pk, text="Hello", client_id="v1")
    waiting = start()
    services.post_visitor_message(chat_id=waiting.pk, text="Anyone?", client_id="v1")
    ended = start()
    services.end_chat_by_visitor(chat_id=ended.pk)
    online("kim")
    direct = AgentFactory(user=UserFactory(username="direct", roles=[]))
    direct.user.user_permissions.add(Permission.objects.get(codename="use_console"))
    boss = AgentFactory(user=UserFactory(username="boss", roles=[], is_superuser=True))
    nobody = AgentFactory(user=UserFactory(username="nobody", roles=[]))
    gone = AgentFactory(user=UserFactory(username="gone", roles=["Agents"]))
    User.objects.filter(username="gone").update(is_active=False)
    logins = set()
    for who in (agent("alex"), agent("sam"), direct, boss, nobody, gone):
        logins.add((who.pk, session_for(who.user), who.user.password))
    logins.add((agent("kim").pk, session_for(agent("kim").user, expired=True), "old-hash"))
    logins.add((agent("kim").pk, "no-such-session", agent("kim").user.password))
    logins.add((999_999, "nobody-at-all", "x"))
    return {"chats": [joined, waiting, ended], "logins": logins}


def the_reads(scene) -> list[Read[Any]]:
    ids = [chat.pk for chat in scene["chats"]] + [999_999]
    passwords, live = selectors.invalid_console_logins_reads(scene["logins"])
    pairs = [(chat_id, client_id) for chat_id in ids for client_id in ("a1", "v1", "zz", None)]
    return [
        chat_services.lock_chats_read(ids),
        lock_route_holders_read(ids),
        chat_services.stored_by_client_id_read(pairs),
        passwords,
        live,
    ]


@pytest.mark.django_db
def test_each_read_gives_what_its_queryset_gives(scene):
    assert connection.vendor == "postgresql"
    with transaction.atomic():
        reads = the_reads(scene)
        for read in reads:
            assert read.sql, "every read of the writer has its PostgreSQL form"
            assert plain(read.run()) == plain(read.run_orm())
        chats, holders, stored, passwords, live = (read.run() for read in reads)
    joined, waiting, ended = scene["chats"]
    # The data reach every branch: not a comparison of two empty answers.
    assert set(chats) == {joined.pk, waiting.pk, ended.pk}
    assert chats[ended.pk].status == ChatSession.Status.ENDED
    holder = holders[joined.pk]
    assert holder.agent_id == agent("alex").pk and holder.replied
    assert (holder.guest_id, holder.guest_user_id) == (agent("sam").pk, agent("sam").user_id)
    assert not holders[waiting.pk].replied and holders[waiting.pk].guest_id is None
    assert {key for key in stored} == {(joined.pk, "a1"), (joined.pk, "v1"), (waiting.pk, "v1")}
    assert set(passwords) == {
        agent("alex").pk,
        agent("sam").pk,
        agent("kim").pk,
        Agent.objects.get(user__username="direct").pk,
        Agent.objects.get(user__username="boss").pk,
    }
    assert len(live) == 6  # the six unexpired sessions; not Kim's expired one, nor the absent
    revoked = selectors.revoked_logins(scene["logins"], passwords, live)
    assert {login[0] for login in scene["logins"] - revoked} == {
        agent("alex").pk,
        agent("sam").pk,
        Agent.objects.get(user__username="direct").pk,
        Agent.objects.get(user__username="boss").pk,
    }


@pytest.mark.django_db
def test_reads_together_give_what_they_give_alone(scene):
    with transaction.atomic():
        alone = [plain(read.run()) for read in the_reads(scene)]
        together = [plain(result) for result in run_together(the_reads(scene))]
    assert together == alone


@pytest.mark.django_db
def test_a_read_that_fails_raises_and_the_transaction_rolls_back(scene):
    broken = Read(lambda: Message.objects.values_list("id"), list, "SELECT no_such_column", [])
    with pytest.raises(DatabaseError), transaction.atomic():
        run_together([*the_reads(scene), broken])
    assert Message.objects.filter(client_id="a1").count() == 1  # the connection works again


def on_writer_thread(fn: Any, *args: Any) -> Any:
    return writer._executor.submit(fn, *args).result(timeout=30)


def writer_backend_pid() -> int:
    def pid() -> int:
        connection.ensure_connection()
        return int(connection.connection.info.backend_pid)

    return int(on_writer_thread(pid))


def kill_writer_connection() -> int:
    """pg_terminate_backend on the writer thread's connection, waiting until it is gone."""
    pid = writer_backend_pid()
    with connection.cursor() as cursor:
        cursor.execute("SELECT pg_terminate_backend(%s, 5000)", [pid])
    return pid


@pytest.fixture
def writer_thread(monkeypatch):
    """The writer's thread, with its connection checked before the first batch and then not for
    an hour; the connection it opens is closed afterwards, whatever the test did."""
    monkeypatch.setattr(writer, "_checked_at", float("-inf"))
    monkeypatch.setattr(writer, "CHECK_SECONDS", 3600.0)
    yield
    on_writer_thread(lambda: connection.close())


def has_client_id(post: Post) -> bool:
    return bool(post.client_id)


@pytest.mark.django_db(transaction=True, serialized_rollback=True)  # as the other such tests
def test_a_post_that_met_a_broken_connection_is_written_again_on_a_new_one(
    warm_billing,  # noqa: F811 - the fixture imported above
    writer_thread,
):
    chat = warm_billing
    [first] = on_writer_thread(
        writer._write, post_messages, [Post(chat.pk, "one", "c-1")], has_client_id
    )
    assert isinstance(first, Message)
    pid = kill_writer_connection()
    # No check before this batch (within the hour): it meets the dead connection, and is
    # written again on a new one.
    [second] = on_writer_thread(
        writer._write, post_messages, [Post(chat.pk, "two", "c-2")], has_client_id
    )
    assert isinstance(second, Message), second
    assert writer_backend_pid() != pid
    texts = list(Message.objects.filter(chat=chat).order_by("seq").values_list("text", flat=True))
    assert texts[-2:] == ["one", "two"]


@pytest.mark.django_db(transaction=True, serialized_rollback=True)
def test_a_post_that_may_not_be_retried_gets_the_error_and_the_next_batch_reconnects(
    warm_billing,  # noqa: F811 - the fixture imported above
    writer_thread,
):
    """Without a client_id a post cannot be told apart from a copy of itself: had the lost
    connection come at COMMIT, after the database stored it, writing it again would store it
    twice. It gets the error (the page resends with its client_id); the connection is replaced
    at once, so the next batch works."""
    chat = warm_billing
    on_writer_thread(writer._write, post_messages, [Post(chat.pk, "one")], has_client_id)
    kill_writer_connection()
    [refused] = on_writer_thread(
        writer._write, post_messages, [Post(chat.pk, "two")], has_client_id
    )
    assert isinstance(refused, OperationalError)
    [after] = on_writer_thread(
        writer._write, post_messages, [Post(chat.pk, "three")], has_client_id
    )
    assert isinstance(after, Message), after
    texts = list(Message.objects.filter(chat=chat).order_by("seq").values_list("text", flat=True))
    assert texts[-2:] == ["one", "three"]
