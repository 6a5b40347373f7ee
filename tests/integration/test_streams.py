"""The streams worker against the real broker and registry: completion, updates, dedupe, conflicts,
dead letters, and a kill -9 in the middle of a stream of instances.

The worker runs as a subprocess (``radlake streams run``) on topics unique to this module; outputs are read
``read_committed``, as a downstream consumer of a transactional producer should.
"""

from __future__ import annotations

import http.client
import json
import os
import signal
import socket
import ssl
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
import uuid
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

import pytest
from confluent_kafka import Consumer, Producer, TopicPartition

from apps.streams import main
from bench.lake_feed import EventPublisher, publish
from lake_schemas.events import ManifestSeries, StudyManifest, StudyManifestData
from lake_schemas.topics import (
    DLQ_MESSAGE,
    DLQ_REASON,
    DLQ_SOURCE_OFFSET,
    DLQ_SOURCE_TOPIC,
    INSTANCE_RECEIVED,
    QUARANTINED,
    STUDY_COMPLETED,
    STUDY_MANIFEST,
)
from platform_layer.kafka import connection as kafka_connection
from platform_layer.registration import register, schema_admin
from platform_layer.serde import EventSerde
from platform_layer.settings import Settings
from platform_layer.tls import ca_file
from radlake.synthetic.lake_events import SeriesPlan, conflicting, series_events
from streams.worker import READY

pytestmark = pytest.mark.integration

PARTITIONS = 3


@dataclass(frozen=True)
class Topics:
    instance: str
    manifest: str
    completed: str
    quarantined: str
    dead_letter: str

    @classmethod
    def unique(cls, label: str) -> Topics:
        tag = f"{label}.{uuid.uuid4().hex[:8]}"
        return cls(*(f"test.streams.{tag}.{kind}" for kind in
                     ("instance", "manifest", "completed", "quarantined", "dead-letter")))

    def args(self) -> list[str]:
        return ["--instance-topic", self.instance, "--manifest-topic", self.manifest, "--completed-topic",
                self.completed, "--quarantined-topic", self.quarantined, "--dead-letter-topic", self.dead_letter]


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Worker:
    """``radlake streams run`` as a child process; its log goes to a file per start."""

    scraper: ssl.SSLContext | None = None  # set for the module by _metrics_scraper

    def __init__(self, logs: Path, args: list[str]) -> None:
        self.logs, self.args, self.starts = logs, args, 0
        self.port = _free_port()
        self.proc: subprocess.Popen | None = None

    def log_of(self, start: int) -> Path:
        return self.logs / f"worker-{start}.log"

    @property
    def log(self) -> Path:
        return self.log_of(self.starts)

    def start(self, timeout_s: float = 90) -> None:
        self.starts += 1
        with self.log.open("wb") as out:
            self.proc = subprocess.Popen(  # noqa: S603
                [sys.executable, "-m", "apps.cli", "streams", "run", "--web-port", str(self.port), *self.args],
                stdout=out, stderr=subprocess.STDOUT,
            )
        deadline = time.monotonic() + timeout_s
        while READY not in self.log.read_text(errors="replace"):
            if self.proc.poll() is not None:
                raise AssertionError(f"worker exited {self.proc.returncode}:\n{self.log.read_text()[-3000:]}")
            if time.monotonic() > deadline:
                raise AssertionError(f"worker not ready in {timeout_s}s:\n{self.log.read_text()[-3000:]}")
            time.sleep(0.5)

    def kill9(self) -> None:
        os.kill(self.proc.pid, signal.SIGKILL)
        self.proc.wait()

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(60)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()

    def excerpt(self, lines: int = 60) -> str:
        """What a failing test shows of the worker: each start's warnings, errors, completions and rebalances."""
        keep = ("WARN", "ERROR", "study ", "ready", "assigned", "revoked", "restored", "Traceback")
        parts = []
        for start in range(1, self.starts + 1):
            text = self.log_of(start).read_text(errors="replace").splitlines()
            picked = [line for line in text if any(k in line for k in keep)]
            parts.append(f"--- worker start {start} ---\n" + "\n".join(picked[-lines:]))
        return "\n".join(parts)

    def metrics(self) -> str:
        """What a platform scraper reads (HTTPS, with a client certificate from the platform CA)."""
        with urllib.request.urlopen(f"https://127.0.0.1:{self.port}/metrics", timeout=10,  # noqa: S310
                                    context=Worker.scraper) as response:
            return response.read().decode()


