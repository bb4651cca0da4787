"""Delivering webhooks to a receiver on loopback (the customer's server): signatures, retries, limits."""
from __future__ import annotations

import socket
import threading
import time
from collections.abc import Callable
from datetime import timedelta
from urllib.parse import urlsplit

import pytest
from django.utils import timezone
from standardwebhooks.webhooks import Webhook

from jobs import enqueue, webhooks
from jobs.models import Job, Status
from jobs.webhooks import events
from jobs.webhooks.models import MessageState, WebhookDelivery, WebhookEndpoint
from jobs.webhooks.services import webhook_endpoint_rotate_secret, webhook_resend
from tests.jobs import kinds  # noqa: F401  (registers the tests.* kinds)
from tests.jobs.helpers import run_until_settled, work
from tests.support import HttpReceiver

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture
def receiver(settings):
    settings.WEBHOOKS_ALLOW_HTTP = settings.WEBHOOKS_ALLOW_LOOPBACK = True
    events.forget_cache()
    made = []

    def make(*replies) -> HttpReceiver:
        made.append(HttpReceiver(*replies))
        settings.WEBHOOKS_ALLOWED_PORTS = [*settings.WEBHOOKS_ALLOWED_PORTS, made[-1].port]
        return made[-1]

    yield make
    for server in made:
        server.close()


def endpoint_for(tenant, url: str, **fields) -> WebhookEndpoint:
    return WebhookEndpoint.objects.create(tenant=tenant, url=url, **fields)


def deliveries(message) -> list[WebhookDelivery]:
    return list(WebhookDelivery.objects.filter(message=message).order_by("attempt"))


def test_it_sends_a_signed_event_to_each_subscribed_endpoint_of_the_tenant(receiver, acme, globex):
    server = receiver((200, {}, b"ok"))
    mine = endpoint_for(acme, server.url, events=["invoice.paid"])
    endpoint_for(acme, server.url, events=["other.event"])
    endpoint_for(acme, server.url, active=False)
    endpoint_for(globex, server.url)
    [message] = webhooks.send(acme, "invoice.paid", {"invoice": 7})
    work()
    [(headers, body)] = server.requests
    payload = Webhook(mine.secret).verify(body, headers)
    assert payload["type"] == "invoice.paid" and payload["data"] == {"invoice": 7}
    assert headers["webhook-id"] == message.pk
    message.refresh_from_db()
    assert message.state == MessageState.DELIVERED
    [delivery] = deliveries(message)
    assert delivery.succeeded and delivery.status_code == 200
    assert mine.secret not in str(delivery.request_headers)


def test_it_retries_with_the_same_id_and_honours_retry_after(receiver, acme):
    server = receiver((503, {"Retry-After": "120"}, b"busy"), (200, {}, b"ok"))
    endpoint = endpoint_for(acme, server.url)
    [message] = webhooks.send(acme, "invoice.paid", {"invoice": 7})
    before = timezone.now()
    work()
    job = Job.objects.get(pk=message.job_id)
    assert job.status == Status.RETRYING and job.run_at >= before + timedelta(seconds=119)
    assert run_until_settled(job).status == Status.SUCCEEDED
    ids = [headers["webhook-id"] for headers, _ in server.requests]
    assert ids == [message.pk, message.pk]
    for headers, body in server.requests:
        Webhook(endpoint.secret).verify(body, headers)
    assert [d.status_code for d in deliveries(message)] == [503, 200]


def test_it_disables_an_endpoint_that_answers_gone(receiver, acme):
    server = receiver((410, {}, b"gone"))
    endpoint = endpoint_for(acme, server.url)
    [message] = webhooks.send(acme, "invoice.paid", {})
    job = run_until_settled(Job.objects.get(pk=message.job_id))
    assert job.status == Status.FAILED and job.attempts == 1
    endpoint.refresh_from_db()
    assert not endpoint.active and "410" in endpoint.disabled_reason


def test_it_does_not_follow_a_redirect(receiver, acme):
    server = receiver((302, {"Location": "http://169.254.169.254/latest/meta-data/"}, b""))
    endpoint_for(acme, server.url)
    [message] = webhooks.send(acme, "invoice.paid", {})
    work()
    assert len(server.requests) == 1
    [delivery] = deliveries(message)
    assert not delivery.succeeded and "not followed" in delivery.error


