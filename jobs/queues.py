"""The Celery queues: one per site, served by the worker next to the site's database, and the portal's own.

The only place a queue name is built: ``celery -A worker worker -Q site.<key>`` serves one site.
"""

from __future__ import annotations

#: Work of the portal itself (beat jobs that fan out to the sites, housekeeping of the portal's tables).
PORTAL_QUEUE = "portal"


def site_queue(source_key: str) -> str:
    """The queue the worker of one site consumes: the only process allowed to reach the site's database."""
    return f"site.{source_key}"