def _metric(text: str, name: str) -> float:
    return sum(float(line.rsplit(" ", 1)[1]) for line in text.splitlines()
               if line.startswith(name + "{") or line.startswith(name + " "))


class Reader:
    """Reads a topic from the beginning, ``read_committed``, keeping every message seen."""

    def __init__(self, bootstrap: str, topic: str) -> None:
        self.consumer = Consumer({**kafka_connection(bootstrap), "group.id": f"reader-{uuid.uuid4().hex}",
                                  "isolation.level": "read_committed", "enable.auto.commit": False})
        self.consumer.assign([TopicPartition(topic, p, 0) for p in range(PARTITIONS)])
        self.messages: list = []

    def until(self, done, timeout_s: float = 90, settle_s: float = 3.0, worker: Worker | None = None) -> list:
        """Poll until ``done(messages)``, then ``settle_s`` longer (a duplicate would show up there).
        A failure shows the keys read and, given the ``worker``, the telling lines of its logs."""
        deadline = time.monotonic() + timeout_s
        while not done(self.messages):
            if time.monotonic() > deadline:
                keys = sorted({(m.key() or b"").decode() for m in self.messages})
                raise AssertionError(
                    f"condition not met in {timeout_s}s with {len(self.messages)} messages (keys {keys})"
                    + ("" if worker is None else f"\n{worker.excerpt()}"))
            self._poll(1.0)
        settle = time.monotonic() + settle_s
        while time.monotonic() < settle:
            self._poll(0.5)
        return self.messages

    def _poll(self, timeout: float) -> None:
        msg = self.consumer.poll(timeout)
        if msg is not None and not msg.error():
            self.messages.append(msg)

    def close(self) -> None:
        self.consumer.close()


def manifest_for(events, *, provider: str | None = None) -> StudyManifest:
    counts = Counter(e.data.series_uid for e in events)
    head = events[0]
    return StudyManifest(
        event_id=str(uuid.uuid5(uuid.NAMESPACE_URL, f"manifest/{head.data.study_uid}/{len(events)}")),
        provider=provider or head.provider,
        data=StudyManifestData(
            project=head.data.project, study_uid=head.data.study_uid, upload_id=f"up-{head.data.study_uid[-6:]}",
            expected_instances=len(events),
            series=tuple(ManifestSeries(series_uid=uid, expected_instances=n) for uid, n in counts.items()),
        ),
    )


def _study(label: str, *series: int, provider: str = "st-olav"):
    return [e for i, n in enumerate(series) for e in series_events(SeriesPlan(provider, label, f"se{i}", n))]


@pytest.fixture(scope="module", autouse=True)
def _metrics_scraper(scraper_tls):
    Worker.scraper = scraper_tls


@pytest.fixture(scope="module")
def registry(registry_url):
    return schema_admin(Settings())


def _register(registry, topics: Topics) -> None:
    register(registry, (INSTANCE_RECEIVED.with_name(topics.instance), STUDY_MANIFEST.with_name(topics.manifest),
                        STUDY_COMPLETED.with_name(topics.completed), QUARANTINED.with_name(topics.quarantined)))


@pytest.fixture(scope="module")
def shared(kafka_bootstrap, registry_url, registry, tmp_path_factory):
    """One worker (quiet period 4 s) for the behaviour tests; each test uses its own studies."""
    topics = Topics.unique("shared")
    _register(registry, topics)
    worker = Worker(tmp_path_factory.mktemp("streams-shared"), [
        "--bootstrap", kafka_bootstrap, "--registry-url", registry_url, "--app-id", f"it-{uuid.uuid4().hex[:8]}",
        "--quiet-period-s", "4", "--tick-interval-s", "0.5", *topics.args(),
    ])
    worker.start()
    completed = Reader(kafka_bootstrap, topics.completed)
    yield topics, worker, completed
    completed.close()
    worker.stop()


def _decode(registry, topics: Topics, messages):
    serde = EventSerde(STUDY_COMPLETED.with_name(topics.completed), registry)
    return [serde.deserialize(m.value()) for m in messages]


