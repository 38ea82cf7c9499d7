"""Errors of the datasets services, each with a message a person understands. Nothing was changed, unless the
error says otherwise (``NotSubmitted``)."""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from datasets.models import DatasetRequest


class DatasetError(Exception):
    """Base class: the action was refused and nothing was written."""


class InvalidTransition(DatasetError):
    """The request is not in a state that allows this action (HTTP 409)."""


class DownloadRefused(DatasetError):
    """The requester may not download (now): expired, used up, not ready, or the file failed its check."""


class NotSubmitted(DatasetError):
    """A request created and submitted in one step was saved as ``draft`` but its submission was refused (the
    message says why); the draft stays, as when it is saved and submitted in two steps."""

    def __init__(self, draft: DatasetRequest, message: str) -> None:
        super().__init__(message)
        self.draft = draft
