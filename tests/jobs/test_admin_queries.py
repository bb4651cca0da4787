"""The job changelist's SQL: as many queries for 40 rows as for 5, and no count of the whole jobs table.

Large tables make both mistakes expensive: a query per row (a missing select_related, a permission
check per job) and a COUNT(*) that reads every matching row. bench/admin_scale.py times the same pages
over a million jobs; these tests keep the shape of their queries from drifting back.
"""
from __future__ import annotations

import re
from itertools import cycle

import pytest
from django.conf import settings
from django.db import connection
from django.test.utils import CaptureQueriesContext

from jobs.models import Job, Status
from tenants.models import Role, Tenant

pytestmark = pytest.mark.django_db

CHANGELIST = "/admin/jobs/job/"
STATUSES = [Status.SUCCEEDED, Status.FAILED, Status.QUEUED, Status.RUNNING, Status.RETRYING, Status.CANCELLED]
ROW = 'name="_selected_action"'  # one action checkbox per row shown
BOUNDED_COUNT = re.compile(r'SELECT COUNT\(\*\) FROM \(SELECT .* FROM "jobs_job".* LIMIT (\d+)\) subquery', re.S)


@pytest.fixture
def initech(db) -> Tenant:
    return Tenant.objects.create(name="Initech", slug="initech")


@pytest.fixture
def dana(acme, globex, make_staff):
    """Staff of two tenants (operator of acme, viewer of globex): her rows come from both."""
    return make_staff("dana", {acme: Role.OPERATOR, globex: Role.VIEWER})


@pytest.fixture
def viewer(request, root, alice, dana, acme, globex, initech):
    """(user, the tenants whose jobs they see; None is the system tenant) for each kind of viewer."""
    return {
        "superuser": (root, [acme, globex, initech, None]),
        "staff of one tenant": (alice, [acme]),
        "staff of two tenants": (dana, [acme, globex]),
    }[request.param]


def add_jobs(count: int, tenants: list[Tenant | None]) -> None:
    """`count` jobs spread over `tenants`, in every status; failed ones carry an error and fingerprint."""
    jobs = []
    for i, tenant, status in zip(range(count), cycle(tenants), cycle(STATUSES)):
        failed = status in (Status.FAILED, Status.RETRYING)
        jobs.append(Job(tenant=tenant, kind="tests.echo", queue="high", status=status, payload={"text": f"t{i}"},
                        last_error="RuntimeError: boom" if failed else "",
                        error_fingerprint="0123456789abcdef" if failed else ""))
    Job.objects.bulk_create(jobs)


def changelist(client, query: str = "") -> tuple[int, list[str]]:
    """Rows shown and the SQL run for one request (after a first one, so caches are warm in both)."""
    client.get(CHANGELIST + query)
    with CaptureQueriesContext(connection) as captured:
        response = client.get(CHANGELIST + query)
    assert response.status_code == 200
    return response.content.decode().count(ROW), [q["sql"] for q in captured.captured_queries]


def unbounded_job_counts(queries: list[str]) -> list[str]:
    """Counts of jobs_job that are not over a LIMITed, unordered subquery of at most limit + 1 rows.

    An ORDER BY in the subquery counts as unbounded work: the database must find and sort every
    match before the LIMIT applies.
    """
    offending = []
    for sql in queries:
        if '"jobs_job"' not in sql or "COUNT(" not in sql.upper():
            continue
        bounded = BOUNDED_COUNT.fullmatch(sql)
        if not bounded or int(bounded.group(1)) > settings.JOBS_ADMIN_COUNT_LIMIT + 1 or "ORDER BY" in sql:
            offending.append(sql)
    return offending


@pytest.mark.parametrize("viewer", ["superuser", "staff of one tenant", "staff of two tenants"], indirect=True)
@pytest.mark.parametrize("query", ["", "?status__in=succeeded,failed,queued,running,retrying,cancelled"])
def test_the_changelist_runs_as_many_queries_for_40_rows_as_for_5(client, viewer, query, acme, globex, initech):
    user, visible = viewer
    hidden = [t for t in (acme, globex, initech, None) if t not in visible]
    client.force_login(user)

    add_jobs(5, visible)
    add_jobs(7, hidden)  # other tenants' jobs: never shown, never counted
    few_rows, few_queries = changelist(client, query)
    add_jobs(35, visible)
    many_rows, many_queries = changelist(client, query)

    assert (few_rows, many_rows) == (5, 40)
    assert len(many_queries) == len(few_queries), (
        f"{len(few_queries)} queries for 5 rows, {len(many_queries)} for 40:\n" + "\n".join(many_queries))


@pytest.mark.parametrize("viewer", ["staff of one tenant", "staff of two tenants"], indirect=True)
def test_staff_job_queries_name_their_tenants_instead_of_a_membership_subquery(client, viewer):
    """With the ids in the query PostgreSQL plans for those tenants; with a subquery it plans for an
    average one, and for a small tenant walks most of the table to fill a page (bench/admin_scale.py)."""
    user, visible = viewer
    add_jobs(10, visible)
    client.force_login(user)
    job_queries = [sql for sql in changelist(client, "?status__exact=failed")[1] if 'FROM "jobs_job"' in sql]
    assert job_queries
    for sql in job_queries:
        assert "tenants_membership" not in sql
        scoped = re.search(r'"jobs_job"\."tenant_id" IN \(([\d, ]+)\)', sql)
        assert scoped and {int(pk) for pk in scoped.group(1).split(",")} == {tenant.pk for tenant in visible}


@pytest.mark.parametrize("viewer", ["superuser", "staff of one tenant", "staff of two tenants"], indirect=True)
def test_no_changelist_query_counts_the_jobs_table_without_a_limit(client, viewer):
    user, visible = viewer
    add_jobs(40, visible)
    job = Job.objects.filter(tenant=visible[0]).first()
    client.force_login(user)
    queries = []
    for query in ["", "?status__exact=failed", f"?tenant__id__exact={visible[0].pk}&status__exact=failed",
                  f"?q={job.pk}", f"?q={job.short_id}", "?q=boom", "?queue=high&has_error=yes", "?p=2"]:
        queries += changelist(client, query)[1]

    counts = [sql for sql in queries if '"jobs_job"' in sql and "COUNT(" in sql.upper()]
    assert counts, "the paginator's bounded count was expected"
    assert unbounded_job_counts(queries) == []


def test_the_check_itself_tells_bounded_from_unbounded_counts():
    limit = settings.JOBS_ADMIN_COUNT_LIMIT + 1
    bounded = f'SELECT COUNT(*) FROM (SELECT "jobs_job"."id" AS "col1" FROM "jobs_job" LIMIT {limit}) subquery'
    ordered = (f'SELECT COUNT(*) FROM (SELECT "jobs_job"."id" AS "col1" FROM "jobs_job" '
               f'ORDER BY "jobs_job"."id" DESC LIMIT {limit}) subquery')
    whole = 'SELECT COUNT(*) AS "__count" FROM "jobs_job" WHERE "jobs_job"."status" = \'failed\''
    too_many = bounded.replace(f"LIMIT {limit}", f"LIMIT {limit * 10}")
    assert unbounded_job_counts([bounded]) == []
    assert unbounded_job_counts([ordered, whole, too_many]) == [ordered, whole, too_many]