def _versions_of(registry, topics, reader, study_uid):
    return [e for e in _decode(registry, topics, reader.messages) if e.data.study_uid == study_uid]


def test_manifest_completes_a_study_once(shared, kafka_bootstrap, registry_url, registry):
    topics, _, completed = shared
    events = _study("manifest", 6, 3)
    publish(kafka_bootstrap, registry_url, STUDY_MANIFEST.with_name(topics.manifest), [manifest_for(events)])
    publish(kafka_bootstrap, registry_url, INSTANCE_RECEIVED.with_name(topics.instance), events[::-1])
    study_uid = events[0].data.study_uid
    completed.until(lambda _m: _versions_of(registry, topics, completed, study_uid))
    [done] = _versions_of(registry, topics, completed, study_uid)
    assert done.event_type == "study.completed" and done.data.study_version == 1
    assert done.data.completion_reason == "manifest"
    assert done.data.instance_count == 9
    assert sorted(s.instance_count for s in done.data.series) == [3, 6]
    assert set(done.data.event_ids) == {e.event_id for e in events}
    for series in done.data.series:  # slice order along the normal, whatever the arrival order
        z = [ref.image_position_patient[2] for ref in series.instances]
        assert z == sorted(z)


def test_quiet_period_completes_a_study_without_manifest(shared, kafka_bootstrap, registry_url, registry):
    topics, _, completed = shared
    events = _study("quiet", 4)
    publish(kafka_bootstrap, registry_url, INSTANCE_RECEIVED.with_name(topics.instance), events)
    study_uid = events[0].data.study_uid
    completed.until(lambda _m: _versions_of(registry, topics, completed, study_uid))
    [done] = _versions_of(registry, topics, completed, study_uid)
    assert done.data.completion_reason == "quiet_period" and done.data.instance_count == 4


def test_late_arrival_makes_an_update_not_a_second_completed(shared, kafka_bootstrap, registry_url, registry):
    topics, _, completed = shared
    events = _study("late", 5)
    instance_topic = INSTANCE_RECEIVED.with_name(topics.instance)
    publish(kafka_bootstrap, registry_url, STUDY_MANIFEST.with_name(topics.manifest), [manifest_for(events[:4])])
    publish(kafka_bootstrap, registry_url, instance_topic, events[:4])
    study_uid = events[0].data.study_uid
    completed.until(lambda _m: _versions_of(registry, topics, completed, study_uid))
    publish(kafka_bootstrap, registry_url, instance_topic, events[4:])
    completed.until(lambda _m: len(_versions_of(registry, topics, completed, study_uid)) >= 2)
    v1, v2 = _versions_of(registry, topics, completed, study_uid)
    assert (v1.event_type, v1.data.study_version, v1.data.instance_count) == ("study.completed", 1, 4)
    assert (v2.event_type, v2.data.study_version, v2.data.instance_count) == ("study.updated", 2, 5)
    assert v1.event_id != v2.event_id


def test_redelivery_is_dropped_and_counted(shared, kafka_bootstrap, registry_url, registry):
    topics, worker, completed = shared
    events = _study("redelivery", 5)
    # the same events twice (same ids), then the same instances under new event ids (same bytes)
    again = [e.model_copy(update={"event_id": str(uuid.uuid4())}) for e in events]
    before = _metric(worker.metrics(), "radlake_streams_duplicates_total")
    publish(kafka_bootstrap, registry_url, STUDY_MANIFEST.with_name(topics.manifest), [manifest_for(events)])
    publish(kafka_bootstrap, registry_url, INSTANCE_RECEIVED.with_name(topics.instance), events + events + again)
    study_uid = events[0].data.study_uid
    completed.until(lambda _m: _versions_of(registry, topics, completed, study_uid), settle_s=6)
    [done] = _versions_of(registry, topics, completed, study_uid)  # also no update: nothing new arrived
    assert done.data.instance_count == 5 and set(done.data.event_ids) == {e.event_id for e in events}
    text = worker.metrics()
    assert _metric(text, "radlake_streams_duplicates_total") - before == 10
    assert 'by="event_id"' in text and 'by="sop_uid_sha256"' in text


