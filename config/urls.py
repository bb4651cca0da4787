from __future__ import annotations

from functools import wraps
from hmac import compare_digest

from django.conf import settings
from django.contrib import admin
from django.contrib.auth import views as auth_views
from django.core.exceptions import PermissionDenied
from django.http import JsonResponse
from django.urls import include, path
from django.views.generic import RedirectView
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


def bearer_or_superuser(view):
    """stats.json and metrics: a superuser's session, or `Authorization: Bearer <RQ_API_TOKEN>`.

    django-rq alone would also accept any staff session, or the token inside the URL (where it ends
    up in access logs and browser history); neither is accepted here.
    """

    @wraps(view)
    def wrapper(request, *args, **kwargs):
        header = request.headers.get("Authorization", "")
        token = header.removeprefix("Bearer ").strip() if header.startswith("Bearer ") else ""
        if settings.RQ_API_TOKEN and token and compare_digest(token, settings.RQ_API_TOKEN):
            return view(request)
        if request.user.is_authenticated and request.user.is_superuser:
            return view(request)
        if request.user.is_authenticated:
            raise PermissionDenied
        return JsonResponse({"error": "unauthorized", "message": "Send Authorization: Bearer <RQ_API_TOKEN>."},
                            status=401, headers={"WWW-Authenticate": "Bearer"})

    return wrapper


def _api_urlpatterns():
    patterns = [pattern for pattern in get_api_urlpatterns() if "token" not in pattern.pattern.regex.groupindex]
    for pattern in patterns:
        pattern.callback = bearer_or_superuser(pattern.callback)
    return patterns


rq_dashboard = _api_urlpatterns() + get_admin_urlpatterns(view_wrapper=superuser_only)

urlpatterns = [
    path("admin/rq/", include((rq_dashboard, "django_rq"))),
    path("admin/", admin.site.urls),
    path("reports/", include("reports.urls")),
    path("api/", include("jobs.api.urls")),
    path("", include("jobs.ops.urls")),
    path("accounts/login/", auth_views.LoginView.as_view(redirect_authenticated_user=True), name="login"),
    path("accounts/logout/", auth_views.LogoutView.as_view(), name="logout"),
    path("", RedirectView.as_view(pattern_name="reports:list"), name="home"),
    # Only the end of a password reset: the link in the welcome email. Nobody can ask for a reset by
    # address here (that form would send mail on anyone's request).
    path("accounts/reset/<uidb64>/<token>/", auth_views.PasswordResetConfirmView.as_view(),
         name="password_reset_confirm"),
    path("accounts/reset/done/", auth_views.PasswordResetCompleteView.as_view(), name="password_reset_complete"),
]
