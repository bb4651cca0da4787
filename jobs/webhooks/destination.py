"""Where a webhook may go, and the one way it is sent there.

A destination must be HTTPS (HTTP only where settings allow it, for development), on a port of
WEBHOOKS_ALLOWED_PORTS (or 80 for HTTP), and every address its host resolves to must be globally
routable: no loopback, private, link-local (cloud metadata at 169.254.169.254), CGNAT, unique-local IPv6,
IPv4-mapped or numeric-trick forms of those. The check runs when an endpoint is saved and again before
every send. The request then goes through requests-hardened, which resolves the host once, refuses a
non-public address and connects to that very address (so DNS cannot change the answer between check
and connect); redirects are never followed, proxies from the environment are ignored, and time and
response size are bounded.

Connect and read timeouts bound each wait for a byte and start again with every byte, so a receiver
dripping its TLS handshake, headers or body one byte at a time would hold a worker for as long as it
likes. WEBHOOKS_TOTAL_TIMEOUT is therefore a deadline of its own: when it passes, the connection's socket
is shut down, which ends whatever read or handshake is waiting on it at once.
"""
from __future__ import annotations

import ipaddress
import re
import socket
import threading
import time
from contextvars import ContextVar
from dataclasses import dataclass
from urllib.parse import SplitResult, urlsplit

import requests
from django.conf import settings
from django.core.exceptions import ValidationError
from django.utils.text import get_text_list
from requests_hardened import Config, Manager
from requests_hardened.ip_filter import InvalidIPAddress
from urllib3.connection import HTTPConnection, HTTPSConnection
from urllib3.connectionpool import HTTPConnectionPool, HTTPSConnectionPool

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
    host, port = parts.hostname, _allowed_port(parts, scheme)
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


def allowed_ports(scheme: str) -> list[int]:
    """The ports a destination may use: WEBHOOKS_ALLOWED_PORTS, and 80 for http:// where that is allowed."""
    ports = list(settings.WEBHOOKS_ALLOWED_PORTS)
    if scheme == "http" and settings.WEBHOOKS_ALLOW_HTTP and 80 not in ports:
        ports.insert(0, 80)
    return ports


def _allowed_port(parts: SplitResult, scheme: str) -> int:
    try:
        port = parts.port
    except ValueError:
        _refuse("The port is not a number between 0 and 65535.")
    if port is None:
        port = 443 if scheme == "https" else 80
    ports = allowed_ports(scheme)
    if port not in ports:
        # Only the usual web ports: a delivery's error (refused, reset, not HTTP) would otherwise tell a
        # tenant which services listen on any port of a public host, a port scanner for them.
        choices = get_text_list([str(allowed) for allowed in ports], "or")
        _refuse(f"Port {port} is not allowed; webhooks go to port {choices} only.")
    return port


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
    """POST `body` to `url` once, within WEBHOOKS_TOTAL_TIMEOUT; never raises for network trouble, which is
    returned as `error`."""
    started = time.monotonic()
    reply = Reply()
    deadline = _Deadline(settings.WEBHOOKS_TOTAL_TIMEOUT)
    try:
        with deadline:
            destination_check(url)
            _exchange(url, body, headers, reply)
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
    if deadline.exceeded and not reply.refused:
        # Whatever the cut connection looked like (an error, or a body that merely ended), the receiver
        # did not answer in time.
        reply.error = (f"Timed out: no complete answer within the total timeout of "
                       f"{settings.WEBHOOKS_TOTAL_TIMEOUT:g} s (WEBHOOKS_TOTAL_TIMEOUT).")
    reply.duration_ms = int((time.monotonic() - started) * 1000)
    if reply.status_code is not None and 300 <= reply.status_code < 400 and not reply.error:
        location = (reply.headers or {}).get("Location", "")
        reply.error = f"Redirect ({reply.status_code} to {location[:200]!r}) not followed; webhooks are not redirected."
    return reply


def _exchange(url: str, body: bytes, headers: dict[str, str], reply: Reply) -> None:
    with _session() as session:
        response = session.post(url, data=body, headers=headers, stream=True, allow_redirects=False,
                                timeout=(settings.WEBHOOKS_CONNECT_TIMEOUT, settings.WEBHOOKS_READ_TIMEOUT))
        try:
            reply.status_code = response.status_code
            reply.headers = dict(response.headers)
            reply.excerpt, truncated = _read_capped(response)
            if truncated:
                reply.error = f"Response body longer than {settings.WEBHOOKS_RESPONSE_MAX_BYTES} bytes; not read further."
        finally:
            response.close()


