"""``radlake radiomics follow``: compute a study's ROIs when its ``study completed`` event arrives.

A thin adapter around the batch job: it polls the topic, keeps the newest version of each study in the
batch, turns the event's claim-checks (in slice order) into series (``series_refs``), runs
``spark_jobs.radiomics_job.run`` restricted to those studies with those series, publishes the outbox's
``features computed`` events, and only then commits the consumer offsets. A replayed event finds nothing
pending (the job is idempotent) and nothing unpublished, so announces nothing again.

ROIs registered after their study completed (e.g. a SEG written later by an inference worker) are picked
up by the next ``radlake radiomics run``.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, replace

from lake_schemas.events import StudyCompleted
from radlake.radiomics.lake import SeriesRef, series_from_summary

log = logging.getLogger(__name__)


def latest_per_study(events: Iterable[StudyCompleted]) -> dict[str, StudyCompleted]:
    """The highest study version of each study among ``events`` (pure)."""
    latest: dict[str, StudyCompleted] = {}
    for event in events:
        current = latest.get(event.data.study_uid)
        if current is None or event.data.study_version >= current.data.study_version:
            latest[event.data.study_uid] = event
    return latest


def series_refs(event: StudyCompleted) -> list[SeriesRef]:
    return [series_from_summary(event.data.study_uid, s) for s in event.data.series]


def study_filter(studies: Iterable[str], where: str | None) -> str:
    uids = ", ".join(f"'{u}'" for u in sorted(studies) if u.replace(".", "").isdigit())
    clause = f"study_uid IN ({uids})"
    return clause if not where else f"({where}) AND {clause}"


@dataclass(frozen=True)
class FollowStats:
    messages: int = 0
    rejected: int = 0
    studies: int = 0
    events: int = 0


def handle(spark, job, events: list[StudyCompleted], publish: Callable[[list], None]):
    """Run the job for the studies of ``events``, then publish the outbox (what this run staged and
    anything an earlier run staged but could not publish). Returns the RunResult and the published events."""
    from spark_jobs import radiomics_job

    latest = latest_per_study(events)
    refs = [ref for event in latest.values() for ref in series_refs(event)]
    scoped = replace(job, where=study_filter(latest, job.where))
    result = radiomics_job.run(spark, scoped, series=radiomics_job.series_frame_from_refs(spark, refs),
                               source_event_ids={s: e.event_id for s, e in latest.items()})
    return result, radiomics_job.publish_outbox(spark, job, publish)


def follow(spark, job, consumer, serde, publish: Callable[[list], None], *, batch_size: int = 50,
           idle_exit_s: float | None = None, max_messages: int | None = None) -> FollowStats:
    """Consume until idle for ``idle_exit_s`` (None: forever) or ``max_messages`` were read."""
    from lake_schemas.errors import SchemaViolation

    stats = FollowStats()
    idle_since = time.monotonic()
    while True:
        batch, messages = [], []
        for msg in consumer.consume(num_messages=batch_size, timeout=1.0):
            if msg.error():  # e.g. the topic does not exist yet: nothing to commit for it
                log.warning("radiomics follow: consumer error %s", msg.error())
                continue
            messages.append(msg)
            try:
                batch.append(serde.deserialize(msg.value()))
            except SchemaViolation as err:
                log.error("radiomics follow: skipping %s[%d]@%d: %s", msg.topic(), msg.partition(), msg.offset(), err)
                stats = replace(stats, rejected=stats.rejected + 1)
        stats = replace(stats, messages=stats.messages + len(messages))
        if batch:
            result, published = handle(spark, job, batch, publish)
            stats = replace(stats, studies=stats.studies + len(latest_per_study(batch)),
                            events=stats.events + len(published))
            log.info("radiomics follow: %d studies, %d ROIs computed, %d failed, %d events published", len(batch),
                     result.computed_rois, result.failed_rois, len(published))
        if messages:
            consumer.commit(asynchronous=False)
            idle_since = time.monotonic()
        elif idle_exit_s is not None and time.monotonic() - idle_since > idle_exit_s:
            return stats
        if max_messages is not None and stats.messages >= max_messages:
            return stats
