"""IDOR sweep over every registered admin: with two tenants, acme's strongest staff member (alice, an admin
of acme) never gets a 200 for, nor a glimpse of, any of globex's objects, whichever door they try.

The sweep is driven by `admin.site._registry` and by each admin's own `get_urls()`, so a new admin or a new
custom view is swept without anyone remembering to add it; the sweep fails when it cannot build an object
for a model or fill a parameter of a URL, rather than skipping it.
"""
from __future__ import annotations

import itertools
import re
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field

import pytest
from django.apps import apps
from django.conf import settings
from django.contrib import admin
from django.contrib.admin.utils import quote
from django.contrib.auth import get_user_model
from django.contrib.auth.models import Group
from django.db.models import Model
from django.forms import ModelChoiceField
from django.test import Client
from django.urls import URLPattern, reverse
from django.utils import timezone

from jobs import enqueue
from jobs.api.models import ApiToken, token_digest, token_new
from jobs.mail.models import OutboundEmail
from jobs.webhooks.models import WebhookDelivery, WebhookEndpoint, WebhookMessage
from jobs.models import AuditAction, AuditEvent, AuditEventJob, AuditState, Batch, Job, KindRetention, QueueState, Status
from jobs.staff import JOB_ACTIONS
from jobs.ops.models import Incident
from jobs.schedules.models import Schedule
from reports.models import Report
from tenants.scoped_admin import TenantScopedAdmin
from tenants.models import Membership, Role, Tenant
from tests.jobs import kinds  # noqa: F401  (registers tests.echo)

pytestmark = pytest.mark.django_db

User = get_user_model()


# --- objects: one of acme's and one of globex's for every registered model -----------------------------


def secret(tenant: Tenant, what: str) -> str:
    """Text that exists only in `tenant`'s rows: finding globex's on a page of alice's is a leak."""
    return f"{tenant.slug}-only-{what}"


def fingerprint(tenant: Tenant) -> str:
    return {"acme": "aaaaaaaaaaaaaaaa", "globex": "bbbbbbbbbbbbbbbb"}[tenant.slug]


def make_job(tenant: Tenant, user) -> tuple[Job, list[str]]:
    job = enqueue("tests.echo", tenant=tenant, payload={"text": secret(tenant, "payload")})
    # Failed, so that it shows on the triage page and is retryable/deletable: every action applies.
    Job.objects.filter(pk=job.pk).update(status=Status.FAILED, finished_at=timezone.now(),
                                         last_error=f"RuntimeError: {secret(tenant, 'error')}",
                                         error_fingerprint=fingerprint(tenant))
    return Job.objects.get(pk=job.pk), [secret(tenant, "payload"), secret(tenant, "error"), str(job.pk), job.short_id]


def make_event(tenant: Tenant, user) -> tuple[AuditEvent, list[str]]:
    event = AuditEvent.objects.create(actor=user, actor_name=user.get_username(), action=AuditAction.RETRY,
                                      tenant=tenant, target=secret(tenant, "target"), reason=secret(tenant, "reason"),
                                      outcome=secret(tenant, "outcome"))
    job = enqueue("tests.echo", tenant=tenant, payload={"text": "audited"})
    AuditEventJob.objects.create(event=event, job_id=job.pk)
    return event, [secret(tenant, "target"), secret(tenant, "reason"), secret(tenant, "outcome"), str(job.pk)]


def make_group(tenant: Tenant, user) -> tuple[Group, list[str]]:
    return Group.objects.create(name=secret(tenant, "group")), [secret(tenant, "group")]


def make_email(tenant: Tenant, user) -> tuple[OutboundEmail, list[str]]:
    from jobs.mail.services import email_send

    message = email_send(tenant=tenant, to=[f"{tenant.slug}-only@example.com"], subject=secret(tenant, "subject"),
                         text="hello", key=secret(tenant, "key"))
    OutboundEmail.objects.filter(pk=message.pk).update(state="failed")  # resendable: every action applies
    return message, [secret(tenant, "subject"), f"{tenant.slug}-only@example.com", str(message.pk)]