def test_metrics_are_served_over_tls_to_platform_clients_only(shared, settings):
    _, worker, _ = shared
    assert "radlake_streams_events_total" in worker.metrics()
    with pytest.raises((OSError, http.client.HTTPException)):  # plain HTTP: the TLS handshake fails
        urllib.request.urlopen(f"http://127.0.0.1:{worker.port}/metrics", timeout=10).read()  # noqa: S310
    anonymous = ssl.create_default_context(cafile=str(ca_file(settings)))  # trusts the server, shows no certificate
    with pytest.raises((OSError, http.client.HTTPException)):
        urllib.request.urlopen(f"https://127.0.0.1:{worker.port}/metrics", timeout=10,  # noqa: S310
                               context=anonymous).read()
    stranger = ssl.create_default_context()  # the system's CAs only: the worker's certificate is not trusted
    with pytest.raises(ssl.SSLCertVerificationError):
        try:
            urllib.request.urlopen(f"https://127.0.0.1:{worker.port}/metrics", timeout=10,  # noqa: S310
                                   context=stranger).read()
        except urllib.error.URLError as err:
            raise err.reason from err


def test_conflict_is_quarantined(shared, kafka_bootstrap, registry_url, registry):
    topics, _, completed = shared
    events = _study("conflict", 3)
    bad = conflicting(events[1])
    publish(kafka_bootstrap, registry_url, INSTANCE_RECEIVED.with_name(topics.instance), events + [bad])
    reader = Reader(kafka_bootstrap, topics.quarantined)
    serde = EventSerde(QUARANTINED.with_name(topics.quarantined), registry)
    try:
        messages = reader.until(lambda ms: any(serde.deserialize(m.value()).data.sop_instance_uid
                                               == bad.data.sop_instance_uid for m in ms))
    finally:
        reader.close()
    [quarantined] = [q for q in map(serde.deserialize, (m.value() for m in messages))
                     if q.data.sop_instance_uid == bad.data.sop_instance_uid]
    assert quarantined.data.reason == "CONFLICT" and quarantined.data.stage == "streams"
    assert quarantined.data.input_sha256 == bad.data.sha256
    study_uid = events[0].data.study_uid
    completed.until(lambda _m: _versions_of(registry, topics, completed, study_uid))
    [done] = _versions_of(registry, topics, completed, study_uid)
    refs = {r.sop_instance_uid: r.sha256 for s in done.data.series for r in s.instances}
    assert refs[bad.data.sop_instance_uid] == events[1].data.sha256  # the first version is kept


def test_malformed_messages_go_to_the_dead_letter_topic(shared, kafka_bootstrap, registry):
    topics, worker, _ = shared
    schema_id = registry.get_latest_version(f"{topics.instance}-value").schema_id
    bad = [
        b"not the wire format at all",
        b"\x00" + schema_id.to_bytes(4, "big") + b"{not json",
        b"\x00" + schema_id.to_bytes(4, "big") + json.dumps({"event_type": "instance.received"}).encode(),
    ]
    producer = Producer(kafka_connection(kafka_bootstrap))
    for value in bad:
        producer.produce(topics.instance, key=b"2.25.1", value=value)
    assert producer.flush(30) == 0
    reader = Reader(kafka_bootstrap, topics.dead_letter)
    try:
        messages = reader.until(lambda ms: len(ms) >= len(bad))
    finally:
        reader.close()
    assert sorted(m.value() for m in messages) == sorted(bad)  # the original bytes, unchanged
    for m in messages:
        headers = dict(m.headers())
        assert headers[DLQ_REASON] == b"SCHEMA_VIOLATION"
        assert headers[DLQ_SOURCE_TOPIC] == topics.instance.encode()
        assert int(headers[DLQ_SOURCE_OFFSET]) >= 0 and headers[DLQ_MESSAGE]
    assert _metric(worker.metrics(), "radlake_streams_dead_letters_total") >= len(bad)


