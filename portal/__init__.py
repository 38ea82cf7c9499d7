"""Soyang portal: settings, root URLs and the base views.

Importing the Celery app here makes ``@shared_task`` bind to it whenever Django starts.
"""

from __future__ import annotations

from worker.celery import app as celery_app

__all__ = ["celery_app"]
