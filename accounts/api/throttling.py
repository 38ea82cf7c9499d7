"""Per-user throttling (per address for anonymous calls). Rates come from the settings at each call, so they can
be changed per environment (SOYANG_API_USER_RATE, SOYANG_API_ANON_RATE) and in tests."""

from __future__ import annotations

from typing import Any

from django.conf import settings
from rest_framework.request import Request
from rest_framework.throttling import SimpleRateThrottle


class PerUserThrottle(SimpleRateThrottle):
    scope = "api"

    def get_rate(self) -> str:
        return settings.SOYANG_API_USER_RATE

    def allow_request(self, request: Request, view: Any) -> bool:
        authenticated = bool(request.user and request.user.is_authenticated)
        self.rate = settings.SOYANG_API_USER_RATE if authenticated else settings.SOYANG_API_ANON_RATE
        self.num_requests, self.duration = self.parse_rate(self.rate)
        return super().allow_request(request, view)

    def get_cache_key(self, request: Request, view: Any) -> str:
        if request.user and request.user.is_authenticated:
            return f"throttle_api_user_{request.user.pk}"
        return f"throttle_api_anon_{self.get_ident(request)}"
