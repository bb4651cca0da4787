"""Roles in the staff admin: a viewer reads; an operator also retries, cancels and stops; a tenant admin also
deletes finished records, cleans and manages the tenant's members. What a role may not do is neither offered
(dropdown, buttons) nor done when forced (changelist action, /act/ URL, queues and triage pages)."""
from __future__ import annotations

import itertools
from datetime import timedelta

import pytest
from django.contrib.messages import get_messages
from django.utils import timezone

from jobs import enqueue
from jobs.models import AuditAction, AuditEvent, AuditEventJob, AuditState, Job, Status
from tenants.models import Membership, Role, Tenant
from tests.jobs import kinds  # noqa: F401  (registers tests.echo)
from tests.jobs.helpers import run_until_settled

pytestmark = pytest.mark.django_db

CHANGELIST = "/admin/jobs/job/"
MEMBERS = "/admin/tenants/membership/"
# The status each action applies to, so that only the role decides whether it happens.
ACTION_TARGET = {"retry": Status.FAILED, "cancel": Status.QUEUED, "stop": Status.RUNNING,
                 "delete": Status.SUCCEEDED, "clean": Status.SUCCEEDED}


def job_in(tenant: Tenant, status: str = Status.FAILED, *, finished_days_ago: float = 0) -> Job:
    job = enqueue("tests.echo", tenant=tenant, payload={"text": "x"})
    now = timezone.now()
    finished = now - timedelta(days=finished_days_ago) if status in (Status.SUCCEEDED, Status.FAILED,
                                                                     Status.CANCELLED) else None
    Job.objects.filter(pk=job.pk).update(status=status, finished_at=finished,
                                         started_at=now if status == Status.RUNNING else None)
    return Job.objects.get(pk=job.pk)


def row(job: Job) -> dict | None:
    """The job's stored row (None once deleted): unchanged means nothing at all was written."""
    return Job.objects.filter(pk=job.pk).values().first()


def changelist_action(client, action: str, *jobs: Job, confirm: bool = False, **extra):
    data = {"action": f"{action}_jobs", "index": "0", "_selected_action": [str(job.pk) for job in jobs], **extra}
    if confirm:
        data["confirm"] = "1"
    return client.post(CHANGELIST, data)


def act_url(job: Job, action: str) -> str:
    return f"{CHANGELIST}{job.pk}/act/{action}/"


def offered_actions(client) -> set[str]:
    """The actions in the changelist's dropdown (none at all when the dropdown is not shown)."""
    response = client.get(CHANGELIST)
    form = response.context.get("action_form")
    return {name for name, _ in form.fields["action"].choices if name} if form else set()


def detail_buttons(client, job: Job) -> set[str]:
    body = client.get(f"{CHANGELIST}{job.pk}/change/").content.decode()
    return {action for action in ACTION_TARGET if act_url(job, action) in body}


def acted(job: Job, action: str) -> bool:
    current = Job.objects.filter(pk=job.pk).first()
    if action in ("delete", "clean"):
        return current is None
    if action == "retry":
        return current.status in (Status.PENDING, Status.QUEUED)
    if action == "cancel":
        return current.status == Status.CANCELLED
    return current.stop_requested_at is not None


# --- viewer --------------------------------------------------------------------------------------------


def test_it_shows_a_viewer_jobs_but_offers_no_action(client, acme, victor):
    client.force_login(victor)
    jobs = {action: job_in(acme, status) for action, status in ACTION_TARGET.items()}
    listing = client.get(CHANGELIST)
    assert listing.status_code == 200 and all(job.short_id in listing.content.decode() for job in jobs.values())
    assert offered_actions(client) == set() and b'name="action"' not in listing.content
    for job in jobs.values():
        assert detail_buttons(client, job) == set(), job.status
        assert b"data-job-action" not in client.get(f"{CHANGELIST}{job.pk}/change/").content
    assert b'data-queue-op="cancel-waiting"' not in client.get(f"{CHANGELIST}queues/").content
    Job.objects.filter(tenant=acme, status=Status.FAILED).update(error_fingerprint="0123456789abcdef")
    assert b"data-triage" not in client.get(f"{CHANGELIST}triage/").content


