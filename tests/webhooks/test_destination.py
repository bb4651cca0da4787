"""Where webhooks may go: public HTTPS addresses only, checked when saved and again before every send."""
from __future__ import annotations

import socket

import pytest

from jobs.webhooks.destination import DestinationRefused, destination_check, destination_post


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
def test_it_shows_a_form_error_for_a_refused_url_and_stores_nothing(client, alice, acme):
    from jobs.webhooks.models import WebhookEndpoint

    client.force_login(alice)
    response = client.post("/admin/webhooks/webhookendpoint/add/",
                           {"tenant": acme.pk, "url": "https://169.254.169.254/", "description": "x", "active": "on"})
    assert response.status_code == 200
    assert "link-local address" in response.content.decode()
    assert not WebhookEndpoint.objects.exists()