def make_endpoint(tenant: Tenant, user) -> tuple[WebhookEndpoint, list[str]]:
    endpoint = WebhookEndpoint.objects.create(tenant=tenant, url=f"https://{tenant.slug}-only.example.com/hook",
                                              description=secret(tenant, "endpoint"))
    return endpoint, [f"{tenant.slug}-only.example.com", secret(tenant, "endpoint"), endpoint.secret]


def make_webhook_message(tenant: Tenant, user) -> tuple[WebhookMessage, list[str]]:
    endpoint = WebhookEndpoint.objects.create(tenant=tenant, url=f"https://{tenant.slug}-msg.example.com/hook",
                                              description=secret(tenant, "msg-endpoint"))
    message = WebhookMessage.objects.create(tenant=tenant, endpoint=endpoint, event_type="test.event",
                                            body=f'{{"data": "{secret(tenant, "webhook-body")}"}}', state="failed")
    WebhookDelivery.objects.create(message=message, attempt=1, url=endpoint.url, status_code=500,
                                   error=secret(tenant, "delivery-error"))
    return message, [message.pk, secret(tenant, "webhook-body"), secret(tenant, "delivery-error"),
                     f"{tenant.slug}-msg.example.com"]


def make_report(tenant: Tenant, user) -> tuple[Report, list[str]]:
    report = Report.objects.create(tenant=tenant, type="jobs.audit", format="csv", title=secret(tenant, "report"),
                                   requested_by=user, parameters={"reason": secret(tenant, "report-parameter")},
                                   state="ready", path=f"tenants/{tenant.pk}/reports/x.csv",
                                   checksum="c" * 64, expires_at=timezone.now() + timezone.timedelta(days=1))
    return report, [secret(tenant, "report"), secret(tenant, "report-parameter"), str(report.pk)]


def make_schedule(tenant: Tenant, user) -> tuple[Schedule, list[str]]:
    from jobs.schedules.services import schedule_run_now, schedule_save

    schedule = schedule_save(schedule=Schedule(tenant=tenant, name=secret(tenant, "schedule"), kind="tests.echo",
                                               payload={"text": secret(tenant, "schedule-payload")}, cron="0 3 * * *"))
    run = schedule_run_now(schedule=schedule)
    return schedule, [secret(tenant, "schedule"), secret(tenant, "schedule-payload"), run.job.short_id]


def make_batch(tenant: Tenant, user) -> tuple[Batch, list[str]]:
    from jobs.batches import chain_enqueue

    chain = chain_enqueue(tenant=tenant, name=secret(tenant, "chain"), steps=[
        ("tests.echo", {"text": secret(tenant, "chain-step")}), ("tests.echo", {"text": "second"})])
    Job.objects.filter(batch=chain, batch_position=1).update(status=Status.FAILED,
                                                             last_error=secret(tenant, "chain-error"))
    return chain, [secret(tenant, "chain"), secret(tenant, "chain-error"), chain.first_job.short_id]


def make_incident(tenant: Tenant, user) -> tuple[Incident, list[str]]:
    # Incidents are the whole system's (no tenant): superusers only, so each one is off limits to alice.
    incident = Incident.objects.create(check_name=f"{tenant.slug}-check", summary=secret(tenant, "incident"))
    return incident, [secret(tenant, "incident"), f"{tenant.slug}-check"]


def make_api_token(tenant: Tenant, user) -> tuple[ApiToken, list[str]]:
    # A row as an admin of the tenant would have made it (the makers here are not all admins).
    secret_token, prefix = token_new()
    token = ApiToken.objects.create(tenant=tenant, name=secret(tenant, "api-token"), scope="read-write", prefix=prefix,
                                    key_hash=token_digest(secret_token), created_by=user)
    return token, [secret(tenant, "api-token"), token.prefix]


def make_kind_retention(tenant: Tenant, user) -> tuple[KindRetention, list[str]]:
    rule = KindRetention.objects.create(tenant=tenant, kind=f"{tenant.slug}.only_kind", succeeded_days=4242)
    return rule, [f"{tenant.slug}.only_kind"]


