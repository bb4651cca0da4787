"""The tenant onboarding job kind."""
from __future__ import annotations

from jobs import job_kind


@job_kind("tenants.onboard", queue="critical", max_attempts=5, timeout=300, backoff=10.0)
def onboard(ctx, *, admin_email: str, admin_username: str, webhook_url: str = "") -> dict:
    """Set up a new tenant step by step (retention, first admin, welcome email, default webhook); a
    retry skips the steps already done."""
    from tenants.services import tenant_onboard

    ctx.tenant.refresh_from_db()
    return tenant_onboard(tenant=ctx.tenant, progress=ctx.progress, admin_email=admin_email,
                          admin_username=admin_username, webhook_url=webhook_url)