class _Feeder(threading.Thread):
    """Streams studies in (each one's manifest, then its instances in batches of 25) from a thread; an error
    in the thread is kept and raised by :meth:`wait_for`, so a failed publish is reported, not a timeout."""

    def __init__(self, bootstrap: str, registry_url: str, topics: Topics, studies, halfway_after: int) -> None:
        super().__init__(daemon=True)
        self.publisher = EventPublisher(bootstrap, registry_url)
        self.topics, self.studies, self.halfway_after = topics, studies, halfway_after
        self.halfway, self.produced = threading.Event(), threading.Event()
        self.error: BaseException | None = None

    def run(self) -> None:
        try:
            for i, events in enumerate(self.studies):
                self.publisher.publish(STUDY_MANIFEST.with_name(self.topics.manifest), [manifest_for(events)])
                for start in range(0, len(events), 25):
                    self.publisher.publish(INSTANCE_RECEIVED.with_name(self.topics.instance), events[start:start + 25])
                    time.sleep(0.05)
                if i == self.halfway_after:
                    self.halfway.set()
            self.produced.set()
        except Exception as exc:  # noqa: BLE001 - handed to the test thread, which raises it
            self.error = exc

    def wait_for(self, event: threading.Event, timeout_s: float) -> None:
        deadline = time.monotonic() + timeout_s
        while not event.wait(0.5):
            if self.error is not None:
                raise AssertionError(f"publishing failed: {self.error!r}") from self.error
            assert self.is_alive(), "the feeder stopped without an error"
            assert time.monotonic() < deadline, f"not published in {timeout_s}s"


