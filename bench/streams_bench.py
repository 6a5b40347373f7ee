"""Streams benchmark: the faust worker against a bare confluent-kafka consume loop (the floor).

Needs the stack's Kafka and registry (``radlake stack up kafka registry``); every run uses new topics.

* **throughput**: N instance events (+ one manifest per study) are produced first; then the worker is
  started and timed from "ready" to the last study's ``completed`` event (read ``read_committed``). The
  floors read the same topic with a plain consumer: raw bytes, and bytes + registry-validated decoding.
* **latency**: with the worker caught up, studies are produced one at a time at a steady pace; for each,
  the time from producing its last instance (the one that completes the manifest) to reading its
  ``completed`` event. p50 / p95 over the studies.

    python -m bench.streams_bench [--studies 20 --slices 100 --latency-studies 40] [--write-docs]
"""

from __future__ import annotations

import argparse
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from collections import Counter
from pathlib import Path

from confluent_kafka import Consumer, Producer, TopicPartition

from lake_schemas.events import ManifestSeries, StudyManifest, StudyManifestData
from lake_schemas.registration import register
from lake_schemas.serde import EventSerde, registry_client
from lake_schemas.topics import INSTANCE_RECEIVED, QUARANTINED, STUDY_COMPLETED, STUDY_MANIFEST
from radlake.synthetic.lake_events import SeriesPlan, series_events

PARTITIONS = 3


def _manifest(events) -> StudyManifest:
    head = events[0]
    counts = Counter(e.data.series_uid for e in events)
    return StudyManifest(provider=head.provider, data=StudyManifestData(
        project=head.data.project, study_uid=head.data.study_uid, upload_id="bench",
        expected_instances=len(events),
        series=tuple(ManifestSeries(series_uid=s, expected_instances=n) for s, n in counts.items())))


