from __future__ import annotations

from django.conf import settings
from django.contrib import admin
from django.contrib.auth import views as auth_views
from django.urls import include, path
from django.views.generic import RedirectView

from jobs import dashboard
from jobs.webhooks import demo

# Lists take the screen's whole width (at 1440 px the side navigation left them 790 px and hid columns);
# every page is a click away from the home page's dashboard and the breadcrumbs.
admin.site.enable_nav_sidebar = False

urlpatterns = [
    path("admin/rq/", include((dashboard.urlpatterns(), "django_rq"))),
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

if settings.DEBUG:  # the demo's webhook receiver (./run dev), never in production
    urlpatterns += demo.urlpatterns

handler403 = "tenants.views.permission_denied"
