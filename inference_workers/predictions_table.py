"""The gold Delta table ``predictions`` (delta-rs), landed from the committed ``prediction created`` topic.

A lander consumes the results topic with ``isolation.level=read_committed`` (aborted transactions of a
killed worker are never seen), MERGEs the batch into the table on ``event_id`` (insert when not
matched, so a replayed event is dropped), and only then commits its offsets. A lander killed between
MERGE and commit re-merges the same events: a no-op. Workers also ask this table which prediction ids
exist before predicting.
"""

from __future__ import annotations

import json
import logging
import time

import pyarrow as pa
import pyarrow.compute as pc
from confluent_kafka import KafkaError, TopicPartition
from deltalake import DeltaTable, write_deltalake
from deltalake.exceptions import CommitFailedError

from lake_schemas.errors import SchemaViolation
from lake_schemas.events import PredictionCreated
from platform_layer import kafka
from platform_layer.serde import EventSerde
from platform_layer.settings import Settings

log = logging.getLogger(__name__)

SCHEMA = pa.schema([
    ("event_id", pa.string()),
    ("occurred_at", pa.timestamp("us", tz="UTC")),
    ("provider", pa.string()),
    ("trace_id", pa.string()),
    ("project", pa.string()),
    ("pseudo_patient_id", pa.string()),
    ("study_uid", pa.string()),
    ("study_version", pa.int64()),
    ("series_uid", pa.string()),
    ("source_event_id", pa.string()),
    ("model_name", pa.string()),
    ("model_version", pa.int64()),
    ("model_stage", pa.string()),
    ("weights_sha256", pa.string()),
    ("malignancy_score", pa.float64()),
    ("threshold", pa.float64()),
    ("positive", pa.bool_()),
    ("candidate_count", pa.int64()),
    ("candidates_json", pa.string()),
    ("input_count", pa.int64()),
    ("seg_uri", pa.string()),
    ("sr_uri", pa.string()),
    ("latency_ms", pa.float64()),
    ("worker_id", pa.string()),
    ("device", pa.string()),
    ("kafka_partition", pa.int32()),
    ("kafka_offset", pa.int64()),
])


def row(event: PredictionCreated, partition: int = -1, offset: int = -1) -> dict:
    d = event.data
    return {
        "event_id": event.event_id, "occurred_at": event.occurred_at, "provider": event.provider,
        "trace_id": event.trace_id, "project": d.project, "pseudo_patient_id": d.pseudo_patient_id,
        "study_uid": d.study_uid, "study_version": d.study_version, "series_uid": d.series_uid,
        "source_event_id": d.source_event_id, "model_name": d.model.name, "model_version": d.model.version,
        "model_stage": d.model.stage, "weights_sha256": d.model.weights_sha256,
        "malignancy_score": d.malignancy_score, "threshold": d.threshold, "positive": d.positive,
        "candidate_count": len(d.candidates),
        "candidates_json": json.dumps([json.loads(c.model_dump_json()) for c in d.candidates]),
        "input_count": len(d.inputs), "seg_uri": d.seg.uri if d.seg else None, "sr_uri": d.sr.uri if d.sr else None,
        "latency_ms": d.latency_ms, "worker_id": d.worker_id, "device": d.device,
        "kafka_partition": partition, "kafka_offset": offset,
    }


def merge(table_uri: str, rows: list[dict], attempts: int = 5) -> int:
    """Insert rows whose event_id is not in the table yet (one row per id); returns how many were inserted."""

    unique = list({r["event_id"]: r for r in rows}.values())
    if not unique:
        return 0
    source = pa.Table.from_pylist(unique, schema=SCHEMA)
    for attempt in range(attempts):
        try:
            ensure_table(table_uri)
            result = (DeltaTable(table_uri).merge(source, predicate="t.event_id = s.event_id", source_alias="s",
                                                  target_alias="t").when_not_matched_insert_all().execute())
            return int(result.get("num_target_rows_inserted", 0))
        except CommitFailedError as err:  # a concurrent lander committed first: retry on the new version
            log.info("predictions MERGE conflict (attempt %d): %s", attempt + 1, err)
            time.sleep(0.2 * (attempt + 1))
    raise CommitFailedError(f"predictions MERGE failed {attempts} times")


