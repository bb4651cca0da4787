from __future__ import annotations

from functools import wraps

from django.contrib import admin
from django.core.exceptions import PermissionDenied
from django.urls import include, path
from django_rq.urls import get_admin_urlpatterns, get_api_urlpatterns


def superuser_only(view):
    """django-rq checks only `is_staff`; its dashboard shows every tenant's jobs, so superusers only."""
    protected = admin.site.admin_view(view)

    @wraps(view)
    def wrapper(request, *args, **kwargs):
        if request.user.is_authenticated and not request.user.is_superuser:
            raise PermissionDenied
        return protected(request, *args, **kwargs)

    return wrapper


def _superuser_api_urlpatterns():
    # stats.json and metrics would also accept any staff session; wrap them like the rest.
    patterns = get_api_urlpatterns()
    for pattern in patterns:
        pattern.callback = superuser_only(pattern.callback)
    return patterns


rq_dashboard = _superuser_api_urlpatterns() + get_admin_urlpatterns(view_wrapper=superuser_only)

urlpatterns = [
    path("admin/rq/", include((rq_dashboard, "django_rq"))),
    path("admin/", admin.site.urls),
]