def test_it_gives_up_on_a_receiver_that_never_answers(receiver, acme, settings):
    settings.WEBHOOKS_READ_TIMEOUT = 0.5
    server = receiver(lambda handler: time.sleep(3))
    endpoint_for(acme, server.url)
    [message] = webhooks.send(acme, "invoice.paid", {})
    work()
    [delivery] = deliveries(message)
    assert delivery.duration_ms < 2500
    assert "Timed out" in delivery.error or "timed out" in delivery.error


def test_it_reads_only_the_start_of_a_huge_response(receiver, acme):
    def fifty_megabytes(handler) -> None:
        handler.send_response(200)
        handler.send_header("Content-Length", str(50 * 1024 * 1024))
        handler.end_headers()
        chunk = b"x" * 65536
        try:
            for _ in range(800):
                handler.wfile.write(chunk)
        except (BrokenPipeError, ConnectionResetError):
            pass  # the sender stopped reading, as it should

    server = receiver(fifty_megabytes)
    endpoint_for(acme, server.url)
    [message] = webhooks.send(acme, "invoice.paid", {})
    work()
    [delivery] = deliveries(message)
    assert delivery.duration_ms < 5000
    assert len(delivery.response_excerpt) <= 1024
    assert "not read further" in delivery.error and not delivery.succeeded


def test_it_signs_with_both_secrets_during_a_rotations_grace_period(receiver, acme):
    server = receiver((200, {}, b"ok"))
    endpoint = endpoint_for(acme, server.url)
    old = endpoint.secret
    new = webhook_endpoint_rotate_secret(endpoint=endpoint)
    webhooks.send(acme, "invoice.paid", {})
    work()
    headers, body = server.requests[-1]
    assert len(headers["webhook-signature"].split()) == 2
    Webhook(old).verify(body, headers)
    Webhook(new).verify(body, headers)

    WebhookEndpoint.objects.filter(pk=endpoint.pk).update(previous_secret_expires_at=timezone.now())
    webhooks.send(acme, "invoice.paid", {})
    work()
    headers, body = server.requests[-1]
    Webhook(new).verify(body, headers)
    with pytest.raises(Exception, match="No matching signature"):
        Webhook(old).verify(body, headers)


def test_it_disables_a_long_failing_endpoint_and_tells_the_tenants_admins(receiver, acme, alice, smtp):
    alice.email = "alice@acme.example"
    alice.save()
    server = receiver((500, {}, b"down"))
    endpoint = endpoint_for(acme, server.url, failing_since=timezone.now() - timedelta(days=6))
    webhooks.send(acme, "invoice.paid", {})
    work()
    endpoint.refresh_from_db()
    assert not endpoint.active and "Failing without a success" in endpoint.disabled_reason
    work()  # the notice is an email job of its own
    [notice] = smtp.to("alice@acme.example")
    assert "Webhook endpoint disabled" in notice.message["Subject"]
    assert server.url in notice.message.get_content()


def test_it_announces_a_tenants_failed_jobs_only_to_that_tenant(receiver, acme, globex):
    server = receiver((200, {}, b"ok"))
    endpoint_for(acme, server.url, events=["job.failed"])
    failing = enqueue("tests.flaky", tenant=acme, payload={"fail_attempts": 5})
    enqueue("tests.flaky", tenant=globex, payload={"fail_attempts": 5})
    enqueue("tests.echo", tenant=acme, payload={"text": "fine"})
    run_until_settled(failing)
    work()
    bodies = [Webhook(WebhookEndpoint.objects.get().secret).verify(body, headers) for headers, body in server.requests]
    assert [(body["type"], body["data"]["id"]) for body in bodies] == [("job.failed", str(failing.pk))]


def dripping(data: bytes, *, then: bytes = b"") -> Callable[[Callable[[bytes], object]], None]:
    """A receiver that sends `then` at once and `data` one byte a second, until the sender hangs up."""
    def drip(write) -> None:
        try:
            write(then)
            for byte in data:
                write(bytes([byte]))
                time.sleep(1)
        except OSError:
            pass  # the sender gave up on us, as it should

    return drip


class SlowTlsServer:
    """A TCP listener on loopback that answers a TLS ClientHello one byte a second: a handshake that never
    ends, though no single read waits long."""

    def __init__(self) -> None:
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.url = f"https://127.0.0.1:{self.listener.getsockname()[1]}/hook"
        threading.Thread(target=self._serve, daemon=True).start()

    def _serve(self) -> None:
        try:
            conn, _ = self.listener.accept()
        except OSError:
            return
        with conn:
            # A handshake record header announcing 16 KB, then the record's bytes, slowly.
            dripping(b"\x02" * 60, then=b"\x16\x03\x03\x40\x00")(conn.sendall)

    def close(self) -> None:
        self.listener.close()


