"""Every registered admin, swept with two tenants: acme's strongest staff member never gets a 200 or a
row of globex's objects, whichever door they try."""
from __future__ import annotations

import re
from uuid import UUID

import pytest
from django.contrib import admin
from django.contrib.auth import get_user_model
from django.contrib.auth.models import Group
from django.urls import reverse
from django.utils import timezone

from jobs import enqueue
from jobs.models import AuditAction, AuditEvent, AuditEventJob, Job, Status
from tenants.models import Membership, Role, Tenant
from tests.jobs import kinds  # noqa: F401

pytestmark = pytest.mark.django_db

SECRET = "globex-only-marker-7f3a"


def globex_job(globex) -> Job:
    job = enqueue("tests.echo", tenant=globex, payload={"text": SECRET})
    Job.objects.filter(pk=job.pk).update(status=Status.FAILED, finished_at=timezone.now(),
                                         last_error=f"RuntimeError: {SECRET}", error_fingerprint="0123456789abcdef")
    return Job.objects.get(pk=job.pk)


def globex_event(globex, charlie) -> AuditEvent:
    event = AuditEvent.objects.create(actor=charlie, actor_name="charlie", action=AuditAction.RETRY, tenant=globex,
                                      target=SECRET, reason=SECRET)
    AuditEventJob.objects.create(event=event, job_id=globex_job(globex).pk)
    return event


# For each registered model: (object of globex's, does acme's staff get in at all?)
FACTORIES = {
    Job: lambda globex, charlie: globex_job(globex),
    AuditEvent: globex_event,
    Tenant: lambda globex, charlie: globex,
    Membership: lambda globex, charlie: Membership.objects.get(user=charlie),
    get_user_model(): lambda globex, charlie: charlie,
    Group: lambda globex, charlie: Group.objects.create(name=SECRET),
}
UNSCOPED = {get_user_model(), Group}  # not tenant data: staff without model permissions are refused outright


def admin_url(model, name: str, *args) -> str:
    return reverse(f"admin:{model._meta.app_label}_{model._meta.model_name}_{name}", args=args)


def test_it_has_a_factory_for_every_registered_admin():
    assert set(admin.site._registry) == set(FACTORIES), "add the new admin to the IDOR sweep"


@pytest.mark.parametrize("model", list(FACTORIES), ids=lambda m: m._meta.label)
def test_it_never_shows_acme_staff_a_globex_object(client, model, acme, globex, alice, charlie):
    theirs = FACTORIES[model](globex, charlie)
    mine = enqueue("tests.echo", tenant=acme, payload={"text": "acme"})
    client.force_login(alice)
    changelist = client.get(admin_url(model, "changelist"))
    if model in UNSCOPED:
        assert changelist.status_code == 403
    else:
        assert changelist.status_code == 200
        body = changelist.content.decode()
        assert SECRET not in body and "Globex" not in body
        assert admin_url(model, "change", theirs.pk) not in body
        assert mine.short_id in client.get(admin_url(Job, "changelist")).content.decode()
    for name in ("change", "delete", "history"):
        response = client.get(admin_url(model, name, theirs.pk))
        assert response.status_code in (302, 403, 404), (name, response.status_code)
        assert SECRET.encode() not in response.content
    for name in ("change", "delete"):
        client.post(admin_url(model, name, theirs.pk), {"post": "yes", "name": "hijacked", "role": Role.VIEWER})
    assert model.objects.filter(pk=theirs.pk).exists()
    if model is Membership:
        assert Membership.objects.get(pk=theirs.pk).role == Role.OPERATOR


def test_autocomplete_never_offers_globex_objects(client, acme, globex, alice, charlie):
    client.force_login(alice)
    checked = 0
    for model, model_admin in admin.site._registry.items():
        for field in model._meta.get_fields():
            remote = getattr(field, "related_model", None)
            if not getattr(field, "many_to_one", False) or remote not in admin.site._registry:
                continue
            response = client.get("/admin/autocomplete/", {
                "app_label": model._meta.app_label, "model_name": model._meta.model_name,
                "field_name": field.name, "term": ""})
            checked += 1
            if response.status_code == 200:
                names = {item["text"] for item in response.json()["results"]}
                assert "Globex Inc" not in names and "charlie" not in names, (model, field.name)
    assert checked >= 3


