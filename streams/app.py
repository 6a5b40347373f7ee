"""The faust worker around the pure steps: topics in, tables, topics out.

Inputs (all keyed by study UID, co-partitioned): ``instance received``, ``study manifest`` and an internal
``ticks`` topic on which a timer puts one message per partition per tick (the clock of the quiet period).
Tables (changelog-backed, restored on start): ``studies`` (study UID -> :class:`StudyProgress`),
``instances`` (study/SOP UID -> :class:`InstanceRecord`), ``seen`` (ids of manifests and conflicting
events; an accepted instance's id is in its record), ``pending`` (studies with
instances not yet in an emitted version -> their partition).
Outputs: ``study completed``/``updated``, ``quarantined`` (conflicts) and the dead-letter topic.

Exactly once per study version: with ``processing_guarantee="exactly_once"`` faust commits table
changelogs and input offsets in one Kafka transaction per partition. Two things are added here:

* outputs are produced inside the same transaction: they are sent to the partition of the event being
  handled (every topic has the same partition count and is subscribed by the worker, so faust's transaction
  manager routes them to that partition's transactional producer);
* a handler finishes only when all its writes (table changelogs, outputs) are in the log, and a commit
  happens only between two handlers. faust otherwise acks an event whose changelog writes still sit in
  its producer buffer; a commit then covers the event's offset while its writes land in the next
  transaction, and a crash loses them (seen in the kill -9 test before this was added). A handler's writes
  (state, ``pending``, the emitted event) thus commit with its offset, and a handler replayed after a crash
  finds its own state and is a no-op (its event id is in its instance record or in ``seen``).

Completion events have deterministic ids (uuid5 of study UID + version), so a reader that does not read
``read_committed`` can still drop a redelivered version.
"""

from __future__ import annotations

import asyncio
import json
import logging
from dataclasses import replace
from datetime import datetime, timezone
from typing import Any, Awaitable, Callable

import faust
from confluent_kafka import KafkaException
from confluent_kafka.admin import AdminClient, NewTopic
from faust.transport.consumer import TransactionManager
from faust.types import TP
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from lake_schemas.errors import RegistryError, SchemaViolation
from lake_schemas.events import InstanceReceived, StudyManifest
from lake_schemas.serde import EventSerde, registry_client
from lake_schemas.topics import (
    DLQ_MESSAGE, DLQ_REASON, DLQ_SOURCE_OFFSET, DLQ_SOURCE_PARTITION, DLQ_SOURCE_TOPIC, DLQ_STAGE,
    INSTANCE_RECEIVED, QUARANTINED, STUDY_COMPLETED, STUDY_MANIFEST,
)
from streams import completion as progress_json
from streams import records as record_json
from streams.completion import StudyProgress, accept_instance, apply_manifest, completion, mark_emitted
from streams.config import StreamsConfig
from streams.dedupe import Verdict, classify, conflict_event
from streams.errors import ContractError, TopicLayoutError
from streams.metrics import StreamsMetrics
from streams.offset_continuity import OffsetReader, OffsetReadError, ReadEvent, missing_offsets
from streams.records import InstanceRecord
from streams.series_summary import study_completed
from streams.watchdog import HandlerWatchdog

log = logging.getLogger(__name__)

Handler = Callable[[Any], Awaitable[None]]
RAW = dict(key_type=bytes, value_type=bytes, key_serializer="raw", value_serializer="raw")


def ensure_topics(config: StreamsConfig) -> None:
    """Create the app's topics that are missing; all must have ``config.partitions`` partitions."""
    admin = AdminClient({"bootstrap.servers": config.bootstrap})
    try:
        existing = admin.list_topics(timeout=30).topics
    except KafkaException as err:
        raise TopicLayoutError(f"cannot list topics on {config.bootstrap}: {err}") from err
    names = [config.instance_topic, config.manifest_topic, config.completed_topic, config.quarantined_topic,
             config.dead_letter_topic, config.ticks_topic]
    wrong = {n: len(existing[n].partitions) for n in names
             if n in existing and len(existing[n].partitions) != config.partitions}
    if wrong:
        raise TopicLayoutError(
            f"the streams topics must all have {config.partitions} partitions (co-partitioned by study UID); "
            f"these do not: {wrong}"
        )
    ticks_config = {"retention.ms": str(3_600_000), "cleanup.policy": "delete"}
    missing = [NewTopic(n, config.partitions, 1, config=ticks_config if n == config.ticks_topic else {})
               for n in names if n not in existing]
    if not missing:
        return
    for name, future in admin.create_topics(missing).items():
        try:
            future.result()
        except KafkaException as err:
            if "TOPIC_ALREADY_EXISTS" not in str(err):
                raise TopicLayoutError(f"cannot create topic {name}: {err}") from err


