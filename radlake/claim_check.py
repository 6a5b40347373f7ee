"""The claim-check: what the domain knows of stored bytes (URI, SHA-256, size), and the store it writes through.

Events carry a :class:`StoredObject`'s URI and hash, never the bytes. The domain only needs something
that can :meth:`ObjectSink.put` bytes; the platform's ``ObjectStore`` (a directory or any fsspec URL) is
the one the system runs with.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol


@dataclass(frozen=True)
class StoredObject:
    uri: str
    sha256: str
    size_bytes: int
    created: bool  # False when identical bytes were already there


class ObjectSink(Protocol):
    def put(self, data: bytes, prefix: str, suffix: str = ".dcm") -> StoredObject:
        """Store bytes under their hash and return where they are."""
        ...
