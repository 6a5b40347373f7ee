"""Provider edges: one NiFi edge flow per provider, with its tokens in Vault (the library of ``radlake provider``).

:func:`add` deploys ``nifi/flows/provider_edge.json`` as process group ``provider-edge-NAME`` with its own
parameter context (provider, project, port, Kafka, registry, Vault address; the edge's Vault token as a
sensitive parameter), after: the project's Transit key exists, the provider's endpoint token is in Vault
KV v2 (``secret/radlake/providers/NAME``), the edge has its own Vault token (policy ``radlake-edge-NAME``),
and NiFi offers the HTTP context map (``nifi-http-context-map-nar``, which the stack puts into NiFi's NAR
autoload folder). Each edge listens on the bind address (``RADLAKE_BIND_ADDRESS``, default 127.0.0.1) on a
port of its own: the one asked for, else the first free one of NiFi's port + 420 … + 519, and speaks HTTPS
only: every edge serves the edges' certificate (CN :data:`EDGE_NAME`, IP SANs 127.0.0.1 and the bind address)
from the platform PKI, kept by :func:`edge_keystore` under the state dir
and renewed at two thirds of its life like the stack's others; providers verify it against the platform CA
(``radlake provider ca`` prints it).
"""

from __future__ import annotations

import ipaddress
import secrets
import socket
import ssl
import time
from dataclasses import dataclass, field
from pathlib import Path

import certifi
import httpx
import hvac
import nipyapi
from cryptography import x509

from lake_schemas.errors import RadlakeError
from lake_schemas.topics import ANNOTATION_RECEIVED, INSTANCE_RECEIVED, QUARANTINED, STUDY_MANIFEST
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
from nifi.edge.processes import edge_processes
from nifi.edge.tokens import (
    delete_token,
    edge_vault_token,
    ensure_token,
    read_token,
    revoke_edge_tokens,
    rotate_token,
)
from platform_layer import kafka
from platform_layer.endpoints import edge_dir, kafka_bootstrap, registry_url, vault_addr
from platform_layer.errors import TopicError
from platform_layer.nifi_access import NiFiAccess, platform_access
from platform_layer.principals import KAFKA_EDGE
from platform_layer.realm_roles import PROVIDER_NAME
from platform_layer.settings import Settings
from platform_layer.state import write_private
from platform_layer.tls import (
    CertificateError,
    ca_file,
    certificate_ip_sans,
    ensure_certificate,
    needs_renewal,
    vault_ca,
    write_pkcs12,
)
from platform_layer.transit import VaultTransitDataKeys, VaultTransitHmac, at_rest_key_name
from platform_layer.vault import admin_client
from radlake.deid.confidentiality_profile import Profile
from radlake.deid.errors import PseudonymError
from radlake.deid.pseudonyms import transit_key_name
from radlake.deid.sealing import SealError

