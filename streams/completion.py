"""Per-study progress and the completion decision.

A study is complete when every count of its provider's manifest is reached, or after a quiet period
with no new instance (live feeds without a manifest). Once a version has been emitted, newly accepted
instances make the next version a ``study.updated``: it is emitted when a manifest becomes satisfied that
was not at the last version, or after the quiet period. Never a second ``study.completed``.

Everything here is pure: :class:`StudyProgress` is immutable, each step returns a new one.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta
from typing import Any, Literal

from lake_schemas.events import StudyManifest
from streams.records import InstanceRecord

Reason = Literal["manifest", "quiet_period"]


@dataclass(frozen=True)
class StudyProgress:
    """What the streams know about one study (the value of the ``studies`` table)."""

    study_uid: str
    project: str | None = None
    pseudo_patient_id: str | None = None
    providers: tuple[str, ...] = ()
    sop_uids: tuple[str, ...] = ()  # accepted instances, in arrival order
    series_counts: Mapping[str, int] = field(default_factory=dict)
    expected_instances: int | None = None  # from the manifest
    expected_series: Mapping[str, int] = field(default_factory=dict)
    manifest_event_ids: tuple[str, ...] = ()
    last_arrival: datetime | None = None
    emitted_version: int = 0
    emitted_count: int = 0  # accepted instances covered by the emitted version
    emitted_reason: Reason | None = None


@dataclass(frozen=True)
class Completion:
    """A decision to emit a version of a study."""

    version: int
    event_type: Literal["study.completed", "study.updated"]
    reason: Reason


def accept_instance(progress: StudyProgress | None, record: InstanceRecord, *, study_uid: str, project: str,
                    pseudo_patient_id: str, arrived_at: datetime) -> StudyProgress:
    """The progress with one more accepted (not duplicate, not conflicting) instance."""
    return accept_instances(progress, (record,), study_uid=study_uid, project=project,
                            pseudo_patient_id=pseudo_patient_id, arrived_at=arrived_at)


def accept_instances(progress: StudyProgress | None, records: Sequence[InstanceRecord], *, study_uid: str,
                     project: str, pseudo_patient_id: str, arrived_at: datetime) -> StudyProgress:
    """The progress with accepted instances added in order (``arrived_at``: when the last of them arrived).
    Adding a batch at once gives the same progress as adding its instances one by one."""
    base = progress or StudyProgress(study_uid=study_uid)
    counts = dict(base.series_counts)
    for record in records:
        counts[record.series_uid] = counts.get(record.series_uid, 0) + 1
    providers = {record.provider for record in records}
    return replace(
        base,
        project=base.project or project,
        pseudo_patient_id=base.pseudo_patient_id or pseudo_patient_id,
        providers=base.providers if providers <= set(base.providers) else tuple(sorted({*base.providers,
                                                                                         *providers})),
        sop_uids=(*base.sop_uids, *(record.sop_instance_uid for record in records)),
        series_counts=counts,
        last_arrival=arrived_at if base.last_arrival is None else max(base.last_arrival, arrived_at),
    )


def apply_manifest(progress: StudyProgress | None, manifest: StudyManifest) -> StudyProgress:
    """The progress with the manifest's expected counts (a later manifest replaces an earlier one)."""
    data = manifest.data
    base = progress or StudyProgress(study_uid=data.study_uid)
    if manifest.event_id in base.manifest_event_ids:
        return base
    return replace(
        base,
        project=base.project or data.project,
        providers=tuple(sorted({*base.providers, manifest.provider})),
        expected_instances=data.expected_instances,
        expected_series={s.series_uid: s.expected_instances for s in data.series},
        manifest_event_ids=(*base.manifest_event_ids, manifest.event_id),
    )


def manifest_satisfied(progress: StudyProgress) -> bool:
    if progress.expected_instances is None:
        return False
    if len(progress.sop_uids) < progress.expected_instances:
        return False
    return all(progress.series_counts.get(uid, 0) >= n for uid, n in progress.expected_series.items())


def completion(progress: StudyProgress, now: datetime, quiet_period: timedelta) -> Completion | None:
    """The version to emit now, or None."""
    if len(progress.sop_uids) <= progress.emitted_count or progress.pseudo_patient_id is None:
        return None
    satisfied = manifest_satisfied(progress)
    quiet = progress.last_arrival is not None and now - progress.last_arrival >= quiet_period
    version = progress.emitted_version + 1
    event_type = "study.completed" if version == 1 else "study.updated"
    if satisfied and progress.emitted_reason != "manifest":
        return Completion(version, event_type, "manifest")
    if quiet:
        return Completion(version, event_type, "manifest" if satisfied else "quiet_period")
    return None


def mark_emitted(progress: StudyProgress, done: Completion) -> StudyProgress:
    return replace(progress, emitted_version=done.version, emitted_count=len(progress.sop_uids),
                   emitted_reason=done.reason)


def to_json(progress: StudyProgress) -> dict[str, Any]:
    return {
        "study_uid": progress.study_uid,
        "project": progress.project,
        "pseudo_patient_id": progress.pseudo_patient_id,
        "providers": list(progress.providers),
        "sop_uids": list(progress.sop_uids),
        "series_counts": dict(progress.series_counts),
        "expected_instances": progress.expected_instances,
        "expected_series": dict(progress.expected_series),
        "manifest_event_ids": list(progress.manifest_event_ids),
        "last_arrival": progress.last_arrival.isoformat() if progress.last_arrival else None,
        "emitted_version": progress.emitted_version,
        "emitted_count": progress.emitted_count,
        "emitted_reason": progress.emitted_reason,
    }


def from_json(value: Mapping[str, Any]) -> StudyProgress:
    return StudyProgress(
        study_uid=value["study_uid"],
        project=value.get("project"),
        pseudo_patient_id=value.get("pseudo_patient_id"),
        providers=tuple(value.get("providers", ())),
        sop_uids=tuple(value.get("sop_uids", ())),
        series_counts=dict(value.get("series_counts", {})),
        expected_instances=value.get("expected_instances"),
        expected_series=dict(value.get("expected_series", {})),
        manifest_event_ids=tuple(value.get("manifest_event_ids", ())),
        last_arrival=datetime.fromisoformat(value["last_arrival"]) if value.get("last_arrival") else None,
        emitted_version=value.get("emitted_version", 0),
        emitted_count=value.get("emitted_count", 0),
        emitted_reason=value.get("emitted_reason"),
    )
