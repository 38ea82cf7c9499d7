"""Errors of the cohorts services, each with a message a person understands."""

from __future__ import annotations


class CohortServiceError(Exception):
    """Base class: the request was refused and nothing was written."""


class RunLimitReached(CohortServiceError):
    pass


class BrokerUnavailable(CohortServiceError):
    """The task queue does not answer: nothing can be counted now (HTTP 503)."""


class SourceNotReady(CohortServiceError):
    pass


class RunNotCancellable(CohortServiceError):
    pass


class DraftNotAllowed(CohortServiceError):
    """The user may not change the definition, so may not count its unsaved draft either."""


#: The HTTP status of each way the services refuse to start a count: the user's limit, no broker, a site not ready.
REFUSAL_STATUS: dict[type[Exception], int] = {RunLimitReached: 429, BrokerUnavailable: 503, SourceNotReady: 400}
