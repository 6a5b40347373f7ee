"""The worker's state: per-study progress, accepted instance records and handled event ids, in memory, with
every change also written to a compacted state topic inside the same Kafka transaction as the input offsets
and the outputs it explains.

State records are keyed so that compaction keeps exactly the latest value of each thing:

* ``p/<study UID>``           -> :class:`StudyProgress` JSON
* ``c/<study UID>/<SOP UID>`` -> MessagePack array of :class:`InstanceRecord`: instances of the study accepted
  since the previous records were taken (one batch), keyed by the first of them (at most ``CHUNK`` per record)
* ``i/<study UID>/<SOP UID>`` -> :class:`InstanceRecord` JSON: one instance (written by workers before the
  chunks; still read, so state written by them restores whole)
* ``s/<event id>``            -> ``1`` (a manifest or a conflicting instance that was handled)

An accepted instance is never accepted again in its study, so a chunk's key is never reused by another chunk.

A study's state lives in the state partition with the number of the input partition its events come from
(inputs are co-partitioned by study UID), so a worker restores exactly the partitions it is assigned.

Changes made inside an open transaction are kept in an undo log: if the transaction aborts, :meth:`rollback`
puts the previous values back, so the memory matches what the broker committed.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from typing import Any

import msgspec

from streams import completion as progress_json
from streams import records as record_json
from streams.completion import StudyProgress
from streams.records import InstanceRecord

_ABSENT = object()
CHUNK = 500  # instance records per state record (~300 kB, under the broker's default 1 MB message limit)


@dataclass
class PartitionState:
    progress: dict[str, StudyProgress] = field(default_factory=dict)
    instances: dict[tuple[str, str], InstanceRecord] = field(default_factory=dict)
    seen: set[str] = field(default_factory=set)

    def apply(self, key: bytes, value: bytes | None) -> None:
        """One state record read back from the state topic."""
        kind, _, rest = key.decode().partition("/")
        if kind == "p":
            if value is None:
                self.progress.pop(rest, None)
            else:
                self.progress[rest] = progress_json.from_json(msgspec.json.decode(value))
        elif kind == "c":
            study = rest.partition("/")[0]
            if value is not None:  # the worker writes no tombstone of a chunk
                instances = self.instances
                for record in record_json.decode_many(value):
                    instances[(study, record.sop_instance_uid)] = record
        elif kind == "i":
            study, _, sop = rest.partition("/")
            if value is None:
                self.instances.pop((study, sop), None)
            else:
                self.instances[(study, sop)] = record_json.decode(value)
        elif kind == "s":
            (self.seen.discard if value is None else self.seen.add)(rest)


class StudyStore:
    """State of the assigned partitions, with the records to write and the undo log of the open transaction."""

    def __init__(self) -> None:
        self.partitions: dict[int, PartitionState] = {}
        self._undo: list[tuple[int, str, Any, Any]] = []  # (partition, kind, key, old value or _ABSENT)
        self._dirty: dict[tuple[int, bytes], bytes] = {}  # state records not yet produced
        self._accepted: dict[tuple[int, str], list[InstanceRecord]] = {}  # instances not yet in a chunk

    # -- partitions -----------------------------------------------------------------------------------

    def load(self, partition: int, records: Iterable[tuple[bytes, bytes | None]]) -> PartitionState:
        state = PartitionState()
        for key, value in records:
            state.apply(key, value)
        self.partitions[partition] = state
        return state

    def drop(self, partition: int) -> None:
        self.partitions.pop(partition, None)

    # -- reads ----------------------------------------------------------------------------------------

    def progress(self, partition: int, study_uid: str) -> StudyProgress | None:
        return self.partitions[partition].progress.get(study_uid)

    def instance(self, partition: int, study_uid: str, sop_uid: str) -> InstanceRecord | None:
        return self.partitions[partition].instances.get((study_uid, sop_uid))

    def instances_of(self, progress: StudyProgress, partition: int) -> list[InstanceRecord]:
        """The accepted instances of a study, in the order of its progress."""
        instances = self.partitions[partition].instances
        study_uid = progress.study_uid
        return [instances[(study_uid, sop)] for sop in progress.sop_uids]

    def lookup(self, partition: int, study_uid: str, sop_uid: str, event_id: str) -> tuple[InstanceRecord | None, bool]:
        """:meth:`instance` and :meth:`seen` in one call (the worker asks both for every instance)."""
        state = self.partitions[partition]
        return state.instances.get((study_uid, sop_uid)), event_id in state.seen

    def seen(self, partition: int, event_id: str) -> bool:
        return event_id in self.partitions[partition].seen

    def open_studies(self, partition: int) -> Iterator[StudyProgress]:
        """Studies with accepted instances that no emitted version covers yet."""
        for progress in self.partitions[partition].progress.values():
            if len(progress.sop_uids) > progress.emitted_count:
                yield progress

    def open_count(self) -> int:
        return sum(1 for p in self.partitions for _ in self.open_studies(p))

    # -- writes (undone by rollback until commit) ------------------------------------------------------

    def _remember(self, partition: int, kind: str, key: Any, table: Any) -> None:
        old = table.get(key, _ABSENT) if isinstance(table, dict) else (key if key in table else _ABSENT)
        self._undo.append((partition, kind, key, old))

    def put_progress(self, partition: int, progress: StudyProgress) -> None:
        table = self.partitions[partition].progress
        self._remember(partition, "p", progress.study_uid, table)
        table[progress.study_uid] = progress
        self._dirty[(partition, f"p/{progress.study_uid}".encode())] = b""  # encoded at flush: last value wins

    def put_instance(self, partition: int, study_uid: str, record: InstanceRecord) -> None:
        table = self.partitions[partition].instances
        key = (study_uid, record.sop_instance_uid)
        self._undo.append((partition, "i", key, table.get(key, _ABSENT)))  # _remember, inline: once per instance
        table[key] = record
        accepted = self._accepted.get((partition, study_uid))
        if accepted is None:
            self._accepted[(partition, study_uid)] = [record]
        else:
            accepted.append(record)

    def mark_seen(self, partition: int, event_id: str) -> None:
        table = self.partitions[partition].seen
        self._remember(partition, "s", event_id, table)
        table.add(event_id)
        self._dirty[(partition, f"s/{event_id}".encode())] = b"1"

    def take_records(self) -> list[tuple[int, bytes, bytes]]:
        """The state records changed since the last call, one per key (partition, key, value); the instances
        accepted since then in chunks, one (or one per ``CHUNK``) per study."""
        out = []
        for (partition, study_uid), records in self._accepted.items():
            for start in range(0, len(records), CHUNK):
                chunk = records[start:start + CHUNK]
                out.append((partition, f"c/{study_uid}/{chunk[0].sop_instance_uid}".encode(),
                            record_json.encode_many(chunk)))
        self._accepted.clear()
        for (partition, key), value in self._dirty.items():
            if key.startswith(b"p/"):
                progress = self.partitions[partition].progress[key[2:].decode()]
                value = msgspec.json.encode(progress_json.to_json(progress))
            out.append((partition, key, value))
        self._dirty.clear()
        return out

    def committed(self) -> None:
        self._undo.clear()

    def rollback(self) -> None:
        """Put back every value changed since the last commit (the transaction that held them aborted)."""
        for partition, kind, key, old in reversed(self._undo):
            state = self.partitions.get(partition)
            if state is None:
                continue
            if kind == "s":
                if old is _ABSENT:
                    state.seen.discard(key)
                continue
            table = state.progress if kind == "p" else state.instances
            if old is _ABSENT:
                table.pop(key, None)
            else:
                table[key] = old
        self._undo.clear()
        self._dirty.clear()
        self._accepted.clear()
