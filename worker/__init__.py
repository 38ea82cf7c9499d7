"""Celery app, routing (a queue per site) and the thin tasks that call services.

``celery -A worker worker -Q site.<key>`` serves one site.
"""
