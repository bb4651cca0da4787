"""API tokens: made in the admin and shown once, stored as a digest, scoped, revocable, throttled last use."""
from __future__ import annotations

import hashlib
from datetime import timedelta

import pytest
from django.contrib.auth import get_user_model
from django.test import Client
from django.utils import timezone

from jobs.api.models import ApiToken, Scope
from jobs.api.services import api_token_revoke
from jobs.models import AuditAction, AuditEvent
from tenants.models import Membership
from tests.api.conftest import Caller, assert_error

pytestmark = pytest.mark.django_db


def test_it_stores_a_digest_and_a_prefix_never_the_token(make_token):
    row, token = make_token()
    row.refresh_from_db()
    assert token.startswith(row.prefix + "_") and len(token) > 50
    assert row.key_hash == hashlib.sha256(token.encode()).hexdigest()
    stored = " ".join(str(value) for value in ApiToken.objects.filter(pk=row.pk).values().get().values())
    assert token not in stored and token.removeprefix(row.prefix + "_") not in stored
    event = AuditEvent.objects.get(action=AuditAction.API_TOKEN_CREATE)
    assert (event.actor.username, event.tenant, row.prefix in event.target) == ("alice", row.tenant, True)


def test_it_answers_a_valid_token_and_names_it(writer):
    response = writer.get("/api/v1/token")
    assert response.status_code == 200
    assert response.json() | {"created_at": None, "last_used_at": None} == {
        "name": "billing", "prefix": writer.row.prefix, "scope": "read-write", "platform": False,
        "tenant": {"slug": "acme", "name": "Acme Corp"}, "created_at": None, "last_used_at": None}


@pytest.mark.parametrize("header", [
    None, "", "Bearer", "Bearer ", "Basic YWxpY2U6cHctYWxpY2U=", "Bearer tj_nosuchtoken_abc",
    "Bearer tj_0123456789_wrong-secret-of-the-right-shape", "Token x",
])
def test_it_refuses_missing_and_invalid_tokens_with_401_and_a_bearer_challenge(client, writer, header):
    extra = {} if header is None else {"HTTP_AUTHORIZATION": header}
    response = client.get("/api/v1/jobs", **extra)
    assert_error(response, 401, "unauthorized")
    assert response["WWW-Authenticate"].startswith("Bearer")


def test_it_refuses_a_token_with_a_known_prefix_but_another_secret(client, writer):
    forged = writer.row.prefix + "_" + "A" * 43
    assert_error(client.get("/api/v1/jobs", HTTP_AUTHORIZATION=f"Bearer {forged}"), 401)


def test_it_refuses_a_revoked_token_with_401_and_records_who_revoked_it(writer, alice):
    assert writer.get("/api/v1/jobs").status_code == 200
    assert api_token_revoke(token=writer.row, user=alice) is True
    assert api_token_revoke(token=writer.row, user=alice) is False  # once
    error = assert_error(writer.get("/api/v1/jobs"), 401, "unauthorized")
    assert "revoked" in error["message"]
    writer.row.refresh_from_db()
    assert writer.row.revoked_by == alice and writer.row.revoked_at is not None
    assert AuditEvent.objects.filter(action=AuditAction.API_TOKEN_REVOKE, actor=alice, tenant=writer.row.tenant).count() == 1


def test_it_lets_a_read_token_read_and_refuses_it_every_write_with_403(reader):
    assert reader.get("/api/v1/jobs").status_code == 200
    assert reader.get("/api/v1/queues").status_code == 200
    job_id = "01a00000-0000-7000-8000-000000000000"
    for path, body in [("/api/v1/jobs", {"kind": "diagnostics.ping"}), (f"/api/v1/jobs/{job_id}/retry", None),
                       (f"/api/v1/jobs/{job_id}/cancel", None)]:
        response = reader.post(path, body)
        assert_error(response, 403, "insufficient_scope")
        assert 'error="insufficient_scope"' in response["WWW-Authenticate"]


def test_it_ends_a_members_tokens_when_they_leave_the_tenant(writer, alice):
    Membership.objects.filter(user=alice).delete()
    assert_error(writer.get("/api/v1/jobs"), 401)


def test_it_ends_a_deactivated_members_tokens(writer, alice):
    get_user_model().objects.filter(pk=alice.pk).update(is_active=False)
    assert_error(writer.get("/api/v1/jobs"), 401)


def test_it_ends_the_tokens_of_someone_who_is_no_longer_staff(writer, alice):
    get_user_model().objects.filter(pk=alice.pk).update(is_staff=False)
    assert_error(writer.get("/api/v1/jobs"), 401)


def test_it_refuses_an_inactive_tenants_tokens_with_403(writer, acme):
    acme.active = False
    acme.save()
    assert_error(writer.get("/api/v1/jobs"), 403, "tenant_inactive")


