"""``radlake radiomics follow``: compute features when a study completes or a segmentation is created.

A thin adapter around the batch job, in one of two modes:

* **studies** (:func:`handle_completed`): on ``study completed`` events, keep the newest version of each
  study in the batch, turn the event's claim-checks (in slice order) into series (``series_refs``) and run
  ``spark_jobs.radiomics_job.run`` restricted to those studies with those series;
* **segmentations** (:func:`handle_segmentations`): on ``prediction created`` events that carry a DICOM SEG
  (the inference workers' segmentation of their findings), fetch the SEG by claim-check (SHA-256
  verified), register one ROI per segment in ``silver/rois`` under the model's name and version
  (``nodule-cnn:3/nodule candidate 1#1``), and run the job restricted to those studies.

Either way it then publishes the outbox's ``features computed`` events and only then commits the consumer
offsets. A replayed event finds nothing pending (the job is idempotent; re-registering a SEG replaces its
own rows) and nothing unpublished, so announces nothing again. An event whose SEG cannot be read or is
not a usable mask is logged with its reason and counted as rejected (``FollowStats.rejected``).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, replace

from lake_schemas.events import PredictionCreated, StudyCompleted
from radlake.radiomics.errors import InvalidInputError, RadiomicsError, RadiomicsReason
from radlake.radiomics.lake import SeriesRef, rois_from_dicom_mask, series_from_summary

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


def handle_completed(spark, job, events: list[StudyCompleted], publish: Callable[[list], None]):
    """Run the job for the studies of ``events``, then publish the outbox (what this run staged and
    anything an earlier run staged but could not publish). Returns the RunResult, the published events
    and the number of events rejected (none: a study completed event is usable once it decodes)."""
    from spark_jobs import radiomics_job

    latest = latest_per_study(events)
    refs = [ref for event in latest.values() for ref in series_refs(event)]
    scoped = replace(job, where=study_filter(latest, job.where))
    result = radiomics_job.run(spark, scoped, series=radiomics_job.series_frame_from_refs(spark, refs),
                               source_event_ids={s: e.event_id for s, e in latest.items()})
    return result, radiomics_job.publish_outbox(spark, job, publish), 0


def segmentation_rois(event: PredictionCreated, read: Callable[[str, str], bytes]) -> list[dict]:
    """``silver/rois`` rows for the segments of the SEG a prediction carries ([] when it has none).

    ``read(uri, sha256)`` returns the verified bytes. ROI names carry the model, so two models' segments
    on one series never replace each other's rows. Raises :class:`RadiomicsError` (or the store's error)
    when the SEG cannot be read or references no series.
    """
    import io

    import pydicom
    from pydicom.errors import InvalidDicomError

    seg = event.data.seg
    if seg is None:
        return []
    try:
        ds = pydicom.dcmread(io.BytesIO(read(seg.uri, seg.sha256)), stop_before_pixels=True)
    except InvalidDicomError as err:
        raise InvalidInputError(RadiomicsReason.UNREADABLE_INPUT, f"{seg.uri} is not DICOM: {err}") from err
    model = f"{event.data.model.name}:{event.data.model.version}"
    rows = rois_from_dicom_mask(ds, mask_uri=seg.uri, mask_sha256=seg.sha256, provider=event.provider,
                                project=event.data.project, source=f"prediction:{model}:{event.event_id}")
    return [{**row, "roi": f"{model}/{row['roi']}"} for row in rows]


def handle_segmentations(spark, job, events: list[PredictionCreated], publish: Callable[[list], None],
                         read: Callable[[str, str], bytes]):
    """Register the segments of each prediction's SEG as ROIs, run the job for those studies, publish the
    outbox. Returns the RunResult (None when no event carried a usable SEG), the published events and
    the number of events rejected."""
    from radlake.object_store import ObjectStoreError
    from spark_jobs import radiomics_job

    rows, source_event_ids, rejected = [], {}, 0
    for event in events:
        try:
            found = segmentation_rois(event, read)
        except (RadiomicsError, ObjectStoreError) as err:
            log.error("radiomics follow: prediction %s of study %s: segmentation not usable: %s",
                      event.event_id, event.data.study_uid, err)
            rejected += 1
            continue
        if found:
            rows += found
            source_event_ids[event.data.study_uid] = event.event_id
    if not rows:
        return None, radiomics_job.publish_outbox(spark, job, publish), rejected
    radiomics_job.register_rois(spark, job.lake_uri, rows)
    scoped = replace(job, where=study_filter(source_event_ids, job.where))
    result = radiomics_job.run(spark, scoped, source_event_ids=source_event_ids)
    return result, radiomics_job.publish_outbox(spark, job, publish), rejected


def follow(spark, job, consumer, serde, publish: Callable[[list], None], *, handle=handle_completed,
           batch_size: int = 50, idle_exit_s: float | None = None, max_messages: int | None = None) -> FollowStats:
    """Consume until idle for ``idle_exit_s`` (None: forever) or ``max_messages`` were read. ``handle``:
    :func:`handle_completed` for ``study completed`` events, or :func:`handle_segmentations` (its ``read``
    bound) for ``prediction created`` events."""
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
            result, published, unusable = handle(spark, job, batch, publish)
            studies = {event.data.study_uid for event in batch}
            stats = replace(stats, studies=stats.studies + len(studies), events=stats.events + len(published),
                            rejected=stats.rejected + unusable)
            log.info("radiomics follow: %d studies, %d ROIs computed, %d failed, %d events published",
                     len(studies), result.computed_rois if result else 0, result.failed_rois if result else 0,
                     len(published))
        if messages:
            consumer.commit(asynchronous=False)
            idle_since = time.monotonic()
        elif idle_exit_s is not None and time.monotonic() - idle_since > idle_exit_s:
            return stats
        if max_messages is not None and stats.messages >= max_messages:
            return stats
