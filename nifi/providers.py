"""``radlake provider add NAME --project P | list | remove NAME | token NAME``: a NiFi edge flow per provider.

``add`` deploys ``nifi/flows/provider_edge.json`` as process group ``provider-edge-NAME`` with its own
parameter context (provider, project, port, Kafka, registry, Vault address; the edge's Vault token as a
sensitive parameter), after: the project's Transit key exists, the provider's endpoint token is in Vault
KV v2 (``secret/radlake/providers/NAME``), the edge has its own Vault token (policy
``radlake-edge-NAME``), and NiFi has the HTTP context map NAR (``nifi-http-context-map-nar``, fetched from
Maven Central into NiFi's NAR autoload folder the first time). Each edge listens on 127.0.0.1 on a port
of its own: ``--port``, else the first free one of NiFi's port + 420 … + 519.

Exit status: 0 ok, 1 failure (the message names the step), 2 usage.
"""

from __future__ import annotations

import argparse
import json
import re
import shutil
import socket
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass

from radlake.settings import Settings, get_settings

FLOW = "provider_edge"
PREFIX = "provider-edge-"
NAME = re.compile(r"^[a-z0-9][a-z0-9_-]{0,62}$")
CONTEXT_MAP_TYPE = "org.apache.nifi.http.StandardHttpContextMap"


class ProviderError(Exception):
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


def _nifi_url(settings: Settings) -> str:
    from infra.components.nifi import NiFi

    return NiFi(settings).address


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


def ensure_context_map_nar(settings: Settings, nifi_url: str, timeout_s: float = 120.0) -> None:
    """HandleHttpRequest needs StandardHttpContextMap, whose NAR the assembled NiFi lacks: NiFi autoloads
    NARs dropped into ``<state>/nifi/extensions`` while running."""
    import httpx

    def available() -> bool:
        answer = httpx.get(f"{nifi_url}/nifi-api/flow/controller-service-types", timeout=30)
        answer.raise_for_status()
        return any(t["type"] == CONTEXT_MAP_TYPE for t in answer.json()["controllerServiceTypes"])

    try:
        if available():
            return
        if settings.nifi_url:
            raise ProviderError(f"{nifi_url} lacks {CONTEXT_MAP_TYPE}: install nifi-http-context-map-nar there")
        from infra.downloads import fetch_maven_file

        nar = fetch_maven_file(settings.cache_dir, "org.apache.nifi", "nifi-http-context-map-nar",
                               settings.nifi_version, "nar")
        autoload = settings.state_dir / "nifi" / "extensions"
        autoload.mkdir(parents=True, exist_ok=True)
        if not (autoload / nar.name).exists():
            shutil.copy2(nar, autoload / f".{nar.name}.part")
            (autoload / f".{nar.name}.part").rename(autoload / nar.name)
        deadline = time.monotonic() + timeout_s
        while not available():
            if time.monotonic() > deadline:
                raise ProviderError(f"NiFi did not load {nar.name} from {autoload} within {timeout_s:.0f}s")
            time.sleep(2)
    except httpx.HTTPError as err:
        raise ProviderError(f"NiFi at {nifi_url} is not answering: {err}") from err


def list_edges(settings: Settings) -> list[Edge]:
    import nipyapi

    from nifi.deploy import _connect

    nifi_url = _nifi_url(settings)
    try:
        _connect(nifi_url)
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
        raise ProviderError(f"listing provider edges in {nifi_url} failed: {err}") from err
    return sorted(edges, key=lambda e: e.provider)


def find_edge(settings: Settings, provider: str) -> Edge:
    for edge in list_edges(settings):
        if edge.provider == provider:
            return edge
    raise ProviderError(f"no edge for provider {provider!r}; run `radlake provider add {provider} --project P`")


def _root_vault(settings: Settings):
    from infra.components import vault as vault_component

    return vault_component.client(settings)


