from __future__ import annotations

import pytest

from jobs.models import AuditAction, AuditEvent
from tenants.models import Membership, Role

pytestmark = pytest.mark.django_db


def test_it_lets_a_tenant_admin_add_a_member_by_username_and_records_it(client, acme, alice, make_staff):
    make_staff("dora")
    client.force_login(alice)
    response = client.post("/admin/tenants/membership/add/", {"username": "dora", "tenant": acme.pk,
                                                              "role": Role.OPERATOR})
    assert response.status_code == 302
    assert Membership.objects.get(user__username="dora").role == Role.OPERATOR
    event = AuditEvent.objects.get()
    assert (event.action, event.tenant, event.target) == (AuditAction.MEMBERSHIP_ADD, acme, "dora as Operator")


def test_an_unknown_username_is_a_form_error_naming_it(client, acme, alice):
    client.force_login(alice)
    response = client.post("/admin/tenants/membership/add/", {"username": "nobody", "tenant": acme.pk,
                                                              "role": Role.VIEWER})
    assert response.status_code == 200 and b"No active account is called" in response.content
    assert Membership.objects.count() == 1


def test_the_last_admin_of_a_tenant_can_neither_be_demoted_nor_removed_by_tenant_staff(client, alice):
    membership = Membership.objects.get(user=alice)
    client.force_login(alice)
    response = client.post(f"/admin/tenants/membership/{membership.pk}/change/", {"role": Role.VIEWER})
    assert b"last admin" in response.content
    assert client.post(f"/admin/tenants/membership/{membership.pk}/delete/", {"post": "yes"}).status_code == 403
    membership.refresh_from_db()
    assert membership.role == Role.ADMIN


def test_adding_an_existing_member_again_is_a_form_error_not_a_crash(client, acme, alice):
    client.force_login(alice)
    response = client.post("/admin/tenants/membership/add/", {"username": "alice", "tenant": acme.pk,
                                                              "role": Role.VIEWER})
    assert response.status_code == 200 and b"already a member of Acme Corp" in response.content
    assert Membership.objects.get(user=alice).role == Role.ADMIN
