"""Pseudonyms: keyed HMACs (Vault Transit, one key per project) and the pure functions built on them.

Everything identifying that must stay linkable — patient IDs, every UID, the per-patient date
offset — goes through one keyed HMAC-SHA256. The key never leaves Vault: radlake only sends the
message and gets the MAC back, in batches, and keeps a bounded local LRU cache of the answers.
Different projects use different keys, so their pseudonyms cannot be linked; the same input under
the same key gives the same output in every run, so re-uploads are idempotent.

Messages are namespaced (``uid``, ``patient``, ``date-offset``) so that a UID and a patient ID with the
same text never share a MAC.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import re
from collections import OrderedDict
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Protocol

from radlake.deid.errors import PseudonymError

SEP = b"\x1f"


class Pseudonymiser(Protocol):
    """Keyed HMAC-SHA256 over many messages at once; returns the 32-byte digests in order."""

    def hmac_many(self, messages: Sequence[bytes]) -> list[bytes]: ...

    def describe(self) -> dict[str, object]: ...


def uid_message(uid: str) -> bytes:
    return b"uid" + SEP + uid.strip().encode("ascii", "replace")


def patient_message(provider: str, patient_id: str) -> bytes:
    return b"patient" + SEP + provider.encode("utf-8") + SEP + patient_id.strip().encode("utf-8")


def date_offset_message(provider: str, patient_id: str) -> bytes:
    return b"date-offset" + SEP + provider.encode("utf-8") + SEP + patient_id.strip().encode("utf-8")


def uid_from_digest(digest: bytes) -> str:
    """A ``2.25.`` UID (PS3.5 B.2) from the first 128 bits, shaped as an RFC 9562 version-8 UUID."""
    value = bytearray(digest[:16])
    value[6] = (value[6] & 0x0F) | 0x80
    value[8] = (value[8] & 0x3F) | 0x80
    return "2.25." + str(int.from_bytes(value, "big"))


def pseudonym_from_digest(digest: bytes) -> str:
    """A patient pseudonym: ``RL`` and 24 decimal digits (digits only, so it cannot spell a name)."""
    return "RL" + str(int.from_bytes(digest[:12], "big")).zfill(29)[-24:]


def date_offset_from_digest(digest: bytes, max_days: int) -> int:
    """Days to move a patient's dates back: 1..max_days."""
    return 1 + int.from_bytes(digest[:8], "big") % max_days


class LruCache:
    """A bounded mapping that forgets the least recently used entry first."""

    def __init__(self, maxsize: int) -> None:
        self._maxsize = maxsize
        self._data: OrderedDict[bytes, bytes] = OrderedDict()

    def get(self, key: bytes) -> bytes | None:
        value = self._data.get(key)
        if value is not None:
            self._data.move_to_end(key)
        return value

    def put(self, key: bytes, value: bytes) -> None:
        self._data[key] = value
        self._data.move_to_end(key)
        while len(self._data) > self._maxsize:
            self._data.popitem(last=False)

    def __len__(self) -> int:
        return len(self._data)


class LocalHmac:
    """HMAC-SHA256 with a key held in memory: for unit tests and offline benchmarks, not for releases."""

    def __init__(self, key: bytes) -> None:
        self._key = key

    def hmac_many(self, messages: Sequence[bytes]) -> list[bytes]:
        return [hmac.new(self._key, m, hashlib.sha256).digest() for m in messages]

    def describe(self) -> dict[str, object]:
        return {"kind": "local-hmac-sha256"}


_VAULT_HMAC = re.compile(r"^vault:v(\d+):(.+)$")


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
        import hvac.exceptions
        import requests

        try:
            self._client.secrets.transit.create_key(name=self._key, mount_point=self._mount)  # type: ignore[attr-defined]
        except (hvac.exceptions.VaultError, requests.exceptions.RequestException) as err:
            raise PseudonymError(f"Vault Transit key {self._key!r} on mount {self._mount!r}: {err}") from err

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
        import hvac.exceptions
        import requests

        body: dict[str, object] = {
            "batch_input": [{"input": base64.b64encode(m).decode("ascii")} for m in chunk],
        }
        if self._key_version is not None:
            body["key_version"] = self._key_version
        url = f"/v1/{self._mount}/hmac/{self._key}/sha2-256"
        try:
            response = self._client.adapter.post(url, json=body)  # type: ignore[attr-defined]
        except (hvac.exceptions.VaultError, requests.exceptions.RequestException) as err:
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


def transit_key_name(project: str) -> str:
    """The Transit key of a project: ``radlake-deid-<project>`` with unsafe characters replaced."""
    safe = re.sub(r"[^A-Za-z0-9_-]", "-", project.strip())
    if not safe:
        raise PseudonymError("project name is empty")
    return f"radlake-deid-{safe}"


@dataclass(frozen=True)
class VaultTransitSpec:
    """Everything a worker process needs to open its own Vault Transit pseudonymiser."""

    addr: str
    key_name: str
    token: str = field(repr=False)
    mount: str = "transit"
    key_version: int | None = None

    def open(self) -> VaultTransitHmac:
        import hvac

        return VaultTransitHmac(
            hvac.Client(url=self.addr, token=self.token), self.key_name, mount=self.mount, key_version=self.key_version
        )


@dataclass(frozen=True)
class LocalHmacSpec:
    key: bytes = field(repr=False)

    def open(self) -> LocalHmac:
        return LocalHmac(self.key)


PseudonymiserSpec = VaultTransitSpec | LocalHmacSpec
