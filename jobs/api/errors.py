"""One error shape for every refusal of the API: `{"error": {"code", "message", "field"?, "details"?}}`.

Ninja's own errors (validation, authentication, unparseable bodies), Django's (404, 405, validation
errors from the engine) and unexpected exceptions all come out this way.
"""
from __future__ import annotations

import logging
from collections.abc import Iterable

from django.conf import settings
from django.core.exceptions import PermissionDenied, RequestDataTooBig
from django.core.exceptions import ValidationError as DjangoValidationError
from django.http import Http404, HttpRequest, HttpResponse, JsonResponse
from ninja import NinjaAPI
from ninja.errors import AuthenticationError, HttpError
from ninja.errors import ValidationError as NinjaValidationError

from jobs import eventlog
from jobs.api.schemas import PATTERN_MESSAGES
from jobs.api.selectors import CursorInvalid
from jobs.api.services import TokenRefused

logger = logging.getLogger(__name__)

CODES = {400: "bad_request", 401: "unauthorized", 403: "forbidden", 404: "not_found", 405: "method_not_allowed",
         409: "conflict", 413: "too_large", 422: "validation_error", 429: "rate_limited", 500: "internal_error"}
# Where ninja says a bad value came from; the client only needs the field's own name.
_SOURCES = {"body", "query", "path", "header", "cookie", "form", "file"}
BEARER = 'Bearer realm="api"'


class ApiError(Exception):
    """A refusal a view raises: status, code, message and (optionally) the field at fault."""

    def __init__(self, status: int, message: str, *, code: str | None = None, field: str | None = None,
                 headers: dict[str, str] | None = None) -> None:
        super().__init__(message)
        self.status, self.message, self.field = status, message, field
        self.code = code or CODES.get(status, "error")
        self.headers = headers or {}


def error_response(status: int, message: str, *, code: str | None = None, field: str | None = None,
                   details: list[dict[str, str]] | None = None, headers: dict[str, str] | None = None,
                   ) -> JsonResponse:
    body: dict = {"code": code or CODES.get(status, "error"), "message": message}
    if field:
        body["field"] = field
    if details and len(details) > 1:
        body["details"] = details
    response = JsonResponse({"error": body}, status=status)
    for name, value in (headers or {}).items():
        response[name] = value
    if status == 401 and "WWW-Authenticate" not in response:
        response["WWW-Authenticate"] = BEARER
    return response


def field_errors_response(errors: Iterable[tuple[str, str]]) -> JsonResponse:
    """422 naming every field at fault; the first one is the headline."""
    details = [{"field": field, "message": message} for field, message in errors]
    if not details:
        return error_response(422, "The request is not valid.")
    first = details[0]
    message = f"{first['field']}: {first['message']}" if first["field"] else first["message"]
    if len(details) > 1:
        message += f" (and {len(details) - 1} more)"
    return error_response(422, message, field=first["field"] or None, details=details)


def ninja_field_errors(errors: list[dict], *, tags: frozenset[str] = frozenset()) -> list[tuple[str, str]]:
    """(field, message) pairs from ninja's validation errors: `payload.steps`, `status`, `kind`."""
    pairs = []
    for error in errors:
        loc = list(error.get("loc", ()))
        if loc and loc[0] in _SOURCES:
            loc.pop(0)
        if loc and loc[0] in _PARAMETERS:
            loc.pop(0)
        if loc and loc[0] in tags:
            loc.pop(0)  # the union member, named after the kind: the client sent `kind` itself
        pairs.append(_describe(error, loc, tags))
    return pairs


def _field_name(loc: list) -> str:
    """`payload.steps`, `status[1]`: list positions in brackets, as the engine names them."""
    name = ""
    for part in loc:
        name += f"[{part}]" if isinstance(part, int) else (f".{part}" if name else str(part))
    return name


# The views' parameters that hold a whole body or query (jobs.api.views): not part of a field's name.
_PARAMETERS = {"data", "filters"}