# Every registered model needs an entry; `user` is the tenant's staff member (alice or charlie).
FACTORIES: dict[type[Model], Callable[[Tenant, object], tuple[Model, list[str]]]] = {
    Tenant: lambda tenant, user: (tenant, [tenant.name, tenant.slug]),
    Membership: lambda tenant, user: (Membership.objects.get(tenant=tenant, user=user), [user.get_username()]),
    Job: make_job,
    AuditEvent: make_event,
    User: lambda tenant, user: (user, [user.get_username()]),
    Group: make_group,
    OutboundEmail: make_email,
    WebhookEndpoint: make_endpoint,
    WebhookMessage: make_webhook_message,
    Report: make_report,
    Schedule: make_schedule,
    Batch: make_batch,
    ApiToken: make_api_token,
    Incident: make_incident,
    KindRetention: make_kind_retention,
}
REGISTERED = list(admin.site._registry)
UNSCOPED = [model for model in REGISTERED if not isinstance(admin.site._registry[model], TenantScopedAdmin)]
# Scoped admins of rows that belong to no tenant: no tenant's staff sees any of them, not even "their own".
SUPERUSER_ONLY = {Incident}


@dataclass
class World:
    acme: Tenant
    globex: Tenant
    alice: object
    charlie: object
    mine: dict[type[Model], Model] = field(default_factory=dict)
    theirs: dict[type[Model], Model] = field(default_factory=dict)
    marks: dict[type[Model], list[str]] = field(default_factory=dict)  # each globex object's identifying text
    leaks: list[str] = field(default_factory=list)  # text that must never reach alice
    system: Job | None = None

    def globex_state(self) -> dict:
        """Everything of globex's the sweep might change, to compare before and after."""
        state = {model._meta.label: list(model.objects.filter(pk=obj.pk).values()) for model, obj in
                 self.theirs.items()}
        state["jobs"] = list(Job.objects.filter(tenant=self.globex).order_by("pk").values())
        state["members"] = list(Membership.objects.filter(tenant=self.globex).order_by("pk").values())
        state["touched"] = AuditEventJob.objects.filter(
            job_id__in=Job.objects.filter(tenant=self.globex).values("pk")).count()
        state["queues"] = list(QueueState.objects.values())
        return state


@pytest.fixture
def world(acme, globex, alice, charlie) -> World:
    world = World(acme=acme, globex=globex, alice=alice, charlie=charlie)
    for model in REGISTERED:
        if model not in FACTORIES:
            continue  # test_it_has_an_object_factory_for_every_registered_admin names it
        world.mine[model], _ = FACTORIES[model](acme, alice)
        world.theirs[model], world.marks[model] = FACTORIES[model](globex, charlie)
        world.leaks += world.marks[model] + [change_url(world.theirs[model])]
    # System jobs (no tenant) are superusers' only: a tenant admin must not see them either.
    world.system = enqueue("tests.echo", tenant=None, payload={"text": "system-only-payload"})
    world.leaks += ["system-only-payload", str(world.system.pk), world.system.short_id]
    return world


# --- URLs ----------------------------------------------------------------------------------------------

ROUTE_PARAM = re.compile(r"<(?:\w+:)?(\w+)>")
OBJECT_PARAMS = {"object_id", "id"}  # Django's views name it object_id; UserAdmin's password view, id


def sample_args() -> dict[str, list[str]]:
    """Values for the non-object parameters of the project's custom admin views."""
    return {"action": [*JOB_ACTIONS, "run_now", "pause", "resume"], "name": list(settings.RQ_QUEUES),
            "operation": ["pause", "resume", "cancel-waiting"]}


def admin_of(model: type[Model]) -> admin.ModelAdmin:
    return admin.site._registry[model]


def change_url(obj: Model) -> str:
    # As the admin writes it: quote() escapes characters such as "_" in text primary keys.
    return reverse(f"admin:{obj._meta.app_label}_{obj._meta.model_name}_change", args=[quote(obj.pk)])


def changelist_url(model: type[Model]) -> str:
    return reverse(f"admin:{model._meta.app_label}_{model._meta.model_name}_changelist")


def admin_urls(model: type[Model], pk) -> Iterator[tuple[str, bool]]:
    """Every URL the model's admin serves, object ids filled with `pk`: (url, does it name an object?)."""
    samples = sample_args()
    for pattern in admin_of(model).get_urls():
        route = getattr(pattern.pattern, "_route", None)
        assert isinstance(pattern, URLPattern) and route is not None, f"sweep cannot read {pattern!r}"
        params = ROUTE_PARAM.findall(route)
        unknown = set(params) - OBJECT_PARAMS - set(samples)
        assert not unknown, f"the IDOR sweep has no sample value for {unknown} in {model.__name__} {route!r}"
        choices = [[str(pk)] if param in OBJECT_PARAMS else samples[param] for param in params]
        for values in itertools.product(*choices):
            filled = iter(values)
            yield changelist_url(model) + ROUTE_PARAM.sub(lambda _: next(filled), route), bool(
                OBJECT_PARAMS & set(params))


