"""Errors of :mod:`nifi.edge`. Expected bad input is not an error: it becomes a quarantine outcome."""

from __future__ import annotations

from lake_schemas.errors import RadlakeError


class IngestError(RadlakeError):
    """Base class of the errors raised by :mod:`nifi.edge`."""


class StowError(IngestError):
    """A request is not a STOW-RS request this edge can read (wrong media type, malformed multipart)."""

    def __init__(self, message: str, status: int = 400, reason: str = "BAD_STOW_REQUEST") -> None:
        super().__init__(message)
        self.status = status
        self.reason = reason  # machine-readable, e.g. REQUEST_TOO_LARGE


class EdgeUnavailable(IngestError):
    """Vault, the object store, the registry or Kafka failed: the request must be retried (HTTP 503)."""


class TokenError(IngestError):
    """A provider token could not be read from or written to Vault."""


class UploadError(IngestError):
    """The upload client could not complete (edge unreachable after retries, refused credentials)."""


class JournalError(IngestError):
    """The local upload journal cannot be read or written."""