def test_it_refuses_a_viewer_forcing_any_action_and_changes_nothing(client, acme, victor):
    client.force_login(victor)
    jobs = {action: job_in(acme, status) for action, status in ACTION_TARGET.items()}
    Job.objects.filter(tenant=acme).update(error_fingerprint="0123456789abcdef")
    before = {action: row(job) for action, job in jobs.items()}
    for (action, job), confirm in itertools.product(jobs.items(), (False, True)):
        changelist_action(client, action, job, confirm=confirm, days="0")
        changelist_action(client, action, job, confirm=confirm, days="0", select_across="1")
    for action, job in jobs.items():
        refused = 404 if action == "clean" else 403  # clean works on a selection only: no /act/ URL
        assert client.get(act_url(job, action)).status_code == refused, action
        assert client.post(act_url(job, action), {"reason": "forced"}).status_code == refused, action
    assert client.post(f"{CHANGELIST}queues/high/cancel-waiting/").status_code == 403
    for operation in ("retry", "cancel"):
        response = client.post(f"{CHANGELIST}triage/", {"fingerprint": "0123456789abcdef", "operation": operation})
        assert response.status_code == 403
    assert {action: row(job) for action, job in jobs.items()} == before
    assert not AuditEvent.objects.filter(done__gt=0).exists()


# --- operator ------------------------------------------------------------------------------------------


def test_it_offers_an_operator_retry_cancel_and_stop_but_not_delete_or_clean(client, acme, olga):
    client.force_login(olga)
    jobs = {action: job_in(acme, status) for action, status in ACTION_TARGET.items()}
    assert offered_actions(client) == {"retry_jobs", "run_now_jobs", "cancel_jobs", "stop_jobs"}
    assert detail_buttons(client, jobs["retry"]) == {"retry"}
    assert detail_buttons(client, jobs["cancel"]) == {"cancel"}
    assert detail_buttons(client, jobs["stop"]) == {"stop"}
    assert detail_buttons(client, jobs["delete"]) == set()  # finished: only an admin could delete it


@pytest.mark.parametrize("action", ["retry", "cancel", "stop"])
def test_it_lets_an_operator_retry_cancel_and_stop(client, acme, olga, action):
    client.force_login(olga)
    by_list, by_button = job_in(acme, ACTION_TARGET[action]), job_in(acme, ACTION_TARGET[action])
    changelist_action(client, action, by_list)
    assert client.post(act_url(by_button, action), {"reason": "operator"}).status_code == 302
    assert acted(by_list, action) and acted(by_button, action)
    events = AuditEvent.objects.filter(actor=olga, action=action)
    assert sorted((event.done, event.refused, event.state) for event in events) == [(1, 0, AuditState.DONE)] * 2


def test_it_refuses_an_operator_deleting_or_cleaning(client, acme, olga):
    client.force_login(olga)
    old = job_in(acme, Status.SUCCEEDED, finished_days_ago=30)
    before = row(old)
    for action, confirm in itertools.product(("delete", "clean"), (False, True)):
        response = changelist_action(client, action, old, confirm=confirm, days="1", reason="forced")
        # Not among the operator's choices: Django turns it away before the action runs.
        assert "No action selected." in [str(message) for message in get_messages(response.wsgi_request)]
        changelist_action(client, action, old, confirm=confirm, days="1", select_across="1")
    assert client.get(act_url(old, "delete")).status_code == 403
    assert client.post(act_url(old, "delete"), {"reason": "forced"}).status_code == 403
    assert client.post(act_url(old, "clean"), {"reason": "forced"}).status_code == 404  # clean is list-only
    assert row(old) == before
    assert not AuditEvent.objects.filter(action__in=[AuditAction.DELETE, AuditAction.CLEAN]).exists()


# --- tenant admin --------------------------------------------------------------------------------------


def test_it_lets_a_tenant_admin_delete_finished_job_records(client, acme, alice):
    client.force_login(alice)
    finished, running = job_in(acme, Status.FAILED), job_in(acme, Status.RUNNING)
    by_button = job_in(acme, Status.CANCELLED)
    assert offered_actions(client) == {"retry_jobs", "run_now_jobs", "cancel_jobs", "stop_jobs", "delete_jobs", "clean_jobs",
                                       "pin_jobs", "unpin_jobs"}
    assert "delete" in detail_buttons(client, by_button)
    # Deleting asks first; the confirmed POST deletes the finished job and skips the running one.
    assert changelist_action(client, "delete", finished, running).status_code == 200
    assert row(finished) is not None
    changelist_action(client, "delete", finished, running, confirm=True, reason="tidy up")
    assert row(finished) is None and row(running) is not None
    event = AuditEvent.objects.get(action=AuditAction.DELETE)
    assert (event.actor, event.tenant, event.done, event.skipped, event.refused, event.reason) == (
        alice, acme, 1, 1, 0, "tidy up")
    assert client.get(act_url(by_button, "delete")).status_code == 200  # asks first here too
    assert client.post(act_url(by_button, "delete"), {"reason": "one"}).status_code == 302
    assert row(by_button) is None