def hostile_post(world: World) -> dict:
    """A form that would move or steal globex's rows if any view trusted it (ids only: echoing them is no leak)."""
    return {"tenant": world.globex.pk, "user": world.charlie.pk, "role": Role.ADMIN, "name": "hijacked",
            "slug": "hijacked", "post": "yes", "confirm": "1", "reason": "forged", "days": "0",
            "_selected_action": [str(obj.pk) for obj in world.theirs.values()], "select_across": "0", "index": "0",
            "fingerprint": fingerprint(world.globex), "operation": "retry", "_save": "Save"}


def assert_no_leak(world: World, response, where: str) -> None:
    body = response.content.decode(errors="replace")
    found = [mark for mark in world.leaks if mark in body]
    assert not found, f"{where} shows {found} of globex's"


def is_scoped(model: type[Model]) -> bool:
    return isinstance(admin_of(model), TenantScopedAdmin) and model not in SUPERUSER_ONLY


# --- the sweep -----------------------------------------------------------------------------------------


def test_it_has_an_object_factory_for_every_registered_admin():
    missing = [model._meta.label for model in REGISTERED if model not in FACTORIES]
    assert not missing, f"add an object factory for {missing} to the IDOR sweep"


@pytest.mark.parametrize("model", REGISTERED, ids=lambda model: model._meta.label)
def test_it_never_answers_a_tenant_admin_with_another_tenants_object(client, world, model):
    assert model in FACTORIES, f"no object factory for {model._meta.label}"
    before = world.globex_state()
    client.force_login(world.alice)
    theirs = world.theirs[model]
    for url, names_object in admin_urls(model, theirs.pk):
        for method in ("get", "post"):
            data = hostile_post(world) if method == "post" else None
            response = getattr(client, method)(url, data)
            where = f"{method.upper()} {url}"
            assert response.status_code < 500, where
            if names_object:
                assert response.status_code != 200, f"{where} answered 200 for globex's {model.__name__}"
            assert_no_leak(world, response, where)
    assert world.globex_state() == before, f"the {model.__name__} admin changed globex's rows"
    if is_scoped(model):
        # Not vacuous: the same doors open for alice's own tenant.
        assert client.get(change_url(world.mine[model])).status_code == 200
        assert change_url(world.mine[model]) in client.get(changelist_url(model)).content.decode()
    elif model in SUPERUSER_ONLY:
        assert client.get(change_url(world.mine[model])).status_code == 403
        assert client.get(changelist_url(model)).status_code == 403


@pytest.mark.parametrize("model", UNSCOPED, ids=lambda model: model._meta.label)
def test_it_refuses_models_not_scoped_by_tenant_to_non_superuser_staff_outright(client, world, model):
    # Only Django's own models may go without the tenant scoping; the project's must use TenantScopedAdmin.
    assert model._meta.app_config.name.startswith("django.contrib."), f"{model._meta.label} is not tenant-scoped"
    client.force_login(world.alice)
    for url, _ in admin_urls(model, world.mine[model].pk):
        # follow: the bare "<id>/" URL only redirects to the change view, which must refuse.
        assert client.get(url, follow=True).status_code == 403, url
        assert client.post(url, hostile_post(world), follow=True).status_code == 403, url
    assert model._meta.app_label not in [app["app_label"] for app in client.get("/admin/").context["app_list"]]


def test_it_refuses_staff_of_no_tenant_every_page(client, world, drifter):
    # Staff without a membership hold no role anywhere: nothing of either tenant is theirs to see.
    client.force_login(drifter)
    for model in REGISTERED:
        assert client.get(changelist_url(model)).status_code == 403, model
    for url in ("/admin/jobs/job/live/", "/admin/jobs/job/queues/", "/admin/jobs/job/triage/"):
        assert client.get(url, {"id": str(world.theirs[Job].pk)}).status_code == 403, url
    assert autocomplete(client, Job, "tenant", "").status_code == 403
    assert client.get("/admin/").context["app_list"] == []