FLOW = "provider_edge"
PREFIX = "provider-edge-"
NAME = PROVIDER_NAME
CONTEXT_MAP_TYPE = "org.apache.nifi.http.StandardHttpContextMap"
SSL_CONTEXT_TYPE = "org.apache.nifi.ssl.StandardRestrictedSSLContextService"
# The name in the certificate every edge serves (clients connect to its IP SAN, 127.0.0.1).
EDGE_NAME = "edges.radlake.local"
# The edge flow's topic parameters and the contracts of what it publishes there.
EDGE_CONTRACTS = {"instance_topic": INSTANCE_RECEIVED, "quarantine_topic": QUARANTINED, "manifest_topic": STUDY_MANIFEST,
                  "annotation_topic": ANNOTATION_RECEIVED}
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
    host: str = "127.0.0.1"

    @property
    def url(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"https://{host}:{self.port}"


@dataclass(frozen=True)
class EdgeKeystore:
    """The PKCS#12 keystore every edge serves its certificate from; the path names the certificate's serial,
    so a renewed certificate is a new parameter value (NiFi restarts the edge's listener onto it)."""

    path: Path
    password: str = field(repr=False)


def bind_address(settings: Settings) -> str:
    """``settings.bind_address``, checked: one IP address (a name could resolve elsewhere later, and a wildcard
    would open the edges on every interface)."""
    value = settings.bind_address.strip()
    try:
        address = ipaddress.ip_address(value)
    except ValueError:
        raise ProviderError(f"RADLAKE_BIND_ADDRESS={value!r} is not an IP address: "
                            "name the one address the edges listen on (e.g. 127.0.0.1)") from None
    if address.is_unspecified:
        raise ProviderError(f"RADLAKE_BIND_ADDRESS={value!r} is a wildcard (every interface): "
                            "name the one address the edges listen on")
    return str(address)


def edge_ip_sans(settings: Settings) -> tuple[str, ...]:
    """The addresses the edges' certificate is for: loopback and the bind address."""
    return tuple(dict.fromkeys(("127.0.0.1", bind_address(settings))))


def edge_tls_dir(settings: Settings) -> Path:
    return settings.state_dir / "tls" / "edges"


def edge_keystore(settings: Settings, vault: hvac.Client | None = None, *, renew: bool = False) -> EdgeKeystore:
    """The edges' certificate from the platform PKI (issued when missing, past two thirds of its life, for other
    addresses than :func:`edge_ip_sans`, or ``renew``) as a PKCS#12 keystore, 0600 under the state dir; its
    password is random, kept 0600 beside it and handed to NiFi only as a sensitive parameter."""
    folder = edge_tls_dir(settings)
    ip_sans = edge_ip_sans(settings)
    try:
        files = ensure_certificate(vault or admin_client(settings), folder, "edges", EDGE_NAME, renew=renew,
                                   ip_sans=ip_sans)
        serial = x509.load_pem_x509_certificate(files.certificate.read_bytes()).serial_number
    except (CertificateError, OSError, ValueError) as err:
        raise ProviderError(f"the edges' certificate: {err}") from err
    secret = folder / "keystore.password"
    if not secret.exists():  # a keystore written with a lost password is of no use
        for orphan in folder.glob("edges-*.p12"):
            orphan.unlink()
        write_private(secret, secrets.token_urlsafe(32))
    password = secret.read_text().strip()
    keystore = folder / f"edges-{serial:x}.p12"
    if not keystore.exists():
        write_pkcs12(files, keystore, password, name=EDGE_NAME)
    return EdgeKeystore(keystore, password)


def _forget_old_keystores(settings: Settings, current: EdgeKeystore) -> None:
    for old in edge_tls_dir(settings).glob("edges-*.p12"):
        if old != current.path:
            old.unlink(missing_ok=True)


def edge_verification(settings: Settings, ca: Path | str | None = None) -> ssl.SSLContext:
    """What a client of an edge verifies it with: ``ca`` (a PEM file), else the platform CA when this host has
    one, else the system's trust store."""
    path = Path(ca) if ca else ca_file(settings)
    if ca or path.exists():
        return ssl.create_default_context(cafile=str(path))
    return ssl.create_default_context()


def port_range(settings: Settings) -> range:
    return range(settings.nifi_port + 420, settings.nifi_port + 520)


def _bindable(port: int, host: str = "127.0.0.1") -> bool:
    with socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET) as sock:
        try:
            sock.bind((host, port))
        except OSError:
            return False
    return True


def choose_port(candidates: range, used: set[int], host: str = "127.0.0.1") -> int:
    for port in candidates:
        if port not in used and _bindable(port, host):
            return port
    raise ProviderError(f"no free port in {candidates.start}-{candidates.stop - 1}; pass --port")


