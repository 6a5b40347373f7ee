"""Pseudonyms: keyed HMACs (Vault Transit, one key per project) and the pure functions built on them.

The Vault Transit client is the platform's (``platform_layer.vault.VaultTransitHmac``); this module holds
the :class:`Pseudonymiser` protocol it implements, the message formats and the local HMAC for tests.

Everything identifying that must stay linkable — patient IDs, every UID, the per-patient date
offset — goes through one keyed HMAC-SHA256. The key never leaves Vault: radlake only sends the
message and gets the MAC back, in batches, and keeps a bounded local LRU cache of the answers.
Different projects use different keys, so their pseudonyms cannot be linked; the same input under
the same key gives the same output in every run, so re-uploads are idempotent.

Messages are namespaced (``uid``, ``patient``, ``date-offset``) so that a UID and a patient ID with the
same text never share a MAC.
"""

from __future__ import annotations

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


# The scheme of the messages below; recorded with every de-identified instance (the profile version).
PSEUDONYM_SCHEME = "pseudonyms-2"


def uid_message(provider: str, uid: str) -> bytes:
    """UIDs are keyed per provider (scheme 2): the same UID sent by two providers of a project becomes two
    pseudonymous UIDs, so one provider cannot send instances into, or a manifest for, another's study."""
    return b"uid" + SEP + provider.encode("utf-8") + SEP + uid.strip().encode("ascii", "replace")


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


PROJECT_NAME = re.compile(r"^[a-z][a-z0-9-]{1,62}$")
"""A project name: lower-case letters, digits and hyphens, 2 to 63 characters, starting with a letter. Names
are used as they are (no character is replaced), so two projects can never share a pseudonymisation key."""


def transit_key_name(project: str) -> str:
    """The Transit key of a project: ``radlake-deid-<project>``; a name outside :data:`PROJECT_NAME` is refused."""
    if not PROJECT_NAME.fullmatch(project):
        raise PseudonymError(
            f"project name {project!r} is not valid: use 2-63 lower-case letters, digits and hyphens, starting "
            "with a letter (names are never rewritten, so that two projects cannot share a key)")
    return f"radlake-deid-{project}"


@dataclass(frozen=True)
class LocalHmacSpec:
    key: bytes = field(repr=False)

    def open(self) -> LocalHmac:
        return LocalHmac(self.key)


class PseudonymiserSpec(Protocol):
    """What a worker process needs to open its own pseudonymiser (picklable: it crosses process boundaries).
    :class:`LocalHmacSpec` here; the platform's ``VaultTransitSpec`` in production."""

    def open(self) -> Pseudonymiser: ...