def add(settings: Settings, provider: str, project: str, *, port: int | None = None, drop_dir: str | None = None,
        topics: dict[str, str] | None = None, wait_s: float = 240.0) -> Edge:
    from infra.components.kafka import Kafka
    from infra.components.registry import SchemaRegistry
    from nifi.deploy import DeployError, deploy, flow_path
    from radlake.deid.errors import PseudonymError
    from radlake.deid.pseudonyms import VaultTransitHmac, transit_key_name
    from radlake.ingest.errors import TokenError
    from radlake.ingest.tokens import edge_vault_token, ensure_token

    nifi_url = _nifi_url(settings)
    existing = list_edges(settings)
    if any(e.provider == provider for e in existing):
        raise ProviderError(f"provider {provider!r} already has an edge; `radlake provider remove {provider}` first")
    ensure_context_map_nar(settings, nifi_url)
    vault = _root_vault(settings)
    try:
        VaultTransitHmac(vault, transit_key_name(project), mount=settings.vault_transit_mount).ensure_key()
        ensure_token(vault, provider, settings.vault_kv_mount)
        edge_token = edge_vault_token(vault, provider, project, kv_mount=settings.vault_kv_mount,
                                      transit_mount=settings.vault_transit_mount)
    except (PseudonymError, TokenError) as err:
        raise ProviderError(str(err)) from err
    port = port or choose_port(port_range(settings), {e.port for e in existing})
    edge_dir = settings.state_dir / "edge" / provider
    drop = drop_dir or str(edge_dir / "drop")
    for folder in (edge_dir, edge_dir / "drop"):
        folder.mkdir(parents=True, exist_ok=True)
    parameters = {
        "provider": provider, "project": project, "http_port": str(port),
        "kafka_bootstrap": Kafka(settings).address, "schema_registry_url": SchemaRegistry(settings).address,
        "vault_addr": str(vault.url), "vault_token": edge_token,
        "object_store_uri": settings.resolved_object_store_uri, "edge_dir": str(edge_dir), "drop_dir": drop,
        **(topics or {}),
    }
    try:
        deployment = deploy(nifi_url, flow_path(FLOW), name=f"{PREFIX}{provider}", parameters=parameters,
                            valid_timeout_s=wait_s)
    except DeployError as err:
        raise ProviderError(str(err)) from err
    return Edge(provider, project, port, deployment.process_group_id, deployment.parameter_context_id, "running")


def remove(settings: Settings, provider: str, *, keep_token: bool = False) -> None:
    from nifi.deploy import Deployment, DeployError, undeploy
    from radlake.ingest.errors import TokenError
    from radlake.ingest.tokens import delete_token

    edge = find_edge(settings, provider)
    try:
        undeploy(_nifi_url(settings), Deployment(edge.process_group_id, edge.parameter_context_id, f"{PREFIX}{provider}"))
        if not keep_token:
            delete_token(_root_vault(settings), provider, settings.vault_kv_mount)
    except (DeployError, TokenError) as err:
        raise ProviderError(str(err)) from err


def endpoint_token(settings: Settings, provider: str) -> str:
    from radlake.ingest.errors import TokenError
    from radlake.ingest.tokens import read_token

    try:
        return read_token(_root_vault(settings), provider, settings.vault_kv_mount)
    except TokenError as err:
        raise ProviderError(str(err)) from err


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="radlake provider", description=__doc__.splitlines()[0].strip("`."))
    sub = parser.add_subparsers(dest="action", required=True)
    p_add = sub.add_parser("add", help="deploy a provider's edge flow")
    p_add.add_argument("name")
    p_add.add_argument("--project", required=True)
    p_add.add_argument("--port", type=int)
    p_add.add_argument("--drop-dir")
    for topic in ("instance", "quarantine", "manifest"):
        p_add.add_argument(f"--{topic}-topic", help=f"{topic} events topic (default: the contract's name)")
    sub.add_parser("list", help="list provider edges")
    p_rm = sub.add_parser("remove", help="remove a provider's edge (and its tokens)")
    p_rm.add_argument("name")
    p_rm.add_argument("--keep-token", action="store_true")
    p_tok = sub.add_parser("token", help="print the provider's endpoint token (give it to the provider)")
    p_tok.add_argument("name")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    try:
        args = _parser().parse_args(argv)
    except SystemExit as exit_:
        return int(exit_.code or 0)
    settings = get_settings()
    name = getattr(args, "name", None)
    if name is not None and not NAME.match(name):
        print(f"radlake provider: {name!r} is not a provider id ([a-z0-9][a-z0-9_-]*)", file=sys.stderr)
        return 2
    try:
        if args.action == "add":
            topics = {f"{t}_topic": getattr(args, f"{t}_topic") for t in ("instance", "quarantine", "manifest")
                      if getattr(args, f"{t}_topic")}
            print(f"deploying the edge of {name} (first use installs the processor's environment)", file=sys.stderr)
            edge = add(settings, name, args.project, port=args.port, drop_dir=args.drop_dir, topics=topics)
            print(json.dumps({**edge.__dict__, "url": edge.url}))
        elif args.action == "list":
            edges = list_edges(settings)
            print(f"{'provider':<20} {'project':<20} {'url':<24} state")
            for edge in edges:
                print(f"{edge.provider:<20} {edge.project:<20} {edge.url:<24} {edge.state}")
        elif args.action == "remove":
            remove(settings, name, keep_token=args.keep_token)
            print(f"removed the edge of {name}", file=sys.stderr)
        elif args.action == "token":
            print(endpoint_token(settings, name))
    except ProviderError as err:
        print(f"radlake provider {args.action}: {err}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
