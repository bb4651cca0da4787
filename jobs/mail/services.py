"""Writes for email: store a message and its send job; deliver it at most once; fan out a bulk send."""
from __future__ import annotations

import logging
import smtplib
from collections import Counter
from collections.abc import Mapping, Sequence
from datetime import datetime, timedelta
from typing import Any

from django.conf import settings
from django.core import mail
from django.core.exceptions import ValidationError
from django.core.validators import validate_email
from django.db import IntegrityError, transaction
from django.db.models import Count, F
from django.template import TemplateDoesNotExist
from django.template.loader import render_to_string
from django.utils import timezone

from jobs import GiveUp, enqueue, enqueue_many
from jobs.mail.models import SETTLED, UNSENT, EmailState, OutboundEmail
from jobs.maintenance import delete_in_batches, retention_longest_days
from jobs.models import UNFINISHED, Job, Source, Status, new_job_id

logger = logging.getLogger(__name__)

SEND_KIND = "email.send"
BULK_KIND = "email.bulk"
FAN_OUT_CHUNK = 500


def email_send(
    *,
    tenant,
    to: Sequence[str],
    subject: str = "",
    text: str = "",
    html: str = "",
    template: str = "",
    context: Mapping[str, Any] | None = None,
    key: str | None = None,
    from_email: str | None = None,
    user=None,
    source: str = Source.VIEW,
    run_at: datetime | None = None,
    delay: timedelta | float | None = None,
) -> OutboundEmail:
    """Store one message and an `email.send` job for it, in the caller's transaction; sent now, or at
    `run_at` (or after `delay`, a timedelta or seconds): until then the job waits `scheduled`.

    Give either `template` (rendered from templates/emails/<template>.txt, .html and .subject.txt with
    `context`) or `text` and/or `html` with a `subject`. With a `key`, a second call with the same tenant
    and key returns the first message instead of sending another. Bad input raises a ValidationError
    naming the field; nothing is stored then.
    """
    addresses = _checked_addresses(to, field="to")
    subject, text, html = _content(subject=subject, text=text, html=html, template=template, context=context)
    message_id = new_job_id()
    message = OutboundEmail(
        id=message_id, tenant=tenant, key=_checked_key(key) or str(message_id),
        from_email=from_email or settings.DEFAULT_FROM_EMAIL, to=addresses, subject=subject, text=text, html=html,
        template=template,
    )
    with transaction.atomic():
        try:
            with transaction.atomic():
                message.save(force_insert=True)
        except IntegrityError:
            return OutboundEmail.objects.get(tenant=tenant, key=message.key)
        message.job = _send_job(message, user=user, source=source, run_at=run_at, delay=delay)
        message.save(update_fields=["job"])
    return message


def email_bulk(
    *,
    tenant,
    template: str,
    recipients: Sequence[str | Mapping[str, Any]],
    context: Mapping[str, Any] | None = None,
    from_email: str | None = None,
    user=None,
    source: str = Source.VIEW,
) -> Job:
    """One `email.bulk` job for many recipients; it fans out into one `email.send` job per message.

    `recipients` are addresses, or `{"to": address, "context": {...}}` for per-recipient context
    (merged over `context`). Every address is checked and every message rendered before anything is
    stored; errors are named `recipients[i].to`.
    """
    if not recipients:
        raise ValidationError({"recipients": ["At least one recipient is needed."]})
    rows, errors = [], {}
    for index, recipient in enumerate(recipients):
        address, own = (recipient, {}) if isinstance(recipient, str) else (recipient.get("to"), recipient.get("context") or {})
        try:
            checked = _checked_addresses([address], field=f"recipients[{index}].to")
        except ValidationError as exc:
            errors.update(exc.message_dict)
            continue
        subject, text, html = _content(template=template, context={**(context or {}), **own})
        rows.append(OutboundEmail(tenant=tenant, from_email=from_email or settings.DEFAULT_FROM_EMAIL, to=checked,
                                  subject=subject, text=text, html=html, template=template))
    if errors:
        raise ValidationError(errors)
    with transaction.atomic():
        job = enqueue(BULK_KIND, tenant=tenant, payload={"template": template, "count": len(rows)}, user=user,
                      source=source)
        for index, row in enumerate(rows):
            row.bulk, row.key = job, f"bulk:{job.pk}:{index}"
        OutboundEmail.objects.bulk_create(rows, batch_size=1000)
    return job


