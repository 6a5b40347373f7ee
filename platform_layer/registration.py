"""Register the contracts of ``lake_schemas`` in the schema registry (idempotent), as the platform.

The registry answers reads to anyone and writes only to a token carrying ``platform-admin``:
:func:`schema_admin` is the registry client that presents the platform principal's token.
"""

from __future__ import annotations

from dataclasses import dataclass

from confluent_kafka.schema_registry import Schema, SchemaRegistryClient
from confluent_kafka.schema_registry.error import SchemaRegistryError

from lake_schemas.errors import RegistryError
from lake_schemas.topics import ALL_TOPICS, Topic
from platform_layer.endpoints import registry_url
from platform_layer.errors import IdentityProviderError
from platform_layer.identity_provider import ServiceToken
from platform_layer.realm import PLATFORM_CLIENT, service_client
from platform_layer.serde import registry_client
from platform_layer.settings import Settings
from platform_layer.tls import ca_file


@dataclass(frozen=True)
class Registered:
    subject: str
    schema_id: int
    version: int


def schema_admin(settings: Settings, url: str = "") -> SchemaRegistryClient:
    """A registry client that may register schemas: it presents the access token of the platform's own
    principal (:data:`PLATFORM_CLIENT`, realm role ``platform-admin``), its secret read from Vault."""
    ca = None if settings.schema_registry_url and not url else str(ca_file(settings))
    return registry_client(url or registry_url(settings), ca_file=ca,
                           bearer=ServiceToken(service_client(settings, PLATFORM_CLIENT)))


def register(registry: SchemaRegistryClient, topics: tuple[Topic, ...] = ALL_TOPICS) -> list[Registered]:
    """Register each topic's schema under its subject; re-registering the same schema returns the same id."""
    done: list[Registered] = []
    for topic in topics:
        try:
            schema_id = registry.register_schema(topic.subject, Schema(topic.schema_str, "JSON"))
            version = registry.lookup_schema(topic.subject, Schema(topic.schema_str, "JSON")).version
        except SchemaRegistryError as err:
            refused = err.http_status_code in (401, 403)
            raise RegistryError(f"registering {topic.subject} failed: {err}"
                                + (" (only a platform-admin token may register schemas)" if refused else "")) from err
        except IdentityProviderError as err:
            raise RegistryError(f"registering {topic.subject}: no token to present to the registry: {err}") from err
        except Exception as err:  # noqa: BLE001 - the client raises its HTTP library's errors unwrapped
            raise RegistryError(f"the registry could not be reached ({type(err).__name__}: {err})") from err
        if version is None:
            raise RegistryError(f"registering {topic.subject}: the registry answered without a version")
        done.append(Registered(topic.subject, schema_id, version))
    return done