def check_contracts(config: StreamsConfig) -> None:
    """Every topic the worker decodes or encodes has its lake_schemas schema registered under its subject."""
    registry = registry_client(config.registry_url)
    pairs = ((INSTANCE_RECEIVED, config.instance_topic), (STUDY_MANIFEST, config.manifest_topic),
             (STUDY_COMPLETED, config.completed_topic), (QUARANTINED, config.quarantined_topic))
    for contract, name in pairs:
        try:
            EventSerde(contract.with_name(name), registry).schema_id
        except RegistryError as err:
            raise ContractError(str(err)) from err


def _message_time(message: Any) -> datetime:
    return datetime.fromtimestamp(message.timestamp, tz=timezone.utc)


class StudyStreams:
    """The handlers: decode, call the pure steps, write tables and outputs. One per worker."""

    def __init__(self, app: faust.App, config: StreamsConfig, metrics: StreamsMetrics) -> None:
        self.app = app
        self.config = config
        self.metrics = metrics
        self.lock = asyncio.Lock()
        self.started_at = datetime.now(timezone.utc)
        registry = registry_client(config.registry_url)
        self.instance_serde = EventSerde(INSTANCE_RECEIVED.with_name(config.instance_topic), registry)
        self.manifest_serde = EventSerde(STUDY_MANIFEST.with_name(config.manifest_topic), registry)
        self.completed_serde = EventSerde(STUDY_COMPLETED.with_name(config.completed_topic), registry)
        self.quarantined_serde = EventSerde(QUARANTINED.with_name(config.quarantined_topic), registry)
        self.instance_topic = app.topic(config.instance_topic, **RAW)
        self.manifest_topic = app.topic(config.manifest_topic, **RAW)
        self.ticks_topic = app.topic(config.ticks_topic, **RAW)
        self.completed_topic = app.topic(config.completed_topic, **RAW)
        self.quarantined_topic = app.topic(config.quarantined_topic, **RAW)
        self.dead_letter_topic = app.topic(config.dead_letter_topic, **RAW)
        self.writes: list[asyncio.Future] = []  # changelog writes of the event being handled

        def table(name: str) -> faust.Table:
            created = _TrackedTable(app, name=name, beacon=app.tables.beacon, partitions=config.partitions,
                                    key_type=str)
            created.writes = self.writes
            return app.tables.add(created)

        self.studies = table("studies")
        self.instances = table("instances")
        self.seen = table("seen")
        self.pending = table("pending")
        self.expected_offset: dict[TP, int] = {}  # input partition -> next offset the worker must handle
        self.stalled: dict[TP, tuple[int, float]] = {}  # input partition -> (expected offset, since when)
        self.offsets = OffsetReader(config.bootstrap, config.app_id)

    # -- helpers -------------------------------------------------------------------------------------

    async def _send(self, topic: faust.topics.Topic, key: bytes | None, value: bytes | None, partition: int,
                    headers: list[tuple[str, bytes]] | None = None) -> None:
        # force: produce now, into the open transaction of `partition` (not attached to an offset)
        delivered = await topic.send(key=key, value=value, partition=partition, headers=headers, force=True)
        self.writes.append(delivered)

    async def delivered(self) -> None:
        """Wait until every write of the event being handled is in the log (in the open transaction), so
        that the commit that covers the event's offset also covers its writes."""
        writes = list(self.writes)
        self.writes.clear()
        if writes:
            await asyncio.gather(*writes)

    def _progress(self, study_uid: str) -> StudyProgress | None:
        value = self.studies.get(study_uid)
        return None if value is None else progress_json.from_json(value)

    async def dead_letter(self, event: faust.types.EventT, reason: str, err: Exception) -> None:
        msg = event.message
        headers = [
            (DLQ_REASON, reason.encode()),
            (DLQ_MESSAGE, str(err)[:1000].encode()),
            (DLQ_SOURCE_TOPIC, msg.topic.encode()),
            (DLQ_SOURCE_PARTITION, str(msg.partition).encode()),
            (DLQ_SOURCE_OFFSET, str(msg.offset).encode()),
            (DLQ_STAGE, b"streams"),
        ]
        await self._send(self.dead_letter_topic, msg.key, msg.value, msg.partition, headers)
        self.metrics.dead_letters.labels(msg.topic, reason).inc()
        log.warning("dead-lettered %s[%d]@%d: %s", msg.topic, msg.partition, msg.offset, reason)

    async def _maybe_emit(self, progress: StudyProgress, now: datetime, partition: int,
                          decide_on: StudyProgress | None = None) -> StudyProgress:
        done = completion(decide_on or progress, now, self.config.quiet_period)
        if done is None:
            return progress
        records = [record_json.from_json(self.instances[f"{progress.study_uid}/{sop}"]) for sop in progress.sop_uids]
        event = study_completed(progress, records, done, now)
        await self._send(self.completed_topic, progress.study_uid.encode(), self.completed_serde.serialize(event),
                         partition)
        emitted = mark_emitted(progress, done)
        self.studies[progress.study_uid] = progress_json.to_json(emitted)
        self.pending.pop(progress.study_uid, None)
        self.metrics.studies.labels(event.provider, done.event_type, done.reason).inc()
        log.info("study %s version %d (%s, %s): %d instances", progress.study_uid, done.version, done.event_type,
                 done.reason, len(records))
        return emitted

    async def repair_gap(self, event: faust.types.EventT, handle: Handler) -> None:
        """Handle, before ``event``, the input messages of its partition that never reached the stream.

        See :mod:`streams.offset_continuity`: the first message of a partition in an assignment is checked
        against the group's committed offset, every later one against the offset after the last handled."""
        msg = event.message
        tp = msg.tp
        expected = self.expected_offset.get(tp)
        if expected is None:
            expected = await asyncio.to_thread(self.offsets.start_offset, tp.topic, tp.partition)
        await self._read_back(tp, missing_offsets(expected, msg.offset), handle)
        self.expected_offset[tp] = max(msg.offset + 1, expected)

    async def repair_stall(self, partition: int) -> int:
        """Read back the input messages of ``partition`` that are in the broker and have not reached the
        stream for ``stall_s``; return the instance events of the partition not handled yet (its lag).

        The gap check of :meth:`repair_gap` needs a later message to reveal a skip. This one covers the
        rest: the last messages of a partition, and a partition faust does not fetch at all after a
        restart (seen in kill -9 runs: assigned, never resumed after recovery, so nothing after its
        committed offset ever arrives). The end offsets come from the broker, not from faust's fetcher.
        A message faust does deliver after all is handled again, which the handlers make a no-op."""
        now = asyncio.get_running_loop().time()
        assigned = self.app.consumer.assignment()
        lag = 0
        for topic, handle in ((self.config.instance_topic, self.on_instance),
                              (self.config.manifest_topic, self.on_manifest)):
            tp = TP(topic, partition)
            if tp not in assigned:
                continue
            end = await asyncio.to_thread(self.offsets.end_offset, topic, partition)
            expected = self.expected_offset.get(tp)
            if expected is None:  # nothing delivered in this assignment yet: count from the group's offset
                expected = self.expected_offset[tp] = await asyncio.to_thread(
                    self.offsets.start_offset, topic, partition)
            if end > expected:
                since = self.stalled.get(tp)
                if since is None or since[0] != expected:
                    self.stalled[tp] = (expected, now)
                elif now - since[1] >= self.config.stall_s:
                    log.warning("%s[%d]: offsets %d-%d not delivered by faust for %.0f s", topic, partition,
                                expected, end - 1, now - since[1])
                    await self._read_back(tp, range(expected, end), handle)
                    expected = self.expected_offset[tp] = end
            if end <= expected:
                self.stalled.pop(tp, None)
            if topic == self.config.instance_topic:
                lag = max(0, end - expected)
                self.metrics.consumer_lag.labels(topic, str(partition)).set(lag)
        return lag

    async def _read_back(self, tp: TP, missing: range, handle: Handler) -> None:
        if not missing:
            return
        self.metrics.offset_gaps.labels(tp.topic).inc(len(missing))
        read = await asyncio.to_thread(self.offsets.read, tp.topic, tp.partition, missing)
        log.error("%s[%d]: offsets %d-%d never reached the stream (skipped by faust); read %d back from the "
                  "broker", tp.topic, tp.partition, missing.start, missing.stop - 1, len(read))
        for message in read:
            await handle(ReadEvent(message))
        self.metrics.offsets_read_back.labels(tp.topic).inc(len(read))
        if len(read) < len(missing):  # deleted by retention before it could be read back: say so, loudly
            self.metrics.offsets_lost.labels(tp.topic).inc(len(missing) - len(read))
            log.error("%s[%d]: %d of offsets %d-%d are no longer in the broker", tp.topic, tp.partition,
                      len(missing) - len(read), missing.start, missing.stop - 1)

    def forget_partitions(self, revoked: set[TP]) -> None:
        """A revoked partition's next offset is read from the group again if it comes back."""
        for tp in revoked:
            self.expected_offset.pop(tp, None)
            self.stalled.pop(tp, None)

    # -- handlers --------------------------------------------------------------------------------------

    async def on_instance(self, event: faust.types.EventT) -> None:
        msg = event.message
        try:
            instance = self.instance_serde.deserialize(msg.value)
        except SchemaViolation as err:
            await self.dead_letter(event, "SCHEMA_VIOLATION", err)
            self.metrics.events.labels("instance", "", "dead_letter").inc()
            return
        assert isinstance(instance, InstanceReceived)
        provider, data = instance.provider, instance.data
        now = _message_time(msg)
        self.metrics.event_lag.labels(provider).observe(
            max(0.0, (datetime.now(timezone.utc) - instance.occurred_at).total_seconds()))
        record = InstanceRecord.from_event(instance)
        key = f"{data.study_uid}/{data.sop_instance_uid}"
        known = self.instances.get(key)
        known_record = None if known is None else record_json.from_json(known)
        # an accepted event's id is in its instance record; `seen` holds the ids of the others (conflicts)
        event_seen = (known_record is not None and known_record.event_id == instance.event_id) or (
            instance.event_id in self.seen)
        verdict = classify(record, event_seen=event_seen, known=known_record)
        self.metrics.events.labels("instance", provider, verdict.value).inc()
        if verdict in (Verdict.DUPLICATE_EVENT, Verdict.DUPLICATE_CONTENT):
            self.metrics.duplicates.labels(provider, "event_id" if verdict is Verdict.DUPLICATE_EVENT
                                           else "sop_uid_sha256").inc()
            return
        if verdict is Verdict.CONFLICT:
            self.seen[instance.event_id] = 1
            quarantined = conflict_event(instance, known_record)
            await self._send(self.quarantined_topic, data.study_uid.encode(),
                             self.quarantined_serde.serialize(quarantined), msg.partition)
            self.metrics.conflicts.labels(provider).inc()
            return
        self.instances[key] = record_json.to_json(record)
        progress = accept_instance(self._progress(data.study_uid), record, study_uid=data.study_uid,
                                   project=data.project, pseudo_patient_id=data.pseudo_patient_id, arrived_at=now)
        self.studies[data.study_uid] = progress_json.to_json(progress)
        if self.pending.get(data.study_uid) != msg.partition:
            self.pending[data.study_uid] = msg.partition
        await self._maybe_emit(progress, now, msg.partition)

    async def on_manifest(self, event: faust.types.EventT) -> None:
        msg = event.message
        try:
            manifest = self.manifest_serde.deserialize(msg.value)
        except SchemaViolation as err:
            await self.dead_letter(event, "SCHEMA_VIOLATION", err)
            self.metrics.events.labels("manifest", "", "dead_letter").inc()
            return
        assert isinstance(manifest, StudyManifest)
        if manifest.event_id in self.seen:
            self.metrics.events.labels("manifest", manifest.provider, Verdict.DUPLICATE_EVENT.value).inc()
            self.metrics.duplicates.labels(manifest.provider, "event_id").inc()
            return
        self.seen[manifest.event_id] = 1
        self.metrics.events.labels("manifest", manifest.provider, Verdict.ACCEPT.value).inc()
        progress = apply_manifest(self._progress(manifest.data.study_uid), manifest)
        self.studies[progress.study_uid] = progress_json.to_json(progress)
        await self._maybe_emit(progress, _message_time(msg), msg.partition)

    async def on_tick(self, event: faust.types.EventT) -> None:
        """Quiet-period completion of the studies of one partition, while that partition has no backlog."""
        msg = event.message
        self.metrics.open_studies.set(len(self.pending))
        try:
            if await self.repair_stall(msg.partition):  # a backlog of instances: not quiet
                return
        except OffsetReadError as err:  # the broker did not answer in time: the next tick tries again
            log.warning("tick on partition %d: %s", msg.partition, err)
            return
        now = _message_time(msg)
        for study_uid, partition in list(self.pending.items()):
            if partition != msg.partition:
                continue
            progress = self._progress(study_uid)
            if progress is None or progress.last_arrival is None:
                continue
            # state restored after a restart: the quiet period counts from the restart at the earliest
            decide_on = replace(progress, last_arrival=max(progress.last_arrival, self.started_at))
            await self._maybe_emit(progress, now, msg.partition, decide_on=decide_on)

    async def tick(self) -> None:
        """Put one tick on every partition of the ticks topic (plain producer: ticks are outside transactions)."""
        producer = self.app.producer
        value = json.dumps({"at": datetime.now(timezone.utc).isoformat()}).encode()
        for partition in range(self.config.partitions):
            await producer.send_and_wait(self.config.ticks_topic, None, value, partition, None, None)


