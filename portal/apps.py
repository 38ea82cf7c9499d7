from __future__ import annotations

from django.apps import AppConfig


class PortalConfig(AppConfig):
    """The portal itself: settings, root URLs, base views and the demo set-up command."""

    name = "portal"