def email_bulk_fan_out(*, bulk: Job) -> int:
    """Give every unsent message of `bulk` a send job (failed ones again); returns how many got one.

    Messages whose outcome is unknown are left alone: they may have been delivered.
    """
    started = 0
    while True:
        with transaction.atomic():
            rows = list(OutboundEmail.objects.select_for_update(of=("self",))
                        .filter(bulk=bulk, state__in=UNSENT)
                        .exclude(job__status__in=UNFINISHED)  # already on its way
                        .order_by("pk")[:FAN_OUT_CHUNK])
            if not rows:
                return started
            jobs = enqueue_many(SEND_KIND, tenant=bulk.tenant, payloads=[{"email": str(row.pk)} for row in rows],
                                source=Source.JOB)
            for row, job in zip(rows, jobs, strict=True):
                row.job, row.state = job, EmailState.PENDING
            OutboundEmail.objects.bulk_update(rows, ["job", "state"])
        started += len(rows)


def email_bulk_counts(*, bulk: Job) -> dict[str, int]:
    """How many of `bulk`'s messages are in each state (every state present, zero when none)."""
    counts = dict(OutboundEmail.objects.filter(bulk=bulk).values_list("state").annotate(n=Count("pk")).order_by())
    return {state: counts.get(state, 0) for state in EmailState.values}


def email_resend(*, message: OutboundEmail, user=None) -> OutboundEmail:
    """Send a failed message, or one whose outcome is unknown, again: staff decided it is safe."""
    with transaction.atomic():
        reopened = OutboundEmail.objects.filter(pk=message.pk, state__in=(EmailState.FAILED, EmailState.UNKNOWN)) \
            .update(state=EmailState.PENDING, last_error="")
        if not reopened:
            raise ValidationError({"state": [f"Only failed or unknown messages can be resent; this one is "
                                             f"{message.get_state_display().lower()}."]})
        message.refresh_from_db()
        message.job = _send_job(message, user=user, source=Source.ADMIN)
        message.save(update_fields=["job"])
    return message


def email_deliver(*, message: OutboundEmail, final_attempt: bool) -> dict[str, Any]:
    """Hand `message` to the mail server once; the body of the `email.send` job.

    The row is claimed (`sending`) only after the connection is open, so a refused connection is
    plainly "not sent" and retried. A failure once the message is on its way (the server hangs up
    mid-reply, or the worker dies) leaves it `unknown`, and it is not sent again automatically.
    """
    if message.state == EmailState.SENT:
        return {"state": EmailState.SENT, "duplicate": True}
    if message.state in (EmailState.SENDING, EmailState.UNKNOWN):
        _settle(message, EmailState.UNKNOWN, "The previous attempt stopped while sending.")
        raise GiveUp("The previous attempt stopped while sending, so the message may have been delivered; "
                     "it is not sent again automatically (resend it from the admin if it is safe).")
    connection = mail.mailers[settings.JOBS_EMAIL_MAILER]
    try:
        connection.open()
    except Exception as exc:
        _settle(message, EmailState.FAILED if final_attempt else EmailState.PENDING, _describe(exc))
        raise
    try:
        claimed = OutboundEmail.objects.filter(pk=message.pk, state__in=UNSENT).update(
            state=EmailState.SENDING, sends=F("sends") + 1)
        if not claimed:
            raise GiveUp("Another attempt is sending this message.")
        _send(connection, message, final_attempt)
    finally:
        _close_quietly(connection)
    _settle(message, EmailState.SENT, "", sent_at=timezone.now())
    return {"state": EmailState.SENT, "to": message.to, "message_id": message_id_header(message)}


def _send(connection, message: OutboundEmail, final_attempt: bool) -> None:
    try:
        connection.send_messages([_email_message(message)])
    except smtplib.SMTPResponseException as exc:
        # The server answered with a refusal: nothing was accepted. 5xx is permanent, 4xx is worth a retry.
        permanent = exc.smtp_code >= 500
        _settle(message, EmailState.FAILED if permanent or final_attempt else EmailState.PENDING, _describe(exc))
        if permanent:
            raise GiveUp(_describe(exc)) from exc
        raise
    except smtplib.SMTPRecipientsRefused as exc:
        _settle(message, EmailState.FAILED, _describe(exc))
        raise GiveUp(_describe(exc)) from exc
    except Exception as exc:
        # Cut off mid-conversation: the server may have accepted the message before the reply was lost.
        _settle(message, EmailState.UNKNOWN, _describe(exc))
        raise GiveUp(f"Sending was cut off ({_describe(exc)}); the message may have been delivered, so it is "
                     "not sent again automatically.") from exc


