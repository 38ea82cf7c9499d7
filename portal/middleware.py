"""Request bodies over the portal's limits answer 413 with a sentence, never a 500 or a bare 400.

Django refuses a body larger than ``DATA_UPLOAD_MAX_MEMORY_SIZE`` by raising ``RequestDataTooBig`` wherever the body
is first read: in the CSRF check of a form post, in a view reading ``request.body``, deep in DRF's request. Left
there it surfaces as a 500 (inside DRF) or as Django's generic 400 page. This middleware meets it once, before
anything else reads the body:

- a body is refused by its declared length, before a byte is read: at ``DATA_UPLOAD_MAX_MEMORY_SIZE`` (JSON
  endpoints, form posts), or for a multipart form at the file the page accepts (``_upload_limits``) plus the same
  allowance for its other fields;
- a multipart post to an upload page is then parsed here: its body may be larger than Django's limit, so one of its
  text fields may be over it, and that is refused here too, not in the CSRF check. (Any other body is within
  Django's limit as a whole, so nothing else can trip it; and it is left unread, for views that read the raw body.)

JSON endpoints (a JSON request, or one that asks for JSON) get the API's error shape; pages get a page. The API's
own views are left to its parsers (``accounts.api.parsers``), whose limit is ``SOYANG_API_MAX_BODY_BYTES`` and whose
refusal is the same 413 in the same shape (``accounts.api.exceptions``).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from django.conf import settings
from django.core.exceptions import RequestDataTooBig
from django.http import HttpRequest, HttpResponse, JsonResponse
from django.shortcuts import render
from django.utils.translation import gettext as _
from rest_framework.views import APIView

from accounts.api.exceptions import error_body
from cohorts.definitions.forms import MAX_IMPORT_BYTES


def _upload_limits() -> dict[str, int]:
    """The largest file each upload page accepts, by URL name (read per request: settings may change in tests)."""
    return {
        "cohorts:definition_import": MAX_IMPORT_BYTES,
        "datasets:request_new": int(settings.SOYANG_DATASET_MAX_UPLOAD_BYTES),
    }


def _declared_length(request: HttpRequest) -> int:
    try:
        return max(int(request.META.get("CONTENT_LENGTH") or 0), 0)
    except ValueError:
        return 0


def _is_multipart(request: HttpRequest) -> bool:
    return request.content_type == "multipart/form-data"


def _wants_json(request: HttpRequest) -> bool:
    accept = request.headers.get("Accept", "")
    return request.content_type == "application/json" or ("application/json" in accept and "text/html" not in accept)


def _upload_allowance(request: HttpRequest) -> int:
    """The file this request may carry on top of its fields: only a multipart post to an upload page has one."""
    match = request.resolver_match
    if not _is_multipart(request) or match is None:
        return 0
    return _upload_limits().get(match.view_name, 0)


def body_limit(request: HttpRequest) -> int:
    """The largest body this request may declare, in bytes."""
    return _upload_allowance(request) + int(settings.DATA_UPLOAD_MAX_MEMORY_SIZE)


def request_too_large(request: HttpRequest, limit: int) -> HttpResponse:
    """The 413 answer: the API's error shape for a JSON request, a page for a page."""
    megabytes = f"{limit / (1024 * 1024):.1f}"
    message = _("The request is larger than the %(mb)s MB this page accepts; nothing was saved.") % {"mb": megabytes}
    if _wants_json(request):
        return JsonResponse(error_body(code="request_too_large", message=message), status=413)
    return render(request, "413.html", {"message": message}, status=413)


def _is_api_view(view_func: Callable[..., Any]) -> bool:
    view_class = getattr(view_func, "cls", None)
    return isinstance(view_class, type) and issubclass(view_class, APIView)


class RequestSizeLimitMiddleware:
    """Before the CSRF check (which reads a form post's body): see the module docstring."""

    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        return self.get_response(request)

    def process_view(
        self, request: HttpRequest, view_func: Callable[..., Any], args: Any, kwargs: Any
    ) -> HttpResponse | None:
        if _is_api_view(view_func):
            return None
        limit = body_limit(request)
        if _declared_length(request) > limit:
            return request_too_large(request, limit)
        if request.method == "POST" and _upload_allowance(request):
            try:
                # Parses the upload now, as the CSRF check would next.
                request.POST  # noqa: B018
            except RequestDataTooBig:
                return request_too_large(request, int(settings.DATA_UPLOAD_MAX_MEMORY_SIZE))
        return None
