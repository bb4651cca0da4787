"""The client's address, as far as it can be believed behind the proxies of FORWARDED_ALLOW_IPS."""
from __future__ import annotations

import ipaddress

from django.conf import settings
from django.http import HttpRequest

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address


def client_address(request: HttpRequest) -> str:
    """The peer's address, unless the peer is a proxy of FORWARDED_ALLOW_IPS (the same list gunicorn believes
    X-Forwarded-Proto from): then the nearest address in FORWARDED_FOR_HEADER that is not such a proxy.

    Each proxy appends the address it saw to the right of the header, so the entries a trusted proxy
    appended are read from the right; whatever stands left of them is what the client chose to send.
    """
    peer = request.META.get("REMOTE_ADDR", "")
    if not _is_proxy(peer):
        return peer
    header = "HTTP_" + settings.FORWARDED_FOR_HEADER.upper().replace("-", "_")
    hops = [hop.strip() for hop in request.META.get(header, "").split(",")]
    for hop in reversed(hops):
        if _parse(hop) is None:
            return peer  # not an address: nothing left of it can be believed either
        if "*" in settings.FORWARDED_ALLOW_IPS or not _is_proxy(hop):
            return hop
    return peer


def address_key(address: str) -> str:
    """What the throttle counts by: the address itself, or for IPv6 its /64 network (one subscriber is
    handed a whole /64, so single IPv6 addresses would cost an attacker nothing)."""
    parsed = _parse(address)
    if not isinstance(parsed, ipaddress.IPv6Address):
        return address
    if parsed.ipv4_mapped is not None:
        return str(parsed.ipv4_mapped)
    return str(ipaddress.IPv6Network((parsed, 64), strict=False))


def _is_proxy(address: str) -> bool:
    parsed = _parse(address)
    if parsed is None:
        # As gunicorn: a connection without an IP address (a UNIX socket) comes from a local proxy.
        return address == ""
    allowed = settings.FORWARDED_ALLOW_IPS
    return "*" in allowed or any(_parse(entry) == parsed for entry in allowed)


def _parse(address: str) -> IPAddress | None:
    try:
        return ipaddress.ip_address(address)
    except ValueError:
        return None