def test_it_lets_a_tenant_admin_clean_finished_jobs_older_than_n_days(client, acme, globex, alice):
    client.force_login(alice)
    old, recent = job_in(acme, Status.SUCCEEDED, finished_days_ago=30), job_in(acme, Status.FAILED, finished_days_ago=1)
    running, theirs = job_in(acme, Status.RUNNING), job_in(globex, Status.SUCCEEDED, finished_days_ago=30)
    # Across the whole (scoped) changelist, as the "select all" link does.
    assert changelist_action(client, "clean", old, select_across="1").status_code == 200  # asks for N first
    changelist_action(client, "clean", old, confirm=True, select_across="1", days="7")
    assert row(old) is None
    assert row(recent) is not None and row(running) is not None and row(theirs) is not None
    event = AuditEvent.objects.get(action=AuditAction.CLEAN)
    assert (event.done, event.refused, event.tenant) == (1, 0, acme)


# --- several tenants, several roles --------------------------------------------------------------------


@pytest.mark.parametrize("action", ["retry", "cancel", "stop"])
def test_it_acts_on_a_mixed_selection_only_where_the_role_allows(client, acme, globex, make_staff, action):
    mia = make_staff("mia", {acme: Role.OPERATOR, globex: Role.VIEWER})
    client.force_login(mia)
    mine, viewed = job_in(acme, ACTION_TARGET[action]), job_in(globex, ACTION_TARGET[action])
    before = row(viewed)
    changelist_action(client, action, mine, viewed)
    assert acted(mine, action)
    assert row(viewed) == before
    event = AuditEvent.objects.get(actor=mia)
    assert (event.requested, event.done, event.skipped, event.refused) == (2, 1, 0, 1)
    assert event.state == AuditState.PARTIAL and "1 refused" in event.outcome
    assert list(AuditEventJob.objects.filter(event=event).values_list("job_id", flat=True)) == [mine.pk]
    assert client.post(act_url(viewed, action)).status_code == 403
    assert row(viewed) == before


@pytest.mark.django_db(transaction=True)  # the background action runs in a worker, after commit
def test_it_refuses_the_other_tenants_jobs_in_a_large_background_action_too(client, acme, globex, make_staff,
                                                                            settings):
    settings.JOBS_ADMIN_BULK_THRESHOLD = 2
    mia = make_staff("mia", {acme: Role.OPERATOR, globex: Role.VIEWER})
    mine, viewed = [job_in(acme) for _ in range(2)], [job_in(globex) for _ in range(2)]
    before = [row(job) for job in viewed]
    client.force_login(mia)
    client.post(f"{CHANGELIST}?status__exact=failed", {"action": "retry_jobs", "index": "0", "select_across": "1",
                                                       "confirm": "1", "_selected_action": [str(mine[0].pk)]})
    event = AuditEvent.objects.get(actor=mia)
    assert event.state == AuditState.RUNNING and event.requested == 4
    run_until_settled(event.background_job)
    event.refresh_from_db()
    assert (event.done, event.refused, event.state) == (2, 2, AuditState.PARTIAL)
    assert set(AuditEventJob.objects.filter(event=event).values_list("job_id", flat=True)) == {j.pk for j in mine}
    assert all(row(job)["status"] != Status.FAILED for job in mine)  # retried (and by now run again)
    assert [row(job) for job in viewed] == before


def test_it_counts_the_other_tenants_jobs_as_refused_on_the_queues_and_triage_pages(client, acme, globex,
                                                                                  make_staff):
    mia = make_staff("mia", {acme: Role.OPERATOR, globex: Role.VIEWER})
    client.force_login(mia)
    mine, viewed = job_in(acme, Status.QUEUED), job_in(globex, Status.QUEUED)
    failed_mine, failed_viewed = job_in(acme, Status.FAILED), job_in(globex, Status.FAILED)
    Job.objects.filter(pk__in=[failed_mine.pk, failed_viewed.pk]).update(error_fingerprint="0123456789abcdef")
    before = [row(viewed), row(failed_viewed)]
    client.post(f"{CHANGELIST}queues/{mine.queue}/cancel-waiting/")
    client.post(f"{CHANGELIST}triage/", {"fingerprint": "0123456789abcdef", "operation": "retry"})
    assert acted(mine, "cancel") and acted(failed_mine, "retry")
    assert [row(viewed), row(failed_viewed)] == before
    events = AuditEvent.objects.filter(actor=mia).order_by("created_at")
    assert [(event.action, event.done, event.refused) for event in events] == [
        (AuditAction.CANCEL, 1, 1), (AuditAction.RETRY, 1, 1)]


# --- memberships ---------------------------------------------------------------------------------------


def membership_events(actor) -> list[tuple[str, str, str]]:
    return [(event.action, event.tenant.slug, event.target) for event in
            AuditEvent.objects.filter(actor=actor).select_related("tenant").order_by("created_at", "pk")]


