"""A large staff action is confirmed on the Jobs admin's list and carried out later, in a worker, by
`jobs.selectors.job_selection` reading the list's query string. Both must name the same jobs."""
from __future__ import annotations

from datetime import timedelta

import pytest
from django.utils import timezone
from django.utils.http import urlencode

from jobs import enqueue
from jobs.models import Job, Status
from jobs.selectors import job_selection
from tests.jobs import kinds  # noqa: F401  (registers the tests. kinds)

pytestmark = pytest.mark.django_db


@pytest.fixture
def jobs(acme, globex):
    """Jobs of every kind of difference the list filters on, in both tenants and none."""
    made = {
        "echo": enqueue("tests.echo", tenant=acme, payload={"text": "needle in the payload"}),
        "urgent": enqueue("tests.urgent", tenant=acme, payload={}),
        "theirs": enqueue("tests.echo", tenant=globex, payload={"text": "theirs"}),
        "system": enqueue("tests.echo", tenant=None, payload={"text": "system"}),
        "failed": enqueue("tests.echo", tenant=acme, payload={"text": "x"}),
        "retrying": enqueue("tests.echo", tenant=acme, payload={"text": "y"}),
        "old": enqueue("tests.echo", tenant=acme, payload={"text": "z"}),
    }
    Job.objects.filter(pk=made["failed"].pk).update(status=Status.FAILED, last_error="ValueError: boom 7",
                                                     error_fingerprint="f" * 16, pinned=True)
    Job.objects.filter(pk=made["retrying"].pk).update(status=Status.RETRYING, last_error="ValueError: boom 8",
                                                       error_fingerprint="f" * 16)
    Job.objects.filter(pk=made["old"].pk).update(created_at=timezone.now() - timedelta(days=40))
    return made


def selections(jobs, acme) -> list[str]:
    # As the admin's date filter writes them ("Today"): midnight with the UTC offset.
    today = timezone.now().replace(hour=0, minute=0, second=0, microsecond=0)
    day = urlencode({"created_at__gte": str(today), "created_at__lt": str(today + timedelta(days=1))})
    return [
        "", "status__exact=failed", "status__in=failed,retrying", "kind=tests.urgent", "queue=critical",
        f"tenant__id__exact={acme.pk}", "tenant__isnull=True", "has_error=yes", "has_error=no", "pinned__exact=1",
        "pinned__exact=0", day,
        f"q={jobs['echo'].short_id}", f"q={jobs['theirs'].pk}", "q=needle", "q=boom", f"error_fingerprint={'f' * 16}",
        f"status__in=failed,retrying&tenant__id__exact={acme.pk}&q=boom&o=2&p=1", "has_error=yes&pinned__exact=1",
    ]


def listed_by_the_admin(client, selection: str) -> set:
    response = client.get(f"/admin/jobs/job/?{selection}")
    assert response.status_code == 200, selection
    return set(response.context["cl"].queryset.values_list("pk", flat=True))


@pytest.mark.parametrize("who", ["root", "alice"])
def test_it_selects_the_jobs_the_admin_lists_for_every_filter(client, jobs, acme, who, request):
    user = request.getfixturevalue(who)
    client.force_login(user)
    for selection in selections(jobs, acme):
        selected = set(job_selection(user=user, selection=selection).values_list("pk", flat=True))
        assert selected == listed_by_the_admin(client, selection), selection


def test_it_refuses_a_parameter_the_list_does_not_know(root):
    with pytest.raises(ValueError, match="no filter 'status__regex'"):
        job_selection(user=root, selection="status__regex=.*")
