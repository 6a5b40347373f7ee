"""Provider Storage SCPs (DIMSE receivers): their configuration under the state dir (the library of ``radlake
provider dimse``).

A provider's SCP lives in ``<state dir>/dimse/NAME/``: ``scp.json`` (:class:`~nifi.edge.storage_scp.ScpConfig`)
and ``endpoint.token`` (the provider's edge token, both 0600). It forwards to the provider's edge, so it needs
one (``radlake provider add`` first). With TLS it serves the edges' certificate (CN ``edges.radlake.local``, IP
SANs 127.0.0.1 and the bind address), which ``nifi.providers.edge_keystore`` keeps from the platform PKI: PACS
administrators verify it against the platform CA (``radlake provider ca``). Processes are started and stopped by
the commands (``apps/_dimse.py``); each listens on its own port: the one asked for, else the first free one of
``RADLAKE_DIMSE_PORT`` … + 99.
"""

from __future__ import annotations

import shutil
from dataclasses import replace
from pathlib import Path

from nifi.edge.storage_scp import ScpConfig, ScpLimits, check_address, check_ae_title
from nifi.providers import (
    ProviderError,
    bind_address,
    choose_port,
    edge_keystore,
    edge_tls_dir,
    endpoint_token,
    find_edge,
)
from platform_layer.settings import Settings
from platform_layer.state import write_private
from platform_layer.tls import ca_file


def scp_dir(settings: Settings, provider: str) -> Path:
    return settings.state_dir / "dimse" / provider


def config_file(settings: Settings, provider: str) -> Path:
    return scp_dir(settings, provider) / "scp.json"


def port_range(settings: Settings) -> range:
    return range(settings.dimse_port, settings.dimse_port + 100)


def read_config(settings: Settings, provider: str) -> ScpConfig | None:
    path = config_file(settings, provider)
    if not path.exists():
        return None
    try:
        return ScpConfig.from_json(path.read_text())
    except (OSError, ValueError, TypeError) as err:
        raise ProviderError(f"the DIMSE configuration of {provider} ({path}) is unreadable: {err}") from err


def configured(settings: Settings) -> list[ScpConfig]:
    """Every provider's SCP configuration, by provider."""
    root = settings.state_dir / "dimse"
    found = [read_config(settings, p.name) for p in sorted(root.iterdir())] if root.is_dir() else []
    return [config for config in found if config is not None]


def configure(settings: Settings, provider: str, *, ae_title: str, allow_ae_titles: list[str],
              allow_addresses: list[str] | None = None, port: int | None = None, tls: bool = False,
              limits: ScpLimits | None = None) -> ScpConfig:
    """Write the provider's SCP configuration and its token file (the edge must exist); returns it. A port
    already configured for this provider is kept unless another is asked for."""
    for title in (ae_title, *allow_ae_titles):
        ok, reason = check_ae_title(title)
        if not ok:
            raise ProviderError(reason or "bad AE title")
    if not allow_ae_titles:
        raise ProviderError("name at least one calling AE title the provider's PACS uses (--allow-ae)")
    for address in allow_addresses or ():
        ok, reason = check_address(address)
        if not ok:
            raise ProviderError(reason or "bad address")
    host = bind_address(settings)
    edge = find_edge(settings, provider)
    previous = read_config(settings, provider)
    others = {c.port for c in configured(settings) if c.provider != provider}
    if port is None and previous is not None and previous.port not in others:
        port = previous.port
    if port is not None and port in others:
        raise ProviderError(f"port {port} is another provider's SCP's")
    port = port or choose_port(port_range(settings), others, host)
    folder = scp_dir(settings, provider)
    folder.mkdir(mode=0o700, parents=True, exist_ok=True)
    token = folder / "endpoint.token"
    write_private(token, endpoint_token(settings, provider))
    certificate = key = ""
    if tls:
        edge_keystore(settings)  # issues or renews the edges' certificate (its PEM files sit beside the keystore)
        certificate, key = str(edge_tls_dir(settings) / "edges.crt"), str(edge_tls_dir(settings) / "edges.key")
    config = ScpConfig(provider=provider, ae_title=ae_title.strip(), bind_address=host, port=port,
                       allow_ae_titles=tuple(t.strip() for t in allow_ae_titles),
                       allow_addresses=tuple(a.strip() for a in allow_addresses or ()), tls=tls,
                       edge_url=edge.url, ca_file=str(ca_file(settings)), token_file=str(token),
                       certificate_file=certificate, key_file=key, limits=limits or ScpLimits())
    write_private(config_file(settings, provider), config.to_json())
    return config


def follow_edge(settings: Settings, config: ScpConfig) -> ScpConfig:
    """The configuration with the edge's current URL and token and a current certificate (before a start:
    an edge deployed again may have another port, a rotated token is in Vault only); written when it changed."""
    edge = find_edge(settings, config.provider)
    write_private(Path(config.token_file), endpoint_token(settings, config.provider))
    if config.tls:
        edge_keystore(settings)
    updated = replace(config, edge_url=edge.url, bind_address=bind_address(settings))
    if updated != config:
        write_private(config_file(settings, config.provider), updated.to_json())
    return updated


def refresh_token(settings: Settings, provider: str) -> None:
    """After a token rotation: the SCP reads the file again for its next association."""
    config = read_config(settings, provider)
    if config is not None:
        write_private(Path(config.token_file), endpoint_token(settings, provider))


def forget(settings: Settings, provider: str) -> None:
    shutil.rmtree(scp_dir(settings, provider), ignore_errors=True)