class _TrackedTable(faust.Table):
    """A table whose changelog writes are kept until the handler has seen them delivered."""

    writes: list[asyncio.Future]

    def send_changelog(self, *args: Any, **kwargs: Any):  # type: ignore[override]
        future = super().send_changelog(*args, **kwargs)
        self.writes.append(future)
        return future


def _log_stuck_tasks(why: str) -> None:
    import io

    out = io.StringIO()
    for task in asyncio.all_tasks():
        task.print_stack(limit=12, file=out)
    log.error("%s; tasks:\n%s", why, out.getvalue())


def _atomic_transaction_manager(lock: asyncio.Lock, app: faust.App) -> type[TransactionManager]:
    class AtomicTransactionManager(TransactionManager):
        """Commit between handled events, once their buffered writes have reached the broker."""

        async def commit(self, offsets, start_new_transaction: bool = True) -> bool:  # type: ignore[override]
            async with lock:
                await app.producer.flush()
                done = asyncio.ensure_future(super().commit(offsets, start_new_transaction))
                try:
                    return await asyncio.wait_for(asyncio.shield(done), timeout=30)
                except asyncio.TimeoutError:
                    _log_stuck_tasks("commit of %s not done after 30 s" % dict(offsets))
                    return await done

    return AtomicTransactionManager


