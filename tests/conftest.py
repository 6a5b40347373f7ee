"""Shared fixtures. Integration tests use the real local stack, started once per test session.

Each component fixture starts its component (idempotently) the first time a test asks for it; at the
end of the session the fixtures stop what this session started and leave alone what was already
running (e.g. a stack a developer brought up with ``radlake stack up``).
"""

from __future__ import annotations

import ssl
import uuid
from collections.abc import Iterator

import pytest

from infra import notebooks_host, stack
from platform_layer.identities import use_stack_identity
from platform_layer.kafka import TopicSpec, ensure_topics
from platform_layer.nifi_access import NiFiAccess, platform_access
from platform_layer.settings import Settings
from platform_layer.spark import spark_session
from platform_layer.tls import ca_file, ensure_certificate
from platform_layer.vault import admin_client

# Tests speak to Kafka as the platform administrator (a super user), like the commands they run; the
# password is read from Vault when a test first builds a Kafka client.
use_stack_identity(Settings())


@pytest.fixture(autouse=True)
def _kafka_identity_of_the_session_stack() -> Iterator[None]:
    """A command run in-process makes its own settings' principal the process's Kafka identity (a test may
    point it at a throwaway stack): each test starts again from the session stack's administrator."""
    yield
    use_stack_identity(Settings())


@pytest.fixture(scope="session")
def settings() -> Settings:
    return Settings()


@pytest.fixture(scope="session")
def _stack_session(settings: Settings) -> Iterator[dict[str, bool]]:
    started_here: dict[str, bool] = {}
    yield started_here
    names = [name for name, started in started_here.items() if started]
    if names:
        stack.down(settings, names)


def _component(name: str, settings: Settings, started_here: dict[str, bool]):
    if name not in started_here:
        component = stack.component(name, settings)
        was_running = component.external or (component.pid() is not None and component.healthy())
        component.start()
        started_here[name] = not was_running and name != "spark"
    return stack.component(name, settings)


@pytest.fixture(scope="session")
def vault(settings, _stack_session):
    """The stack's OpenBao; yields an authenticated hvac client."""

    _component("vault", settings, _stack_session)
    return admin_client(settings)


@pytest.fixture(scope="session")
def scraper_tls(vault, settings, tmp_path_factory) -> ssl.SSLContext:
    """A metrics scraper's TLS: trusts the platform CA and presents a client certificate issued by it."""
    files = ensure_certificate(vault, tmp_path_factory.mktemp("scraper-tls"), "scraper", "scraper.radlake.local")
    context = ssl.create_default_context(cafile=str(ca_file(settings)))
    context.load_cert_chain(str(files.certificate), str(files.key))
    return context


@pytest.fixture(scope="session")
def keycloak(settings, _stack_session, vault) -> str:  # Keycloak's certificate and secrets come from Vault
    """The identity provider's base URL (realm ``radlake`` set up)."""
    return _component("keycloak", settings, _stack_session).address


@pytest.fixture(scope="session")
def kafka_bootstrap(settings, _stack_session, vault) -> str:  # Kafka's certificate and credentials come from Vault
    return _component("kafka", settings, _stack_session).address


@pytest.fixture(scope="session")
def registry_url(settings, _stack_session, kafka_bootstrap, keycloak) -> str:  # writes need a token
    return _component("registry", settings, _stack_session).address


@pytest.fixture(scope="session")
def nifi_url(settings, _stack_session, keycloak, kafka_bootstrap) -> str:  # people log in to NiFi through Keycloak
    return _component("nifi", settings, _stack_session).address


@pytest.fixture(scope="session")
def nifi(settings, nifi_url) -> NiFiAccess:
    """The platform's access to the stack's NiFi (its client certificate, NiFi's initial administrator)."""
    return platform_access(settings)


@pytest.fixture(scope="session")
def gateway(settings, _stack_session, keycloak) -> str:  # it verifies the realm's tokens
    """The lake gateway's Arrow Flight location."""
    return _component("gateway", settings, _stack_session).address


@pytest.fixture(scope="session")
def notebooks(settings, _stack_session, gateway) -> str:  # people log in through Keycloak, kernels read the gateway
    """The notebooks hub's base URL."""
    reason = notebooks_host.unavailable(settings)
    if reason is not None:
        pytest.skip(f"notebooks cannot run on this host: {reason}")
    _component("notebooks", settings, _stack_session)
    return stack.component("notebooks", settings).address.removesuffix("/hub/")


@pytest.fixture(scope="session")
def results_bridge(settings, _stack_session, registry_url, keycloak) -> str:  # reads typed events, verifies tokens
    """The results bridge's base URL (HTTPS, platform CA)."""
    return _component("results-bridge", settings, _stack_session).address


@pytest.fixture(scope="session")
def console(settings, _stack_session, kafka_bootstrap, keycloak) -> str:  # logs people in, reads Kafka
    """The admin console's base URL (HTTPS, platform CA)."""
    return _component("console", settings, _stack_session).address


@pytest.fixture(scope="session")
def spark(settings, _stack_session):
    """A SparkSession for the lake (local mode, Delta + Kafka source)."""

    _component("spark", settings, _stack_session)
    session = spark_session(settings, "radlake-tests")
    yield session
    session.stop()


@pytest.fixture
def unique_topic(request) -> str:
    """A topic name no other test uses."""
    return f"test.{request.node.name[:40].replace('[', '-').replace(']', '')}.{uuid.uuid4().hex[:8]}"


@pytest.fixture
def created_topic(kafka_bootstrap, unique_topic) -> str:
    """``unique_topic``, created on the broker with 3 partitions (topics are never created on first use)."""
    ensure_topics(kafka_bootstrap, [TopicSpec(unique_topic, 3)])
    return unique_topic
