from __future__ import annotations

from django.urls import path

from reports import views

app_name = "reports"

urlpatterns = [
    path("", views.report_list, name="list"),
    path("new/", views.report_choose, name="choose"),
    path("new/<str:type_name>/", views.report_new, name="new"),
    path("<uuid:pk>/", views.report_detail, name="detail"),
    path("<uuid:pk>/status.json", views.report_status, name="status"),
    path("<uuid:pk>/download/", views.report_download, name="download"),
    path("download/<str:token>/", views.report_download_signed, name="signed_download"),
]