def known(table_uri: str, event_ids: list[str]) -> set[str]:

    if not event_ids or not DeltaTable.is_deltatable(table_uri):
        return set()
    column = DeltaTable(table_uri).to_pyarrow_dataset().to_table(columns=["event_id"]).column("event_id")
    found = pc.filter(column, pc.is_in(column.cast(pa.string()), value_set=pa.array(event_ids, pa.string())))
    return {str(v) for v in found.to_pylist()}


class PredictionLander:
    """Lands the committed events of one topic. Partitions are assigned (not subscribed), at the group's
    committed offsets, so a drain starts reading at once; two landers on the same topic would both merge,
    which the MERGE on event_id makes harmless."""

    def __init__(self, bootstrap: str, topic: str, serde: EventSerde, table_uri: str,
                 group_id: str = "radlake-predictions-lander") -> None:
        self.table_uri = table_uri
        self.serde = serde
        self.topic = topic
        self.consumer = kafka.consumer(bootstrap, group_id=group_id)
        self._assigned: list[TopicPartition] | None = None
        self._start: dict[int, int] = {}

    def _assign(self) -> list[TopicPartition]:
        if self._assigned is None:
            metadata = self.consumer.list_topics(self.topic, timeout=10).topics[self.topic]
            parts = [TopicPartition(self.topic, p) for p in sorted(metadata.partitions)]
            committed = self.consumer.committed(parts, timeout=10)
            self._start = {c.partition: c.offset if c.offset >= 0 else
                           self.consumer.get_watermark_offsets(c, timeout=10, cached=False)[0] for c in committed}
            self.consumer.assign([TopicPartition(self.topic, p, o) for p, o in self._start.items()])
            self._assigned = parts
        return self._assigned

    def drain(self, quiet_s: float = 1.0, max_s: float = 30.0) -> int:
        """Land what is committed on the topic now: until every partition is read up to its last stable
        offset (read-committed end), or ``max_s``. ``quiet_s`` is the wait of one fetch."""
        ensure_table(self.table_uri)
        parts = self._assign()
        rows, consumed, started = [], False, time.monotonic()
        while time.monotonic() - started < max_s:
            batch = self.consumer.consume(500, quiet_s)
            for m in batch:
                if m.error() is not None:
                    if m.error().code() != KafkaError._PARTITION_EOF:
                        log.warning("lander consumer error: %s", m.error())
                    continue
                consumed = True
                try:
                    rows.append(row(self.serde.deserialize(m.value()), m.partition(), m.offset()))
                except SchemaViolation as err:
                    log.error("undecodable prediction at %s[%d]@%d: %s", m.topic(), m.partition(), m.offset(), err)
            if self._at_end(parts):
                break
        inserted = merge(self.table_uri, rows)
        if consumed:
            self.consumer.commit(asynchronous=False)
        return inserted

    def _at_end(self, parts: list[TopicPartition]) -> bool:
        # Watermark queries of a read_committed consumer return the last stable offset as "high".
        positions = {p.partition: (p.offset if p.offset >= 0 else self._start[p.partition])
                     for p in self.consumer.position(parts)}
        for p in parts:
            high = self.consumer.get_watermark_offsets(p, timeout=5, cached=False)[1]
            if positions[p.partition] < high:
                return False
        return True

    def close(self) -> None:
        self.consumer.close()


def ensure_table(table_uri: str) -> None:
    """Create the empty table if it is not there (so readers and ``known`` see a table from the start)."""

    if not DeltaTable.is_deltatable(table_uri):
        write_deltalake(table_uri, SCHEMA.empty_table(), mode="ignore")


def stack_table_uri(settings: Settings) -> str:
    """The installation's predictions table: ``<lake>/gold/predictions``."""
    return f"{settings.resolved_lake_uri}/gold/predictions"
