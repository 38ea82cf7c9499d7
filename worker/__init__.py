"""The Celery app (``worker.celery``), the one task decorator (``worker.decorators``), the thin tasks that call
services (``worker.tasks``) and the periodic jobs that span apps (``worker.retention``).

``celery -A worker worker -Q site.<key>`` serves one site (queue names: ``jobs.queues``).
"""
