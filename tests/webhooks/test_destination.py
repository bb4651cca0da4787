"""Where webhooks may go: public HTTPS addresses only, checked when saved and again before every send."""
from __future__ import annotations

import socket

import pytest

from jobs.webhooks.destination import DestinationRefused, destination_check, destination_post
from tests.support import HttpReceiver


def resolving(monkeypatch, address: str) -> None:
    """DNS is outside the machine: every name resolves to `address`."""
    family = socket.AF_INET6 if ":" in address else socket.AF_INET
    monkeypatch.setattr(socket, "getaddrinfo",
                        lambda host, port, *a, **k: [(family, socket.SOCK_STREAM, 6, "", (address, port))])


@pytest.mark.parametrize(("url", "reason"), [
    ("http://127.0.0.1/", "loopback"),
    ("http://[::1]/", "loopback"),
    ("http://10.0.0.1/", "private"),
    ("http://169.254.169.254/latest/meta-data/", "link-local"),
    ("http://0x7f.1/", "non-standard form"),
    ("http://2130706433/", "non-standard form"),
    ("http://100.64.0.1/", "not a globally routable"),
    ("http://[fd00::1]/", "private"),
    ("http://[::ffff:127.0.0.1]/", "loopback"),
    ("https://user:pw@example.com/", "Credentials"),
    ("ftp://example.com/", "https://"),
])
def test_it_refuses_addresses_that_are_not_public(settings, url, reason):
    settings.WEBHOOKS_ALLOW_HTTP, settings.WEBHOOKS_ALLOW_LOOPBACK = True, False
    with pytest.raises(DestinationRefused) as error:
        destination_check(url)
    assert reason in error.value.message_dict["url"][0]


def test_it_refuses_plain_http_unless_allowed(settings, monkeypatch):
    resolving(monkeypatch, "93.184.215.14")
    settings.WEBHOOKS_ALLOW_HTTP = False
    with pytest.raises(DestinationRefused, match="Only https"):
        destination_check("http://example.com/hook")
    destination_check("https://example.com/hook")  # public and encrypted: fine


def test_it_refuses_a_name_that_resolves_to_a_private_address(settings, monkeypatch):
    resolving(monkeypatch, "10.1.2.3")
    with pytest.raises(DestinationRefused) as error:
        destination_check("https://internal.example.com/hook")
    assert error.value.message_dict["url"] == [
        "internal.example.com resolves to 10.1.2.3, which is a private address; only public addresses may "
        "receive webhooks."]


def test_it_never_connects_to_a_refused_address(settings, monkeypatch):
    resolving(monkeypatch, "169.254.169.254")
    reply = destination_post("https://metadata.example.com/", body=b"{}", headers={})
    assert reply.refused and reply.status_code is None
    assert "link-local" in reply.error


@pytest.mark.django_db
@pytest.mark.parametrize(("url", "error"), [
    ("https://169.254.169.254/", "link-local address"),
    ("https://example.com:22/", "Port 22 is not allowed; webhooks go to port 443 or 8443 only."),
])
def test_it_shows_a_form_error_on_the_url_for_a_refused_destination_and_stores_nothing(client, alice, acme, url,
                                                                                      error):
    from jobs.webhooks.models import WebhookEndpoint

    client.force_login(alice)
    response = client.post("/admin/webhooks/webhookendpoint/add/",
                           {"tenant": acme.pk, "url": url, "description": "x", "active": "on"})
    assert response.status_code == 200
    assert error in " ".join(response.context["adminform"].form.errors["url"])
    assert not WebhookEndpoint.objects.exists()


@pytest.mark.parametrize("url", ["https://example.com:22/", "https://example.com:6379/", "https://example.com:80/",
                                 "https://example.com:0/", "http://example.com:8080/"])
def test_it_refuses_ports_other_than_the_allowed_ones(settings, monkeypatch, url):
    resolving(monkeypatch, "93.184.215.14")
    settings.WEBHOOKS_ALLOW_HTTP = True
    with pytest.raises(DestinationRefused) as error:
        destination_check(url)
    port = url.rsplit(":", 1)[1].strip("/")
    allowed = "80, 443 or 8443" if url.startswith("http:") else "443 or 8443"
    assert error.value.message_dict["url"] == [f"Port {port} is not allowed; webhooks go to port {allowed} only."]


@pytest.mark.parametrize("url", ["https://example.com/", "https://example.com:443/", "https://example.com:8443/x",
                                 "http://example.com:80/", "http://example.com:8443/"])
def test_it_accepts_the_allowed_ports_named_or_not(settings, monkeypatch, url):
    resolving(monkeypatch, "93.184.215.14")
    settings.WEBHOOKS_ALLOW_HTTP = True
    destination_check(url)


def test_it_takes_the_allowed_ports_from_settings(settings, monkeypatch):
    resolving(monkeypatch, "93.184.215.14")
    settings.WEBHOOKS_ALLOWED_PORTS = [9443]
    destination_check("https://example.com:9443/")
    with pytest.raises(DestinationRefused, match="webhooks go to port 9443 only"):
        destination_check("https://example.com/")


def test_it_posts_to_an_allowed_port_and_not_to_another(settings):
    settings.WEBHOOKS_ALLOW_HTTP = settings.WEBHOOKS_ALLOW_LOOPBACK = True
    server = HttpReceiver((200, {}, b"ok"))
    try:
        refused = destination_post(server.url, body=b"{}", headers={})
        settings.WEBHOOKS_ALLOWED_PORTS = [server.port]
        sent = destination_post(server.url, body=b"{}", headers={})
    finally:
        server.close()
    assert refused.refused and refused.status_code is None and "is not allowed" in refused.error
    assert sent.status_code == 200 and not sent.error
    assert len(server.requests) == 1
