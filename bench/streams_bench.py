"""Streams benchmark: the event layer against floors through the real broker, in one run.

Needs the stack's Kafka and registry (``radlake stack up kafka registry``); every run uses new topics. The
same serialized ``instance received`` messages are used throughout.

* **raw pipeline floor**: a plain confluent-kafka consumer is assigned to an empty topic, then a plain
  producer sends the N pre-serialized messages; timed from the first produce to the N-th message consumed.
* **consume floors** (this process, pinned to one core): a fresh plain consumer reads the N messages from offset 0 of the full topic, timed
  from ``assign`` to the N-th message (every fetch included): raw bytes; fetch + decode + validate into the
  typed view (``EventSerde.read``: Confluent framing, the registered schema compiled once per schema id into
  msgspec Structs, what the worker reads); and the same into the pydantic class (``EventSerde.deserialize``).
* **worker**: the same N instance events (+ one manifest per study) are in the worker's input topics
  before it starts; the worker (``radlake streams run``, exactly-once transactions, pinned to the other core) is
  timed from its ``assigned`` log line (group joined, state restored) to the last study's
  ``study.completed`` read by a read_committed consumer.
* **per CPU second**: beside each rate, the events over the CPU time (every thread) of the process that read
  them in the same span: the floors' from ``time.process_time``, the worker's from ``/proc/PID/stat`` between
  its ``assigned`` line (sampled within a millisecond of it) and the last ``study.completed``. On a loaded
  machine the elapsed times measure the scheduler's share as much as the code; CPU seconds do not.
* **latency**: with the worker caught up, studies arrive one at a time; for each, the time from producing its
  last instance to reading its ``study.completed`` (read_committed). With a manifest (completion on the last
  instance) and without one (completion after the quiet period).

    python -m bench.streams_bench [--quick] [--write-docs] [--summary FILE]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from collections import Counter
from collections.abc import Callable
from datetime import datetime
from importlib.metadata import version
from pathlib import Path

import confluent_kafka
from confluent_kafka import Consumer, Producer, TopicPartition

from bench.report import write_section
from lake_schemas.events import (
    InstanceReceived,
    ManifestSeries,
    StudyManifest,
    StudyManifestData,
)
from lake_schemas.topics import (
    INSTANCE_RECEIVED,
    QUARANTINED,
    STUDY_COMPLETED,
    STUDY_MANIFEST,
)
from platform_layer import kafka  # noqa: E402
from platform_layer.endpoints import kafka_bootstrap, registry_url
from platform_layer.identities import use_stack_identity
from platform_layer.kafka import TopicSpec  # noqa: E402
from platform_layer.kafka import connection as kafka_connection
from platform_layer.registration import register, schema_admin
from platform_layer.serde import EventSerde
from platform_layer.settings import Settings
from platform_layer.state import lock_down
from radlake.synthetic.lake_events import SeriesPlan, series_events
from streams.config import StreamsConfig
from streams.worker import READY, ensure_topics

PARTITIONS = 3


def _manifest(events: list[InstanceReceived]) -> StudyManifest:
    head = events[0]
    counts = Counter(e.data.series_uid for e in events)
    return StudyManifest(provider=head.provider, data=StudyManifestData(
        project=head.data.project, study_uid=head.data.study_uid, upload_id="bench",
        expected_instances=len(events),
        series=tuple(ManifestSeries(series_uid=s, expected_instances=n) for s, n in counts.items())))


def _study(tag: str, i: int, slices: int) -> list[InstanceReceived]:
    provider = ("st-olav", "haukeland", "ous")[i % 3]
    return (series_events(SeriesPlan(provider, f"{tag}-{i}", "ax", slices - slices // 3))
            + series_events(SeriesPlan(provider, f"{tag}-{i}", "cor", slices // 3)))


class Topics:
    def __init__(self, tag: str) -> None:
        base = f"bench.streams.{tag}"
        self.floor = f"{base}.floor"
        self.instance, self.manifest = f"{base}.instance", f"{base}.manifest"
        self.completed, self.quarantined, self.dead_letter = f"{base}.completed", f"{base}.quarantined", f"{base}.dlq"

    def worker_args(self) -> list[str]:
        return ["--instance-topic", self.instance, "--manifest-topic", self.manifest, "--completed-topic",
                self.completed, "--quarantined-topic", self.quarantined, "--dead-letter-topic", self.dead_letter]


def _consumer(bootstrap: str, committed: bool = True) -> Consumer:
    return Consumer({**kafka_connection(bootstrap), "group.id": f"bench-{uuid.uuid4().hex}",
                     "isolation.level": "read_committed" if committed else "read_uncommitted",
                     "enable.auto.commit": False, "fetch.wait.max.ms": 10})


def _assign_all(consumer: Consumer, topic: str) -> None:
    consumer.assign([TopicPartition(topic, p, 0) for p in range(PARTITIONS)])


def _producer(bootstrap: str) -> Producer:
    return Producer({**kafka_connection(bootstrap), "linger.ms": 5, "queue.buffering.max.messages": 1_000_000})


def _produce_all(producer: Producer, topic: str, messages: list[tuple[bytes, bytes]]) -> None:
    kafka.produce_all(producer, (kafka.Outgoing(topic, value, key) for key, value in messages), timeout_s=120)


def consume_rate(bootstrap: str, topic: str, total: int,
                 decode: Callable[[bytes], object] | None) -> tuple[float, float]:
    """Messages/s of a fresh consumer reading ``total`` messages from offset 0, timed from ``assign``, and
    messages per CPU second of this process (every thread: the consumer's included) over the same span."""
    consumer = _consumer(bootstrap)
    seen = 0
    try:
        start, cpu = time.perf_counter(), time.process_time()
        _assign_all(consumer, topic)
        while seen < total:
            for msg in consumer.consume(1000, 1.0):
                if msg.error():
                    continue
                value = msg.value()
                if decode is not None:
                    decode(value)
                seen += 1
        return total / (time.perf_counter() - start), total / (time.process_time() - cpu)
    finally:
        consumer.close()


def _cpu_s(pid: int) -> float:
    """CPU seconds (user + system, every thread) a process has used so far (/proc/PID/stat)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def pipeline_rate(bootstrap: str, topic: str, messages: list[tuple[bytes, bytes]]) -> float:
    """Messages/s from the first produce to the last message consumed, consumer assigned beforehand."""
    consumer = _consumer(bootstrap)
    _assign_all(consumer, topic)
    consumer.consume(1, 2.0)  # connected and fetching before the clock starts
    done = threading.Event()
    seen = [0]

    def consume() -> None:
        while seen[0] < len(messages):
            for msg in consumer.consume(1000, 0.1):
                if not msg.error():
                    msg.value()
                    seen[0] += 1
        done.set()

    reader = threading.Thread(target=consume, daemon=True)
    producer = _producer(bootstrap)
    start = time.perf_counter()
    reader.start()
    _produce_all(producer, topic, messages)
    if not done.wait(300):
        raise RuntimeError(f"only {seen[0]} of {len(messages)} messages came back")
    elapsed = time.perf_counter() - start
    reader.join()
    consumer.close()
    return len(messages) / elapsed


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _log_time(log: Path, marker: str) -> float | None:
    """Epoch seconds of the first log line holding ``marker`` (the worker logs with asctime)."""
    for line in log.read_text(errors="replace").splitlines():
        if marker in line:
            stamp = datetime.strptime(line[:23], "%Y-%m-%d %H:%M:%S,%f")
            return stamp.timestamp()
    return None


def start_worker(args: list[str], log: Path) -> subprocess.Popen:
    with log.open("wb") as out:
        proc = subprocess.Popen(  # noqa: S603
            [sys.executable, "-m", "apps.cli", "streams", "run", *args], stdout=out, stderr=subprocess.STDOUT,
            preexec_fn=lambda: os.sched_setaffinity(0, {0}))  # one core, not the floors' core
    while READY not in log.read_text(errors="replace"):
        if proc.poll() is not None:
            raise RuntimeError(f"worker exited:\n{log.read_text()[-2000:]}")
        time.sleep(0.05)
    return proc


def _wait_completed(reader: Consumer, keys: set[bytes], timeout_s: float) -> set[bytes]:
    seen: set[bytes] = set()
    deadline = time.perf_counter() + timeout_s
    while not keys <= seen:
        for msg in reader.consume(100, 0.01):
            if not msg.error():
                seen.add(msg.key())
        if time.perf_counter() > deadline:
            raise RuntimeError(f"only {len(seen & keys)} of {len(keys)} studies completed in {timeout_s} s")
    return seen


def _quantiles(values: list[float]) -> tuple[float, float, float]:
    ordered = sorted(values)
    return (statistics.median(ordered), statistics.quantiles(ordered, n=20, method="inclusive")[18], ordered[-1])


def run(bootstrap: str, registry_url: str, args: argparse.Namespace) -> dict:
    # the floors (this process) and the worker each get one core of their own: the comparison is per core
    os.sched_setaffinity(0, {1 % os.cpu_count()})
    tag = uuid.uuid4().hex[:8]
    topics = Topics(tag)
    registry = schema_admin(Settings(), registry_url)
    register(registry, (INSTANCE_RECEIVED.with_name(topics.floor), INSTANCE_RECEIVED.with_name(topics.instance),
                        STUDY_MANIFEST.with_name(topics.manifest), STUDY_COMPLETED.with_name(topics.completed),
                        QUARANTINED.with_name(topics.quarantined)))
    kafka.ensure_topics(bootstrap, [TopicSpec(topics.floor, PARTITIONS)])
    config = StreamsConfig(bootstrap=bootstrap, registry_url=registry_url, app_id=f"bench-{tag}",
                           instance_topic=topics.instance, manifest_topic=topics.manifest,
                           completed_topic=topics.completed, quarantined_topic=topics.quarantined,
                           dead_letter_topic=topics.dead_letter)
    ensure_topics(config)

    floor_serde = EventSerde(INSTANCE_RECEIVED.with_name(topics.floor), registry)
    instance_serde = EventSerde(INSTANCE_RECEIVED.with_name(topics.instance), registry)
    manifest_serde = EventSerde(STUDY_MANIFEST.with_name(topics.manifest), registry)
    studies = [_study(tag, i, args.slices) for i in range(args.studies)]
    floor_messages = [(e.key.encode(), floor_serde.serialize(e)) for s in studies for e in s]
    total = len(floor_messages)
    print(f"{args.studies} studies, {total} instance events of {len(floor_messages[0][1])} bytes", file=sys.stderr)

    pipeline = pipeline_rate(bootstrap, topics.floor, floor_messages)
    raw = [consume_rate(bootstrap, topics.floor, total, None) for _ in range(args.repeats)]
    # a fresh serde per run: its first message fetches and compiles the schema, inside the timing
    typed = [consume_rate(bootstrap, topics.floor, total, EventSerde(INSTANCE_RECEIVED.with_name(topics.floor),
                                                                     registry).read) for _ in range(args.repeats)]
    model = [consume_rate(bootstrap, topics.floor, total, EventSerde(INSTANCE_RECEIVED.with_name(topics.floor),
                                                                     registry).deserialize) for _ in range(args.repeats)]

    producer = _producer(bootstrap)
    _produce_all(producer, topics.manifest, [(s[0].key.encode(), manifest_serde.serialize(_manifest(s)))
                                             for s in studies])
    _produce_all(producer, topics.instance, [(e.key.encode(), instance_serde.serialize(e)) for s in studies for e in s])
    logs = Path(tempfile.mkdtemp(prefix="streams-bench-"))
    log = logs / "worker.log"
    quiet_s = args.quiet_period_s
    completed = _consumer(bootstrap)
    _assign_all(completed, topics.completed)
    proc = start_worker(["--bootstrap", bootstrap, "--registry-url", registry_url, "--app-id", f"bench-{tag}",
                         "--quiet-period-s", str(quiet_s), "--web-port", str(_free_port()),
                         *topics.worker_args()], log)
    try:
        # the worker's CPU from its `assigned` line on, as its elapsed time (sampled within a millisecond of it)
        while _log_time(log, "streams.worker assigned") is None:
            if proc.poll() is not None:
                raise RuntimeError(f"worker exited:\n{log.read_text()[-2000:]}")
            time.sleep(0.001)
        cpu_at_assigned = _cpu_s(proc.pid)
        _wait_completed(completed, {s[0].key.encode() for s in studies}, 600)
        finished = time.time()
        worker_cpu = total / (_cpu_s(proc.pid) - cpu_at_assigned)
        assigned = _log_time(log, "streams.worker assigned")
        if assigned is None:
            raise RuntimeError("the worker never logged its assignment")
        worker = total / (finished - assigned)
        latency: dict[str, list[float]] = {"manifest": [], "quiet period": []}
        for i in range(args.latency_studies):
            for kind in latency:
                events = _study(f"{tag}-lat-{kind[0]}", i, args.latency_slices)
                if kind == "manifest":
                    _produce_all(producer, topics.manifest,
                                 [(events[0].key.encode(), manifest_serde.serialize(_manifest(events)))])
                _produce_all(producer, topics.instance, [(e.key.encode(), instance_serde.serialize(e)) for e in events])
                sent = time.perf_counter()
                _wait_completed(completed, {events[0].key.encode()}, quiet_s + 60)
                latency[kind].append(time.perf_counter() - sent)
    finally:
        proc.terminate()
        proc.wait(60)
        completed.close()
    return {"total": total, "bytes": len(floor_messages[0][1]), "pipeline": pipeline,
            "raw": max(r for r, _ in raw), "typed": max(r for r, _ in typed), "model": max(r for r, _ in model),
            "raw_cpu": max(c for _, c in raw), "typed_cpu": max(c for _, c in typed),
            "model_cpu": max(c for _, c in model), "worker": worker, "worker_cpu": worker_cpu,
            "latency": latency, "quiet_s": quiet_s}


def _summary_rows(r: dict) -> list[dict]:
    _, quiet_p95, _ = _quantiles(r["latency"]["quiet period"])
    return [
        {"benchmark": "streams", "measure": "typed consume / raw consume through the broker",
         "ratio": r["typed"] / r["raw"], "goal": ">= 0.50"},
        {"benchmark": "streams", "measure": "worker (exactly-once, one core) / typed consume",
         "ratio": r["worker"] / r["typed"], "goal": ">= 0.50"},
        {"benchmark": "streams", "measure": "worker / typed consume, events per CPU second",
         "ratio": r["worker_cpu"] / r["typed_cpu"], "goal": ">= 0.50"},
        {"benchmark": "streams", "measure": "p95 last instance -> completed / (quiet period + 1 s)",
         "ratio": quiet_p95 / (r["quiet_s"] + 1), "goal": "<= 1.00"},
    ]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--studies", type=int, default=100)
    parser.add_argument("--slices", type=int, default=400)
    parser.add_argument("--repeats", type=int, default=3, help="runs of each consume floor (best is reported)")
    parser.add_argument("--latency-studies", type=int, default=20)
    parser.add_argument("--latency-slices", type=int, default=20)
    parser.add_argument("--quiet-period-s", type=float, default=2.0)
    parser.add_argument("--quick", action="store_true", help="40 studies x 500 instances, 10 latency studies")
    parser.add_argument("--write-docs", action="store_true")
    parser.add_argument("--summary", type=Path, help="append the headline ratios to this file (JSON lines)")
    args = parser.parse_args(argv)
    if args.quick:
        args.studies, args.slices, args.latency_studies = 40, 500, 10

    settings = Settings()
    lock_down(settings)  # what the bench writes under the state dir is private, as the commands' is
    use_stack_identity(settings)  # as the platform administrator, like the commands it stands for
    load_before = os.getloadavg()
    r = run(kafka_bootstrap(settings), registry_url(settings), args)
    load_after = os.getloadavg()

    rows = [
        ("produce -> broker -> consume, raw bytes (pipeline floor)", r["pipeline"], "", None, ""),
        ("consume from offset 0, raw bytes (consume floor)", r["raw"], "100%", r["raw_cpu"], "100%"),
        ("consume + decode + validate into the typed view (`EventSerde.read`; the worker's path)", r["typed"],
         f"{r['typed'] / r['raw']:.0%}", r["typed_cpu"], f"{r['typed_cpu'] / r['raw_cpu']:.0%}"),
        ("consume + decode + validate into the pydantic event (`EventSerde.deserialize`)", r["model"],
         f"{r['model'] / r['raw']:.0%}", r["model_cpu"], f"{r['model_cpu'] / r['raw_cpu']:.0%}"),
        ("radlake streams worker, exactly-once, one core", r["worker"],
         f"{r['worker'] / r['raw']:.0%} ({r['worker'] / r['typed']:.0%} of typed)", r["worker_cpu"],
         f"{r['worker_cpu'] / r['raw_cpu']:.0%} ({r['worker_cpu'] / r['typed_cpu']:.0%} of typed)"),
    ]
    lat_rows = []
    for kind, values in r["latency"].items():
        p50, p95, worst = _quantiles(values)
        lat_rows.append(f"| {kind} | {len(values)} | {p50 * 1000:.0f} ms | {p95 * 1000:.0f} ms | {worst * 1000:.0f} ms |")
    versions = (f"confluent-kafka {version('confluent-kafka')} (librdkafka {confluent_kafka.libversion()[0]}), "
                f"msgspec {version('msgspec')}, pydantic {version('pydantic')}, Kafka {settings.kafka_version}, "
                f"Python {platform.python_version()}")
    body = "\n".join([
        f"Load average {load_before[0]:.2f} at the start, {load_after[0]:.2f} at the end. {versions}.",
        "",
        f"{r['total']:,} `instance received` messages of {r['bytes']} bytes ({args.studies} studies x "
        f"{args.slices} instances in 2 series), 3 partitions, one broker on this machine. Consume floors: best of "
        f"{args.repeats}, timed from `assign` (every fetch included). The worker reads the same events (+ one "
        f"manifest per study) from its own topics, pinned to one core, timed from its `assigned` log line to "
        f"the last `study.completed` read `read_committed`. Per CPU second: the events over the CPU time the "
        f"reader's process (every thread, librdkafka's included) used in the same span (the worker's from its "
        f"`assigned` line), which a loaded machine does not skew as it skews elapsed time.",
        "",
        "| reader | instance events/s | vs consume floor | instance events per CPU second | vs consume floor |",
        "| --- | ---: | ---: | ---: | ---: |",
        *[f"| {name} | {rate:,.0f} | {share} | {'' if cpu is None else f'{cpu:,.0f}'} | {cpu_share} |"
          for name, rate, share, cpu, cpu_share in rows],
        "",
        f"Latency, worker caught up, one study of {args.latency_slices} instances at a time: last instance "
        f"produced -> its `study.completed` read `read_committed` (quiet period {r['quiet_s']:.0f} s, commit "
        f"interval 0.5 s or once drained after 50 ms, quiet check every 0.25 s):",
        "",
        "| completion | studies | p50 | p95 | max |",
        "| --- | ---: | ---: | ---: | ---: |",
        *lat_rows,
        "",
        "Goals (issue 18): typed consume >= 50 % of the consume floor; worker >= 50 % of typed consume; p95 "
        "of a quiet-period completion <= quiet period + 1 s.",
    ])
    print(body)
    if args.summary:
        with args.summary.open("a") as out:
            for row in _summary_rows(r):
                out.write(json.dumps(row) + "\n")
    if args.write_docs:
        write_section("streams", "Streams: event decoding and the study completion worker vs floors through the broker",
                      " ".join(["python -m bench.streams_bench", *(sys.argv[1:] if argv is None else argv)]), body)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
