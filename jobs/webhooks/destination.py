"""Where a webhook may go, and the one way it is sent there.

A destination must be HTTPS (HTTP only where settings allow it, for development) and every address its
host resolves to must be globally routable: no loopback, private, link-local (cloud metadata at
169.254.169.254), CGNAT, unique-local IPv6, IPv4-mapped or numeric-trick forms of those. The check runs
when an endpoint is saved and again before every send. The request then goes through
requests-hardened, which resolves the host once, refuses a non-public address and connects to that
very address (so DNS cannot change the answer between check and connect); redirects are never
followed, proxies from the environment are ignored, and time and response size are bounded.
"""
from __future__ import annotations

import ipaddress
import re
import socket
import time
from dataclasses import dataclass
from urllib.parse import urlsplit

import requests
from django.conf import settings
from django.core.exceptions import ValidationError
from requests_hardened import Config, Manager
from requests_hardened.ip_filter import InvalidIPAddress

# Hosts that are only digits, dots and hex: inet_aton reads "0x7f.1" or "2130706433" as 127.0.0.1.
_NUMERIC_HOST = re.compile(r"^(0x[0-9a-f]*|[0-9]+)(\.(0x[0-9a-f]*|[0-9]*))*\.?$", re.IGNORECASE)


class DestinationRefused(ValidationError):
    """The URL may not be called; the message says why."""


class DestinationUnresolvable(DestinationRefused):
    """The host name does not resolve (now): refused when saving, retried when sending."""


def destination_check(url: str) -> None:
    """Raise DestinationRefused (on the field `url`) unless `url` is a permitted webhook destination."""
    parts = urlsplit(url)
    scheme = parts.scheme.lower()
    if scheme not in ("https", "http"):
        _refuse("Only https:// addresses are allowed.")
    if scheme == "http" and not settings.WEBHOOKS_ALLOW_HTTP:
        _refuse("Only https:// addresses are allowed (http:// is for development, see WEBHOOKS_ALLOW_HTTP).")
    if parts.username is not None or parts.password is not None:
        _refuse("Credentials in the address are not allowed.")
    try:
        host, port = parts.hostname, parts.port or (443 if scheme == "https" else 80)
    except ValueError:
        _refuse("The port is not a number between 0 and 65535.")
    if not host:
        _refuse("The address has no host.")
    literal = _ip_literal(host)
    if literal is None and _NUMERIC_HOST.match(host):
        _refuse(f"{host!r} is a numeric address in a non-standard form; write IP addresses in dotted-decimal form.")
    addresses = [literal] if literal is not None else _resolve(host, port)
    for address in addresses:
        problem = _address_problem(address)
        if problem:
            where = host if literal is not None else f"{host} resolves to {address}, which"
            _refuse(f"{where} is {problem}; only public addresses may receive webhooks.")


def _refuse(message: str):
    raise DestinationRefused({"url": [message]})


def _ip_literal(host: str):
    try:
        return ipaddress.ip_address(host)
    except ValueError:
        return None


def _resolve(host: str, port: int):
    try:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    except (socket.gaierror, UnicodeError) as exc:
        raise DestinationUnresolvable({"url": [f"{host!r} could not be resolved ({exc})."]}) from None
    return [ipaddress.ip_address(info[4][0].split("%")[0]) for info in infos]


def _address_problem(address) -> str:
    """Why `address` may not receive webhooks, or "" when it may."""
    if address.version == 6 and address.ipv4_mapped is not None:
        address = address.ipv4_mapped
    if address.is_loopback and settings.WEBHOOKS_ALLOW_LOOPBACK:
        return ""
    for label, test in [("a loopback address", "is_loopback"), ("a link-local address", "is_link_local"),
                        ("a multicast address", "is_multicast"), ("a private address", "is_private"),
                        ("an unspecified address", "is_unspecified"), ("a reserved address", "is_reserved")]:
        if getattr(address, test):
            return label
    if not address.is_global:
        return "not a globally routable address"
    return ""


@dataclass
class Reply:
    status_code: int | None = None
    headers: dict[str, str] | None = None
    excerpt: str = ""
    error: str = ""
    duration_ms: int = 0
    refused: bool = False  # the destination is not allowed: retrying cannot help


def destination_post(url: str, *, body: bytes, headers: dict[str, str]) -> Reply:
    """POST `body` to `url` once; never raises for network trouble, which is returned as `error`."""
    started = time.monotonic()
    reply = Reply()
    try:
        destination_check(url)
        with _session() as session:
            response = session.post(url, data=body, headers=headers, stream=True, allow_redirects=False,
                                    timeout=(settings.WEBHOOKS_CONNECT_TIMEOUT, settings.WEBHOOKS_READ_TIMEOUT))
            try:
                reply.status_code = response.status_code
                reply.headers = dict(response.headers)
                reply.excerpt, truncated = _read_capped(response, started)
                if truncated:
                    reply.error = f"Response body longer than {settings.WEBHOOKS_RESPONSE_MAX_BYTES} bytes; not read further."
            finally:
                response.close()
    except DestinationUnresolvable as exc:
        reply.error = " ".join(exc.message_dict["url"])
    except DestinationRefused as exc:
        reply.error, reply.refused = "Refused: " + " ".join(exc.message_dict["url"]), True
    except InvalidIPAddress as exc:
        # Resolved to a public address when checked, to this one when connecting: DNS rebinding.
        reply.error, reply.refused = f"Refused: the host resolved to {exc} when connecting.", True
    except requests.Timeout as exc:
        reply.error = f"Timed out ({type(exc).__name__})."
    except requests.RequestException as exc:
        reply.error = f"{type(exc).__name__}: {_first_line(exc)}"
    reply.duration_ms = int((time.monotonic() - started) * 1000)
    if reply.status_code is not None and 300 <= reply.status_code < 400 and not reply.error:
        location = (reply.headers or {}).get("Location", "")
        reply.error = f"Redirect ({reply.status_code} to {location[:200]!r}) not followed; webhooks are not redirected."
    return reply


def _session():
    session = Manager(Config(
        ip_filter_enable=True,
        ip_filter_allow_loopback_ips=settings.WEBHOOKS_ALLOW_LOOPBACK,
        never_redirect=True,
        default_timeout=(settings.WEBHOOKS_CONNECT_TIMEOUT, settings.WEBHOOKS_READ_TIMEOUT),
        user_agent_override=settings.WEBHOOKS_USER_AGENT,
    )).get_session()
    session.trust_env = False  # an HTTP(S)_PROXY from the environment would connect for us, unchecked
    return session


def _read_capped(response, started: float) -> tuple[str, bool]:
    limit, deadline = settings.WEBHOOKS_RESPONSE_MAX_BYTES, started + settings.WEBHOOKS_TOTAL_TIMEOUT
    received = bytearray()
    for chunk in response.iter_content(8192):
        received += chunk
        if len(received) > limit:
            return _excerpt(received[:limit]), True
        if time.monotonic() > deadline:
            raise requests.Timeout(f"the response took longer than {settings.WEBHOOKS_TOTAL_TIMEOUT} s")
    return _excerpt(received), False


def _excerpt(raw: bytes) -> str:
    return raw[:1024].decode("utf-8", errors="replace")


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    return text[0][:300] if text else ""
