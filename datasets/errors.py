"""Errors of the datasets services, each with a message a person understands. Nothing was changed."""

from __future__ import annotations


class DatasetError(Exception):
    """Base class: the action was refused and nothing was written."""


class InvalidTransition(DatasetError):
    """The request is not in a state that allows this action (HTTP 409)."""


class DownloadRefused(DatasetError):
    """The requester may not download (now): expired, used up, not ready, or the file failed its check."""
