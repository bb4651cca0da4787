"""`/api/`: version 1 of the JSON API, and a JSON 404 for every other address under it."""
from __future__ import annotations

import logging
from collections.abc import Callable
from functools import wraps

from django.http import Http404, HttpRequest, HttpResponse
from django.urls import URLPattern, path, re_path
from django.views.decorators.csrf import csrf_exempt

from jobs.api.errors import error_response, internal_error_response
from jobs.api.views import api
from jobs.staff import acting_through

logger = logging.getLogger(__name__)


def json_refusals(view: Callable[..., HttpResponse]) -> Callable[..., HttpResponse]:
    """Ninja answers a wrong method (405) and its own root (404) outside its exception handlers, in
    plain text or HTML, and its schema and docs views have none; here they get the API's error shape.
    Whatever the request, what it acted through is forgotten when it ends."""

    @wraps(view)
    def wrapper(request: HttpRequest, *args, **kwargs) -> HttpResponse:
        through = acting_through.set("")  # TokenAuth names the token; it names nothing past this request
        try:
            response = view(request, *args, **kwargs)
        except Http404:
            return unknown_address(request)
        except Exception:
            logger.exception("API request %s %s failed", request.method, request.path)
            return internal_error_response()
        finally:
            acting_through.reset(through)
        if response.status_code == 405 and "json" not in response.get("Content-Type", ""):
            allowed = response.get("Allow", "")
            return error_response(405, f"{request.method} is not allowed here; use {allowed}.",
                                  headers={"Allow": allowed})
        return response

    wrapper.csrf_exempt = True
    return wrapper


@csrf_exempt
def unknown_address(request: HttpRequest, *args: object, **kwargs: object) -> HttpResponse:
    return error_response(404, f"No API endpoint at {request.path}. The schema is at /api/v1/openapi.json.")


def _v1_patterns() -> list[URLPattern]:
    patterns, _, _ = api.urls
    for pattern in patterns:
        pattern.callback = json_refusals(pattern.callback)
    return patterns


urlpatterns = [
    path("v1/", (_v1_patterns(), "ninja", "api-v1")),
    re_path(r"", unknown_address, name="api-unknown"),
]
