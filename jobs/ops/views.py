"""Probes and metrics for the platform: /healthz, /readyz, /metrics. Each only coordinates."""
from __future__ import annotations

from django.conf import settings
from django.http import Http404, HttpRequest, HttpResponse, JsonResponse
from django.views.decorators.cache import never_cache
from django.views.decorators.http import require_safe
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from jobs.bearer import bearer_matches
from jobs.ops import health, metrics


@never_cache
@require_safe
def healthz(request: HttpRequest) -> JsonResponse:
    """The process is up and serving requests. Touches neither the database nor Redis."""
    return JsonResponse({"status": health.OK})


@never_cache
@require_safe
def readyz(request: HttpRequest) -> JsonResponse:
    """Every check with its status and reason; 200 when ok or degraded, 503 when down. Counts only."""
    result = health.readiness()
    return JsonResponse(result.as_json(), status=503 if result.status == health.DOWN else 200)


@never_cache
@require_safe
def metrics_view(request: HttpRequest) -> HttpResponse:
    """Prometheus text format, for `Authorization: Bearer <METRICS_TOKEN>` only (never a token in the URL)."""
    token = settings.METRICS_TOKEN
    if not token:
        raise Http404("Metrics are off: METRICS_TOKEN is not set.")
    if not bearer_matches(request, token):
        return HttpResponse("Send Authorization: Bearer <METRICS_TOKEN>.\n", status=401,
                            content_type="text/plain; charset=utf-8",
                            headers={"WWW-Authenticate": 'Bearer realm="metrics"'})
    return HttpResponse(generate_latest(metrics.REGISTRY), content_type=CONTENT_TYPE_LATEST)


class ProbeMiddleware:
    """Answers /healthz and /readyz before anything else runs: a platform's probe asks by address (a pod
    IP, say), which ALLOWED_HOSTS rightly refuses for every other page; the probes tell no secrets."""

    def __init__(self, get_response) -> None:
        self.get_response = get_response
        self.probes = {"/healthz": healthz, "/readyz": readyz}

    def __call__(self, request: HttpRequest) -> HttpResponse:
        probe = self.probes.get(request.path_info)
        if probe is not None:
            return probe(request)
        return self.get_response(request)

