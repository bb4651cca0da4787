"""Email jobs: each message sent at most once, with a stable Message-ID, through a real SMTP conversation."""
from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
import time_machine
from django.core.exceptions import ValidationError

from jobs import relay
from jobs.mail.models import EmailState, OutboundEmail
from jobs.mail.services import email_bulk, email_resend, email_send, message_id_header
from jobs.models import Job, Outcome, Status
from tests.jobs.helpers import run_until_settled, work

pytestmark = pytest.mark.django_db(transaction=True)


def send(tenant, **overrides) -> OutboundEmail:
    fields = {"to": ["ann@example.com"], "subject": "Your invoice", "text": "Hello Ann"}
    return email_send(tenant=tenant, **{**fields, **overrides})


def job_of(message: OutboundEmail) -> Job:
    message.refresh_from_db()
    return Job.objects.get(pk=message.job_id)


def test_it_sends_a_templated_message_once_with_a_stable_message_id(acme, smtp):
    message = email_send(tenant=acme, to=["ann@example.com"], template="notice",
                         context={"subject": "Report ready", "body": "Your <report> is ready."})
    job = job_of(message)
    assert (job.kind, job.queue, job.max_attempts) == ("email.send", "high", 5)
    work()
    message.refresh_from_db()
    assert message.state == EmailState.SENT and message.sends == 1 and message.sent_at
    [received] = smtp.received
    assert received.recipients == ["ann@example.com"]
    assert received.message["Subject"] == "Report ready"
    assert received.message["Message-ID"] == message_id_header(message) == f"<{message.pk}@localhost>"
    assert "Your <report> is ready." in received.message.get_content()  # text mail: not HTML-escaped
    assert job_of(message).status == Status.SUCCEEDED


def test_it_names_the_bad_address_and_stores_nothing(acme):
    with pytest.raises(ValidationError) as error:
        send(acme, to=["ann@example.com", "not an address"])
    assert error.value.message_dict == {"to[1]": ["'not an address' is not a valid email address."]}
    assert not OutboundEmail.objects.exists() and not Job.objects.exists()


def test_it_names_a_missing_template(acme):
    with pytest.raises(ValidationError) as error:
        email_send(tenant=acme, to=["ann@example.com"], template="no_such_template")
    assert error.value.message_dict == {"template": ["No template emails/no_such_template.txt."]}
    assert not OutboundEmail.objects.exists()


def test_it_refuses_a_subject_with_a_line_break_as_a_header(acme, smtp):
    message = send(acme, subject="Hi\r\nBcc: everyone@example.com")
    work()
    [received] = smtp.received
    assert received.message["Subject"] == "Hi Bcc: everyone@example.com"
    assert received.recipients == ["ann@example.com"]


def test_it_returns_the_first_message_for_a_repeated_key(acme, smtp):
    first = send(acme, key="invoice-42")
    again = send(acme, key="invoice-42", text="a different body")
    assert again.pk == first.pk and OutboundEmail.objects.count() == 1
    assert Job.objects.filter(kind="email.send").count() == 1
    work()
    assert len(smtp.received) == 1


def test_it_retries_while_the_mail_server_is_down_then_fails_without_sending(acme, smtp):
    smtp.close()  # nothing listens on the port any more: connection refused
    message = send(acme)
    job = run_until_settled(job_of(message))
    assert job.status == Status.FAILED and job.attempts == 5
    assert "ConnectionRefusedError" in job.last_error
    message.refresh_from_db()
    assert message.state == EmailState.FAILED and message.sends == 0
    assert smtp.received == []


def test_it_sends_once_the_server_is_back(acme, smtp, settings):
    port = smtp.port
    settings.MAILERS = {"default": {**smtp.mailers()["default"], "OPTIONS": {"host": "127.0.0.1", "port": 1}}}
    message = send(acme)
    work()
    assert job_of(message).status == Status.RETRYING
    settings.MAILERS = smtp.mailers()
    assert smtp.port == port
    job = run_until_settled(job_of(message))
    assert job.status == Status.SUCCEEDED and job.attempts == 2
    assert len(smtp.received) == 1


def test_it_does_not_resend_a_message_the_server_may_have_taken(acme, smtp):
    smtp.behaviour.hang_up_after_data = True  # took the message, the reply never came
    message = send(acme)
    job = run_until_settled(job_of(message))
    assert job.status == Status.FAILED and job.attempts == 1  # given up at once: no automatic resend
    assert "may have been delivered" in job.last_error
    message.refresh_from_db()
    assert message.state == EmailState.UNKNOWN
    assert len(smtp.received) == 1


def test_it_does_not_send_again_after_a_worker_died_mid_send(acme, smtp):
    message = send(acme)
    # What a killed worker leaves behind: the message claimed for sending, the attempt never finished.
    OutboundEmail.objects.filter(pk=message.pk).update(state=EmailState.SENDING, sends=1)
    job = run_until_settled(job_of(message))
    assert job.status == Status.FAILED
    assert job.attempt_set.get().outcome == Outcome.FAILED
    message.refresh_from_db()
    assert message.state == EmailState.UNKNOWN
    assert smtp.received == []


