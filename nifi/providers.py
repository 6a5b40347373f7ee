"""Provider edges: one NiFi edge flow per provider, with its tokens in Vault (the library of ``radlake provider``).

:func:`add` deploys ``nifi/flows/provider_edge.json`` as process group ``provider-edge-NAME`` with its own
parameter context (provider, project, port, Kafka, registry, Vault address; the edge's Vault token as a
sensitive parameter), after: the project's Transit key exists, the provider's endpoint token is in Vault
KV v2 (``secret/radlake/providers/NAME``), the edge has its own Vault token (policy ``radlake-edge-NAME``),
and NiFi offers the HTTP context map (``nifi-http-context-map-nar``, which the stack puts into NiFi's NAR
autoload folder). Each edge listens on 127.0.0.1 on a port of its own: the one asked for, else the first
free one of NiFi's port + 420 … + 519.
"""

from __future__ import annotations

import socket
import time
from dataclasses import dataclass
from pathlib import Path

import certifi
import httpx
import hvac
import nipyapi

from lake_schemas.errors import RadlakeError
from lake_schemas.topics import INSTANCE_RECEIVED, QUARANTINED, STUDY_MANIFEST
from nifi.deploy import (
    DeployError,
    Deployment,
    connect,
    definition_parameters,
    deploy,
    flow_path,
    load_definition,
    undeploy,
)
from nifi.edge.errors import TokenError
from nifi.edge.tokens import (
    delete_token,
    edge_vault_token,
    ensure_token,
    read_token,
    revoke_edge_tokens,
    rotate_token,
)
from platform_layer import kafka
from platform_layer.endpoints import kafka_bootstrap, registry_url, vault_addr
from platform_layer.errors import TopicError
from platform_layer.nifi_access import NiFiAccess, platform_access
from platform_layer.principals import KAFKA_EDGE
from platform_layer.realm_roles import PROVIDER_NAME
from platform_layer.settings import Settings
from platform_layer.tls import vault_ca
from platform_layer.transit import VaultTransitDataKeys, VaultTransitHmac, at_rest_key_name
from platform_layer.vault import admin_client
from radlake.deid.errors import PseudonymError
from radlake.deid.pseudonyms import transit_key_name
from radlake.deid.sealing import SealError

FLOW = "provider_edge"
PREFIX = "provider-edge-"
NAME = PROVIDER_NAME
CONTEXT_MAP_TYPE = "org.apache.nifi.http.StandardHttpContextMap"
# The edge flow's topic parameters and the contracts of what it publishes there.
EDGE_CONTRACTS = {"instance_topic": INSTANCE_RECEIVED, "quarantine_topic": QUARANTINED, "manifest_topic": STUDY_MANIFEST}
EDGE_TOPICS = {key: contract.name for key, contract in EDGE_CONTRACTS.items()}


class ProviderError(RadlakeError):
    """A provider edge could not be added, listed or removed; the message names the step."""


@dataclass(frozen=True)
class Edge:
    provider: str
    project: str
    port: int
    process_group_id: str
    parameter_context_id: str
    state: str

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"


def port_range(settings: Settings) -> range:
    return range(settings.nifi_port + 420, settings.nifi_port + 520)


def _bindable(port: int) -> bool:
    with socket.socket() as sock:
        try:
            sock.bind(("127.0.0.1", port))
        except OSError:
            return False
    return True


def choose_port(candidates: range, used: set[int]) -> int:
    for port in candidates:
        if port not in used and _bindable(port):
            return port
    raise ProviderError(f"no free port in {candidates.start}-{candidates.stop - 1}; pass --port")


def wait_for_context_map(nifi: NiFiAccess, timeout_s: float = 120.0) -> None:
    """HandleHttpRequest needs StandardHttpContextMap, whose NAR the stack puts into NiFi's autoload folder
    (``infra/components/nifi.py``); NiFi may still be loading it."""

    def available(client: httpx.Client) -> bool:
        answer = client.get("/flow/controller-service-types")
        answer.raise_for_status()
        return any(t["type"] == CONTEXT_MAP_TYPE for t in answer.json()["controllerServiceTypes"])

    try:
        with nifi.client() as client:
            deadline = time.monotonic() + timeout_s
            while not available(client):
                if time.monotonic() > deadline:
                    raise ProviderError(f"NiFi at {nifi.url} offers no {CONTEXT_MAP_TYPE} after {timeout_s:.0f}s: "
                                        "it needs nifi-http-context-map-nar (`radlake stack up nifi` installs it)")
                time.sleep(2)
    except httpx.HTTPError as err:
        raise ProviderError(f"NiFi at {nifi.url} is not answering: {err}") from err