def autocomplete_targets() -> list[tuple[type[Model], str]]:
    """Every forward relation of every installed model to a registered admin: (source model, field name).

    Django's autocomplete view answers for any such field, not only for declared autocomplete_fields.
    """
    return [(model, rel.name) for model in apps.get_models() for rel in model._meta.get_fields()
            if rel.is_relation and not rel.auto_created and rel.related_model in admin.site._registry
            and (rel.many_to_one or rel.one_to_one or rel.many_to_many)]


def autocomplete(client: Client, model: type[Model], field_name: str, term: str):
    return client.get("/admin/autocomplete/", {"app_label": model._meta.app_label,
                                               "model_name": model._meta.model_name, "field_name": field_name,
                                               "term": term})


def search_terms(world: World, remote: type[Model]) -> list[str]:
    # Everything, then globex's object by id, by the start of its name, and by its own text.
    theirs = world.theirs[remote]
    return ["", str(theirs.pk), str(theirs)[:6], *world.marks[remote]]


def test_it_sweeps_every_declared_autocomplete_field(rf, django_user_model):
    request = rf.get("/admin/")
    request.user = django_user_model(is_superuser=True, is_staff=True)
    declared = {(model, name) for model, model_admin in admin.site._registry.items()
                for name in model_admin.get_autocomplete_fields(request)}
    declared |= {(inline.model, name) for model_admin in admin.site._registry.values()
                 for inline in model_admin.get_inline_instances(request) for name in inline.autocomplete_fields}
    assert declared and declared <= set(autocomplete_targets())
    assert {(model, "tenant") for model in (Job, AuditEvent, Membership)} <= set(autocomplete_targets())


def test_it_never_offers_another_tenants_objects_in_autocomplete(client, world):
    client.force_login(world.alice)
    for model, field_name in autocomplete_targets():
        remote = model._meta.get_field(field_name).related_model
        for term in search_terms(world, remote):
            response = autocomplete(client, model, field_name, term)
            where = f"autocomplete {model.__name__}.{field_name} term={term!r}"
            if not is_scoped(remote):
                assert response.status_code == 403, where
                continue
            assert response.status_code == 200, where
            ids = {item["id"] for item in response.json()["results"]}
            assert str(world.theirs[remote].pk) not in ids, where
            assert_no_leak(world, response, where)
        if remote is Tenant:
            # The tenant pickers do answer, with alice's own tenant.
            ids = {item["id"] for item in autocomplete(client, model, field_name, "").json()["results"]}
            assert ids == {str(world.acme.pk)}, model


def filter_choices(response) -> set[str]:
    """The display text of every list-filter choice the changelist offers."""
    changelist = response.context["cl"]
    return {str(choice["display"]) for spec in changelist.filter_specs for choice in spec.choices(changelist)}


def test_it_never_names_another_tenant_as_a_list_filter_choice(client, world):
    # A second tenant of alice's, so the tenant filter has something to show at all.
    initech = Tenant.objects.create(name="Initech", slug="initech")
    Membership.objects.create(user=world.alice, tenant=initech, role=Role.VIEWER)
    client.force_login(world.alice)
    for model in filter(is_scoped, REGISTERED):
        for query in ("", f"?tenant__id__exact={world.globex.pk}"):
            response = client.get(changelist_url(model) + query)
            if query and response.status_code != 200:
                continue  # an unknown lookup (Tenant has no tenant field) is refused: nothing to see
            assert response.status_code == 200, model
            choices = filter_choices(response)
            assert world.globex.name not in choices, model
            if not query:  # with the query, its own echo in the filter links is no leak
                assert f"tenant__id__exact={world.globex.pk}" not in response.content.decode().replace("&amp;", "&")
            assert_no_leak(world, response, changelist_url(model) + query)
            if any(name == "tenant" for name in _filter_fields(model)):
                assert {"Acme Corp", "Initech"} <= choices, model


def _filter_fields(model: type[Model]) -> list[str]:
    return [entry[0] if isinstance(entry, tuple) else entry for entry in admin_of(model).list_filter
            if isinstance(entry, (str, tuple))]