def test_it_ignores_a_duplicate_delivery_of_a_sent_message(acme, smtp):
    message = send(acme)
    work()
    job = job_of(message)
    Job.objects.filter(pk=job.pk).update(status=Status.FAILED)
    from jobs.services import jobs_retry

    jobs_retry(job_ids=[job.pk])  # the same message's job runs again
    assert run_until_settled(job).status == Status.SUCCEEDED
    assert job.result == {"state": "sent", "duplicate": True}
    assert len(smtp.received) == 1


def test_it_fails_a_permanent_refusal_at_once_and_retries_a_temporary_one(acme, smtp):
    smtp.behaviour.refuse_recipients = {"gone@example.com": "550 5.1.1 no such user"}
    refused = send(acme, to=["gone@example.com"])
    job = run_until_settled(job_of(refused))
    assert job.status == Status.FAILED and job.attempts == 1
    assert "no such user" in job.last_error

    smtp.behaviour.refuse_recipients = {}
    smtp.behaviour.reply_to_data = "451 4.3.0 try again later"
    deferred = send(acme, to=["busy@example.com"])
    work()
    assert job_of(deferred).status == Status.RETRYING
    deferred.refresh_from_db()
    assert deferred.state == EmailState.PENDING and "try again later" in deferred.last_error
    smtp.behaviour.reply_to_data = "250 OK"
    assert run_until_settled(job_of(deferred)).status == Status.SUCCEEDED
    assert len(smtp.to("busy@example.com")) == 1


def test_it_resends_an_unknown_message_only_when_staff_ask(acme, smtp, alice):
    smtp.behaviour.hang_up_after_data = True
    message = send(acme)
    run_until_settled(job_of(message))
    smtp.behaviour.hang_up_after_data = False
    email_resend(message=message, user=alice)
    job = run_until_settled(job_of(message))
    assert job.status == Status.SUCCEEDED and job.enqueued_by == alice
    assert len(smtp.received) == 2  # the one in doubt, and the one staff asked for
    message.refresh_from_db()
    assert message.state == EmailState.SENT
    with pytest.raises(ValidationError) as error:
        email_resend(message=message, user=alice)
    assert "state" in error.value.message_dict


def test_it_fans_a_bulk_send_out_and_retries_only_the_failed_messages(acme, smtp):
    smtp.behaviour.refuse_recipients = {"bounce@example.com": "550 mailbox unavailable"}
    recipients = ["a@example.com", {"to": "bounce@example.com", "context": {"body": "for bounce"}}, "c@example.com"]
    bulk = email_bulk(tenant=acme, template="notice", recipients=recipients,
                      context={"subject": "News", "body": "for everyone"})
    assert OutboundEmail.objects.filter(bulk=bulk).count() == 3
    work()  # the bulk job fans out and snoozes; the sends run
    bulk.refresh_from_db()
    bulk = run_until_settled(bulk)
    assert bulk.status == Status.FAILED
    assert bulk.progress == 100
    assert "2 sent, 1 failed, 0 unknown, 0 pending" in bulk.last_error
    assert sorted(r.recipients[0] for r in smtp.received) == ["a@example.com", "c@example.com"]
    assert "for bounce" in OutboundEmail.objects.get(bulk=bulk, to=["bounce@example.com"]).text

    smtp.behaviour.refuse_recipients = {}
    from jobs.services import jobs_retry

    jobs_retry(job_ids=[bulk.pk])
    bulk = run_until_settled(bulk)
    assert bulk.status == Status.SUCCEEDED
    assert bulk.result == {"pending": 0, "sending": 0, "sent": 3, "failed": 0, "unknown": 0}
    # Only the failed message went out again.
    assert sorted(r.recipients[0] for r in smtp.received) == ["a@example.com", "bounce@example.com", "c@example.com"]


def test_it_names_bad_bulk_recipients_and_stores_nothing(acme):
    with pytest.raises(ValidationError) as error:
        email_bulk(tenant=acme, template="notice", recipients=["a@example.com", {"to": "nope"}],
                   context={"subject": "x", "body": "y"})
    assert error.value.message_dict == {"recipients[1].to": ["'nope' is not a valid email address."]}
    assert not Job.objects.exists() and not OutboundEmail.objects.exists()


def test_a_message_can_wait_for_its_time_and_is_sent_then(acme, smtp):
    with time_machine.travel(datetime(2026, 12, 7, 9, 0, tzinfo=UTC), tick=False):
        message = email_send(tenant=acme, to=["ann@example.com"], subject="Your trial ends tomorrow", text="Hi",
                             delay=timedelta(hours=3))
        job = job_of(message)
        assert (job.status, job.run_at) == (Status.SCHEDULED, datetime(2026, 12, 7, 12, 0, tzinfo=UTC))
        relay.relay()
        work()
        assert smtp.received == [] and job_of(message).status == Status.SCHEDULED  # not before its time
    with time_machine.travel(datetime(2026, 12, 7, 12, 0, 1, tzinfo=UTC), tick=False):
        relay.relay()
        work()
    message.refresh_from_db()
    assert message.state == EmailState.SENT and len(smtp.received) == 1


def test_a_time_for_a_message_that_cannot_be_is_refused_naming_it_and_nothing_is_stored(acme):
    with pytest.raises(ValidationError) as refused:
        email_send(tenant=acme, to=["ann@example.com"], subject="x", text="y", run_at=datetime(2026, 12, 7, 9, 0),
                   delay=5)
    assert set(refused.value.message_dict) & {"run_at", "delay"}
    assert not OutboundEmail.objects.exists() and not Job.objects.exists()
