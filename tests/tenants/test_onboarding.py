"""Onboarding a tenant: named steps with progress, each done once, a welcome email with a one-time link."""
from __future__ import annotations

import re

import pytest
from django.contrib.auth import get_user_model
from django.core.exceptions import ValidationError

from jobs.mail.models import OutboundEmail
from jobs.models import Job, Status
from tenants import services
from tenants.models import Membership, Role, Tenant
from tests.jobs.helpers import run_until_settled, work

pytestmark = pytest.mark.django_db(transaction=True)


def test_it_onboards_a_tenant_and_the_welcome_link_sets_a_password(smtp, client, settings):
    tenant, job = services.tenant_create(name="Initech", admin_email="peter@initech.example")
    assert (job.kind, job.queue) == ("tenants.onboard", "critical")
    work()
    job.refresh_from_db()
    assert job.status == Status.SUCCEEDED and job.progress == 100
    tenant.refresh_from_db()
    assert tenant.onboarding_steps == ["retention", "admin", "welcome", "webhook"] and tenant.onboarded_at
    assert tenant.retention_succeeded_days == settings.JOBS_RETENTION_SUCCEEDED_DAYS
    peter = get_user_model().objects.get(username="peter@initech.example")
    assert not peter.has_usable_password() and peter.is_staff
    assert Membership.objects.get(user=peter, tenant=tenant).role == Role.ADMIN

    work()  # the welcome email's own job
    [welcome] = smtp.to("peter@initech.example")
    link = re.search(r"http://\S+/accounts/reset/\S+/", welcome.message.get_body(("plain",)).get_content()).group(0)
    form_page = client.get(link.removeprefix(settings.SITE_URL.rstrip("/")), follow=True)
    assert b"new_password1" in form_page.content
    client.post(form_page.redirect_chain[-1][0], {"new_password1": "a-Long-pass-phrase-9",
                                                   "new_password2": "a-Long-pass-phrase-9"})
    assert client.login(username="peter@initech.example", password="a-Long-pass-phrase-9")
    client.logout()
    again = client.get(link.removeprefix(settings.SITE_URL.rstrip("/")), follow=True)
    assert b"new_password1" not in again.content  # the link worked once


def test_it_resumes_after_a_failed_step_without_redoing_the_others(smtp, monkeypatch):
    runs: list[str] = []
    steps = []
    for step in services.ONBOARDING_STEPS:
        def run(tenant, _step=step, **parameters):
            runs.append(_step.name)
            if _step.name == "welcome" and runs.count("welcome") == 1:
                raise ConnectionError("mail queue unavailable")
            return _step.run(tenant, **parameters)
        steps.append(services.Step(step.name, step.label, run))
    monkeypatch.setattr(services, "ONBOARDING_STEPS", steps)

    tenant, job = services.tenant_create(name="Initech", admin_email="peter@initech.example")
    work()
    job.refresh_from_db()
    assert job.status == Status.RETRYING
    assert Tenant.objects.get(pk=tenant.pk).onboarding_steps == ["retention", "admin"]
    job = run_until_settled(job)
    assert job.status == Status.SUCCEEDED
    assert runs == ["retention", "admin", "welcome", "welcome", "webhook"]
    assert job.result["skipped"] == ["retention", "admin"]
    work()
    assert OutboundEmail.objects.filter(key__startswith="welcome:").count() == 1
    assert len(smtp.to("peter@initech.example")) == 1


def test_it_names_bad_onboarding_input_and_stores_nothing(acme):
    with pytest.raises(ValidationError) as error:
        services.tenant_create(name="Initech", admin_email="not-an-address")
    assert "admin_email" in error.value.message_dict
    with pytest.raises(ValidationError) as error:
        services.tenant_create(name="Acme", slug="acme", admin_email="a@acme.example")
    assert "slug" in error.value.message_dict
    with pytest.raises(ValidationError) as error:
        services.tenant_create(name="Initech", admin_email="p@initech.example", webhook_url="https://10.0.0.1/")
    assert "private address" in error.value.message_dict["webhook_url"][0]
    assert list(Tenant.objects.values_list("slug", flat=True)) == ["acme"] and not Job.objects.exists()


def test_it_onboards_from_the_admin_add_form(client, root):
    client.force_login(root)
    members = {"memberships-TOTAL_FORMS": "0", "memberships-INITIAL_FORMS": "0"}
    response = client.post("/admin/tenants/tenant/add/", {"name": "Initech", "slug": "initech",
                                                          "admin_email": "peter@initech.example", **members})
    assert response.status_code == 302
    tenant = Tenant.objects.get(slug="initech")
    job = Job.objects.get(tenant=tenant, kind="tenants.onboard")
    assert job.source == "admin" and job.payload["admin_username"] == "peter@initech.example"
    bad = client.post("/admin/tenants/tenant/add/", {"name": "Other", "slug": "other", "admin_email": "nope",
                                                     **members})
    assert bad.status_code == 200 and not Tenant.objects.filter(slug="other").exists()
