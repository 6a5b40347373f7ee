"""Exceptions of the local stack. Each names the missing piece and what to do about it."""

from __future__ import annotations

from lake_schemas.errors import RadlakeError


class StackError(RadlakeError):
    """Base of every error raised while installing, starting or stopping a component."""


class PortTaken(StackError):
    """A port the component wants is already used by another process."""


class DownloadFailed(StackError):
    """A component could not be fetched from its package registry, or its checksum did not match."""


class ComponentUnhealthy(StackError):
    """A component was started but did not answer its health check in time."""