def _describe(error: dict, loc: list, tags: frozenset[str]) -> tuple[str, str]:
    kind, field = error.get("type", ""), _field_name(loc)
    public = ", ".join(sorted(tags)) or "none"
    if kind == "union_tag_not_found":
        return "kind", f"Field required; public kinds: {public}."
    if kind == "union_tag_invalid" or (kind == "literal_error" and loc == ["kind"]):
        return "kind", f"Not a job kind this API may start; public kinds: {public}."
    if kind == "extra_forbidden":
        return field, "Unknown field."
    if kind == "json_invalid":
        return "", "The body is not valid JSON."
    if kind == "missing" and not loc:
        return "", "A JSON body is required."
    if kind == "string_pattern_mismatch":
        pattern = error.get("ctx", {}).get("pattern", "")
        return field, PATTERN_MESSAGES.get(pattern, f"Does not match the pattern {pattern}.")
    message = str(error.get("msg", "Invalid value")).removeprefix("Value error, ").rstrip(".") + "."
    return field, message


def django_field_errors(exc: DjangoValidationError) -> list[tuple[str, str]]:
    if hasattr(exc, "error_dict"):
        return [(field if field != "__all__" else "", message) for field, messages in exc.message_dict.items()
                for message in messages]
    return [("", message) for message in exc.messages]


def install(api: NinjaAPI, *, tags: frozenset[str]) -> None:
    """Route every exception the API can meet to the one error shape."""

    @api.exception_handler(ApiError)
    def api_error(request: HttpRequest, exc: ApiError) -> HttpResponse:
        return error_response(exc.status, exc.message, code=exc.code, field=exc.field, headers=exc.headers)

    @api.exception_handler(TokenRefused)
    def token_refused(request: HttpRequest, exc: TokenRefused) -> HttpResponse:
        challenge = "invalid_token" if exc.status == 401 else exc.code if exc.code == "insufficient_scope" else None
        headers = {"WWW-Authenticate": f'{BEARER}, error="{challenge}"'} if challenge else {}
        return error_response(exc.status, str(exc), code=exc.code, headers=headers)

    @api.exception_handler(AuthenticationError)
    def unauthenticated(request: HttpRequest, exc: AuthenticationError) -> HttpResponse:
        return error_response(401, "Send an API token: Authorization: Bearer <token>.")

    @api.exception_handler(NinjaValidationError)
    def invalid(request: HttpRequest, exc: NinjaValidationError) -> HttpResponse:
        return field_errors_response(ninja_field_errors(exc.errors, tags=tags))

    @api.exception_handler(DjangoValidationError)
    def invalid_for_engine(request: HttpRequest, exc: DjangoValidationError) -> HttpResponse:
        return field_errors_response(django_field_errors(exc))

    @api.exception_handler(CursorInvalid)
    def bad_cursor(request: HttpRequest, exc: CursorInvalid) -> HttpResponse:
        return error_response(400, str(exc), code="invalid_cursor", field="cursor")

    @api.exception_handler(HttpError)
    def http_error(request: HttpRequest, exc: HttpError) -> HttpResponse:
        message = exc.message
        if exc.status_code == 400 and message.startswith("Cannot parse request body"):
            message = "The body is not valid JSON."
        return error_response(exc.status_code, message)

    @api.exception_handler(Http404)
    def not_found(request: HttpRequest, exc: Http404) -> HttpResponse:
        return error_response(404, str(exc) or "Not found.")

    @api.exception_handler(RequestDataTooBig)
    def too_large(request: HttpRequest, exc: RequestDataTooBig) -> HttpResponse:
        return error_response(413, f"The body is over {settings.DATA_UPLOAD_MAX_MEMORY_SIZE} bytes.")

    @api.exception_handler(PermissionDenied)
    def forbidden(request: HttpRequest, exc: PermissionDenied) -> HttpResponse:
        return error_response(403, str(exc) or "Forbidden.")

    @api.exception_handler(Exception)
    def unexpected(request: HttpRequest, exc: Exception) -> HttpResponse:
        logger.exception("API request %s %s failed", request.method, request.path)
        return internal_error_response()


def internal_error_response() -> JsonResponse:
    request_id = eventlog.current_request_id()
    suffix = f" (request id {request_id})" if request_id else ""
    return error_response(500, f"Something went wrong on our side; it was logged{suffix}.")