def test_list_filter_choices_name_only_acme(client, acme, globex, alice, charlie):
    globex_job(globex)
    client.force_login(alice)
    for model in (Job, Membership, AuditEvent):
        body = client.get(admin_url(model, "changelist")).content.decode()
        assert "Globex" not in body and f"tenant__id__exact={globex.pk}" not in body


def test_forged_ids_in_actions_and_custom_views_change_nothing(client, acme, globex, alice, charlie):
    theirs = globex_job(globex)
    client.force_login(alice)
    for action in ("retry_jobs", "cancel_jobs", "stop_jobs", "delete_jobs"):
        client.post(admin_url(Job, "changelist"), {"action": action, "index": 0, "confirm": "1",
                                                   "_selected_action": [str(theirs.pk)]})
    for action in ("retry", "cancel", "stop", "delete"):
        assert client.post(f"/admin/jobs/job/{theirs.pk}/act/{action}/").status_code == 404
    theirs.refresh_from_db()
    assert theirs.status == Status.FAILED and theirs.attempt_set.count() == 0
    assert client.get("/admin/jobs/job/live/", {"id": str(theirs.pk)}).json() == {"jobs": {}}
    assert SECRET not in client.get("/admin/jobs/job/triage/").content.decode()
    client.post("/admin/jobs/job/triage/", {"fingerprint": "0123456789abcdef", "operation": "retry"})
    assert Job.objects.get(pk=theirs.pk).status == Status.FAILED
    assert "Globex" not in client.get("/admin/jobs/job/queues/").content.decode()
    client.post("/admin/jobs/job/queues/high/cancel-waiting/")
    assert not AuditEventJob.objects.filter(job_id=theirs.pk, event__actor=alice).exists()


def test_a_posted_foreign_key_to_globex_is_refused(client, acme, globex, alice):
    get_user_model().objects.create_user("mallory", password="pw", is_staff=True)
    client.force_login(alice)
    response = client.post(admin_url(Membership, "add"), {"username": "mallory", "tenant": globex.pk,
                                                          "role": Role.ADMIN})
    assert response.status_code == 200 and b"Select a valid choice" in response.content
    assert not Membership.objects.filter(user__username="mallory").exists()


def test_superusers_see_both_tenants(client, acme, globex, charlie, django_user_model):
    theirs = globex_job(globex)
    mine = enqueue("tests.echo", tenant=acme, payload={"text": "acme"})
    client.force_login(django_user_model.objects.create_superuser("root", password="pw"))
    body = client.get(admin_url(Job, "changelist")).content.decode()
    assert theirs.short_id in body and mine.short_id in body
    detail = client.get(admin_url(Job, "change", theirs.pk))
    assert detail.status_code == 200 and f"/admin/rq/queues/1/{theirs.pk}/" in detail.content.decode()


def test_only_superusers_get_a_link_to_the_rq_dashboard(client, acme, alice):
    mine = enqueue("tests.echo", tenant=acme, payload={"text": "acme"})
    client.force_login(alice)
    assert b"/admin/rq/" not in client.get(admin_url(Job, "change", mine.pk)).content


def test_no_page_leaks_a_uuid_of_globex_into_acme_pages(client, acme, globex, alice, charlie):
    theirs = globex_job(globex)
    client.force_login(alice)
    for url in ("/admin/", "/admin/jobs/job/", "/admin/jobs/job/queues/", "/admin/jobs/job/triage/",
                "/admin/jobs/auditevent/", "/admin/tenants/membership/", "/admin/tenants/tenant/"):
        body = client.get(url).content.decode()
        ids = {UUID(m) for m in re.findall(r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}", body)}
        assert theirs.pk not in ids and theirs.short_id not in body, url