def list_edges(settings: Settings) -> list[Edge]:
    nifi = platform_access(settings)
    try:
        connect(nifi)
        root = nipyapi.canvas.get_root_pg_id()
        groups = nipyapi.canvas.list_all_process_groups(root)
        edges = []
        for group in groups:
            name = group.component.name
            if not name.startswith(PREFIX) or group.component.parameter_context is None:
                continue
            context = nipyapi.parameters.get_parameter_context(group.component.parameter_context.id, "id")
            values = {p.parameter.name: p.parameter.value for p in context.component.parameters}
            state = "running" if (group.running_count or 0) > 0 else "stopped"
            edges.append(Edge(values.get("provider") or name[len(PREFIX):], values.get("project") or "",
                              int(values.get("http_port") or 0), group.id, context.id, state))
    except (nipyapi.nifi.rest.ApiException, ValueError, AttributeError) as err:
        raise ProviderError(f"listing provider edges in {nifi.url} failed: {err}") from err
    return sorted(edges, key=lambda e: e.provider)


def follow_stack(settings: Settings) -> list[str]:
    """Point every edge's parameters at where the stack's Kafka, registry and Vault answer now, and at the CA
    that verifies Vault (an edge deployed before the registry moved to HTTPS, or before a port setting changed,
    would answer 503 to every upload); returns the providers whose edges changed. NiFi stops and restarts the
    processors that use a changed parameter. An edge deployed from another revision of the flow definition
    (parameter ``flow_revision``) is deployed again with its own project, port, drop folder and topics, and a
    new Vault token; the provider's endpoint token is kept."""
    revision = definition_parameters(load_definition(flow_path(FLOW)))["flow_revision"]
    current = {"kafka_bootstrap": kafka_bootstrap(settings), "schema_registry_url": registry_url(settings),
               "vault_addr": vault_addr(settings), "vault_ca_file": _vault_ca_file(settings)}
    changed = []
    for edge in list_edges(settings):
        try:
            context = nipyapi.parameters.get_parameter_context(edge.parameter_context_id, "id")
            values = {p.parameter.name: p.parameter.value for p in context.component.parameters}
            if values.get("flow_revision") != revision:
                _deploy_again(settings, edge, values)
                changed.append(edge.provider)
                continue
            stale = {name: value for name, value in current.items() if values.get(name) != value}
            for name, value in stale.items():
                context = nipyapi.parameters.upsert_parameter_to_context(
                    context, nipyapi.parameters.prepare_parameter(name, value))
        except (nipyapi.nifi.rest.ApiException, ValueError, AttributeError) as err:
            raise ProviderError(f"updating the edge of {edge.provider} failed: {err}") from err
        if stale:
            changed.append(edge.provider)
    return changed


def edge_dir(settings: Settings, provider: str) -> Path:
    """The provider's folder on the platform host: quarantine (sealed), spool and work files, drop folder."""
    return settings.state_dir / "edge" / provider


def quarantine_keys(settings: Settings, provider: str, vault: hvac.Client | None = None) -> VaultTransitDataKeys:
    """The key service that seals the provider's quarantine, as the administrator (opening is audited by Vault)."""
    return VaultTransitDataKeys(vault or admin_client(settings), at_rest_key_name(provider),
                                mount=settings.vault_transit_mount)


def _deploy_again(settings: Settings, edge: Edge, values: dict[str, str | None]) -> None:
    remove(settings, edge.provider, keep_token=True)
    add(settings, edge.provider, edge.project, port=edge.port, drop_dir=values.get("drop_dir"),
        topics={name: str(values[name]) for name in EDGE_TOPICS if values.get(name)})


def _vault_ca_file(settings: Settings) -> str:
    """The CA file an edge verifies Vault with (hvac takes a path; an external Vault without one configured is
    verified against certifi's bundle, as requests does by default)."""
    verify = vault_ca(settings)
    return verify if isinstance(verify, str) else certifi.where()


