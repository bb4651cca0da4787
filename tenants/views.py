"""The page a refused request gets (settings' handler403): in the admin's look for staff in the admin,
saying what the user's roles allow and whom to ask for more; the site's own look elsewhere. The JSON
API answers its refusals itself."""
from __future__ import annotations

from django.contrib import admin
from django.http import HttpRequest, HttpResponse
from django.template.response import TemplateResponse
from django.urls import reverse

from tenants.models import ROLE_ALLOWS
from tenants.selectors import memberships_for_user, tenant_admin_names


def permission_denied(request: HttpRequest, exception: Exception | None = None) -> HttpResponse:
    user = request.user
    roles = [
        {"tenant": membership.tenant, "role": membership.get_role_display(), "allows": ROLE_ALLOWS[membership.role],
         "ask": tenant_admin_names(tenant=membership.tenant, exclude_user=user)}
        for membership in memberships_for_user(user=user)
    ]
    in_admin = request.path.startswith(reverse("admin:index")) and getattr(user, "is_staff", False)
    context = {
        "title": "You can't do this here",
        "reason": _reason(exception),
        "roles": roles,
        "superuser": getattr(user, "is_superuser", False),
        "back": _same_site_referer(request),
    }
    if in_admin:
        context.update(admin.site.each_context(request))
    return TemplateResponse(request, "admin/403.html" if in_admin else "403.html", context, status=403)


def _reason(exception: Exception | None) -> str:
    # Messages the project raises are written for the user ("Only operators of Acme may stop its jobs");
    # Django's own carry no text.
    text = str(exception or "").strip()
    return text if text and text != "None" else ""


def _same_site_referer(request: HttpRequest) -> str:
    referer = request.META.get("HTTP_REFERER", "")
    host = request.get_host()
    for scheme in ("https://", "http://"):
        prefix = f"{scheme}{host}/"
        if referer.startswith(prefix):
            return referer
    return ""
