"""The API's one parser: JSON, refused with 413 above SOYANG_API_MAX_BODY_BYTES.

DRF reads the request stream itself, past Django's DATA_UPLOAD_MAX_MEMORY_SIZE check, so the limit is enforced
here: by the declared length first, then by reading at most one byte more than the limit.
"""

from __future__ import annotations

import json
from typing import Any

from django.conf import settings
from rest_framework import exceptions, status
from rest_framework.parsers import JSONParser


class RequestTooLarge(exceptions.APIException):
    status_code = status.HTTP_413_REQUEST_ENTITY_TOO_LARGE
    default_code = "request_too_large"

    def __init__(self) -> None:
        limit = settings.SOYANG_API_MAX_BODY_BYTES
        super().__init__(f"The request body is larger than the {limit:,} bytes this API accepts.")


def _refuse_constant(name: str) -> Any:
    raise ValueError(f"{name} is not a JSON number")


def _has_nul(data: Any) -> bool:
    stack = [data]
    while stack:
        item = stack.pop()
        if isinstance(item, str):
            if "\x00" in item:
                return True
        elif isinstance(item, dict):
            stack.extend(item.keys())
            stack.extend(item.values())
        elif isinstance(item, list):
            stack.extend(item)
    return False


class LimitedJSONParser(JSONParser):
    def parse(self, stream: Any, media_type: str | None = None, parser_context: dict[str, Any] | None = None) -> Any:
        limit = settings.SOYANG_API_MAX_BODY_BYTES
        request = (parser_context or {}).get("request")
        declared = request.META.get("CONTENT_LENGTH") if request is not None else None
        try:
            if declared and int(declared) > limit:
                raise RequestTooLarge()
        except ValueError:
            raise exceptions.ParseError("The Content-Length header is not a number.") from None
        raw = stream.read(limit + 1)
        if len(raw) > limit:
            raise RequestTooLarge()
        encoding = (parser_context or {}).get("encoding", settings.DEFAULT_CHARSET)
        try:
            data = json.loads(raw.decode(encoding), parse_constant=_refuse_constant)
            # JSON escapes can spell what no database column holds: lone surrogates (\ud800) are not UTF-8 and
            # PostgreSQL refuses NUL in text and jsonb. Refuse them here, once, instead of failing at the write.
            json.dumps(data, ensure_ascii=False).encode("utf-8")
        except UnicodeError:
            raise exceptions.ParseError(f"The request body is not valid {encoding} text.") from None
        except RecursionError:
            raise exceptions.ParseError("The JSON in the request body is nested too deeply.") from None
        except ValueError as exc:
            raise exceptions.ParseError(f"The request body is not valid JSON ({exc}).") from None
        if _has_nul(data):
            raise exceptions.ParseError("The request body contains a NUL character, which no text field accepts.")
        return data
