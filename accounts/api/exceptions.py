"""One JSON shape for every API error, whatever raised it:

    {"error": {"code": "validation_error", "message": "a sentence a person understands", "fields": {...}}}

``fields`` (present for validation errors) maps a field — dotted for nested ones, e.g. ``expression.PrimaryCriteria``
— to its messages. Services raise Django's ``ValidationError`` / ``PermissionDenied`` and ``Http404``; apps raise
``ApiError`` for their own refusals (a full queue, a broker down). Under /api/ nothing answers an HTML page.
"""

from __future__ import annotations

import logging
from typing import Any

from django.core.exceptions import PermissionDenied as DjangoPermissionDenied
from django.core.exceptions import RequestDataTooBig
from django.core.exceptions import ValidationError as DjangoValidationError
from django.http import Http404, HttpRequest, JsonResponse
from rest_framework import exceptions, status
from rest_framework.response import Response
from rest_framework.views import exception_handler, set_rollback

from accounts.api.parsers import RequestTooLarge

logger = logging.getLogger(__name__)

#: The codes used for each status when the exception does not bring a better one.
STATUS_CODES = {
    400: "validation_error",
    401: "not_authenticated",
    403: "permission_denied",
    404: "not_found",
    405: "method_not_allowed",
    406: "not_acceptable",
    409: "conflict",
    413: "request_too_large",
    415: "unsupported_media_type",
    429: "throttled",
    500: "server_error",
    503: "service_unavailable",
}


class ApiError(exceptions.APIException):
    """A refusal with its own status and code, e.g. ``ApiError(429, "run_limit", "You already have 3 counts…")``."""

    def __init__(self, status_code: int, code: str, message: str) -> None:
        self.status_code = status_code
        super().__init__(detail=message, code=code)


def error_body(*, code: str, message: str, fields: dict[str, list[str]] | None = None) -> dict[str, Any]:
    error: dict[str, Any] = {"code": code, "message": message}
    if fields:
        error["fields"] = fields
    return {"error": error}


def _flatten(detail: Any, prefix: str = "") -> dict[str, list[str]]:
    """DRF's nested error detail → {"field.sub": ["message", ...]} ("non_field_errors" stays as it is)."""
    out: dict[str, list[str]] = {}
    if isinstance(detail, dict):
        for key, value in detail.items():
            out.update(_flatten(value, f"{prefix}.{key}" if prefix else str(key)))
    elif isinstance(detail, list):
        if all(not isinstance(item, dict | list) for item in detail):
            out[prefix or "non_field_errors"] = [str(item) for item in detail]
        else:
            for index, item in enumerate(detail):
                out.update(_flatten(item, f"{prefix}[{index}]" if prefix else f"[{index}]"))
    else:
        out[prefix or "non_field_errors"] = [str(detail)]
    return out


def _validation_message(fields: dict[str, list[str]]) -> str:
    general = fields.get("non_field_errors")
    if general and len(fields) == 1:
        return " ".join(general)
    named = [name for name in fields if name != "non_field_errors"]
    first = fields[named[0]][0] if named else ""
    if len(named) == 1:
        return f"{named[0]}: {first}"
    return f"Some fields are not valid ({', '.join(named[:10])}); nothing was changed."


def _django_validation_fields(exc: DjangoValidationError) -> dict[str, list[str]]:
    if hasattr(exc, "error_dict"):
        return {key: [str(m) for m in messages] for key, messages in exc.message_dict.items()}
    return {"non_field_errors": [str(m) for m in exc.messages]}


def api_exception_handler(exc: Exception, context: dict[str, Any]) -> Response | None:
    """DRF's EXCEPTION_HANDLER: every error in the one shape. Unexpected exceptions are logged with their
    traceback and answered with a plain 500 body (the details stay in the log, never in the response)."""
    if isinstance(exc, DjangoValidationError):
        fields = _django_validation_fields(exc)
        exc = exceptions.ValidationError(detail=fields)
    elif isinstance(exc, Http404):
        exc = exceptions.NotFound(str(exc) or "Not found.")
    elif isinstance(exc, DjangoPermissionDenied):
        exc = exceptions.PermissionDenied(str(exc) or "You may not do this.")
    elif isinstance(exc, RequestDataTooBig):
        # DRF reads the whole body through Django before the parser sees it, so Django's own limit
        # (DATA_UPLOAD_MAX_MEMORY_SIZE, above the API's) can be what refuses it: the same 413, never a 500.
        exc = RequestTooLarge()

    response = exception_handler(exc, context)
    if response is None:
        logger.exception("API error in %s", context.get("view").__class__.__name__, exc_info=exc)
        set_rollback()
        return Response(
            error_body(code="server_error", message="Something went wrong on the server; it has been logged."),
            status=status.HTTP_500_INTERNAL_SERVER_ERROR,
        )
    code = STATUS_CODES.get(response.status_code, "error")
    fields: dict[str, list[str]] | None = None
    if isinstance(exc, exceptions.ValidationError):
        fields = _flatten(exc.detail)
        message = _validation_message(fields)
    elif isinstance(exc, exceptions.APIException):
        codes = exc.get_codes()
        if isinstance(codes, str) and codes not in ("invalid", "error"):
            code = codes
        if isinstance(exc, exceptions.ParseError):
            code = "parse_error"
        message = str(exc.detail) if not isinstance(exc.detail, dict | list) else str(exc.default_detail)
        if isinstance(exc, exceptions.Throttled) and exc.wait is not None:
            message = f"Too many requests; try again in {int(exc.wait) + 1} seconds."
    else:
        message = "The request was refused."
    response.data = error_body(code=code, message=message, fields=fields)
    return response


def api_not_found(request: HttpRequest, path: str = "") -> JsonResponse:
    """Any /api/ URL that matches no endpoint: JSON, like every other API answer."""
    return JsonResponse(
        error_body(code="not_found", message=f"There is no API endpoint at {request.path}."), status=404
    )