def wait_for_context_map(nifi: NiFiAccess, timeout_s: float = 120.0) -> None:
    """HandleHttpRequest needs StandardHttpContextMap and an SSL context service, whose NARs the stack puts into
    NiFi's autoload folder (``infra/components/nifi.py``); NiFi may still be loading them."""
    needed = {CONTEXT_MAP_TYPE: "nifi-http-context-map-nar", SSL_CONTEXT_TYPE: "nifi-ssl-context-service-nar"}

    def missing(client: httpx.Client) -> list[str]:
        answer = client.get("/flow/controller-service-types")
        answer.raise_for_status()
        offered = {t["type"] for t in answer.json()["controllerServiceTypes"]}
        return [kind for kind in needed if kind not in offered]

    try:
        with nifi.client() as client:
            deadline = time.monotonic() + timeout_s
            while absent := missing(client):
                if time.monotonic() > deadline:
                    raise ProviderError(f"NiFi at {nifi.url} offers no {', '.join(absent)} after {timeout_s:.0f}s: "
                                        f"it needs {', '.join(needed[k] for k in absent)} "
                                        "(`radlake stack up nifi` installs it)")
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
                              int(values.get("http_port") or 0), group.id, context.id, state,
                              values.get("bind_address") or "127.0.0.1"))
    except (nipyapi.nifi.rest.ApiException, ValueError, AttributeError) as err:
        raise ProviderError(f"listing provider edges in {nifi.url} failed: {err}") from err
    return sorted(edges, key=lambda e: e.provider)


def renew_edge_certificate(settings: Settings) -> list[str]:
    """When the edges' certificate is due (missing, past two thirds of its life, for other addresses), issue it
    anew and point every edge at it (:func:`follow_stack`); the providers whose edges changed."""
    files = edge_tls_dir(settings) / "edges.crt"
    if not list_edges(settings) or not (needs_renewal(files) or certificate_ip_sans(files) != set(edge_ip_sans(settings))):
        return []
    return follow_stack(settings)


def follow_stack(settings: Settings) -> list[str]:
    """Point every edge's parameters at where the stack's Kafka, registry and Vault answer now, and at the CA
    that verifies Vault (an edge deployed before the registry moved to HTTPS, or before a port setting changed,
    would answer 503 to every upload); returns the providers whose edges changed. NiFi stops and restarts the
    processors that use a changed parameter. An edge deployed from another revision of the flow definition
    (parameter ``flow_revision``) is deployed again with its own project, port, drop folder and topics, and a
    new Vault token; the provider's endpoint token is kept."""
    revision = definition_parameters(load_definition(flow_path(FLOW)))["flow_revision"]
    host = bind_address(settings)
    edges = list_edges(settings)
    keystore = edge_keystore(settings) if edges else None
    current = {"kafka_bootstrap": kafka_bootstrap(settings), "schema_registry_url": registry_url(settings),
               "vault_addr": vault_addr(settings), "vault_ca_file": _vault_ca_file(settings),
               "bind_address": host, **({"edge_keystore": str(keystore.path)} if keystore else {})}
    stow_caps = {"stow_max_part_bytes": str(settings.edge_stow_max_part_bytes),
                 "stow_max_request_bytes": str(settings.edge_stow_max_request_bytes)}
    changed = []
    for edge in edges:
        try:
            context = nipyapi.parameters.get_parameter_context(edge.parameter_context_id, "id")
            values = {p.parameter.name: p.parameter.value for p in context.component.parameters}
            if values.get("flow_revision") != revision:
                _deploy_again(settings, edge, values)
                changed.append(edge.provider)
                continue
            wanted = {**current, "deid_profile": project_profile(settings, edge.project), **stow_caps}
            stale = {name: value for name, value in wanted.items() if values.get(name) != value}
            if stale:  # one update: NiFi stops what uses them, applies them together, starts it again
                update = [nipyapi.parameters.prepare_parameter(name, value) for name, value in stale.items()]
                if keystore and "edge_keystore" in stale:  # a renewed certificate: its keystore's password goes along
                    update.append(nipyapi.parameters.prepare_parameter("edge_keystore_password", keystore.password,
                                                                       sensitive=True))
                context.component.parameters = update
                nipyapi.parameters.update_parameter_context(context)
        except (nipyapi.nifi.rest.ApiException, ValueError, AttributeError) as err:
            raise ProviderError(f"updating the edge of {edge.provider} failed: {err}") from err
        if stale:
            changed.append(edge.provider)
    if keystore:  # every edge serves the current one now
        _forget_old_keystores(settings, keystore)
    return changed


