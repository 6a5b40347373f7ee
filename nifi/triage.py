"""Quarantine triage: what a provider's edge refused, listed without opening anything sealed, and the two ways out
of the quarantine, release and discard. ``radlake quarantine`` and the admin console both act through here, so
every action is audited the same way (first, with the acting person; release also in Vault's log, header
``X-Radlake-Audit-Id``).

Release opens the kept original through Vault and sends it to the provider's edge again, so the current engine
decides anew: what it accepts is stored and announced as any upload; what it refuses again is quarantined again
with the new reason; the old records and original go. Discard deletes the records and the original.
"""

from __future__ import annotations

import re
import ssl
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import httpx

from nifi.edge.handler import RADLAKE_REPORT
from nifi.providers import NAME, ProviderError, edge_dir, endpoint_token, list_edges, quarantine_keys
from platform_layer import audit
from platform_layer.settings import Settings
from platform_layer.tls import ca_file
from platform_layer.vault import admin_client
from radlake.deid.quarantine import quarantine_dir, read_original, read_records, remove

RELEASE_TIMEOUT_S = 600.0
SHA256 = re.compile(r"[0-9a-f]{64}\Z")
# Fields of a record that may identify a person (sealed in the journal): never shown, never opened here.
IDENTIFYING = ("input", "message", "original_sop_instance_uid")


@dataclass(frozen=True)
class Refused:
    """One record of a refused input as an administrator may see it: no identifying field."""

    sha256: str | None
    reason: str
    quarantined_at: str | None
    kept: bool  # its original is kept (release possible)
    size_bytes: int | None  # of the kept original as stored (sealed)

    def as_dict(self) -> dict[str, Any]:
        return {k: v for k, v in self.__dict__.items() if v is not None}


def check_provider(provider: str) -> None:
    if not NAME.match(provider):
        raise ProviderError(f"{provider!r} is not a provider id ([a-z0-9][a-z0-9_-]*)")


def _check_digest(sha256: str) -> None:
    if not SHA256.match(sha256):
        raise ProviderError(f"{sha256[:80]!r} is not a SHA-256 digest (64 lowercase hex digits)")


def _size(settings: Settings, provider: str, sha256: str | None, stored_as: str | None) -> int | None:
    if not sha256 or not stored_as:
        return None
    try:
        return (quarantine_dir(edge_dir(settings, provider)) / "files" / f"{sha256}.bin").stat().st_size
    except OSError:
        return None


def refused(settings: Settings, provider: str, *, sha256: str | None = None,
            reason: str | None = None) -> list[Refused]:
    """The provider's quarantine records, oldest first (not audited: :func:`list_audited` is)."""
    check_provider(provider)
    rows = [Refused(r.sha256, r.reason.value, r.quarantined_at, bool(r.stored_as),
                    _size(settings, provider, r.sha256, r.stored_as))
            for r in read_records(edge_dir(settings, provider))]
    return [r for r in rows if sha256 in (None, r.sha256) and reason in (None, r.reason)]


def records(settings: Settings, provider: str, sha256: str | None = None) -> list[dict[str, Any]]:
    """Every field of the provider's records but the identifying ones, as ``radlake quarantine`` prints them."""
    check_provider(provider)
    rows = [{k: v for k, v in r.__dict__.items() if v is not None and k not in IDENTIFYING}
            for r in read_records(edge_dir(settings, provider))]
    return [r for r in rows if sha256 is None or r.get("sha256") == sha256]


def list_audited(settings: Settings, provider: str, *, reason: str | None = None,
                 actor: str | None = None) -> list[dict[str, Any]]:
    with audit.recorded(settings, "quarantine.list", f"provider {provider} quarantine", actor=actor):
        return [r for r in records(settings, provider) if reason in (None, r.get("reason"))]


def show(settings: Settings, provider: str, sha256: str, *, actor: str | None = None) -> list[dict[str, Any]]:
    with audit.recorded(settings, "quarantine.show", f"provider {provider} original {sha256}", actor=actor):
        rows = records(settings, provider, sha256)
    if not rows:
        raise ProviderError(f"the quarantine of {provider} has no record of {sha256}")
    return rows


def release(settings: Settings, provider: str, sha256: str, *, actor: str | None = None) -> dict[str, Any]:
    """Send the kept original to the provider's edge again; its old records and original go once the edge
    answered. Returns the digest, the edge's HTTP status and its report's counts."""
    check_provider(provider)
    _check_digest(sha256)
    folder = edge_dir(settings, provider)
    kept = [r for r in read_records(folder) if r.sha256 == sha256 and r.stored_as]
    if not kept:
        raise ProviderError(f"the quarantine of {provider} keeps no original with digest {sha256}")
    edges = [e for e in list_edges(settings) if e.provider == provider]
    if not edges:
        raise ProviderError(f"{provider} has no edge to send it to (`radlake provider add {provider}`)")
    started = datetime.now(UTC).replace(microsecond=0)  # records are stamped to the second
    with audit.recorded(settings, "quarantine.release", f"provider {provider} original {sha256}",
                        actor=actor) as entry:
        original = read_original(folder, kept[-1], quarantine_keys(settings, provider,
                                                                   audit.link_vault(admin_client(settings), entry)))
        try:
            answer = httpx.post(f"{edges[0].url}/archives", content=original, timeout=RELEASE_TIMEOUT_S,
                                verify=ssl.create_default_context(cafile=str(ca_file(settings))),
                                headers={"Authorization": f"Bearer {endpoint_token(settings, provider)}",
                                         "Content-Type": "application/octet-stream",
                                         "Accept": RADLAKE_REPORT})
        except httpx.HTTPError as err:
            raise ProviderError(f"the edge of {provider} did not answer: {err}") from err
        if answer.status_code not in (200, 202, 409):
            raise ProviderError(f"the edge of {provider} answered {answer.status_code}: kept in the quarantine")
        remove(folder, sha256, before=started)  # what the edge refused anew has a record of its own now
    report = answer.json()
    return {"sha256": sha256, "status": answer.status_code, "counts": report.get("counts", {})}


def discard(settings: Settings, provider: str, sha256: str, *, actor: str | None = None) -> tuple[int, int]:
    """Delete the input's records and kept original; returns (originals, records) deleted."""
    check_provider(provider)
    _check_digest(sha256)
    with audit.recorded(settings, "quarantine.discard", f"provider {provider} original {sha256}", actor=actor):
        originals, deleted = remove(edge_dir(settings, provider), sha256)
    if not deleted and not originals:
        raise ProviderError(f"the quarantine of {provider} has no record of {sha256}")
    return originals, deleted
