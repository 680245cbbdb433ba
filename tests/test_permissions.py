import pytest
from django.urls import reverse

pytestmark = pytest.mark.django_db


def test_anonymous_is_sent_to_login_from_the_console(client):
    response = client.get("/console/")
    assert response.status_code == 302
    assert response["Location"].startswith(reverse("login"))


def test_anonymous_is_sent_to_login_from_reports(client):
    response = client.get("/reports/")
    assert response.status_code == 302
    assert response["Location"].startswith(reverse("login"))


def test_agent_cannot_reach_admin(client, alice_agent):
    client.force_login(alice_agent.user)
    response = client.get("/admin/")
    assert response.status_code == 302
    assert "/admin/login/" in response["Location"]
    assert client.get(reverse("admin:escalation_stage_changelist")).status_code == 302


def test_agent_cannot_read_reports(client, alice_agent):
    client.force_login(alice_agent.user)
    assert client.get("/reports/").status_code == 403


def test_manager_reads_reports_but_not_admin(client, manager_user):
    client.force_login(manager_user)
    assert client.get("/reports/").status_code == 200
    assert client.get("/admin/").status_code == 302


def test_manager_without_agent_profile_gets_403_on_console(client, manager_user):
    client.force_login(manager_user)
    assert client.get("/console/").status_code == 403


def test_agent_opens_the_console(client, alice_agent):
    client.force_login(alice_agent.user)
    response = client.get("/console/")
    assert response.status_code == 200
    assert "Alice" in response.content.decode()


def test_admin_opens_admin(client, admin_user):
    client.force_login(admin_user)
    assert client.get("/admin/").status_code == 200


def test_login_page_logs_an_agent_in(client, alice_agent):
    response = client.post(reverse("login"), {"username": "alice", "password": "pw-for-tests"})
    assert response.status_code == 302
    # The login lands by role (an agent, here): through the landing page to the console.
    assert response["Location"] == reverse("after-login")
    assert client.get(response["Location"])["Location"] == reverse("console:home")


def test_visitor_page_is_public(client):
    assert client.get("/chat/").status_code == 200


def test_left_messages_page_for_agents_and_managers_only(client, alice_agent, manager_user):
    assert client.get("/console/messages/").status_code == 302
    client.force_login(alice_agent.user)
    page = client.get("/console/messages/")
    assert page.status_code == 200 and "No messages have been left." in page.content.decode()
    client.force_login(manager_user)
    assert client.get("/console/messages/").status_code == 200
    from tests.factories import UserFactory

    client.force_login(UserFactory(username="nobody"))
    assert client.get("/console/messages/").status_code == 403
