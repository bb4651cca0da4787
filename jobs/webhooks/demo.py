"""A webhook receiver for `./run dev` (DEBUG only): the demo's endpoints deliver to it over loopback, so
deliveries succeed or fail the way a real receiver's would, without the internet.

- /demo/webhook-sink/ok/: 200, as a receiver that took the event;
- /demo/webhook-sink/down/: 503 with Retry-After, as a receiver in an outage (the delivery retries with backoff).
"""
from __future__ import annotations

from django.http import Http404, HttpRequest, JsonResponse
from django.urls import path
from django.views.decorators.csrf import csrf_exempt
from django.views.decorators.http import require_POST


@csrf_exempt
@require_POST
def sink(request: HttpRequest, behaviour: str) -> JsonResponse:
    if behaviour == "ok":
        return JsonResponse({"received": request.headers.get("Webhook-Id", "")})
    if behaviour == "down":
        response = JsonResponse({"error": "Service Unavailable: the demo receiver is down"}, status=503)
        response["Retry-After"] = "60"
        response._has_been_logged = True  # an outage on purpose: not a server error to log (django.request)
        return response
    raise Http404


urlpatterns = [path("demo/webhook-sink/<str:behaviour>/", sink, name="demo-webhook-sink")]
