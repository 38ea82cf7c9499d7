"""The REST API's shared machinery (generic: no other app is imported here).

Token and session authentication, the default permission (an approved account), the base viewset whose queryset
is always restricted through the permission selectors, pagination, per-user throttling, the size-limited JSON
parser and the one exception handler that gives every error the same JSON shape. The endpoints of each app live
in that app (``<app>/api.py`` or ``<app>/api/``); the router is ``portal/api_urls.py``.
"""
