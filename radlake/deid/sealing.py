"""Envelope encryption of what must stay on a host but may hold PHI (quarantined originals, the identifying
fields of their records).

Each blob is AES-256-GCM under a data key that a key service made and wrapped (Vault Transit's
``datakey``): only the wrapped key is stored beside the ciphertext, so the disk, a backup or a stolen copy
shows nothing without a call to the key service — which checks who asks and logs it. A sealer keeps one data
key for a bounded number of blobs and time, then asks for a new one; a writer that may seal need not be able
to open (the edge's Vault token may make data keys but not unwrap them).

Format (version 1)::

    b"RLS1" | u16 length of the wrapped key | wrapped key (ASCII) | 12-byte nonce | ciphertext + 16-byte tag

The associated data is ``b"RLS1" + context``: a blob opens only for the context it was sealed for (the
original's SHA-256 for an original, so a file renamed onto another digest fails to open).
"""

from __future__ import annotations

import os
import struct
import threading
import time
from collections.abc import Callable
from typing import Protocol

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from radlake.deid.errors import DeidError

MAGIC = b"RLS1"
_NONCE = 12
_LENGTH = struct.Struct(">H")


class SealError(DeidError):
    """A blob could not be sealed or opened (key service refused or unreachable, wrong context, damage)."""


class DataKeys(Protocol):
    """A key service: makes 256-bit data keys (plaintext and wrapped) and unwraps wrapped ones."""

    def generate(self) -> tuple[bytes, str]: ...

    def unwrap(self, wrapped: str) -> bytes: ...


def is_sealed(blob: bytes) -> bool:
    return blob[: len(MAGIC)] == MAGIC


class Sealer:
    """Seals blobs under a data key renewed after ``uses_per_key`` blobs or ``key_life_s`` seconds."""

    def __init__(self, keys: DataKeys, *, uses_per_key: int = 100_000, key_life_s: float = 3600.0,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self._keys, self._uses_per_key, self._key_life_s, self._clock = keys, uses_per_key, key_life_s, clock
        self._key: tuple[AESGCM, bytes] | None = None
        self._uses, self._made_at = 0, 0.0
        self._lock = threading.Lock()

    def _current(self) -> tuple[AESGCM, bytes]:
        with self._lock:
            expired = self._uses >= self._uses_per_key or self._clock() - self._made_at >= self._key_life_s
            if self._key is None or expired:
                plaintext, wrapped = self._keys.generate()
                header = wrapped.encode("ascii")
                self._key = AESGCM(plaintext), MAGIC + _LENGTH.pack(len(header)) + header
                self._uses, self._made_at = 0, self._clock()
            self._uses += 1
            return self._key

    def seal(self, plaintext: bytes, context: bytes) -> bytes:
        cipher, header = self._current()
        nonce = os.urandom(_NONCE)  # random 96-bit nonces: far below the 2^32 blobs per key GCM allows
        return header + nonce + cipher.encrypt(nonce, plaintext, MAGIC + context)


def sealed_length(blob: bytes) -> int | None:
    """The plaintext length a sealed blob's size implies (None when it is no sealed blob): a check that a
    kept blob is whole, for a writer that cannot open it."""
    if not is_sealed(blob) or len(blob) < len(MAGIC) + _LENGTH.size:
        return None
    (length,) = _LENGTH.unpack_from(blob, len(MAGIC))
    overhead = len(MAGIC) + _LENGTH.size + length + _NONCE + 16
    return len(blob) - overhead if len(blob) >= overhead else None


def unseal(blob: bytes, keys: DataKeys, context: bytes) -> bytes:
    """The plaintext of ``blob``; raises :class:`SealError` for a blob not sealed for ``context``."""
    if not is_sealed(blob) or len(blob) < len(MAGIC) + _LENGTH.size:
        raise SealError("not a sealed blob (no RLS1 header)")
    (length,) = _LENGTH.unpack_from(blob, len(MAGIC))
    start = len(MAGIC) + _LENGTH.size
    wrapped, nonce_at = blob[start : start + length], start + length
    if len(blob) < nonce_at + _NONCE + 16:
        raise SealError("sealed blob is truncated")
    try:
        key = keys.unwrap(wrapped.decode("ascii"))
    except UnicodeDecodeError as err:
        raise SealError("sealed blob has a damaged key header") from err
    try:
        return AESGCM(key).decrypt(blob[nonce_at : nonce_at + _NONCE], blob[nonce_at + _NONCE :], MAGIC + context)
    except (InvalidTag, ValueError) as err:
        raise SealError("sealed blob does not open for this context (damaged, or sealed for another)") from err
