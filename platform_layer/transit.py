"""Vault Transit for de-identification: the pseudonymiser (keyed HMAC-SHA256 in Vault, the key never leaves
it, batched, a bounded LRU cache in front; :class:`radlake.deid.pseudonyms.Pseudonymiser`) and the data keys
that seal PHI kept at rest (:class:`radlake.deid.sealing.DataKeys`).

This module needs only ``hvac`` and ``requests``: the NiFi edge's processor environment imports it.
"""

from __future__ import annotations

import base64
import re
from collections.abc import Sequence
from dataclasses import dataclass, field

import hvac
import hvac.exceptions
import requests

from platform_layer.errors import VaultUnavailable
from radlake.deid.errors import PseudonymError
from radlake.deid.pseudonyms import LruCache
from radlake.deid.sealing import SealError

# What an hvac call raises when Vault refuses the request or cannot be reached.
VAULT_ERRORS = (hvac.exceptions.VaultError, requests.exceptions.RequestException)

_VAULT_HMAC = re.compile(r"^vault:v(\d+):(.+)$")


def _create_key(client: object, key: str, mount: str, error: type[Exception]) -> None:
    """Create a Transit key (Vault answers an existing one with success); a failure becomes ``error``."""
    try:
        client.secrets.transit.create_key(name=key, mount_point=mount)  # type: ignore[attr-defined]
    except VAULT_ERRORS as err:
        raise error(f"Vault Transit key {key!r} on mount {mount!r}: {err}") from err


def destroy_key(client: object, key: str, mount: str) -> bool:
    """Delete a Transit key for good (crypto-shredding): True when it existed. Nothing keyed with it can be
    computed again, so pseudonyms made with it can no longer be linked to anyone."""
    transit = client.secrets.transit  # type: ignore[attr-defined]
    try:
        transit.read_key(name=key, mount_point=mount)
    except hvac.exceptions.InvalidPath:
        return False
    except VAULT_ERRORS as err:
        raise VaultUnavailable(f"Vault Transit key {key!r}: {err}") from err
    try:
        transit.update_key_configuration(name=key, deletion_allowed=True, mount_point=mount)
        transit.delete_key(name=key, mount_point=mount)
    except VAULT_ERRORS as err:
        raise VaultUnavailable(f"Vault Transit key {key!r} could not be destroyed: {err}") from err
    return True


def at_rest_key_name(provider: str) -> str:
    """The Transit key that wraps the data keys sealing a provider's quarantine (one per provider, so that
    revoking or rotating one provider's touches no other)."""
    return f"radlake-at-rest-{provider}"


class VaultTransitDataKeys:
    """Vault Transit ``datakey/plaintext`` (a fresh AES-256 key and its wrapped form) and ``decrypt`` (unwrap).
    A caller may hold the right to one and not the other: the edge makes keys and never opens what it sealed."""

    def __init__(self, client: object, key_name: str, *, mount: str = "transit") -> None:
        self._client, self._key, self._mount = client, key_name, mount

    def ensure_key(self) -> None:
        """Create the provider's at-rest Transit key when it does not exist yet (idempotent)."""
        _create_key(self._client, self._key, self._mount, SealError)

    def generate(self) -> tuple[bytes, str]:
        try:
            answer = self._client.secrets.transit.generate_data_key(  # type: ignore[attr-defined]
                name=self._key, key_type="plaintext", bits=256, mount_point=self._mount)["data"]
        except VAULT_ERRORS as err:
            raise SealError(f"no data key from Vault Transit key {self._key!r}: {err}") from err
        return base64.b64decode(answer["plaintext"]), str(answer["ciphertext"])

    def unwrap(self, wrapped: str) -> bytes:
        try:
            answer = self._client.secrets.transit.decrypt_data(  # type: ignore[attr-defined]
                name=self._key, ciphertext=wrapped, mount_point=self._mount)["data"]
        except VAULT_ERRORS as err:
            raise SealError(f"Vault Transit key {self._key!r} did not unwrap the data key: {err}") from err
        return base64.b64decode(answer["plaintext"])


class VaultTransitHmac:
    """Vault/OpenBao Transit ``hmac`` with ``batch_input``, and a bounded LRU cache in front."""

    def __init__(
        self,
        client: object,
        key_name: str,
        *,
        mount: str = "transit",
        key_version: int | None = None,
        batch_size: int = 512,
        cache_size: int = 200_000,
    ) -> None:
        self._client = client
        self._key = key_name
        self._mount = mount
        self._key_version = key_version
        self._batch = batch_size
        self._cache = LruCache(cache_size)
        self.requests = 0
        self.key_versions_seen: set[int] = set()

    def ensure_key(self) -> None:
        """Create the project's Transit key when it does not exist yet (idempotent)."""
        _create_key(self._client, self._key, self._mount, PseudonymError)

    def hmac_many(self, messages: Sequence[bytes]) -> list[bytes]:
        results: list[bytes | None] = [self._cache.get(m) for m in messages]
        missing = sorted({m for m, r in zip(messages, results, strict=True) if r is None})
        for start in range(0, len(missing), self._batch):
            chunk = missing[start : start + self._batch]
            for message, digest in zip(chunk, self._request(chunk), strict=True):
                self._cache.put(message, digest)
        return [r if r is not None else self._cache_get_required(m) for m, r in zip(messages, results, strict=True)]

    def _cache_get_required(self, message: bytes) -> bytes:
        digest = self._cache.get(message)
        if digest is None:  # cache smaller than one batch
            digest = self._request([message])[0]
        return digest

    def _request(self, chunk: Sequence[bytes]) -> list[bytes]:
        body: dict[str, object] = {
            "batch_input": [{"input": base64.b64encode(m).decode("ascii")} for m in chunk],
        }
        if self._key_version is not None:
            body["key_version"] = self._key_version
        url = f"/v1/{self._mount}/hmac/{self._key}/sha2-256"
        try:
            response = self._client.adapter.post(url, json=body)  # type: ignore[attr-defined]
        except VAULT_ERRORS as err:
            raise PseudonymError(f"Vault Transit hmac with key {self._key!r} failed: {err}") from err
        self.requests += 1
        data = response.get("data", {}) if isinstance(response, dict) else {}
        batch = data.get("batch_results", [])
        if len(batch) != len(chunk):
            raise PseudonymError(f"Vault Transit returned {len(batch)} results for {len(chunk)} inputs")
        digests = []
        for item in batch:
            match = _VAULT_HMAC.match(item.get("hmac", ""))
            if item.get("error") or match is None:
                raise PseudonymError(f"Vault Transit hmac error: {item.get('error') or 'malformed answer'}")
            self.key_versions_seen.add(int(match.group(1)))
            digests.append(base64.b64decode(match.group(2)))
        return digests

    def describe(self) -> dict[str, object]:
        return {
            "kind": "vault-transit-hmac-sha256",
            "mount": self._mount,
            "key": self._key,
            "key_versions": sorted(self.key_versions_seen),
            "requests": self.requests,
        }


@dataclass(frozen=True)
class VaultTransitSpec:
    """Everything a worker process needs to open its own Vault Transit pseudonymiser."""

    addr: str
    key_name: str
    token: str = field(repr=False)
    mount: str = "transit"
    key_version: int | None = None
    ca: str | bool = True  # what verifies Vault's certificate (hvac's ``verify``)

    def open(self) -> VaultTransitHmac:
        return VaultTransitHmac(self.client(), self.key_name, mount=self.mount, key_version=self.key_version)

    def client(self) -> hvac.Client:
        return hvac.Client(url=self.addr, token=self.token, verify=self.ca)