def delivered_once(acme, url: str) -> tuple[WebhookDelivery, Job]:
    endpoint_for(acme, url)
    [message] = webhooks.send(acme, "invoice.paid", {})
    work()
    [delivery] = deliveries(message)
    return delivery, Job.objects.get(pk=message.job_id)


def test_it_ends_a_delivery_whose_headers_drip_at_the_total_timeout(receiver, acme, settings):
    settings.WEBHOOKS_TOTAL_TIMEOUT = 2
    server = receiver(lambda handler: dripping(b"HTTP/1.1 200 OK\r\nX-Slow: " + b"z" * 30)(handler.wfile.write))
    delivery, job = delivered_once(acme, server.url)
    assert delivery.duration_ms < 3500
    assert "total timeout" in delivery.error and not delivery.succeeded
    assert job.status == Status.RETRYING


def test_it_ends_a_delivery_whose_body_drips_at_the_total_timeout(receiver, acme, settings):
    settings.WEBHOOKS_TOTAL_TIMEOUT = 2

    def slow_body(handler) -> None:
        handler.send_response(200)
        handler.send_header("Content-Length", "30")
        handler.end_headers()
        dripping(b"o" * 30)(handler.wfile.write)

    server = receiver(slow_body)
    delivery, job = delivered_once(acme, server.url)
    assert delivery.duration_ms < 3500
    assert delivery.status_code == 200 and not delivery.succeeded
    assert "total timeout" in delivery.error
    assert job.status == Status.RETRYING


def test_it_ends_a_body_of_endless_small_chunks_at_the_total_timeout(receiver, acme, settings):
    settings.WEBHOOKS_TOTAL_TIMEOUT = 2

    def small_chunks(handler) -> None:
        handler.wfile.write(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n")
        try:
            for _ in range(200):
                handler.wfile.write(b"1\r\nx\r\n")
                time.sleep(0.05)
        except OSError:
            pass  # the sender gave up on us, as it should

    server = receiver(small_chunks)
    delivery, job = delivered_once(acme, server.url)
    assert delivery.duration_ms < 3500
    assert "total timeout" in delivery.error and not delivery.succeeded
    assert job.status == Status.RETRYING


def test_it_ends_a_slow_tls_handshake_at_the_total_timeout(receiver, acme, settings):
    settings.WEBHOOKS_TOTAL_TIMEOUT, settings.WEBHOOKS_CONNECT_TIMEOUT = 2, 10
    server = SlowTlsServer()
    settings.WEBHOOKS_ALLOWED_PORTS = [urlsplit(server.url).port]
    try:
        delivery, job = delivered_once(acme, server.url)
    finally:
        server.close()
    assert delivery.duration_ms < 3500
    assert "total timeout" in delivery.error
    assert job.status == Status.RETRYING


def test_it_leaves_no_thread_behind_after_a_delivery(receiver, acme):
    server = receiver((200, {}, b"ok"))
    before = set(threading.enumerate())
    delivery, job = delivered_once(acme, server.url)
    assert delivery.succeeded and job.status == Status.SUCCEEDED
    assert [thread for thread in set(threading.enumerate()) - before if not thread.daemon] == []


def test_it_never_connects_to_a_port_no_longer_allowed(receiver, acme, settings):
    listener = socket.create_server(("127.0.0.1", 0))  # accepts nothing itself: connections wait in its backlog
    listener.setblocking(False)
    url = f"http://127.0.0.1:{listener.getsockname()[1]}/hook"
    endpoint_for(acme, url)  # saved while its port was allowed
    [message] = webhooks.send(acme, "invoice.paid", {})
    with listener:
        work()
        with pytest.raises(BlockingIOError):
            listener.accept()
        [delivery] = deliveries(message)
        assert delivery.error.startswith(f"Refused: Port {listener.getsockname()[1]} is not allowed")
        assert Job.objects.get(pk=message.job_id).status == Status.FAILED

        # The same listener does see a delivery once its port is allowed (it never answers: a timeout).
        settings.WEBHOOKS_ALLOWED_PORTS, settings.WEBHOOKS_TOTAL_TIMEOUT = [listener.getsockname()[1]], 0.5
        webhook_resend(message=message)
        work()
        connection, _ = listener.accept()
        connection.close()