def action_names(model: type[Model]) -> list[str]:
    """All of the admin's actions, offered to alice or not: a forged POST can name any of them."""
    return [action.name for action in admin_of(model)._get_base_actions()]


@pytest.mark.parametrize("model", REGISTERED, ids=lambda model: model._meta.label)
def test_it_ignores_another_tenants_ids_forged_into_admin_actions(client, world, model):
    before = world.globex_state()
    theirs, mine = str(world.theirs[model].pk), str(world.mine[model].pk)
    client.force_login(world.alice)
    for action, selection, confirm in itertools.product(action_names(model), ([theirs], [mine, theirs]),
                                                         (False, True)):
        data = {"action": action, "index": "0", "_selected_action": selection, "reason": "forged", "days": "0"}
        if confirm:
            data |= {"confirm": "1", "post": "yes"}
        # An earlier action may already have deleted alice's own object.
        own = model._default_manager.filter(pk=world.mine[model].pk).count() if mine in selection else 0
        response = client.post(changelist_url(model), data)
        assert response.status_code < 500, (action, selection)
        if response.status_code == 200 and response.context and "count" in response.context:
            # The job actions' confirmation page counts what it would act on: never globex's job.
            assert response.context["count"] == own, (action, selection)
    assert world.globex_state() == before, f"a forged {model.__name__} action changed globex's rows"
    # Globex's rows were scoped away before the staff layer: nothing of theirs was even refused.
    assert not AuditEvent.objects.filter(actor=world.alice, refused__gt=0).exists()


def test_it_keeps_the_job_pages_to_the_users_own_tenants(client, world):
    acme_job, globex_job = world.mine[Job], world.theirs[Job]
    waiting = enqueue("tests.echo", tenant=world.globex, payload={"text": secret(world.globex, "waiting")})
    Job.objects.filter(pk=waiting.pk).update(status=Status.QUEUED)
    world.leaks += [str(waiting.pk), waiting.short_id, secret(world.globex, "waiting")]
    before = world.globex_state()
    client.force_login(world.alice)

    live = client.get("/admin/jobs/job/live/", {"id": [str(globex_job.pk), str(waiting.pk), str(world.system.pk)]})
    assert live.status_code == 200 and live.json() == {"jobs": {}}
    mixed = client.get("/admin/jobs/job/live/", {"id": [str(acme_job.pk), str(globex_job.pk)]}).json()
    assert set(mixed["jobs"]) == {str(acme_job.pk)}

    for job, action in itertools.product((globex_job, waiting, world.system), JOB_ACTIONS):
        url = f"/admin/jobs/job/{job.pk}/act/{action}/"
        assert client.get(url).status_code in (403, 404), url
        assert client.post(url, {"reason": "forged"}).status_code in (403, 404), url

    triage = client.get("/admin/jobs/job/triage/")
    assert {group.fingerprint for group in triage.context["groups"]} == {fingerprint(world.acme)}
    assert_no_leak(world, triage, "triage")
    assert fingerprint(world.globex) not in triage.content.decode()
    for operation in ("retry", "cancel"):
        client.post("/admin/jobs/job/triage/", {"fingerprint": fingerprint(world.globex), "operation": operation})

    queues = client.get("/admin/jobs/job/queues/")
    assert_no_leak(world, queues, "queues")
    assert world.globex.name not in queues.content.decode()
    shown = sum(sum(row.counts.values()) for row in queues.context["rows"])
    assert shown == Job.objects.filter(tenant=world.acme, status__in=["pending", "queued", "scheduled"]).count()
    charted = sum(bucket.succeeded + bucket.failed for bucket in queues.context["buckets"])
    assert charted == Job.objects.filter(tenant=world.acme, status__in=["succeeded", "failed"]).count()
    for name in settings.RQ_QUEUES:
        client.post(f"/admin/jobs/job/queues/{name}/cancel-waiting/")
        assert client.post(f"/admin/jobs/job/queues/{name}/pause/").status_code == 403

    assert_no_leak(world, client.get("/admin/"), "admin index")
    assert world.globex_state() == before
    # Pausing a shared queue is refused and recorded as refused; the queues and triage selections never even
    # contained globex's jobs: none was counted as refused.
    pauses = AuditEvent.objects.filter(actor=world.alice, action=AuditAction.PAUSE_QUEUE)
    assert set(pauses.values_list("state", flat=True)) == {AuditState.REFUSED}
    assert pauses.count() == len(settings.RQ_QUEUES)
    assert not AuditEvent.objects.filter(actor=world.alice, refused__gt=0).exclude(
        action=AuditAction.PAUSE_QUEUE).exists()


