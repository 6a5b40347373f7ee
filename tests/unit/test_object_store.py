from __future__ import annotations

import hashlib

import pytest

from platform_layer.object_store import ObjectStore, ObjectStoreError


def test_put_is_content_addressed_and_idempotent(tmp_path):
    store = ObjectStore(str(tmp_path))
    first = store.put(b"instance", prefix="project/study")
    again = store.put(b"instance", prefix="project/study")
    assert first.created and not again.created
    assert first.uri == again.uri and first.sha256 == hashlib.sha256(b"instance").hexdigest()
    assert store.get(first.uri, expected_sha256=first.sha256) == b"instance"
    assert not list(tmp_path.rglob("*.part"))


def test_get_refuses_bytes_that_do_not_match_the_hash(tmp_path):
    store = ObjectStore(str(tmp_path))
    stored = store.put(b"instance", prefix="p")
    path = tmp_path / stored.uri.split(str(tmp_path), 1)[1].lstrip("/")
    path.write_bytes(b"tampered")
    with pytest.raises(ObjectStoreError, match="sha256"):
        store.get(stored.uri, expected_sha256=stored.sha256)


def test_fsspec_memory_url_works_like_a_remote_store():
    store = ObjectStore("memory://radlake-test-objects")
    stored = store.put(b"abc", prefix="p")
    assert stored.uri.startswith("memory://") and store.exists(stored.uri)
    assert store.get(stored.uri, stored.sha256) == b"abc"


def test_missing_object_is_a_named_error(tmp_path):
    with pytest.raises(ObjectStoreError):
        ObjectStore(str(tmp_path)).get((tmp_path / "nope.dcm").as_uri())
