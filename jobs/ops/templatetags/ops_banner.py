"""The admin's Redis outage banner: on every admin page while Redis is unreachable, with how many jobs
wait to be handed over (the user's tenants' only, for staff who are not superusers)."""
from __future__ import annotations

from django import template
from django.conf import settings
from django.utils.html import format_html

from jobs.ops import health, probes
from tenants.models import Role
from tenants.selectors import tenant_ids_with_role

register = template.Library()


@register.simple_tag(takes_context=True)
def redis_outage_banner(context) -> str:
    request = context.get("request")
    user = getattr(request, "user", None)
    if user is None or not (user.is_active and user.is_staff):
        return ""
    if probes.redis_state_cached().reachable:
        return ""
    limit = settings.JOBS_ADMIN_COUNT_LIMIT
    tenant_ids = None if user.is_superuser else tenant_ids_with_role(user=user, role=Role.VIEWER)
    count = health.pending_handovers(tenant_ids=tenant_ids, limit=limit + 1)
    shown = f"More than {limit}" if count > limit else str(count)
    whose = "" if user.is_superuser else " of your tenants"
    return format_html(
        '<ul class="messagelist" id="redis-outage"><li class="warning">Redis is unreachable. New and due jobs are '
        'kept in the database and handed to the workers once it is back: <strong>{} job(s)</strong>{} waiting to '
        'be handed over.</li></ul>', shown, whose)
