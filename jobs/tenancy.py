"""Whose work a job is when the caller does not say: the tenant (and requesting user) in effect.

`enqueue()` takes its tenant explicitly. Code that starts work through Django's tasks API
(`task.enqueue()`) cannot pass one, so the tasks backend reads it from here:

    with jobs.tenant_context(acme, user=request.user):
        send_invoice.enqueue(invoice_id=42)

`TenantContextMiddleware` sets it for every request (the tenant from `TRACKED_TASK_TENANT_RESOLVER`), a
running job sets its own (work a job starts is its tenant's), and outside any the job is a system job.
"""
from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from functools import cache

from django.conf import settings
from django.http import HttpRequest, HttpResponse
from django.utils.module_loading import import_string

from tenants.models import Tenant
from tenants.selectors import tenant_list_for_user

_current: ContextVar[tuple[Tenant | None, object | None] | _RequestTenant] = ContextVar("jobs_tenant",
                                                                                   default=(None, None))


@contextmanager
def tenant_context(tenant: Tenant | None, *, user=None) -> Iterator[None]:
    """Work started inside is `tenant`'s (None: the system's), requested by `user`."""
    token = _current.set((tenant, user))
    try:
        yield
    finally:
        _current.reset(token)


def current_tenant() -> tuple[Tenant | None, object | None]:
    """(tenant, user) in effect here: (None, None) outside any context."""
    value = _current.get()
    return value.resolve() if isinstance(value, _RequestTenant) else value


class _RequestTenant:
    """A request's tenant and user, looked up when work is first started (most requests start none)."""

    def __init__(self, request: HttpRequest) -> None:
        self.request = request
        self._resolved: tuple[Tenant | None, object | None] | None = None

    def resolve(self) -> tuple[Tenant | None, object | None]:
        if self._resolved is None:
            user = getattr(self.request, "user", None)
            self._resolved = (_resolver()(self.request), user if getattr(user, "is_authenticated", False) else None)
        return self._resolved


def tenant_of_request(request: HttpRequest) -> Tenant | None:
    """The default resolver: the signed-in user's tenant when they belong to exactly one (a superuser
    belongs to none: their work is the system's)."""
    user = getattr(request, "user", None)
    if user is None or not user.is_authenticated or user.is_superuser:
        return None
    tenants = list(tenant_list_for_user(user=user)[:2])
    return tenants[0] if len(tenants) == 1 else None


@cache
def _resolver() -> Callable[[HttpRequest], Tenant | None]:
    return import_string(settings.TRACKED_TASK_TENANT_RESOLVER)


class TenantContextMiddleware:
    """Makes the work a request starts through Django's tasks API its tenant's (by
    TRACKED_TASK_TENANT_RESOLVER, a dotted path to `resolver(request) -> Tenant | None`) and its user's.
    Goes after AuthenticationMiddleware."""

    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        token = _current.set(_RequestTenant(request))
        try:
            return self.get_response(request)
        finally:
            _current.reset(token)
