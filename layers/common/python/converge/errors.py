"""Typed failures shared by every service; each maps to one HTTP status or to a batch item failure."""

from __future__ import annotations


class ConvergeError(Exception):
    """Base of the project's own errors."""


class MalformedEventError(ConvergeError):
    """An inbound record is not a valid event (not JSON, missing metadata, wrong schema version, ...)."""


class UnknownEventError(ConvergeError):
    """An inbound event has a detail-type this consumer does not handle."""


class TransientError(ConvergeError):
    """A failure worth retrying (throttling, an unavailable dependency)."""
