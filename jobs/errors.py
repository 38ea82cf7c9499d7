"""Errors of the jobs app."""

from __future__ import annotations


class BrokerUnreachable(Exception):
    """The task queue does not answer: no job can be handed to a worker now."""


class JobHeld(Exception):
    """Another worker holds a live lease on the job: the task looks again in ``retry_in`` seconds, when the lease
    would have lapsed (the job ends when that worker finishes it or dies)."""

    def __init__(self, retry_in: float) -> None:
        super().__init__(f"held by another worker; again in {retry_in:.1f} s")
        self.retry_in = retry_in


class SiteUnreachable(Exception):
    """The site's database is unreachable or locked right now: the job gave its lease back, and the task tries again
    later, then gives the job up (``worker.decorators``)."""