def _session():
    session = Manager(Config(
        ip_filter_enable=True,
        ip_filter_allow_loopback_ips=settings.WEBHOOKS_ALLOW_LOOPBACK,
        never_redirect=True,
        default_timeout=(settings.WEBHOOKS_CONNECT_TIMEOUT, settings.WEBHOOKS_READ_TIMEOUT),
        user_agent_override=settings.WEBHOOKS_USER_AGENT,
    )).get_session()
    session.trust_env = False  # an HTTP(S)_PROXY from the environment would connect for us, unchecked
    for adapter in session.adapters.values():
        adapter.poolmanager.pool_classes_by_scheme = {"http": _WatchedHTTPPool, "https": _WatchedHTTPSPool}
    return session


def _read_capped(response) -> tuple[str, bool]:
    limit = settings.WEBHOOKS_RESPONSE_MAX_BYTES
    received = bytearray()
    for chunk in response.iter_content(8192):
        received += chunk
        if len(received) > limit:
            return _excerpt(received[:limit]), True
    return _excerpt(received), False


class _Deadline:
    """Shuts down the sockets of one delivery when its total time is up. A thread of its own, because
    the worker's thread is the one blocked in the read; it is stopped and joined when the delivery ends.
    `exceeded` tells afterwards whether the delivery ran out of time."""

    def __init__(self, seconds: float) -> None:
        self.seconds = seconds
        self.exceeded = False
        self._at = 0.0
        self._token = None
        self._fired = False
        self._watched: list[socket.socket] = []
        self._lock = threading.Lock()
        self._timer = threading.Timer(seconds, self._fire)
        self._timer.name = "webhook-deadline"

    def __enter__(self) -> _Deadline:
        self._at = time.monotonic() + self.seconds
        self._token = _current_deadline.set(self)
        self._timer.start()
        return self

    def __exit__(self, *exc_info) -> None:
        self._timer.cancel()
        self._timer.join()
        _current_deadline.reset(self._token)
        for sock in self._watched:
            sock.close()
        self.exceeded = self._fired or self.remaining() <= 0

    def remaining(self) -> float:
        return self._at - time.monotonic()

    def watch(self, sock: socket.socket) -> None:
        # A descriptor of our own on the connection: shutting it down ends reads on the original and on
        # the TLS socket later wrapped around it, and no other connection can be given its number while
        # we hold it.
        duplicate = sock.dup()
        with self._lock:
            self._watched.append(duplicate)
            if self._fired:
                _shut_down(duplicate)

    def _fire(self) -> None:
        with self._lock:
            self._fired = True
            for sock in self._watched:
                _shut_down(sock)


def _shut_down(sock: socket.socket) -> None:
    try:
        sock.shutdown(socket.SHUT_RDWR)
    except OSError:
        pass  # no longer connected: nothing is waiting on it


# The delivery under way in this thread: urllib3 opens the socket deep inside requests, where no
# argument of ours reaches.
_current_deadline: ContextVar[_Deadline] = ContextVar("webhook_deadline")


class _Watched:
    """urllib3's connection, its socket handed to the delivery's deadline as soon as it is connected
    (before the TLS handshake, which the deadline bounds too)."""

    def _new_conn(self) -> socket.socket:
        deadline = _current_deadline.get()
        # Name lookups may have used most of the total: connecting must not run past what is left.
        self.timeout = max(0.01, min(self.timeout, deadline.remaining()))
        sock = super()._new_conn()
        deadline.watch(sock)
        return sock


class _WatchedHTTPConnection(_Watched, HTTPConnection):
    pass


class _WatchedHTTPSConnection(_Watched, HTTPSConnection):
    pass


class _WatchedHTTPPool(HTTPConnectionPool):
    ConnectionCls = _WatchedHTTPConnection


class _WatchedHTTPSPool(HTTPSConnectionPool):
    ConnectionCls = _WatchedHTTPSConnection


def _excerpt(raw: bytes) -> str:
    return raw[:1024].decode("utf-8", errors="replace")


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    return text[0][:300] if text else ""