def test_kill_9_mid_stream_loses_nothing_and_emits_each_version_once(
        kafka_bootstrap, registry_url, registry, tmp_path):
    topics = Topics.unique("crash")
    _register(registry, topics)
    worker = Worker(tmp_path, [
        "--bootstrap", kafka_bootstrap, "--registry-url", registry_url, "--app-id", f"crash-{uuid.uuid4().hex[:8]}",
        "--quiet-period-s", "300", *topics.args(),
    ])
    studies = [_study(f"crash-{i}", 60, 40, provider=("st-olav", "haukeland")[i % 2]) for i in range(20)]  # 2,000
    feeder = _Feeder(kafka_bootstrap, registry_url, topics, studies, halfway_after=len(studies) // 3)
    completed = Reader(kafka_bootstrap, topics.completed)
    worker.start()
    try:
        feeder.start()
        feeder.wait_for(feeder.halfway, 300)  # a bound, not a timing check: a busy 2-core machine is slow
        # the worker is mid-stream: some done, most not
        completed.until(lambda ms: len(ms) >= 2, settle_s=0, worker=worker)
        worker.kill9()
        worker.start()
        feeder.wait_for(feeder.produced, 300)
        completed.until(lambda ms: len({m.key() for m in ms}) >= len(studies), timeout_s=150, settle_s=5, worker=worker)
    finally:
        worker.stop()
        completed.close()
    assert worker.starts == 2 and not feeder.is_alive()
    events = _decode(registry, topics, completed.messages)
    per_version = Counter((e.data.study_uid, e.data.study_version) for e in events)
    assert set(per_version.values()) == {1}, per_version
    by_study = {e.data.study_uid: e for e in events}
    assert len(by_study) == len(studies)
    for study in studies:
        done = by_study[study[0].data.study_uid]
        assert (done.event_type, done.data.study_version, done.data.completion_reason) == (
            "study.completed", 1, "manifest")
        assert done.data.instance_count == 100
        assert set(done.data.event_ids) == {e.event_id for e in study}  # nothing lost


def test_state_survives_a_restart(kafka_bootstrap, registry_url, registry, tmp_path):
    """Progress held in the tables before a kill -9 is there after the restart: a manifest study completes
    with instances from both sides of the restart, a quiet study completes once, after the restart."""
    topics = Topics.unique("restart")
    _register(registry, topics)
    worker = Worker(tmp_path, [
        "--bootstrap", kafka_bootstrap, "--registry-url", registry_url, "--app-id", f"restart-{uuid.uuid4().hex[:8]}",
        "--quiet-period-s", "3", *topics.args(),
    ])
    with_manifest, quiet = _study("restart-m", 6), _study("restart-q", 5)
    instance_topic = INSTANCE_RECEIVED.with_name(topics.instance)
    completed = Reader(kafka_bootstrap, topics.completed)
    try:
        worker.start()
        publish(kafka_bootstrap, registry_url, STUDY_MANIFEST.with_name(topics.manifest), [manifest_for(with_manifest)])
        publish(kafka_bootstrap, registry_url, instance_topic, with_manifest[:3] + quiet)
        deadline = time.monotonic() + 180  # a bound, not a timing check: start-up is slow on a busy 2-core machine
        while _metric(worker.metrics(), "radlake_streams_events_total") < 8:  # handled (maybe not committed)
            assert time.monotonic() < deadline, "the worker did not handle the first instances"
            time.sleep(0.2)
        worker.kill9()
        worker.start()
        publish(kafka_bootstrap, registry_url, instance_topic, with_manifest[3:])
        completed.until(lambda ms: len({m.key() for m in ms}) >= 2, settle_s=5, worker=worker)
    finally:
        worker.stop()
        completed.close()
    events = {e.data.study_uid: e for e in _decode(registry, topics, completed.messages)}
    assert len(completed.messages) == 2
    done_m, done_q = events[with_manifest[0].data.study_uid], events[quiet[0].data.study_uid]
    assert (done_m.data.completion_reason, done_m.data.instance_count) == ("manifest", 6)
    assert (done_q.data.completion_reason, done_q.data.instance_count) == ("quiet_period", 5)
    assert set(done_m.data.event_ids) == {e.event_id for e in with_manifest}


def test_a_version_in_an_aborted_transaction_is_emitted_again_once(kafka_bootstrap, registry_url, registry,
                                                                   tmp_path):
    """The emitted event and the state that records it commit together. The first worker never commits
    (commit interval 10 min, not when drained): its `completed` is in the log but in an open transaction when it
    is killed.
    If the state write had been committed apart from it, the second worker would find the version emitted
    and never emit it again; instead the aborted copy is invisible and exactly one committed copy follows."""
    topics = Topics.unique("abort")
    _register(registry, topics)
    app_id = f"abort-{uuid.uuid4().hex[:8]}"
    common = ["--bootstrap", kafka_bootstrap, "--registry-url", registry_url, "--app-id", app_id,
              "--quiet-period-s", "300", *topics.args()]
    first = Worker(tmp_path / "first", [*common, "--commit-interval-s", "600", "--no-commit-when-drained"])
    second = Worker(tmp_path / "second", [*common, "--commit-interval-s", "1"])
    (tmp_path / "first").mkdir()
    (tmp_path / "second").mkdir()
    events = _study("abort", 5)
    uncommitted = Consumer({**kafka_connection(kafka_bootstrap), "group.id": f"ru-{uuid.uuid4().hex}",
                            "isolation.level": "read_uncommitted", "enable.auto.commit": False})
    uncommitted.assign([TopicPartition(topics.completed, p, 0) for p in range(PARTITIONS)])
    committed = Reader(kafka_bootstrap, topics.completed)
    seen_uncommitted: list = []

    def poll_uncommitted(want: int) -> None:
        deadline = time.monotonic() + 180  # a bound, not a timing check: start-up is slow on a busy 2-core machine
        while len(seen_uncommitted) < want:
            assert time.monotonic() < deadline, f"{len(seen_uncommitted)} uncommitted messages, wanted {want}"
            msg = uncommitted.poll(0.5)
            if msg is not None and not msg.error():
                seen_uncommitted.append(msg)

    try:
        first.start()
        publish(kafka_bootstrap, registry_url, STUDY_MANIFEST.with_name(topics.manifest), [manifest_for(events)])
        publish(kafka_bootstrap, registry_url, INSTANCE_RECEIVED.with_name(topics.instance), events)
        poll_uncommitted(1)  # produced, inside the open transaction
        for _ in range(4):
            committed._poll(0.5)
        assert committed.messages == []
        first.kill9()
        second.start()
        committed.until(lambda ms: len(ms) >= 1, settle_s=4, worker=second)
        poll_uncommitted(2)
    finally:
        second.stop()
        first.stop()
        uncommitted.close()
        committed.close()
    [done] = _decode(registry, topics, committed.messages)
    assert (done.event_type, done.data.study_version, done.data.instance_count) == ("study.completed", 1, 5)
    aborted_copy, committed_copy = _decode(registry, topics, seen_uncommitted[:2])
    assert aborted_copy.event_id == committed_copy.event_id == done.event_id


def test_the_worker_refuses_to_start_without_registered_contracts(kafka_bootstrap, registry_url, capsys):

    topics = Topics.unique("unregistered")
    code = main(["run", "--bootstrap", kafka_bootstrap, "--registry-url", registry_url, *topics.args()])
    assert code == 1
    assert "radlake schemas register" in capsys.readouterr().err