def find_edge(settings: Settings, provider: str) -> Edge:
    for edge in list_edges(settings):
        if edge.provider == provider:
            return edge
    raise ProviderError(f"no edge for provider {provider!r}; run `radlake provider add {provider} --project P`")


def add(settings: Settings, provider: str, project: str, *, port: int | None = None, drop_dir: str | None = None,
        topics: dict[str, str] | None = None, wait_s: float = 240.0) -> Edge:
    try:
        key_name = transit_key_name(project)
    except PseudonymError as err:
        raise ProviderError(str(err)) from err
    nifi = platform_access(settings)
    existing = list_edges(settings)
    if any(e.provider == provider for e in existing):
        raise ProviderError(f"provider {provider!r} already has an edge; `radlake provider remove {provider}` first")
    wait_for_context_map(nifi)
    vault = admin_client(settings)
    try:
        VaultTransitHmac(vault, key_name, mount=settings.vault_transit_mount).ensure_key()
        quarantine_keys(settings, provider, vault).ensure_key()
        ensure_token(vault, provider, settings.vault_kv_mount)
        edge_token = edge_vault_token(vault, provider, project, kv_mount=settings.vault_kv_mount,
                                      transit_mount=settings.vault_transit_mount)
    except (PseudonymError, SealError, TokenError) as err:
        raise ProviderError(str(err)) from err
    names = {**EDGE_TOPICS, **(topics or {})}
    try:  # the edge publishes as its own Kafka principal, which may write to its three topics and nothing else
        bootstrap = kafka_bootstrap(settings)
        kafka.ensure_topics(bootstrap, [kafka.TopicSpec(names[key], contract.partitions)
                                        for key, contract in EDGE_CONTRACTS.items()])
        kafka.grant(bootstrap, KAFKA_EDGE, kafka.Rights(writes=tuple(names[key] for key in EDGE_CONTRACTS)))
    except TopicError as err:
        raise ProviderError(str(err)) from err
    port = port or choose_port(port_range(settings), {e.port for e in existing})
    folder = edge_dir(settings, provider)
    drop = drop_dir or str(folder / "drop")
    for path in (folder, folder / "drop"):
        path.mkdir(parents=True, exist_ok=True)
    parameters = {
        "provider": provider, "project": project, "http_port": str(port),
        "kafka_bootstrap": kafka_bootstrap(settings), "schema_registry_url": registry_url(settings),
        "vault_addr": str(vault.url), "vault_ca_file": _vault_ca_file(settings), "vault_token": edge_token,
        "object_store_uri": settings.resolved_object_store_uri, "edge_dir": str(folder), "drop_dir": drop,
        **names,
    }
    try:
        deployment = deploy(nifi, flow_path(FLOW), name=f"{PREFIX}{provider}", parameters=parameters,
                            valid_timeout_s=wait_s)
    except DeployError as err:
        raise ProviderError(str(err)) from err
    return Edge(provider, project, port, deployment.process_group_id, deployment.parameter_context_id, "running")


def remove(settings: Settings, provider: str, *, keep_token: bool = False) -> None:
    """Undeploy the provider's edge and revoke its Vault tokens; ``keep_token`` keeps the provider's endpoint
    token (for an edge deployed again later)."""
    edge = find_edge(settings, provider)
    try:
        undeploy(platform_access(settings), Deployment(edge.process_group_id, edge.parameter_context_id, f"{PREFIX}{provider}"))
        vault = admin_client(settings)
        if keep_token:
            revoke_edge_tokens(vault, provider, settings.vault_kv_mount)
        else:
            delete_token(vault, provider, settings.vault_kv_mount)
    except (DeployError, TokenError) as err:
        raise ProviderError(str(err)) from err


def endpoint_token(settings: Settings, provider: str) -> str:
    try:
        return read_token(admin_client(settings), provider, settings.vault_kv_mount)
    except TokenError as err:
        raise ProviderError(str(err)) from err


def rotate_endpoint_token(settings: Settings, provider: str) -> str:
    """A new endpoint token for the provider; its edge refuses the old one from the next request on."""
    try:
        return rotate_token(admin_client(settings), provider, settings.vault_kv_mount)
    except TokenError as err:
        raise ProviderError(str(err)) from err