def test_it_refuses_a_foreign_key_to_another_tenant_posted_into_a_form(client, world, drifter, make_staff):
    client.force_login(world.alice)
    response = client.post("/admin/tenants/membership/add/", {"username": "drifter", "tenant": world.globex.pk,
                                                              "role": Role.ADMIN})
    assert response.status_code == 200
    assert "tenant" in response.context["adminform"].form.errors
    assert not Membership.objects.filter(user=drifter).exists()

    # Moving one of acme's memberships to globex: the tenant of an existing membership is read-only.
    bobs = Membership.objects.get(user=make_staff("bob", {world.acme: Role.VIEWER}))
    client.post(change_url(bobs), {"username": "bob", "tenant": world.globex.pk, "role": Role.OPERATOR})
    bobs.refresh_from_db()
    assert (bobs.tenant, bobs.role) == (world.acme, Role.OPERATOR)


@pytest.mark.parametrize("model", REGISTERED, ids=lambda model: model._meta.label)
def test_it_offers_no_other_tenants_object_in_any_form_field(client, world, model):
    client.force_login(world.alice)
    add_url = reverse(f"admin:{model._meta.app_label}_{model._meta.model_name}_add")
    for url in (add_url, change_url(world.mine[model])):
        response = client.get(url)
        if response.status_code != 200 or "adminform" not in response.context:
            continue
        for name, form_field in response.context["adminform"].form.fields.items():
            if isinstance(form_field, ModelChoiceField) and form_field.queryset.model in world.theirs:
                offered = form_field.queryset.filter(pk=world.theirs[form_field.queryset.model].pk)
                assert not offered.exists(), f"{url} field {name} offers globex's {form_field.queryset.model}"


def rq_dashboard_urls(job: Job) -> Iterator[str]:
    from jobs.dashboard import urlpatterns

    samples = {"queue_index": 1, "job_id": str(job.pk), "result_id": "1", "key": "worker", "scheduler_index": 0,
               "connection_index": 0, "scheduler_name": "scheduler", "cron_job_name": "cron"}
    for pattern in urlpatterns():
        names = set(getattr(pattern.pattern, "converters", {})) | set(pattern.pattern.regex.groupindex)
        assert names <= set(samples), f"no sample value for {names - set(samples)} in {pattern.pattern}"
        yield reverse(f"django_rq:{pattern.name}", kwargs={name: samples[name] for name in names})


def test_it_keeps_the_rq_dashboard_which_shows_every_tenant_to_superusers(client, world, root):
    # django-rq lives under /admin/ but is no ModelAdmin: its pages list every tenant's jobs.
    client.force_login(world.alice)
    for url in rq_dashboard_urls(world.theirs[Job]):
        assert client.get(url).status_code == 403, url
        assert client.post(url).status_code == 403, url
    assert b"/admin/rq/" not in client.get(change_url(world.mine[Job])).content
    client.force_login(root)
    assert client.get(reverse("django_rq:home")).status_code == 200
    assert client.get(change_url(world.theirs[Job])).status_code == 200  # its dashboard link: tests/jobs/test_dashboard.py


@pytest.mark.parametrize("model", REGISTERED, ids=lambda model: model._meta.label)
def test_it_shows_superusers_both_tenants(client, world, model, root):
    client.force_login(root)
    listing = client.get(changelist_url(model)).content.decode()
    for obj in (world.mine[model], world.theirs[model]):
        assert change_url(obj) in listing, obj
        assert client.get(change_url(obj)).status_code == 200, obj
    if "tenant" in _filter_fields(model):
        choices = filter_choices(client.get(changelist_url(model)))
        assert {world.acme.name, world.globex.name} <= choices
    if model is Job:
        ids = {item["id"] for item in autocomplete(client, Job, "tenant", "").json()["results"]}
        assert {str(world.acme.pk), str(world.globex.pk)} <= ids
