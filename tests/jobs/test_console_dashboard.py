"""The staff dashboard's figures (jobs.stats) and the admin home page that shows them, per role."""
from __future__ import annotations

import math
from datetime import UTC, datetime, timedelta

import pytest
from django.test import Client
from django.utils import timezone

from jobs import stats
from jobs.models import DailyStat, Job, StatDay, Status
from tenants.models import Role

NOW = timezone.now()  # the home page reads the real clock


def finished(tenant, kind: str, *, at: datetime, wait: float, run: float, status: str = Status.SUCCEEDED,
             run_at: datetime | None = None) -> Job:
    started = at - timedelta(seconds=run)
    due = started - timedelta(seconds=wait)
    return Job.objects.create(tenant=tenant, kind=kind, queue="default", payload={}, status=status,
                              created_at=due if run_at is None else due - timedelta(hours=1), run_at=run_at and due,
                              started_at=started, finished_at=at, updated_at=at)


@pytest.fixture
def history(acme, globex):
    """acme: 20 emails in the last hour (wait 0.02 s, run 0.3 s; one of them 40 s and failed), two reports
    three days ago; globex: one email an hour ago, unseen by acme's staff."""
    for minute in range(19):
        finished(acme, "email.send", at=NOW - timedelta(minutes=minute + 1), wait=0.02, run=0.3)
    finished(acme, "email.send", at=NOW - timedelta(minutes=2), wait=0.02, run=40, status=Status.FAILED)
    noon = (NOW - timedelta(days=3)).replace(hour=12, minute=0)
    for hours in (1, 2):
        finished(acme, "reports.generate", at=noon - timedelta(hours=hours), wait=3, run=70,
                 run_at=noon - timedelta(hours=hours + 1))
    finished(globex, "email.send", at=NOW - timedelta(minutes=30), wait=600, run=1)
    Job.objects.create(tenant=acme, kind="email.send", queue="default", payload={}, status=Status.QUEUED)


def test_the_last_hour_counts_each_finished_job_once_with_its_latency_buckets(history, root):
    board = stats.dashboard_figures(user=root, range_key="1h", now=NOW)
    assert (board.total.succeeded, board.total.failed) == (20, 1)
    email = dict(board.by_kind)["email.send"]
    assert (email.succeeded, email.failed) == (20, 1)
    assert email.percentile("wait", 0.5) == 0.025  # 0.02 s falls in the bucket up to 25 ms
    assert email.percentile("wait", 0.95) == 0.025  # globex's 600 s wait is the 21st of 21: above p95
    assert email.percentile("wait", 1.0) == 600
    assert email.percentile("run", 0.5) == 0.5 and email.percentile("run", 1.0) == 60
    assert len(board.bars) == 12 and sum(b.succeeded + b.failed for b in board.bars) == 21
    assert board.bars[-1].start == NOW.replace(minute=NOW.minute - NOW.minute % 5, second=0, microsecond=0)
    assert "reports.generate" not in dict(board.by_kind)  # three days ago: not in the last hour


def test_tenant_staff_see_only_their_tenants_figures(history, acme, make_staff):
    viewer = make_staff("vera", {acme: Role.VIEWER})
    board = stats.dashboard_figures(user=viewer, range_key="24h", now=NOW)
    email = dict(board.by_kind)["email.send"]
    assert (email.succeeded, email.failed) == (19, 1)  # not globex's
    assert email.percentile("wait", 1.0) == 0.025


def test_days_gone_by_are_read_from_their_summary_and_today_from_the_jobs(history, root, acme):
    assert stats.stats_summarize(now=NOW) == stats.SUMMARIZED_DAYS
    assert stats.stats_summarize(now=NOW) == 0  # each day once
    assert StatDay.objects.count() == stats.SUMMARIZED_DAYS
    reports = DailyStat.objects.get(kind="reports.generate")
    assert (reports.day, reports.tenant_id, reports.succeeded) == ((NOW - timedelta(days=3)).date(), acme.pk, 2)
    # Summarized days no longer need their jobs: delete them (as retention would) and the week still counts them.
    Job.objects.filter(kind="reports.generate").delete()
    week = stats.dashboard_figures(user=root, range_key="7d", now=NOW)
    report_figures = dict(week.by_kind)["reports.generate"]
    assert report_figures.succeeded == 2
    assert report_figures.percentile("wait", 0.5) == 5  # from its run_at, not from when it was made
    assert report_figures.percentile("run", 0.5) == 120
    assert dict(week.by_kind)["email.send"].finished == 21
    assert len(week.bars) == 7 and week.bars[-1].start.date() == NOW.date()
    assert sum(b.succeeded for b in week.bars) == week.total.succeeded == 22


def test_a_day_not_summarized_yet_is_read_from_the_jobs(history, root):
    week = stats.dashboard_figures(user=root, range_key="7d", now=NOW)
    assert dict(week.by_kind)["reports.generate"].succeeded == 2 and week.total.finished == 23


def test_percentiles_print_as_bucket_edges():
    assert [stats.format_seconds(v) for v in (None, 0.025, 2.5, 120, 3600, math.inf)] == [
        "-", "≤ 25 ms", "≤ 2.5 s", "≤ 2 min", "≤ 1 h", "> 1 h"]


@pytest.mark.parametrize("who, sees_globex", [("root", True), ("alice", False)])
def test_the_admin_home_page_opens_with_the_dashboard(history, root, alice, who, sees_globex):
    client = Client()
    client.force_login(root if who == "root" else alice)
    page = client.get("/admin/?range=24h").content.decode()
    assert 'id="jobs-dashboard"' in page
    assert "superuser, every tenant" in page if who == "root" else "admin of Acme Corp" in page
    assert 'href="/admin/jobs/job/?status__exact=queued"><span class="n">1</span>queued' in page
    assert ("RQ dashboard" in page) is sees_globex
    assert 'data-kind="email.send"' in page and "/admin/jobs/job/workers/" in page


def test_staff_of_no_tenant_get_no_dashboard(history, drifter):
    client = Client()
    client.force_login(drifter)
    assert 'id="jobs-dashboard"' not in client.get("/admin/").content.decode()
