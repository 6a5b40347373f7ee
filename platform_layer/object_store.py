"""Content-addressed object store for de-identified instances: a local directory or any fsspec URL.

Objects are written under ``<root>/<prefix>/<sha256[:2]>/<sha256>.dcm`` so the same bytes are stored
once, a re-upload is a no-op, and a reader can verify what it fetched against the event's hash.

A :meth:`ObjectStore.put` that returns is durable: on a local folder the object is written to a temporary
file of its own, fsync'd, renamed into place and its folder fsync'd (:mod:`radlake.durable_files`); elsewhere
the fsspec backend's own commit (an S3 PUT) is the rename. An object already there is trusted only once its
bytes hash to its name; a damaged one is written again.
"""

from __future__ import annotations

import hashlib
import uuid
from pathlib import Path

import fsspec
from fsspec.implementations.local import LocalFileSystem

from platform_layer.errors import PlatformError
from radlake.claim_check import StoredObject
from radlake.durable_files import PART_SUFFIX, write_durably

_CHUNK = 1 << 20


class ObjectStoreError(PlatformError):
    """An object could not be written, read or verified."""


def _normalise_root(root: str) -> str:
    if "://" in root:
        return root.rstrip("/")
    return Path(root).absolute().as_uri()


class ObjectStore:
    """The :class:`radlake.claim_check.ObjectSink` the system runs with."""

    def __init__(self, root: str) -> None:
        self.root = _normalise_root(root)
        self._fs, self._base = fsspec.core.url_to_fs(self.root)

    def uri_for(self, sha256: str, prefix: str, suffix: str = ".dcm") -> str:
        return f"{self.root}/{prefix.strip('/')}/{sha256[:2]}/{sha256}{suffix}"

    def put(self, data: bytes, prefix: str, suffix: str = ".dcm") -> StoredObject:
        """Store bytes under their hash, durably (see the module); ``created`` is False when the object was
        already there with these bytes."""
        digest = hashlib.sha256(data).hexdigest()
        uri = self.uri_for(digest, prefix, suffix)
        _, path = fsspec.core.url_to_fs(uri)
        try:
            if self._fs.exists(path) and self._holds(path, digest):
                return StoredObject(uri, digest, len(data), created=False)
            if isinstance(self._fs, LocalFileSystem):
                write_durably(Path(path), data)
            else:
                self._fs.makedirs(path.rsplit("/", 1)[0], exist_ok=True)
                partial = f"{path}.{uuid.uuid4().hex}{PART_SUFFIX}"  # one per writer: none shares another's
                with self._fs.open(partial, "wb") as out:
                    out.write(data)
                self._fs.mv(partial, path)
        except OSError as err:
            raise ObjectStoreError(f"writing {uri} failed: {err}") from err
        return StoredObject(uri, digest, len(data), created=True)

    def _holds(self, path: str, digest: str) -> bool:
        """Whether the object at ``path`` still hashes to ``digest`` (read in chunks)."""
        sha = hashlib.sha256()
        with self._fs.open(path, "rb") as fh:
            while chunk := fh.read(_CHUNK):
                sha.update(chunk)
        return sha.hexdigest() == digest

    def get(self, uri: str, expected_sha256: str | None = None) -> bytes:
        """Read an object back; with expected_sha256, refuse bytes that do not match the claim-check."""
        try:
            with fsspec.open(uri, "rb") as fh:
                data = fh.read()
        except (OSError, FileNotFoundError) as err:
            raise ObjectStoreError(f"reading {uri} failed: {err}") from err
        if expected_sha256 is not None and hashlib.sha256(data).hexdigest() != expected_sha256:
            raise ObjectStoreError(f"{uri} does not match its sha256 {expected_sha256}")
        return data

    def exists(self, uri: str) -> bool:
        fs, path = fsspec.core.url_to_fs(uri)
        return fs.exists(path)
