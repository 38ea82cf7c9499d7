"""What the audit log takes from an HTTP request."""

from __future__ import annotations

from django.http import HttpRequest


def client_ip(request: HttpRequest | None) -> str | None:
    """The peer address of the request. Behind a reverse proxy, the proxy must set REMOTE_ADDR (e.g. uWSGI or
    gunicorn with a trusted forwarded-for): a client-supplied X-Forwarded-For is never trusted here, as it
    would let anybody write any address into the audit log."""
    if request is None:
        return None
    return request.META.get("REMOTE_ADDR") or None
