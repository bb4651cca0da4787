"""Starting a job from a form made from its kind's schema, and cloning a job with its payload, from the admin:
role-checked at use, tenant-scoped, audited, and bad input kept in the form with the field named."""
from __future__ import annotations

import pytest
from django.test import Client

from jobs import enqueue
from jobs.models import AuditAction, AuditEvent, Job, Source, Status
from jobs.selectors import audit_events_for_job
from tests.jobs import kinds  # noqa: F401 (registers tests.echo)

START = "/admin/jobs/job/start/"


def logged_in(user) -> Client:
    client = Client()
    client.force_login(user)
    return client


def clone_url(job: Job) -> str:
    return f"/admin/jobs/job/{job.pk}/clone/"


def test_an_operator_starts_a_public_kind_from_its_form_with_defaults_filled_in(acme, olga):
    client = logged_in(olga)
    chooser = client.get(START).content.decode()
    assert '<option value="diagnostics.ping"' in chooser and "tests.echo" not in chooser  # not public
    form = client.get(START, {"kind": "diagnostics.ping"}).content.decode()
    assert 'name="payload-steps"' in form and 'value="1"' in form  # the kind's default
    assert f'<option value="{acme.pk}" selected>Acme Corp</option>' in form  # her one tenant, preselected

    response = client.post(START, {"kind": "diagnostics.ping", "tenant": acme.pk, "payload-steps": "3",
                                   "payload-seconds": "", "payload-fail_times": "0", "reason": "smoke test"})
    job = Job.objects.get()
    assert response.status_code == 302 and response["Location"] == f"/admin/jobs/job/{job.pk}/change/"
    assert (job.tenant, job.payload, job.source, job.enqueued_by) == (
        acme, {"seconds": 0.0, "steps": 3, "fail_times": 0}, Source.ADMIN, olga)
    event = AuditEvent.objects.get(action=AuditAction.START)
    assert (event.actor, event.tenant, event.reason, event.target) == (
        olga, acme, "smoke test", f"job {job.short_id} (diagnostics.ping)")
    assert list(audit_events_for_job(job=job)) == [event]
    page = client.get(response["Location"]).content.decode()
    assert f"Start a job: Started job {job.short_id}." in page


def test_bad_input_names_the_field_keeps_what_was_typed_and_stores_nothing(acme, olga, root):
    page = logged_in(olga).post(START, {"kind": "diagnostics.ping", "tenant": acme.pk, "payload-steps": "three"})
    text = page.content.decode()
    assert page.status_code == 200 and "Enter a whole number." in text and 'value="three"' in text
    # The kind's own verdict lands on its field too.
    page = logged_in(root).post(START, {"kind": "tests.echo", "tenant": acme.pk, "payload-text": "hi",
                                        "payload-count": "2", "payload-when": '"next tuesday"'})
    text = page.content.decode()
    assert 'data-field="payload-when"' in text and "valid datetime" in text and "next tuesday" in text
    assert not Job.objects.exists() and not AuditEvent.objects.exists()


def test_who_may_start_what_and_for_whom(acme, globex, victor, charlie):
    assert logged_in(victor).get(START).status_code == 403  # a viewer
    response = logged_in(charlie).post(START, {"kind": "diagnostics.ping", "tenant": acme.pk, "payload-steps": "1"})
    assert response.status_code == 200 and "Select a valid choice" in response.content.decode()  # not his tenant
    logged_in(charlie).post(START, {"kind": "tests.echo", "tenant": globex.pk, "payload-text": "x"})
    assert not Job.objects.exists()  # not a public kind: only the chooser again


@pytest.fixture
def finished_ping(acme):
    job = enqueue("diagnostics.ping", tenant=acme, payload={"steps": 2})
    Job.objects.filter(pk=job.pk).update(status=Status.FAILED)
    return job


def test_cloning_a_job_with_an_edited_payload_starts_a_new_one_linked_to_the_first(finished_ping, acme, olga):
    client = logged_in(olga)
    page = client.get(f"/admin/jobs/job/{finished_ping.pk}/change/").content.decode()
    assert clone_url(finished_ping) in page
    form = client.get(clone_url(finished_ping)).content.decode()
    assert 'name="payload-steps"' in form and 'value="2"' in form  # the job's own payload
    response = client.post(clone_url(finished_ping), {"tenant": acme.pk, "kind": "diagnostics.ping",
                                                      "payload-steps": "5", "payload-seconds": "0",
                                                      "payload-fail_times": "0"})
    copy = Job.objects.exclude(pk=finished_ping.pk).get()
    assert response["Location"] == f"/admin/jobs/job/{copy.pk}/change/"
    assert (copy.kind, copy.tenant, copy.payload["steps"]) == ("diagnostics.ping", acme, 5)
    event = AuditEvent.objects.get(action=AuditAction.CLONE)
    assert event.outcome == f"Started job {copy.short_id}, a copy of job {finished_ping.short_id}."
    assert event in audit_events_for_job(job=finished_ping) and event in audit_events_for_job(job=copy)


def test_a_kind_staff_may_not_start_is_cloned_only_as_it_was(acme, olga):
    original = enqueue("tests.echo", tenant=acme, payload={"text": "hello", "count": 2})
    form = logged_in(olga).get(clone_url(original)).content.decode()
    assert "staff may run it again but not with a payload of their own" in form and "disabled" in form
    # A tampered field is ignored: the copy carries the original payload.
    logged_in(olga).post(clone_url(original), {"tenant": acme.pk, "payload-text": "pwned", "payload-count": "9"})
    copy = Job.objects.exclude(pk=original.pk).get()
    assert copy.payload == original.payload


def test_cloning_needs_the_operator_role_in_the_jobs_tenant(finished_ping, victor, charlie):
    assert logged_in(victor).get(clone_url(finished_ping)).status_code == 403
    assert logged_in(charlie).get(clone_url(finished_ping)).status_code == 404  # another tenant's job: not found
    assert Job.objects.count() == 1