def isolate_edges(settings: Settings, wait_s: float = 120.0) -> list[str]:
    """Deploy again every edge that shares a Python process with another provider's edge; returns those providers.

    NiFi gives each Python processor a process of its own (``nifi_python_processes``), but processors it creates
    at once (every edge when NiFi starts) can land in one process: it chooses a processor's process before the
    process records that processor. Edges deployed one after another do get their own, so an edge found sharing
    (by the processes its processors announce, waited for up to ``wait_s``) is deployed again, alone."""
    edges = [edge for edge in list_edges(settings) if edge.state == "running"]  # a stopped edge announces nothing
    deadline = time.monotonic() + wait_s
    while True:
        pids = {edge.provider: set(edge_processes(edge_dir(settings, edge.provider))) for edge in edges}
        if all(pids.values()) or time.monotonic() > deadline:
            break
        time.sleep(2.0)
    owner: dict[int, str] = {}
    moved = []
    for edge in edges:
        if any(owner.get(pid, edge.provider) != edge.provider for pid in pids[edge.provider]):
            try:
                context = nipyapi.parameters.get_parameter_context(edge.parameter_context_id, "id")
            except nipyapi.nifi.rest.ApiException as err:
                raise ProviderError(f"reading the edge of {edge.provider} failed: {err}") from err
            _deploy_again(settings, edge, {p.parameter.name: p.parameter.value for p in context.component.parameters})
            moved.append(edge.provider)
        else:
            owner.update(dict.fromkeys(pids[edge.provider], edge.provider))
    return moved


def _profile_file(settings: Settings, project: str) -> Path:
    return settings.state_dir / "projects" / project / "deid-profile.json"


def project_profile(settings: Settings, project: str) -> str:
    """The project's de-identification profile as its edges take it (JSON; ``{}``: radlake's default)."""
    try:
        return _profile_file(settings, project).read_text()
    except FileNotFoundError:
        return "{}"


def set_project_profile(settings: Settings, project: str, profile: Profile | None) -> list[str]:
    """Make ``profile`` (``None``: the default) the project's, and point every edge of the project at it
    (NiFi restarts their processors with it); returns the providers whose edges changed."""
    target = _profile_file(settings, project)
    if profile is None:
        target.unlink(missing_ok=True)
    else:
        write_private(target, profile.model_dump_json())
    return follow_stack(settings)


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
    host = bind_address(settings)  # a bad RADLAKE_BIND_ADDRESS stops here, before anything is made
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
    try:  # the edge publishes as its own Kafka principal, which may write to its topics and nothing else
        bootstrap = kafka_bootstrap(settings)
        kafka.ensure_topics(bootstrap, [kafka.TopicSpec(names[key], contract.partitions)
                                        for key, contract in EDGE_CONTRACTS.items()])
        kafka.grant(bootstrap, KAFKA_EDGE, kafka.Rights(writes=tuple(names[key] for key in EDGE_CONTRACTS)))
    except TopicError as err:
        raise ProviderError(str(err)) from err
    keystore = edge_keystore(settings, vault)
    port = port or choose_port(port_range(settings), {e.port for e in existing}, host)
    folder = edge_dir(settings, provider)
    drop = drop_dir or str(folder / "drop")
    for path in (folder, folder / "drop"):
        path.mkdir(parents=True, exist_ok=True)
    parameters = {
        "provider": provider, "project": project, "bind_address": host, "http_port": str(port),
        "kafka_bootstrap": kafka_bootstrap(settings), "schema_registry_url": registry_url(settings),
        "vault_addr": str(vault.url), "vault_ca_file": _vault_ca_file(settings), "vault_token": edge_token,
        "edge_keystore": str(keystore.path), "edge_keystore_password": keystore.password,
        "object_store_uri": settings.resolved_object_store_uri, "edge_dir": str(folder), "drop_dir": drop,
        "deid_profile": project_profile(settings, project),
        "stow_max_part_bytes": str(settings.edge_stow_max_part_bytes),
        "stow_max_request_bytes": str(settings.edge_stow_max_request_bytes), **names,
    }
    try:
        deployment = deploy(nifi, flow_path(FLOW), name=f"{PREFIX}{provider}", parameters=parameters,
                            valid_timeout_s=wait_s)
    except DeployError as err:
        raise ProviderError(str(err)) from err
    return Edge(provider, project, port, deployment.process_group_id, deployment.parameter_context_id, "running", host)


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
