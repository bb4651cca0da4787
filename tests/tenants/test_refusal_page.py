"""A refusal is a page in the console's own look that says what the user's roles allow and whom to ask,
never a bare "403 Forbidden"; the JSON API keeps its own error format."""
from __future__ import annotations

import pytest

pytestmark = pytest.mark.django_db


def test_a_viewer_refused_in_the_admin_sees_their_role_and_whom_to_ask(client, acme, victor, alice):
    alice.email = "alice@acme.test"
    alice.save()
    client.force_login(victor)
    response = client.get("/admin/schedules/schedule/add/")
    assert response.status_code == 403
    page = response.content.decode()
    assert 'id="site-name"' in page and "Not allowed" in page  # the admin's header and breadcrumbs
    assert "Viewer of Acme Corp" in page and "see its jobs" in page
    assert "ask Acme Corp's admin: alice &lt;alice@acme.test&gt;" in page
    assert "403 Forbidden" not in page


def test_staff_of_no_tenant_are_told_to_ask_for_a_role(client, drifter):
    client.force_login(drifter)
    response = client.get("/admin/schedules/schedule/add/")
    assert response.status_code == 403
    assert "no role in any tenant yet" in response.content.decode()


def test_the_api_keeps_its_json_error_for_a_refusal(client, victor):
    client.force_login(victor)
    response = client.post("/api/v1/jobs", data={}, content_type="application/json")
    assert response.status_code in (401, 403)
    assert response["Content-Type"].startswith("application/json")
