"""Exceptions of the streams package."""

from lake_schemas.errors import RadlakeError


class StreamsError(RadlakeError):
    """Base of streams errors."""


class TopicLayoutError(StreamsError):
    """The topics the streams app reads and writes are missing or not co-partitioned."""


class ContractError(StreamsError):
    """A topic's schema is not registered (or differs from lake_schemas), or the registry cannot be reached."""