def _settle(message: OutboundEmail, state: str, error: str, **fields) -> None:
    OutboundEmail.objects.filter(pk=message.pk).update(state=state, last_error=error[:2000], **fields)
    message.state, message.last_error = state, error
    if message.bulk_id and state != EmailState.PENDING:
        _wake_bulk_when_done(message.bulk_id)


def _wake_bulk_when_done(bulk_id) -> None:
    # The bulk job snoozes while its messages go out; the last one to settle wakes it now.
    if not OutboundEmail.objects.filter(bulk_id=bulk_id, state__in=(EmailState.PENDING, EmailState.SENDING)).exists():
        Job.objects.filter(pk=bulk_id, status=Status.SCHEDULED).update(run_at=timezone.now())


def _email_message(message: OutboundEmail) -> mail.EmailMultiAlternatives:
    email = mail.EmailMultiAlternatives(
        subject=message.subject, body=message.text, from_email=message.from_email, to=message.to,
        headers={"Message-ID": message_id_header(message), "Auto-Submitted": "auto-generated"},
    )
    if message.html:
        email.attach_alternative(message.html, "text/html")
    return email


def message_id_header(message: OutboundEmail) -> str:
    """The same on every attempt, so a receiver can drop a duplicate."""
    return f"<{message.pk}@{settings.JOBS_EMAIL_DOMAIN}>"


def _send_job(message: OutboundEmail, *, user, source: str, run_at: datetime | None = None,
              delay: timedelta | float | None = None) -> Job:
    return enqueue(SEND_KIND, tenant=message.tenant, payload={"email": str(message.pk)}, user=user, source=source,
                   idempotency_key=f"email:{message.pk}", run_at=run_at, delay=delay)


def _content(*, subject: str = "", text: str = "", html: str = "", template: str = "",
             context: Mapping[str, Any] | None = None) -> tuple[str, str, str]:
    if template:
        return _rendered(template, dict(context or {}), subject)
    if not (text or html):
        raise ValidationError({"text": ["Give a text or HTML body, or a template."]})
    if not subject.strip():
        raise ValidationError({"subject": ["A subject is needed."]})
    return _one_line(subject), text, html


def _rendered(template: str, context: dict[str, Any], subject: str) -> tuple[str, str, str]:
    try:
        text = render_to_string(f"emails/{template}.txt", context)
    except TemplateDoesNotExist:
        raise ValidationError({"template": [f"No template emails/{template}.txt."]}) from None
    try:
        html = render_to_string(f"emails/{template}.html", context)
    except TemplateDoesNotExist:
        html = ""
    if not subject:
        try:
            subject = render_to_string(f"emails/{template}.subject.txt", context)
        except TemplateDoesNotExist:
            raise ValidationError({"subject": [f"Give a subject, or add emails/{template}.subject.txt."]}) from None
    return _one_line(subject), text, html


def _one_line(subject: str) -> str:
    # A newline in a subject would be a header injection; templates end with one by habit.
    return " ".join(subject.split())[:998]


def _checked_addresses(addresses: Sequence[str] | str, *, field: str) -> list[str]:
    if isinstance(addresses, str):
        addresses = [addresses]
    if not addresses:
        raise ValidationError({field: ["At least one address is needed."]})
    errors = {}
    for index, address in enumerate(addresses):
        name = field if field.endswith(".to") else f"{field}[{index}]"  # a bulk recipient has one address
        try:
            if not isinstance(address, str):
                raise ValidationError("Not a string.")
            validate_email(address)
        except ValidationError:
            errors[name] = [f"{address!r} is not a valid email address."]
    if errors:
        raise ValidationError(errors)
    return [address.strip() for address in addresses]


def _checked_key(key: str | None) -> str | None:
    if key is not None and not (0 < len(key) <= 200):
        raise ValidationError({"key": ["Must be 1 to 200 characters."]})
    return key


def _describe(exc: BaseException) -> str:
    return f"{type(exc).__name__}: {exc}"[:2000]


def _close_quietly(connection) -> None:
    try:
        connection.close()
    except Exception:
        logger.warning("Closing the mail connection failed", exc_info=True)


def emails_delete_expired(now: datetime) -> Counter:
    """Retention for the ledger (a maintenance cleaner). A message's row is its guard against a second
    send, so it is kept as long as any job could still ask for it: past the longest retention, and only
    once settled."""
    rows = OutboundEmail.objects.filter(created_at__lt=now - timedelta(days=retention_longest_days()),
                                        state__in=SETTLED)
    return delete_in_batches(rows, "tenant_id")
