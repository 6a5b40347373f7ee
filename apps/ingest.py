"""``radlake ingest report --provider NAME``: reconcile the upload journal, the object store and the topics.

Reads the ``instance received``, ``quarantined`` and ``study manifest`` topics from the beginning to their
current end (registry-validated), keeps the provider's events and compares them with the journal's
acknowledged outcomes and with the object store. Prints the findings (JSON with ``--json``). Exit status:
0 nothing missing, 1 something missing or conflicting, 2 usage or infrastructure error.
"""

from __future__ import annotations

import argparse
import json
import sys
import uuid
from collections.abc import Sequence
from pathlib import Path

from lake_schemas.topics import INSTANCE_RECEIVED, QUARANTINED, STUDY_MANIFEST, Topic
from radlake.ingest import journal
from radlake.ingest.reconcile import reconcile
from radlake.settings import get_settings


def read_topic(bootstrap: str, registry_url: str, topic: Topic, provider: str, timeout_s: float = 60.0) -> list:
    """Every event of ``provider`` on ``topic``, from the beginning to the end offsets seen at the start."""
    import time

    from confluent_kafka import Consumer, KafkaException, TopicPartition

    from lake_schemas.serde import EventSerde, registry_client

    serde = EventSerde(topic, registry_client(registry_url))
    consumer = Consumer({"bootstrap.servers": bootstrap, "group.id": f"radlake-report-{uuid.uuid4().hex[:8]}",
                         "enable.auto.commit": False, "auto.offset.reset": "earliest",
                         "isolation.level": "read_committed"})
    events = []
    try:
        metadata = consumer.list_topics(topic.name, timeout=10).topics.get(topic.name)
        if metadata is None or metadata.error is not None:
            return []
        ends = {}
        for p in metadata.partitions:
            low, high = consumer.get_watermark_offsets(TopicPartition(topic.name, p), timeout=10)
            if high > low:
                ends[p] = high
        if not ends:
            return []
        consumer.assign([TopicPartition(topic.name, p, 0) for p in ends])
        deadline = time.monotonic() + timeout_s
        while ends and time.monotonic() < deadline:
            msg = consumer.poll(1.0)
            if msg is None:
                continue
            if msg.error():
                raise KafkaException(msg.error())
            event = serde.deserialize(msg.value())
            if event.provider == provider:
                events.append(event)
            if msg.offset() + 1 >= ends.get(msg.partition(), 0):
                ends.pop(msg.partition(), None)
    finally:
        consumer.close()
    return events


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="radlake ingest", description=__doc__.splitlines()[0].strip("`."))
    sub = parser.add_subparsers(dest="action", required=True)
    rep = sub.add_parser("report", help="reconcile journal, object store and topics")
    rep.add_argument("--provider", required=True)
    rep.add_argument("--journal", type=Path)
    rep.add_argument("--instance-topic", default=INSTANCE_RECEIVED.name)
    rep.add_argument("--quarantine-topic", default=QUARANTINED.name)
    rep.add_argument("--manifest-topic", default=STUDY_MANIFEST.name)
    rep.add_argument("--json", action="store_true")
    try:
        args = parser.parse_args(argv)
    except SystemExit as exit_:
        return int(exit_.code or 0)
    settings = get_settings()
    from confluent_kafka import KafkaException

    from infra.components.kafka import Kafka
    from infra.components.registry import SchemaRegistry
    from lake_schemas.errors import SchemaViolation
    from radlake.ingest.errors import JournalError
    from radlake.object_store import ObjectStore

    path = args.journal or settings.state_dir / "uploads" / f"{args.provider}.jsonl"
    try:
        state = journal.load(path)
        bootstrap, registry = Kafka(settings).address, SchemaRegistry(settings).address
        instances = read_topic(bootstrap, registry, INSTANCE_RECEIVED.with_name(args.instance_topic), args.provider)
        quarantined = read_topic(bootstrap, registry, QUARANTINED.with_name(args.quarantine_topic), args.provider)
        manifests = read_topic(bootstrap, registry, STUDY_MANIFEST.with_name(args.manifest_topic), args.provider)
    except (JournalError, KafkaException, SchemaViolation) as err:
        print(f"radlake ingest report: {err}", file=sys.stderr)
        return 2
    store = ObjectStore(settings.resolved_object_store_uri)
    result = reconcile(state.outcomes(), list(state.manifests.values()), instances, quarantined, store.exists,
                       manifests)
    if args.json:
        print(json.dumps(result.to_json(), indent=2))
    else:
        print(f"provider {args.provider}: journal {path} ({len(state.acks)} acknowledged requests)")
        print(f"  acknowledged: {result.acknowledged_instances} stored, {result.acknowledged_quarantined} quarantined")
        print(f"  on the topics: {result.events} instance events, {result.quarantine_events} quarantine events")
        for name in ("missing_objects", "missing_events", "missing_quarantine_events", "conflicting_events",
                     "duplicate_events", "unexpected_events", "incomplete_studies"):
            items = getattr(result, name)
            print(f"  {name.replace('_', ' ')}: {len(items)}")
            for item in items[:20]:
                print(f"    {json.dumps(item, sort_keys=True)}")
        print("OK: nothing missing" if result.ok else "NOT OK: see above")
    return 0 if result.ok else 1


if __name__ == "__main__":
    raise SystemExit(main())
