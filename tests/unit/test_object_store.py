from __future__ import annotations

import hashlib
import threading
from pathlib import Path

import pytest

from platform_layer.object_store import ObjectStore, ObjectStoreError
from radlake.durable_files import PART_SUFFIX, write_durably


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


def test_concurrent_writers_of_one_object_do_not_share_a_temporary_file(tmp_path):
    """Eight threads put the same 8 MiB object at once: each writes its own temporary file, the object ends
    whole and no temporary file is left behind."""
    store = ObjectStore(str(tmp_path))
    data = bytes(range(256)) * (32 << 10)
    barrier = threading.Barrier(8)
    results, errors = [], []

    def put():
        barrier.wait()
        try:
            results.append(store.put(data, prefix="p"))
        except ObjectStoreError as err:
            errors.append(err)

    threads = [threading.Thread(target=put) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert errors == [] and len(results) == 8
    assert store.get(results[0].uri, expected_sha256=hashlib.sha256(data).hexdigest()) == data
    assert not list(tmp_path.rglob(f"*{PART_SUFFIX}"))


def test_a_damaged_existing_object_is_written_again(tmp_path):
    store = ObjectStore(str(tmp_path))
    stored = store.put(b"instance", prefix="p")
    path = Path(stored.uri.removeprefix("file://"))
    path.write_bytes(b"instanc")  # cut short, e.g. by a crash of a writer that did not fsync
    again = store.put(b"instance", prefix="p")
    assert again.created and again.uri == stored.uri
    assert store.get(stored.uri, expected_sha256=stored.sha256) == b"instance"
    assert not store.put(b"instance", prefix="p").created


def test_the_write_is_whole_or_absent(tmp_path):
    """A write that fails part-way leaves neither the object nor its temporary file."""
    target = tmp_path / "a" / "b" / "object.dcm"

    def chunks():
        yield b"first half"
        raise OSError("disk full")

    with pytest.raises(OSError, match="disk full"):
        write_durably(target, chunks())
    assert not target.exists() and list(target.parent.iterdir()) == []
    write_durably(target, [b"first ", b"second"])
    assert target.read_bytes() == b"first second"
    assert list(target.parent.iterdir()) == [target]
