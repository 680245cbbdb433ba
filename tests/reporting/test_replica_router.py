"""Report reads go to the read replica (REPORTS_DATABASE_URL) through the database router; every
other read and every write stays on the primary. The "replica" here is a second connection to the
test database under the `reports` alias, so the data is there and the queries each connection ran
can be told apart."""

import pytest
from django.conf import settings as django_settings
from django.db import connections
from django.test.utils import CaptureQueriesContext

from escalation import services
from escalation.models import Agent, EscalationOption
from reporting.routers import REPORTS_DB, ReportsReplicaRouter, report_reads
from tests.test_settings_shapes import manage

pytestmark = [
    pytest.mark.postgres,
    pytest.mark.django_db(transaction=True, serialized_rollback=True),
    pytest.mark.filterwarnings("ignore:Overriding setting DATABASES"),
]


@pytest.fixture
def replica(settings):
    """A `reports` alias as REPORTS_DATABASE_URL makes one, on the test database. Its connection
    is made here rather than listed in the connection handler's settings, so that Django's test
    isolation lets this test use it."""
    from django.db.utils import load_backend

    config = {**connections["default"].settings_dict}
    settings.DATABASES = {**django_settings.DATABASES, REPORTS_DB: config}
    wrapper = load_backend(config["ENGINE"]).DatabaseWrapper(config, REPORTS_DB)
    connections[REPORTS_DB] = wrapper
    yield wrapper
    wrapper.close()
    del connections[REPORTS_DB]


@pytest.fixture
def escalated(demo):
    alex = Agent.objects.get(user__username="alex")
    services.set_presence(agent=alex, presence="online")
    chat = services.start_chat(
        visitor_name="Carol",
        visitor_email="",
        topic_name="Billing",
        first_message="hi",
        visitor_context={},
    )
    option = EscalationOption.objects.filter(stage__name="L1 General").first()
    services.escalate_chat(chat_id=chat.pk, agent=alex, keyword=option.keyword, note="n")
    return chat


REPORT_TABLES = [
    "escalation_escalation",
    "chat_flowevent",
    "escalation_assignment",
    "escalation_waitestimate",
    "escalation_offer",
    "reporting_",
]


def sql(context: CaptureQueriesContext) -> str:
    return "\n".join(q["sql"] for q in context.captured_queries)


def test_report_pages_and_the_reports_api_read_from_the_replica(replica, escalated, client):
    from django.contrib.auth import get_user_model

    client.force_login(get_user_model().objects.get(username="morgan"))
    primary = connections["default"]
    urls = [
        "/reports/escalated/",
        "/reports/over-time/",
        "/reports/by-agent/",  # with offer numbers: raw SQL
        "/reports/waits/",  # percentiles: raw SQL
        "/reports/predicted-vs-actual/",  # raw SQL
        "/api/v1/reports/over-time/",
    ]
    for url in urls:
        with (
            CaptureQueriesContext(replica) as on_replica,
            CaptureQueriesContext(primary) as on_primary,
        ):
            response = client.get(url)
        assert response.status_code == 200, url
        assert on_replica.captured_queries, url  # the report's reads
        for table in REPORT_TABLES:
            assert table not in sql(on_primary), (url, table)
        assert "django_session" in sql(on_primary)  # the login is the primary's business
    page = client.get("/reports/escalated/")
    assert "1 chats" in page.content.decode()  # the replica's rows are what the page shows


def test_the_streamed_csv_reads_from_the_replica(replica, escalated, client):
    from django.contrib.auth import get_user_model

    client.force_login(get_user_model().objects.get(username="morgan"))
    response = client.get("/reports/escalated/", {"format": "csv"})
    replica.close()  # the rows are read later, while the response streams
    primary_queries = CaptureQueriesContext(connections["default"])
    with primary_queries:
        body = b"".join(response.streaming_content).decode()
    assert len(body.splitlines()) == 2  # the header and the one escalated chat
    assert replica.connection is not None  # the COPY ran on the replica's connection
    assert "escalation_escalation" not in sql(primary_queries)


def test_the_console_and_writes_stay_on_the_primary(replica, escalated, client):
    client.force_login(Agent.objects.get(user__username="alex").user)
    with CaptureQueriesContext(replica) as on_replica:
        assert client.get("/console/").status_code == 200
        with report_reads():  # even inside a report, a write goes to the primary
            assert ReportsReplicaRouter().db_for_write(Agent) is None
    assert on_replica.captured_queries == []


def test_without_a_replica_reports_read_from_the_primary():
    with report_reads():
        assert ReportsReplicaRouter().db_for_read(Agent) is None  # no `reports` alias
    assert ReportsReplicaRouter().allow_migrate(REPORTS_DB, "chat") is False


def test_reports_database_url_configures_the_replica():
    result = manage(
        "shell",
        "-c",
        "from django.conf import settings as s; r = s.DATABASES['reports'];"
        "print(r['ENGINE'], r['HOST'], r['NAME'], s.DATABASE_ROUTERS[0])",
        DATABASE_URL="postgres://postgres@127.0.0.1:5432/tierline",
        REPORTS_DATABASE_URL="postgres://reader@replica.internal:5432/tierline",
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.split()[-4:] == [
        "django.db.backends.postgresql",
        "replica.internal",
        "tierline",
        "reporting.routers.ReportsReplicaRouter",
    ]