def _study(tag: str, i: int, slices: int):
    provider = ("st-olav", "haukeland", "ous")[i % 3]
    return (series_events(SeriesPlan(provider, f"{tag}-{i}", "ax", slices - slices // 3))
            + series_events(SeriesPlan(provider, f"{tag}-{i}", "cor", slices // 3)))


class Topics:
    def __init__(self, tag: str) -> None:
        base = f"bench.streams.{tag}"
        self.instance, self.manifest = f"{base}.instance", f"{base}.manifest"
        self.completed, self.quarantined, self.dead_letter = f"{base}.completed", f"{base}.quarantined", f"{base}.dlq"

    def args(self) -> list[str]:
        return ["--instance-topic", self.instance, "--manifest-topic", self.manifest, "--completed-topic",
                self.completed, "--quarantined-topic", self.quarantined, "--dead-letter-topic", self.dead_letter]


class Publisher:
    def __init__(self, bootstrap: str, registry, topics: Topics) -> None:
        self.producer = Producer({"bootstrap.servers": bootstrap, "enable.idempotence": True, "linger.ms": 2})
        self.instance = EventSerde(INSTANCE_RECEIVED.with_name(topics.instance), registry)
        self.manifest = EventSerde(STUDY_MANIFEST.with_name(topics.manifest), registry)

    def study(self, events, flush: bool = True) -> None:
        self.producer.produce(self.manifest.topic.name, key=events[0].key.encode(),
                              value=self.manifest.serialize(_manifest(events)))
        for e in events:
            self.producer.produce(self.instance.topic.name, key=e.key.encode(), value=self.instance.serialize(e))
            self.producer.poll(0)
        if flush and self.producer.flush(60) != 0:
            raise RuntimeError("Kafka did not acknowledge every event")


def _reader(bootstrap: str, topic: str, committed: bool = True) -> Consumer:
    consumer = Consumer({"bootstrap.servers": bootstrap, "group.id": f"bench-{uuid.uuid4().hex}",
                         "isolation.level": "read_committed" if committed else "read_uncommitted",
                         "enable.auto.commit": False, "fetch.wait.max.ms": 10})
    consumer.assign([TopicPartition(topic, p, 0) for p in range(PARTITIONS)])
    return consumer


def floor(bootstrap: str, topic: str, total: int, decode: EventSerde | None) -> float:
    """Seconds for a plain consumer to read ``total`` messages (and decode them if ``decode``), from the
    first message on (connecting and the first fetch are not counted)."""
    consumer = _reader(bootstrap, topic)
    seen, start = 0, None
    try:
        while seen < total:
            for msg in consumer.consume(500, 1.0):
                if msg.error():
                    continue
                start = start or time.perf_counter()
                if decode is not None:
                    decode.deserialize(msg.value())
                seen += 1
    finally:
        consumer.close()
    return time.perf_counter() - start


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def start_worker(args: list[str], log: Path) -> subprocess.Popen:
    with log.open("wb") as out:
        proc = subprocess.Popen([sys.executable, "-m", "radlake.cli", "streams", "run", *args],  # noqa: S603
                                stdout=out, stderr=subprocess.STDOUT)
    while "Worker]: Ready" not in log.read_text(errors="replace"):
        if proc.poll() is not None:
            raise RuntimeError(f"worker exited:\n{log.read_text()[-2000:]}")
        time.sleep(0.05)
    return proc


def run_once(bootstrap: str, registry_url: str, registry, args, commit_interval_s: float) -> dict:
    """One backlog + latency run on new topics with a worker at ``commit_interval_s``."""
    from streams.app import ensure_topics
    from streams.config import StreamsConfig

    tag = uuid.uuid4().hex[:8]
    topics = Topics(tag)
    register(registry, (INSTANCE_RECEIVED.with_name(topics.instance), STUDY_MANIFEST.with_name(topics.manifest),
                        STUDY_COMPLETED.with_name(topics.completed), QUARANTINED.with_name(topics.quarantined)))
    worker_args = ["--bootstrap", bootstrap, "--registry-url", registry_url, "--app-id", f"bench-{tag}",
                   "--quiet-period-s", "600", "--commit-interval-s", str(commit_interval_s),
                   "--web-port", str(_free_port()), *topics.args()]
    logs = Path(tempfile.mkdtemp(prefix="streams-bench-"))
    # the worker creates its topics; create them first so that the backlog is there before it starts
    ensure_topics(StreamsConfig(bootstrap=bootstrap, registry_url=registry_url, data_dir=logs,
                                app_id=f"bench-{tag}", instance_topic=topics.instance,
                                manifest_topic=topics.manifest, completed_topic=topics.completed,
                                quarantined_topic=topics.quarantined, dead_letter_topic=topics.dead_letter))
    publisher = Publisher(bootstrap, registry, topics)
    studies = [_study(tag, i, args.slices) for i in range(args.studies)]
    for events in studies:
        publisher.study(events, flush=False)
    publisher.producer.flush(120)
    total = sum(len(s) for s in studies)
    print(f"commit interval {commit_interval_s} s: backlog of {args.studies} studies, {total} instance events",
          file=sys.stderr)
    floor_raw = floor(bootstrap, topics.instance, total, None)
    floor_decoded = floor(bootstrap, topics.instance, total, publisher.instance)

    completed = _reader(bootstrap, topics.completed)
    proc = start_worker(worker_args, logs / "worker.log")
    start = time.perf_counter()
    done: set[bytes] = set()
    latencies: list[float] = []
    try:
        while len(done) < args.studies:
            for msg in completed.consume(100, 0.02):  # consume() waits for all 100 or the timeout
                if not msg.error():
                    done.add(msg.key())
            if time.perf_counter() - start > 600:
                raise RuntimeError(f"only {len(done)} of {args.studies} studies completed in 600 s")
        worker_s = time.perf_counter() - start
        for i in range(args.latency_studies):
            events = _study(f"{tag}-lat", i, args.latency_slices)
            publisher.study(events)
            sent = time.perf_counter()
            key = events[0].key.encode()
            while True:
                msgs = [m for m in completed.consume(10, 0.05) if not m.error()]
                if any(m.key() == key for m in msgs):
                    latencies.append(time.perf_counter() - sent)
                    break
                if time.perf_counter() - sent > 60:
                    raise RuntimeError("a study did not complete within 60 s")
            time.sleep(max(0.0, args.pace_s - (time.perf_counter() - sent)))
    finally:
        proc.terminate()
        proc.wait(60)
        completed.close()
    return {"total": total, "raw": total / floor_raw, "decoded": total / floor_decoded,
            "worker": total / worker_s, "latencies": latencies}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--studies", type=int, default=20)
    parser.add_argument("--slices", type=int, default=100)
    parser.add_argument("--latency-studies", type=int, default=40)
    parser.add_argument("--latency-slices", type=int, default=20)
    parser.add_argument("--pace-s", type=float, default=0.5, help="between two studies in the latency run")
    parser.add_argument("--commit-intervals", default="1.0,0.2", help="one run per worker commit interval (s)")
    parser.add_argument("--write-docs", action="store_true")
    args = parser.parse_args(argv)

    from infra.components.kafka import Kafka
    from infra.components.registry import SchemaRegistry
    from radlake.settings import Settings

    settings = Settings()
    bootstrap, registry_url = Kafka(settings).address, SchemaRegistry(settings).address
    registry = registry_client(registry_url)
    runs = {float(c): run_once(bootstrap, registry_url, registry, args, float(c))
            for c in args.commit_intervals.split(",")}

    first = next(iter(runs.values()))
    rows = [("bare confluent-kafka consumer, raw bytes (floor)", first["raw"]),
            ("bare consumer + registry-validated decode (floor with decoding)", first["decoded"])]
    rows += [(f"radlake streams worker, exactly-once, commit interval {c} s", r["worker"]) for c, r in runs.items()]
    decoded = first["decoded"]
    table = [(name, rate, "" if i == 0 else f"{rate / decoded:.0%}") for i, (name, rate) in enumerate(rows)]
    lines = []
    for c, r in runs.items():
        lat = sorted(r["latencies"])
        q = statistics.quantiles(lat, n=20, method="inclusive")
        lines.append(f"| {c} s | {len(lat)} | {statistics.median(lat) * 1000:.0f} ms | {q[18] * 1000:.0f} ms "
                     f"| {lat[-1] * 1000:.0f} ms |")
    body = "\n".join([
        f"Throughput: {args.studies} studies x {args.slices} instances (2 series) + 1 manifest each "
        f"({first['total']} instance events) are in the topic before the reader starts; 3 partitions. Floors "
        f"are timed from their first message; the worker (faust-streaming, in-memory tables restored from "
        f"changelogs) from `Ready` to reading the last study's `completed` event (read_committed), so it "
        f"includes its first fetch and one commit interval.",
        "",
        "| reader | instance events/s | vs decoding floor |",
        "| --- | ---: | ---: |",
        *[f"| {name} | {rate:,.0f} | {share} |" for name, rate, share in table],
        "",
        f"End-to-end latency: last instance of a study produced -> its `study.completed` read "
        f"(read_committed), {args.latency_studies} studies of {args.latency_slices} instances, one every "
        f"{args.pace_s} s, worker caught up:",
        "",
        "| worker commit interval | studies | p50 | p95 | max |",
        "| ---: | ---: | ---: | ---: | ---: |",
        *lines,
        "",
        "Outputs become visible to read_committed readers when the transaction holding them commits, so the "
        "latency follows the commit interval; a shorter interval costs throughput (more transactions).",
    ])
    print(body)
    if args.write_docs:
        from bench.report import write_section

        write_section("streams", "Streams: study completion worker vs bare consumer",
                      " ".join(["python -m bench.streams_bench", *(sys.argv[1:] if argv is None else argv)]), body)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
