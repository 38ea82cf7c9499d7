"""OpenAPI pieces shared by every endpoint: the error shape, the authentication schemes, and a hook that
documents the error responses every operation can give (so clients and schemathesis know them)."""

from __future__ import annotations

from typing import Any

from drf_spectacular.extensions import OpenApiAuthenticationExtension
from rest_framework import serializers


class ErrorDetailSerializer(serializers.Serializer):
    code = serializers.CharField(help_text="Stable, machine-readable, e.g. validation_error, not_found, throttled.")
    message = serializers.CharField(help_text="A sentence a person understands.")
    fields = serializers.DictField(
        child=serializers.ListField(child=serializers.CharField()),
        required=False,
        help_text="Validation errors per field (dotted path for nested fields).",
    )


class ErrorSerializer(serializers.Serializer):
    error = ErrorDetailSerializer()


class TokenScheme(OpenApiAuthenticationExtension):
    target_class = "accounts.api.authentication.ApiTokenAuthentication"
    name = "tokenAuth"

    def get_security_definition(self, auto_schema: Any) -> dict[str, Any]:
        return {
            "type": "apiKey",
            "in": "header",
            "name": "Authorization",
            "description": "A personal token made on the portal's API tokens page: `Token <secret>`.",
        }


class SessionScheme(OpenApiAuthenticationExtension):
    target_class = "accounts.api.authentication.CsrfSessionAuthentication"
    name = "cookieAuth"

    def get_security_definition(self, auto_schema: Any) -> dict[str, Any]:
        return {"type": "apiKey", "in": "cookie", "name": "sessionid"}


ERROR_STATUSES = {
    "400": "Invalid input (validation_error or parse_error); nothing was changed.",
    "401": "No credentials, or a token that is unknown, expired, revoked or of an account not approved.",
    "403": "The object is visible to you but this action is not yours to take.",
    "404": "No such object, or one you may not see (the same answer for both).",
    "405": "This method is not offered here.",
    "413": "The request body is too large.",
    "415": "The request body is not JSON.",
    "429": "Too many requests (throttled, or too many counts running).",
}
WRITE_ONLY_STATUSES = ("413", "415")


def add_error_responses(result: dict[str, Any], generator: Any, request: Any, public: bool) -> dict[str, Any]:
    """drf-spectacular postprocessing hook: every operation documents the error shape for every error status."""
    schemas = result.setdefault("components", {}).setdefault("schemas", {})
    schemas.setdefault(
        "Error",
        {
            "type": "object",
            "properties": {
                "error": {
                    "type": "object",
                    "properties": {
                        "code": {"type": "string"},
                        "message": {"type": "string"},
                        "fields": {
                            "type": "object",
                            "additionalProperties": {"type": "array", "items": {"type": "string"}},
                        },
                    },
                    "required": ["code", "message"],
                }
            },
            "required": ["error"],
        },
    )
    reference = {"application/json": {"schema": {"$ref": "#/components/schemas/Error"}}}
    for operations in result.get("paths", {}).values():
        for method, operation in operations.items():
            if method not in ("get", "post", "put", "patch", "delete"):
                continue
            responses = operation.setdefault("responses", {})
            for code, description in ERROR_STATUSES.items():
                if code in WRITE_ONLY_STATUSES and method in ("get", "delete"):
                    continue
                responses.setdefault(code, {"description": description, "content": reference})
    return result
