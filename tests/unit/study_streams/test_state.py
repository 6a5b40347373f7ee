"""The worker's state store: what it writes to the state topic restores the same state, and an aborted
transaction's changes are undone."""

from __future__ import annotations

from radlake.synthetic.lake_events import SeriesPlan, series_events
from streams import records as record_json
from streams.completion import accept_instance, apply_manifest
from streams.records import InstanceRecord
from streams.state import CHUNK, StudyStore

from .conftest import T0, manifest_for


def _accept_all(store: StudyStore, events, partition: int = 1) -> None:
    for event in events:
        record = InstanceRecord.from_event(event)
        store.put_instance(partition, event.data.study_uid, record)
        progress = accept_instance(store.progress(partition, event.data.study_uid), record,
                                   study_uid=event.data.study_uid, project=event.data.project,
                                   pseudo_patient_id=event.data.pseudo_patient_id, arrived_at=T0)
        store.put_progress(partition, progress)


def _snapshot(store: StudyStore, partition: int):
    state = store.partitions[partition]
    return dict(state.progress), dict(state.instances), set(state.seen)


def test_the_records_written_restore_the_same_state(two_series):
    store = StudyStore()
    store.load(1, [])
    store.mark_seen(1, "manifest-1")
    store.put_progress(1, apply_manifest(None, manifest_for(two_series)))
    _accept_all(store, two_series)
    records = store.take_records()
    # one record per key: the progress of the study once (its last value), its instances in one chunk, one seen id
    assert len(records) == 1 + 1 + 1
    assert {partition for partition, _, _ in records} == {1}
    restored = StudyStore()
    restored.load(1, [(key, value) for _, key, value in records])
    assert _snapshot(restored, 1) == _snapshot(store, 1)
    assert store.take_records() == []  # nothing changed since


def test_a_later_record_of_a_key_replaces_the_earlier(two_series):
    store = StudyStore()
    store.load(0, [])
    _accept_all(store, two_series[:2], partition=0)
    first = store.take_records()
    _accept_all(store, two_series[2:3], partition=0)
    restored = StudyStore()
    restored.load(0, [(key, value) for _, key, value in first + store.take_records()])
    assert restored.progress(0, two_series[0].data.study_uid).sop_uids == tuple(
        e.data.sop_instance_uid for e in two_series[:3])


def test_rollback_restores_the_last_committed_state(two_series):
    store = StudyStore()
    store.load(2, [])
    _accept_all(store, two_series[:3], partition=2)
    store.take_records()
    store.committed()
    before = _snapshot(store, 2)
    _accept_all(store, two_series[3:], partition=2)
    store.mark_seen(2, "conflict-1")
    store.rollback()
    assert _snapshot(store, 2) == before
    assert store.take_records() == []


def test_open_studies_are_those_with_instances_not_in_an_emitted_version(two_series):
    store = StudyStore()
    store.load(0, [])
    _accept_all(store, two_series, partition=0)
    assert [p.study_uid for p in store.open_studies(0)] == [two_series[0].data.study_uid]
    assert store.open_count() == 1
    store.drop(0)
    assert store.open_count() == 0


def test_a_batch_of_many_instances_is_written_in_chunks_that_restore_every_instance():
    events = series_events(SeriesPlan("st-olav", "big", "ax", 2 * CHUNK + 3))
    store = StudyStore()
    store.load(0, [])
    _accept_all(store, events, partition=0)
    records = store.take_records()
    chunks = [value for _, key, value in records if key.startswith(b"c/")]
    assert [len(record_json.decode_many(v)) for v in chunks] == [CHUNK, CHUNK, 3]
    assert len({key for _, key, _ in records}) == len(records)  # no chunk key reused
    restored = StudyStore()
    restored.load(0, [(key, value) for _, key, value in records])
    assert _snapshot(restored, 0) == _snapshot(store, 0)


def test_state_written_one_record_per_instance_still_restores(two_series):
    """Workers before the chunks wrote ``i/<study>/<sop>`` per instance; a state topic holding those (and
    chunks written after an upgrade) restores every instance."""
    store = StudyStore()
    store.load(1, [])
    _accept_all(store, two_series, partition=1)
    new_records = store.take_records()
    study = two_series[0].data.study_uid
    old_format = [(f"i/{study}/{e.data.sop_instance_uid}".encode(), record_json.encode(InstanceRecord.from_event(e)))
                  for e in two_series[:3]]
    chunk_of_the_rest = [(key, record_json.encode_many([r for r in record_json.decode_many(value)
                                                        if r.sop_instance_uid not in {e.data.sop_instance_uid
                                                                                      for e in two_series[:3]}]))
                         for _, key, value in new_records if key.startswith(b"c/")]
    progress = [(key, value) for _, key, value in new_records if key.startswith(b"p/")]
    restored = StudyStore()
    restored.load(1, old_format + chunk_of_the_rest + progress)
    assert _snapshot(restored, 1) == _snapshot(store, 1)


def test_rollback_drops_the_chunk_of_the_aborted_batch(two_series):
    store = StudyStore()
    store.load(0, [])
    _accept_all(store, two_series[:2], partition=0)
    store.take_records()
    store.committed()
    _accept_all(store, two_series[2:], partition=0)
    store.rollback()
    assert store.take_records() == []
