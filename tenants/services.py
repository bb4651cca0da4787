"""Writes for tenants: create one and onboard it (as the tracked job `tenants.onboard`)."""
from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from django.conf import settings
from django.contrib.auth import get_user_model
from django.contrib.auth.tokens import default_token_generator
from django.core.exceptions import ValidationError
from django.core.validators import validate_email
from django.db import transaction
from django.urls import reverse
from django.utils import timezone
from django.utils.encoding import force_bytes
from django.utils.http import urlsafe_base64_encode
from django.utils.text import slugify

from jobs import enqueue
from jobs.mail.services import email_send
from jobs.models import Job, Source
from jobs.webhooks.destination import DestinationRefused, destination_check
from jobs.webhooks.models import WebhookEndpoint
from tenants.models import Membership, Role, Tenant

ONBOARD_KIND = "tenants.onboard"


def tenant_create(*, name: str, slug: str = "", admin_email: str, admin_username: str = "",
                  webhook_url: str = "", user=None, source: str = Source.VIEW) -> tuple[Tenant, Job]:
    """Create a tenant and enqueue its onboarding (critical queue) in one transaction."""
    slug = slug or slugify(name)[:64]
    errors = {}
    if not name.strip():
        errors["name"] = ["A name is needed."]
    if not slug:
        errors["slug"] = ["A slug is needed (letters, digits, hyphens)."]
    elif Tenant.objects.filter(slug=slug).exists():
        errors["slug"] = [f"A tenant with the slug {slug!r} exists already."]
    if errors:
        raise ValidationError(errors)
    payload = tenant_onboarding_payload(admin_email=admin_email, admin_username=admin_username,
                                        webhook_url=webhook_url)
    with transaction.atomic():
        tenant = Tenant.objects.create(name=name.strip(), slug=slug)
        job = tenant_onboard_start(tenant=tenant, user=user, source=source, **payload)
    return tenant, job


def tenant_onboarding_payload(*, admin_email: str, admin_username: str = "", webhook_url: str = "") -> dict:
    """The onboarding's parameters, checked (errors name the field); a form calls it to validate."""
    errors = {}
    try:
        validate_email(admin_email)
    except ValidationError:
        errors["admin_email"] = [f"{admin_email!r} is not a valid email address."]
    username = admin_username.strip() or admin_email.strip().lower()
    existing = get_user_model().objects.filter(username=username).first()
    if existing is not None and existing.email.lower() != admin_email.strip().lower():
        errors["admin_username"] = [f"The username {username!r} belongs to another account."]
    if webhook_url:
        try:
            destination_check(webhook_url)
        except DestinationRefused as exc:
            errors["webhook_url"] = exc.message_dict["url"]
    if errors:
        raise ValidationError(errors)
    return {"admin_email": admin_email.strip(), "admin_username": username, "webhook_url": webhook_url}


def tenant_onboard_start(*, tenant: Tenant, admin_email: str, admin_username: str, webhook_url: str = "",
                         user=None, source: str = Source.VIEW) -> Job:
    return enqueue(ONBOARD_KIND, tenant=tenant, user=user, source=source, idempotency_key=f"onboard:{tenant.pk}",
                   payload={"admin_email": admin_email, "admin_username": admin_username, "webhook_url": webhook_url})


@dataclass(frozen=True)
class Step:
    name: str
    label: str
    run: Callable[..., None]


def _retention(tenant: Tenant, **_) -> None:
    Tenant.objects.filter(pk=tenant.pk, retention_succeeded_days__isnull=True).update(
        retention_succeeded_days=settings.JOBS_RETENTION_SUCCEEDED_DAYS)
    Tenant.objects.filter(pk=tenant.pk, retention_failed_days__isnull=True).update(
        retention_failed_days=settings.JOBS_RETENTION_FAILED_DAYS)


def _first_admin(tenant: Tenant, *, admin_email: str, admin_username: str, **_) -> None:
    account, created = get_user_model().objects.get_or_create(
        username=admin_username, defaults={"email": admin_email, "is_staff": True})
    if created:
        account.set_unusable_password()  # they choose one through the welcome email's link
        account.save(update_fields=["password"])
    Membership.objects.update_or_create(user=account, tenant=tenant, defaults={"role": Role.ADMIN})


def _welcome_email(tenant: Tenant, *, admin_username: str, **_) -> None:
    account = get_user_model().objects.get(username=admin_username)
    link = reverse("password_reset_confirm", kwargs={"uidb64": urlsafe_base64_encode(force_bytes(account.pk)),
                                                     "token": default_token_generator.make_token(account)})
    site = settings.SITE_URL.rstrip("/")
    # Keyed per tenant and account: a retried onboarding finds the message and does not send another.
    email_send(tenant=tenant, to=[account.email], template="welcome", key=f"welcome:{account.pk}",
               source=Source.JOB, context={
                   "tenant_name": tenant.name, "username": account.get_username(), "set_password_url": site + link,
                   "login_url": site + reverse("admin:login"),
                   "link_days": max(1, settings.PASSWORD_RESET_TIMEOUT // 86400)})


def _default_webhook(tenant: Tenant, *, webhook_url: str, **_) -> None:
    if webhook_url:
        WebhookEndpoint.objects.get_or_create(tenant=tenant, url=webhook_url, defaults={
            "description": "Created at onboarding: failed jobs", "events": ["job.failed"]})


ONBOARDING_STEPS = [
    Step("retention", "Retention settings", _retention),
    Step("admin", "First admin account", _first_admin),
    Step("welcome", "Welcome email", _welcome_email),
    Step("webhook", "Default webhook", _default_webhook),
]


def tenant_onboard(*, tenant: Tenant, progress: Callable[[float, str], None], **parameters) -> dict:
    """Run the onboarding steps not done yet, each recorded on the tenant as it completes."""
    done = list(tenant.onboarding_steps)
    skipped = [step.name for step in ONBOARDING_STEPS if step.name in done]
    for number, step in enumerate(ONBOARDING_STEPS, start=1):
        progress(100 * (number - 1) / len(ONBOARDING_STEPS), f"Step {number} of {len(ONBOARDING_STEPS)}: {step.label}")
        if step.name in done:
            continue
        with transaction.atomic():
            step.run(tenant, **parameters)
            done.append(step.name)
            Tenant.objects.filter(pk=tenant.pk).update(onboarding_steps=done)
    Tenant.objects.filter(pk=tenant.pk, onboarded_at__isnull=True).update(onboarded_at=timezone.now())
    progress(100, "Onboarded")
    return {"steps": [step.name for step in ONBOARDING_STEPS], "skipped": skipped}
