"""CSV exports neutralise cells a spreadsheet would run as formulas: an admin-created
escalation reason `=1+2` is exported as text, by the Python writer and by PostgreSQL's COPY;
numbers, negative ones too, stay numbers."""

import csv
import io

import pytest
from django.contrib.auth import get_user_model
from django.db.models import F
from django.utils import timezone
from rest_framework.authtoken.models import Token
from rest_framework.test import APIClient

from escalation import services
from escalation.models import Agent, EscalationReason
from reporting.csvsafe import safe_cell, safe_text

pytestmark = pytest.mark.django_db

INERT = ["'=1+2", "'+SUM(A1)", "'-1+2", "'@cmd", "'\t=1", "'\r=1", '\'=HYPERLINK("x")']


@pytest.mark.parametrize(
    ("value", "exported"),
    [
        ("=1+2", "'=1+2"),
        ("+SUM(A1)", "'+SUM(A1)"),
        ("-1+2", "'-1+2"),
        ("@cmd", "'@cmd"),
        ("\t=1", "'\t=1"),
        ("\r=1", "'\r=1"),
        ("Billing question", "Billing question"),
        ("a=1", "a=1"),
        ("-12.5", "-12.5"),  # a number, negative: left a number
        ("+3", "+3"),
        ("1e-3", "1e-3"),
        ("-", "'-"),
        ("", ""),
        (-7, -7),
        (None, None),
    ],
)
def test_safe_cell(value, exported):
    assert safe_cell(value) == exported


def test_the_sql_twin_gives_the_python_answer():
    """safe_text runs in PostgreSQL (COPY never hands a cell to Python): same rule, same cells."""
    labels = ["=1+2", "+SUM(A1)", "-1+2", "@cmd", "\t=1", "\r=1", "ok", "-12.5", "+3", "1e-3", "-"]
    EscalationReason.objects.bulk_create(EscalationReason(label=label) for label in labels)
    rows = EscalationReason.objects.annotate(cell=safe_text(F("label"))).values_list(
        "label", "cell"
    )
    assert {label: cell for label, cell in rows} == {label: safe_cell(label) for label in labels}


def parse_csv(response) -> list[list[str]]:
    return list(csv.reader(io.StringIO(b"".join(response.streaming_content).decode())))


def test_an_admin_created_reason_is_exported_as_text(demo, client):
    users = get_user_model().objects
    client.force_login(users.get(username="admin"))
    created = client.post(
        "/admin/escalation/escalationreason/add/",
        {"label": "=1+2", "is_active": "on", "position": 0},
    )
    assert created.status_code == 302 and EscalationReason.objects.filter(label="=1+2").exists()

    alex = Agent.objects.get(user__username="alex")
    services.set_presence(agent=alex, presence="online")
    chat = services.start_chat(
        visitor_name="Carol",
        visitor_email="",
        topic_name="Billing",
        first_message="Help",
        visitor_context={},
    )
    api = APIClient()
    token = Token.objects.get_or_create(user=alex.user)[0].key
    api.credentials(HTTP_AUTHORIZATION=f"Token {token}")
    escalation = {"target": "billing", "reason": "=1+2", "note": "Refund asked"}
    escalated = api.post(f"/api/v1/chats/{chat.pk}/escalate/", escalation, format="json")
    assert escalated.status_code == 201, escalated.content

    client.force_login(users.get(username="morgan"))
    today = timezone.localdate().isoformat()
    query = {"start": today, "end": today, "format": "csv"}
    # The escalated chats: streamed by COPY on PostgreSQL (CI), by csv.writer on SQLite.
    rows = parse_csv(client.get("/reports/escalated/", query))
    reason = rows[0].index("reason")
    assert [row[reason] for row in rows[1:]] == ["'=1+2"]
    assert rows[1][rows[0].index("wait_after_escalation_seconds")] == ""  # not taken yet
    # By reason and by target: csv.writer.
    by_reason = parse_csv(client.get("/reports/reasons/", query))
    assert ["reason", "'=1+2", "1"] in by_reason