def build_app(config: StreamsConfig, metrics: StreamsMetrics | None = None) -> tuple[faust.App, StudyStreams]:
    """The faust app (not started) and its handlers."""
    metrics = metrics or StreamsMetrics()
    app = faust.App(
        config.app_id,
        broker=";".join(f"kafka://{host}" for host in config.bootstrap.split(",")),
        store="memory://",
        processing_guarantee=config.processing_guarantee,
        topic_partitions=config.partitions,
        topic_replication_factor=1,
        datadir=str(config.data_dir),
        broker_commit_interval=config.commit_interval_s,
        broker_session_timeout=config.session_timeout_s,
        broker_heartbeat_interval=min(3.0, config.session_timeout_s / 3),
        consumer_auto_offset_reset="earliest",
        web_enabled=True,
        web_port=config.web_port,
        web_bind=config.web_host,
        web_host=config.web_host,
        autodiscover=False,
    )
    streams = StudyStreams(app, config, metrics)
    if config.processing_guarantee == "exactly_once":  # not app.in_transaction: cached, False before the Worker
        app.transport.TransactionManager = _atomic_transaction_manager(streams.lock, app)

    watchdog = HandlerWatchdog()
    metrics.handler_busy.set_function(watchdog.busy_seconds)

    def handler(topic: faust.topics.Topic, name: str, handle, continuity: bool = False):
        async def agent(stream):
            async for event in stream.events():
                async with streams.lock:
                    watchdog.enter(name)
                    try:
                        if continuity:
                            await streams.repair_gap(event, handle)
                        await handle(event)
                    except RegistryError as err:
                        # not the event's fault and not skippable: stop loudly, the restart resumes from the
                        # last commit
                        log.critical("schema registry unavailable while handling %s: %s", name, err)
                        await app.crash(err)
                        raise
                    finally:
                        watchdog.leave()
                        await streams.delivered()

        app.agent(topic, name=f"{config.app_id}.{name}")(agent)

    async def observe(event: faust.types.EventT) -> None:
        """Outputs are subscribed only so that faust's transactions cover them; nothing to do."""

    handler(streams.instance_topic, "instances", streams.on_instance, continuity=True)
    handler(streams.manifest_topic, "manifests", streams.on_manifest, continuity=True)
    handler(streams.ticks_topic, "ticks", streams.on_tick)
    for topic, name in ((streams.completed_topic, "completed"), (streams.quarantined_topic, "quarantined"),
                        (streams.dead_letter_topic, "dead-letters")):
        handler(topic, f"observe-{name}", observe)

    @app.on_partitions_revoked.connect
    async def on_revoked(_app: faust.App, revoked: set[TP], **_kwargs: Any) -> None:
        streams.forget_partitions(revoked)

    app.timer(config.tick_interval_s, name=f"{config.app_id}.tick")(streams.tick)

    @app.task
    async def start_watchdog() -> None:
        watchdog.start()

    @app.page("/metrics", name="metrics")
    async def metrics_page(web, request):
        # aiohttp refuses a charset inside content_type; the text format without version is 0.0.4
        return web.bytes(generate_latest(metrics.registry), content_type=CONTENT_TYPE_LATEST.split(";")[0])

    return app, streams
