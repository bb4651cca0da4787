"""The console's smaller promises: payload-field search, attempts that explain themselves, one date format,
and no note about system jobs for tenant staff."""
from __future__ import annotations

from datetime import timedelta

from django.test import Client
from django.utils import timezone

from jobs import enqueue
from jobs.models import Job, Status
from jobs.selectors import job_search
from jobs.services import job_retry
from tenants.scoped_admin import when_html
from tests.jobs import kinds  # noqa: F401 (registers tests.echo)


def logged_in(user) -> Client:
    client = Client()
    client.force_login(user)
    return client


def test_search_by_payload_field_matches_the_value_as_typed_or_as_the_number_it_spells(acme):
    seven = enqueue("tests.echo", tenant=acme, payload={"text": "report 7", "count": 7})
    text_seven = enqueue("tests.echo", tenant=acme, payload={"text": "7", "count": 1})
    enqueue("tests.echo", tenant=acme, payload={"text": "other", "count": 70})
    jobs = Job.objects.all()
    assert list(job_search(jobs, "count:7")) == [seven]
    assert list(job_search(jobs, "text:7")) == [text_seven]
    assert set(job_search(jobs, "count:1 text:7")) == {text_seven}  # every field given must match
    assert set(job_search(jobs, "count:7 report")) == {seven}  # the rest is free text
    assert list(job_search(jobs, "missing:7")) == []
    assert set(job_search(jobs, "https://example.test")) == set()  # a URL is text, not a field named https


def test_the_jobs_list_searches_payload_fields(acme, olga):
    wanted = enqueue("tests.echo", tenant=acme, payload={"text": "a", "count": 3})
    enqueue("tests.echo", tenant=acme, payload={"text": "b", "count": 4})
    page = logged_in(olga).get("/admin/jobs/job/", {"q": "count:3"}).content.decode()
    assert wanted.short_id in page and "1 job" in page


def test_attempts_after_a_manual_retry_say_why_there_are_more(acme, olga):
    job = enqueue("tests.echo", tenant=acme, payload={"text": "x"})  # tests.echo allows 2 attempts
    Job.objects.filter(pk=job.pk).update(status=Status.FAILED, attempts=2)
    page = logged_in(olga).get("/admin/jobs/job/").content.decode()
    assert 'title="2 attempts made, 2 allowed">2/2</span>' in page
    job_retry(job=job, user=olga)
    job.refresh_from_db()
    assert job.max_attempts == 4
    page = logged_in(olga).get(f"/admin/jobs/job/{job.pk}/change/").content.decode()
    assert "2/4 <small>(retried by staff)</small>" in page
    assert "tests.echo allows 2, and a manual retry after attempt 2 allowed 2 more" in page


def test_a_job_page_states_every_moment_in_one_format_with_its_zone(acme, olga, root):
    job = enqueue("tests.echo", tenant=acme, payload={"text": "x"})
    page = logged_in(olga).get(f"/admin/jobs/job/{job.pk}/change/").content.decode()
    assert f"{timezone.localtime(job.created_at):%Y-%m-%d %H:%M:%S} UTC" in page
    assert "Empty for system jobs" not in page  # tenant staff never see system jobs
    assert "Empty for system jobs" in logged_in(root).get(f"/admin/jobs/job/{job.pk}/change/").content.decode()


def test_moments_read_relative_with_the_exact_time_on_hover():
    now = timezone.now()
    assert ">3\xa0hours ago</time>" in when_html(now - timedelta(hours=3, minutes=5), now)  # never wrapped
    assert ">in 2\xa0days</time>" in when_html(now + timedelta(days=2, hours=1), now)
    assert ">12 s ago</time>" in when_html(now - timedelta(seconds=12), now)
    assert f'title="{timezone.localtime(now):%Y-%m-%d %H:%M:%S} UTC"' in when_html(now, now)
    assert when_html(None) == "-"


def test_the_schedule_form_preselects_the_tenant_and_shows_the_kinds_fields_and_defaults(acme, alice):
    page = logged_in(alice).get("/admin/schedules/schedule/add/").content.decode()
    assert f'<option value="{acme.pk}" selected>Acme Corp</option>' in page  # her one tenant
    assert "steps (integer), default 1" in page  # the guide under the payload, for each kind offered
    assert "&quot;steps&quot;: 1" in page  # the payload starts as the kind's defaults
    assert "system-wide" not in page  # not theirs to make