def test_it_records_last_use_at_most_once_a_minute(writer, settings, django_assert_num_queries):
    assert settings.API_TOKEN_LAST_USED_SECONDS == 60
    writer.get("/api/v1/token")
    writer.row.refresh_from_db()
    first = writer.row.last_used_at
    assert first is not None
    writer.get("/api/v1/token")
    writer.row.refresh_from_db()
    assert writer.row.last_used_at == first  # no write for the second request
    ApiToken.objects.filter(pk=writer.row.pk).update(last_used_at=timezone.now() - timedelta(seconds=61))
    writer.get("/api/v1/token")
    writer.row.refresh_from_db()
    assert writer.row.last_used_at > first


def test_it_limits_requests_per_minute_per_token_with_429(writer, reader, settings):
    settings.API_RATE_LIMIT = 3
    for _ in range(3):
        assert writer.get("/api/v1/token").status_code == 200
    response = writer.get("/api/v1/token")
    assert_error(response, 429, "rate_limited")
    assert 1 <= int(response["Retry-After"]) <= 61
    assert reader.get("/api/v1/token").status_code == 200  # another token has its own count


def test_it_keeps_answering_when_redis_is_down_and_the_limit_cannot_be_counted(writer, settings, private_redis):
    settings.API_RATE_LIMIT = 1
    private_redis.stop()
    try:
        assert writer.get("/api/v1/token").status_code == 200
        assert writer.get("/api/v1/token").status_code == 200
    finally:
        private_redis.start()
        import jobs.api.services

        jobs.api.services._redis_down_until = 0.0


def test_it_does_not_accept_a_session_login_only_a_token(alice, writer):
    client = Client()
    client.force_login(alice)
    assert_error(client.get("/api/v1/jobs"), 401)
    assert_error(client.post("/api/v1/jobs", {"kind": "diagnostics.ping"}, content_type="application/json"), 401)


def test_it_does_not_apply_csrf_to_token_requests(writer):
    strict = Caller(Client(enforce_csrf_checks=True), writer.token)
    response = strict.post("/api/v1/jobs", {"kind": "diagnostics.ping"})
    assert response.status_code == 201, response.content


# --- the admin pages -------------------------------------------------------------------------------


def test_it_makes_a_token_in_the_admin_shows_it_once_and_revokes_it(client, alice, acme):
    client.force_login(alice)
    assert client.get("/admin/api/apitoken/add/").status_code == 200
    response = client.post("/admin/api/apitoken/add/", {"tenant": acme.pk, "name": "billing", "scope": "read"})
    assert response.status_code == 200
    assert "no-store" in response["Cache-Control"]
    token = response.context["secret"]
    row = ApiToken.objects.get()
    assert token.startswith(row.prefix + "_") and token in response.content.decode()
    assert (row.tenant, row.scope, row.created_by) == (acme, Scope.READ, alice)

    # Shown once: neither the token list nor the token's page ever shows it again.
    for url in ("/admin/api/apitoken/", f"/admin/api/apitoken/{row.pk}/change/"):
        page = client.get(url)
        assert page.status_code == 200 and row.prefix in page.content.decode()
        assert token not in page.content.decode()

    api = Caller(Client(), token)
    assert api.get("/api/v1/token").json()["scope"] == "read"

    assert client.get(f"/admin/api/apitoken/{row.pk}/revoke/").status_code == 200  # asks first
    assert api.get("/api/v1/token").status_code == 200
    response = client.post(f"/admin/api/apitoken/{row.pk}/revoke/")
    assert response.status_code == 302
    row.refresh_from_db()
    assert row.revoked_at is not None and row.revoked_by == alice
    assert_error(api.get("/api/v1/token"), 401)
    assert set(AuditEvent.objects.filter(tenant=acme).values_list("action", flat=True)) == {
        AuditAction.API_TOKEN_CREATE, AuditAction.API_TOKEN_REVOKE}


def test_it_revokes_tokens_from_the_list_and_never_deletes_them(client, alice, make_token):
    first, second = make_token(name="one")[0], make_token(name="two")[0]
    client.force_login(alice)
    client.post("/admin/api/apitoken/", {"action": "revoke_tokens", "_selected_action": [first.pk, second.pk]})
    assert ApiToken.objects.filter(revoked_at__isnull=False).count() == 2
    assert client.get(f"/admin/api/apitoken/{first.pk}/delete/").status_code == 403
    assert ApiToken.objects.count() == 2


def test_it_lets_only_a_tenants_admins_make_and_revoke_its_tokens(client, acme, olga, make_token):
    row, _ = make_token()
    client.force_login(olga)
    assert client.get("/admin/api/apitoken/").status_code == 200  # members may see the list
    assert client.get("/admin/api/apitoken/add/").status_code == 403
    assert client.post(f"/admin/api/apitoken/{row.pk}/revoke/").status_code == 403
    client.post("/admin/api/apitoken/", {"action": "revoke_tokens", "_selected_action": [row.pk]})
    row.refresh_from_db()
    assert row.revoked_at is None


def test_it_lets_a_superuser_make_a_token_for_any_tenant(client, globex, root):
    client.force_login(root)
    response = client.post("/admin/api/apitoken/add/", {"tenant": globex.pk, "name": "ops", "scope": "read-write"})
    assert response.status_code == 200
    assert Caller(Client(), response.context["secret"]).get("/api/v1/token").json()["tenant"]["slug"] == "globex"