def test_it_lets_a_tenant_admin_add_change_and_remove_their_tenants_members_and_records_each(client, acme, alice,
                                                                                             make_staff):
    make_staff("dora")
    make_staff("eddie")
    client.force_login(alice)
    for username in ("dora", "eddie"):
        response = client.post(f"{MEMBERS}add/", {"username": username, "tenant": acme.pk, "role": Role.VIEWER})
        assert response.status_code == 302, username
    dora, eddie = (Membership.objects.get(user__username=name, tenant=acme) for name in ("dora", "eddie"))
    assert client.post(f"{MEMBERS}{dora.pk}/change/", {"role": Role.OPERATOR}).status_code == 302
    assert client.post(f"{MEMBERS}{dora.pk}/delete/", {"post": "yes"}).status_code == 302
    client.post(MEMBERS, {"action": "delete_selected", "index": "0", "_selected_action": [str(eddie.pk)],
                          "post": "yes"})
    assert not Membership.objects.filter(tenant=acme).exclude(user=alice).exists()
    assert membership_events(alice) == [
        (AuditAction.MEMBERSHIP_ADD, "acme", "dora as Viewer"),
        (AuditAction.MEMBERSHIP_ADD, "acme", "eddie as Viewer"),
        (AuditAction.MEMBERSHIP_CHANGE, "acme", "dora as Operator"),
        (AuditAction.MEMBERSHIP_DELETE, "acme", "dora as Operator"),
        (AuditAction.MEMBERSHIP_DELETE, "acme", "eddie as Viewer"),
    ]


def test_it_keeps_a_tenant_admin_out_of_other_tenants_memberships(client, acme, globex, alice, charlie, drifter):
    theirs = Membership.objects.get(user=charlie)
    before = list(Membership.objects.filter(tenant=globex).values())
    client.force_login(alice)
    response = client.post(f"{MEMBERS}add/", {"username": "drifter", "tenant": globex.pk, "role": Role.ADMIN})
    assert response.status_code == 200 and "tenant" in response.context["adminform"].form.errors
    assert client.post(f"{MEMBERS}{theirs.pk}/change/", {"role": Role.VIEWER}).status_code == 302  # not found
    assert client.post(f"{MEMBERS}{theirs.pk}/delete/", {"post": "yes"}).status_code == 302
    client.post(MEMBERS, {"action": "delete_selected", "index": "0", "_selected_action": [str(theirs.pk)],
                          "post": "yes"})
    assert list(Membership.objects.filter(tenant=globex).values()) == before
    assert not Membership.objects.filter(user=drifter).exists()
    assert membership_events(alice) == []


def test_it_shows_an_admin_who_only_views_another_tenant_its_members_read_only(client, acme, globex, charlie,
                                                                              make_staff):
    vic = make_staff("vic", {acme: Role.ADMIN, globex: Role.VIEWER})
    theirs = Membership.objects.get(user=charlie)
    before = list(Membership.objects.filter(tenant=globex).values())
    client.force_login(vic)
    page = client.get(f"{MEMBERS}{theirs.pk}/change/")
    assert page.status_code == 200 and b'name="_save"' not in page.content
    assert client.post(f"{MEMBERS}{theirs.pk}/change/", {"role": Role.ADMIN}).status_code == 403
    assert client.post(f"{MEMBERS}{theirs.pk}/delete/", {"post": "yes"}).status_code == 403
    client.post(MEMBERS, {"action": "delete_selected", "index": "0", "_selected_action": [str(theirs.pk)],
                          "post": "yes"})
    add = client.get(f"{MEMBERS}add/")
    assert list(add.context["adminform"].form.fields["tenant"].queryset) == [acme]
    assert list(Membership.objects.filter(tenant=globex).values()) == before
    assert membership_events(vic) == []


def test_it_lets_no_operator_manage_members(client, globex, charlie, drifter):
    own = Membership.objects.get(user=charlie)
    client.force_login(charlie)
    assert client.get(MEMBERS).status_code == 200  # members are visible to every role
    assert client.get(f"{MEMBERS}add/").status_code == 403
    response = client.post(f"{MEMBERS}add/", {"username": "drifter", "tenant": globex.pk, "role": Role.VIEWER})
    assert response.status_code == 403
    assert client.post(f"{MEMBERS}{own.pk}/change/", {"role": Role.ADMIN}).status_code == 403
    assert client.post(f"{MEMBERS}{own.pk}/delete/", {"post": "yes"}).status_code == 403
    own.refresh_from_db()
    assert own.role == Role.OPERATOR and not Membership.objects.filter(user=drifter).exists()
    assert membership_events(charlie) == []
