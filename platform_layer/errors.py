"""Exceptions of the platform layer."""

from __future__ import annotations

from lake_schemas.errors import RadlakeError


class PlatformError(RadlakeError):
    """Base of the platform layer's errors."""


class PrerequisiteMissing(PlatformError):
    """Something radlake needs is not on this machine (Java 21, a binary); the message names it."""


class TopicError(PlatformError):
    """A topic could not be listed or created, or exists with another layout than the one asked for."""


class DeliveryError(PlatformError):
    """Kafka did not acknowledge every message a producer sent (refused, or not within the timeout)."""


class VaultUnavailable(PlatformError):
    """Vault could not be reached, or refused the credentials radlake has for it."""


class IdentityProviderError(PlatformError):
    """Base of the errors of the identity provider (Keycloak): its API, its tokens, the device flow."""
