"""Radiomics over the lake, one series at a time: the unit of work of ``radlake radiomics run`` and ``follow``.

A Spark task (or the event consumer, or a plain loop) gets one image series — its claim-checks, in
slice order, with the volume geometry — and the ROIs registered on it, fetches every instance and mask
from the object store verifying its SHA-256, rebuilds the volume, and calls
:func:`radlake.radiomics.compute_features` once per ROI. An ROI that cannot be computed becomes an
outcome with a reason (``geometry_mismatch``, ``empty_mask``, ``series_not_reconstructable`` ...), never
an exception that fails the batch; only unexpected errors propagate.

Everything here except :func:`fetch_series`/:func:`process_series` is pure.
"""

from __future__ import annotations

import hashlib
import json
import tempfile
import uuid
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime
from io import BytesIO
from pathlib import Path

import numpy as np
import pydicom
from pydicom.errors import InvalidDicomError

from lake_schemas.events import (
    FeaturesComputed,
    FeaturesComputedData,
    FeaturesComputedRoi,
    InstanceRef,
    SeriesSummary,
)
from platform_layer.object_store import ObjectStoreError
from radlake.imaging.series_geometry import Slice, summary_slices, volume_geometry
from radlake.imaging.volume import GeometryError, PixelDataError, Volume, assemble, modality_values
from radlake.radiomics.errors import InvalidInputError, RadiomicsError, RadiomicsReason
from radlake.radiomics.features import CODE_VERSION, FeatureValue, compute_features
from radlake.radiomics.inputs import load_mask
from radlake.radiomics.settings import RadiomicsSettings

FEATURES_TABLE = "gold/radiomics_features"

# Reasons of the job itself (next to RadiomicsReason): the series is not (yet) usable or an object is
# unavailable. They are transient: a later run retries them (a late instance can close a gap).
SERIES_NOT_FOUND = "series_not_found"
SERIES_NOT_RECONSTRUCTABLE = "series_not_reconstructable"
OBJECT_STORE_ERROR = "object_store_error"
TRANSIENT_REASONS = frozenset({SERIES_NOT_FOUND, SERIES_NOT_RECONSTRUCTABLE, OBJECT_STORE_ERROR})


@dataclass(frozen=True)
class RoiRef:
    """One row of ``silver/rois``."""

    provider: str
    project: str
    pseudo_patient_id: str
    study_uid: str
    series_uid: str
    roi: str
    mask_kind: str  # seg | rtstruct | nifti
    mask_uri: str
    mask_sha256: str
    label: int | None = None


@dataclass(frozen=True)
class SeriesRef:
    """An image series ready to rebuild: claim-checks in slice order and the grid they form."""

    study_uid: str
    series_uid: str
    instances: tuple[InstanceRef, ...]  # claim-checks (SOP Instance UID, object URI, SHA-256)
    origin: tuple[float, float, float] | None
    orientation: tuple[float, ...] | None  # row direction, column direction (DICOM IOP)
    spacing: tuple[float, float, float] | None  # (dz, dy, dx) mm
    issues: tuple[str, ...] = ()


@dataclass(frozen=True)
class RoiOutcome:
    roi: RoiRef
    values: tuple[FeatureValue, ...] = ()
    reason: str | None = None
    message: str | None = None

    @property
    def transient(self) -> bool:
        return self.reason in TRANSIENT_REASONS


# -- series geometry: from silver, from bronze rows, from a study completed event --------------------------

def _tuple(value) -> tuple | None:
    return None if value is None else tuple(float(v) for v in value)


def _claim_check(sop_instance_uid: str, object_uri: str, sha256: str) -> InstanceRef:
    # not re-validated: lake rows and claim-check JSON hold what a validated event carried
    return InstanceRef.model_construct(sop_instance_uid=sop_instance_uid, object_uri=object_uri, sha256=sha256)


def series_from_silver(study_uid: str, series_uid: str, row: dict) -> SeriesRef:
    """From a ``silver/series`` row (its spacing is column, row, slice; ours is dz, dy, dx)."""
    spacing = row.get("spacing")
    issues = tuple(row.get("geometry_issues") or ())
    if spacing is None or spacing[2] is None:
        spacing_zyx = None
        issues = issues or ("missing_spacing",)
    else:
        spacing_zyx = (float(spacing[2]), float(spacing[1]), float(spacing[0]))
    return SeriesRef(
        study_uid, series_uid,
        tuple(_claim_check(i["sop_instance_uid"], i["object_uri"], i["sha256"]) for i in row["instances"]),
        _tuple(row.get("origin")), _tuple(row.get("orientation")), spacing_zyx, issues,
    )


def series_from_slices(study_uid: str, series_uid: str, slices: Sequence[dict]) -> SeriesRef:
    """From the bronze rows (or ``model_dump()`` of instance events) of one series."""
    return _series(study_uid, series_uid, [Slice.of(s) for s in slices])


def series_from_summary(study_uid: str, summary: SeriesSummary) -> SeriesRef:
    """From a ``study completed`` event's series summary."""
    return _series(study_uid, summary.series_uid, summary_slices(summary))


def _series(study_uid: str, series_uid: str, slices: Sequence[Slice]) -> SeriesRef:
    """The series with the silver job's geometry rules (``radlake.imaging.series_geometry``)."""
    geometry = volume_geometry(_unique_instances(slices))
    spacing = geometry.spacing_zyx
    return SeriesRef(
        study_uid, series_uid,
        tuple(_claim_check(o.slice.sop_instance_uid, o.slice.object_uri, o.slice.sha256) for o in geometry.ordered),
        geometry.origin, geometry.orientation, spacing,
        geometry.issues if spacing is not None or geometry.issues else ("missing_spacing",),
    )


def _unique_instances(slices: Sequence[Slice]) -> list[Slice]:
    """One slice per SOP Instance UID (bronze keeps redeliveries); a UID with two hashes is kept twice
    so that ``volume_geometry`` reports the duplicated position."""
    seen: dict[tuple[str, str], Slice] = {}
    for s in sorted(slices, key=lambda s: (s.sop_instance_uid, s.sha256)):
        seen.setdefault((s.sop_instance_uid, s.sha256), s)
    return list(seen.values())


def series_to_json(series: SeriesRef) -> str:
    return json.dumps({
        "study_uid": series.study_uid, "series_uid": series.series_uid,
        "instances": [[c.sop_instance_uid, c.object_uri, c.sha256] for c in series.instances],
        "origin": series.origin, "orientation": series.orientation, "spacing": series.spacing,
        "issues": list(series.issues),
    })


def series_from_json(text: str) -> SeriesRef:
    d = json.loads(text)
    return SeriesRef(d["study_uid"], d["series_uid"], tuple(_claim_check(*c) for c in d["instances"]),
                     _tuple(d["origin"]), _tuple(d["orientation"]), _tuple(d["spacing"]), tuple(d["issues"]))


# -- rebuilding the volume and reading the mask ------------------------------------------------------------

def assemble_volume(series: SeriesRef, datasets: Sequence) -> Volume:
    """The (z, y, x) HU volume of ``series`` from its fetched instances, in the claim-check order."""
    if len(datasets) != len(series.instances):
        raise InvalidInputError(RadiomicsReason.UNREADABLE_INPUT,
                                f"{len(datasets)} instances for {len(series.instances)} claim-checks")
    for ds, claim in zip(datasets, series.instances):
        if str(ds.SOPInstanceUID) != claim.sop_instance_uid:
            raise InvalidInputError(RadiomicsReason.UNREADABLE_INPUT,
                                    f"object {claim.object_uri} holds SOP instance {ds.SOPInstanceUID}, "
                                    f"not {claim.sop_instance_uid}")
    try:
        planes = [modality_values(ds) for ds in datasets]
    except PixelDataError as err:
        raise InvalidInputError(RadiomicsReason.UNREADABLE_INPUT, f"pixel data cannot be decoded: {err}") from err
    try:
        return assemble(planes, spacing=series.spacing, origin=series.origin, orientation=series.orientation,
                        sop_instance_uids=[c.sop_instance_uid for c in series.instances])
    except GeometryError as err:
        raise InvalidInputError(RadiomicsReason.GEOMETRY_MISMATCH,
                                "instances of the series differ in rows/columns") from err


def mask_from_bytes(kind: str, data: bytes, image: Volume, label: int | None) -> np.ndarray:
    """Boolean ROI on ``image``'s grid from a stored SEG, RTSTRUCT or NIfTI (geometry checked, never resampled)."""

    if kind == "nifti":
        name = "mask.nii.gz" if data[:2] == b"\x1f\x8b" else "mask.nii"
    elif kind in ("seg", "rtstruct"):
        name = f"mask-{kind}.dcm"
    else:
        raise InvalidInputError(RadiomicsReason.UNREADABLE_INPUT, f"unknown mask kind {kind!r}")
    with tempfile.TemporaryDirectory(prefix="radlake-mask-") as tmp:
        path = Path(tmp) / name
        path.write_bytes(data)
        return load_mask(path, image, label)


# -- the unit of work --------------------------------------------------------------------------------------

Fetch = Callable[[str, str], bytes]  # (uri, expected sha256) -> bytes; raises on mismatch


def fetch_series(series: SeriesRef, fetch: Fetch) -> Volume:

    datasets = []
    for claim in series.instances:
        data = fetch(claim.object_uri, claim.sha256)
        try:
            datasets.append(pydicom.dcmread(BytesIO(data)))
        except (InvalidDicomError, OSError, EOFError) as err:
            raise InvalidInputError(RadiomicsReason.UNREADABLE_INPUT,
                                    f"{claim.object_uri} is not readable DICOM: {err}") from err
    return assemble_volume(series, datasets)


def process_series(series: SeriesRef | None, rois: Sequence[RoiRef], settings: RadiomicsSettings,
                   fetch: Fetch, device: str = "cpu") -> list[RoiOutcome]:
    """Features of every ROI of one series; the volume is fetched once. Expected failures become outcomes."""

    if series is None:
        return [RoiOutcome(r, reason=SERIES_NOT_FOUND, message="no image series with these UIDs in the lake")
                for r in rois]
    if series.issues or series.spacing is None or series.orientation is None or series.origin is None:
        message = "the series cannot be rebuilt as a regular grid: " + ", ".join(series.issues or ("no geometry",))
        return [RoiOutcome(r, reason=SERIES_NOT_RECONSTRUCTABLE, message=message) for r in rois]
    try:
        volume = fetch_series(series, fetch)
    except ObjectStoreError as err:
        return [RoiOutcome(r, reason=OBJECT_STORE_ERROR, message=str(err)) for r in rois]
    except RadiomicsError as err:
        return [RoiOutcome(r, reason=err.reason.value, message=err.message) for r in rois]
    outcomes = []
    for roi in rois:
        try:
            mask = mask_from_bytes(roi.mask_kind, fetch(roi.mask_uri, roi.mask_sha256), volume, roi.label)
            values = compute_features(volume.array, mask, volume.geometry.spacing, settings, device=device)
        except ObjectStoreError as err:
            outcomes.append(RoiOutcome(roi, reason=OBJECT_STORE_ERROR, message=str(err)))
        except RadiomicsError as err:
            outcomes.append(RoiOutcome(roi, reason=err.reason.value, message=err.message))
        else:
            outcomes.append(RoiOutcome(roi, values=tuple(values)))
    return outcomes


# -- rows and events ---------------------------------------------------------------------------------------

_LINEAGE = ("provider", "project", "pseudo_patient_id", "study_uid", "series_uid", "roi")


def outcome_rows(outcome: RoiOutcome, *, settings_hash: str, run_id: str, now: datetime,
                 code_version: str = CODE_VERSION) -> tuple[list[dict], dict | None]:
    """(gold feature rows, failure row or None) of one ROI."""
    lineage = {k: getattr(outcome.roi, k) for k in _LINEAGE}
    common = {"settings_hash": settings_hash, "code_version": code_version, "mask_sha256": outcome.roi.mask_sha256,
              "run_id": run_id}
    if outcome.reason is not None:
        failure = {**lineage, **common, "reason": outcome.reason, "message": (outcome.message or "")[:2000],
                   "transient": outcome.transient, "failed_at": now}
        return [], failure
    rows = [{**lineage, "feature": v.name, "ibsi_id": v.ibsi_id, "family": v.family,
             "aggregation_id": v.aggregation_id, "value": float(v.value), **common, "computed_at": now}
            for v in outcome.values]
    return rows, None


@dataclass(frozen=True)
class RoiStatus:
    """Where one registered ROI stands for one settings hash and code version."""

    provider: str
    project: str
    pseudo_patient_id: str
    study_uid: str
    series_uid: str
    roi: str
    mask_sha256: str
    feature_count: int  # rows in gold for this mask
    reason: str | None  # from the failures table, when it failed


_EVENT_NAMESPACE = uuid.UUID("3b5d1f0e-8c2a-4c55-9e61-0d7a4a2f9b13")


def features_event_id(study_uid: str, settings_hash: str, code_version: str, statuses: Iterable[RoiStatus]) -> str:
    parts = sorted(f"{s.series_uid}/{s.roi}/{s.mask_sha256}/{s.reason or 'ok'}" for s in statuses)
    return str(uuid.uuid5(_EVENT_NAMESPACE, "|".join([study_uid, settings_hash, code_version, *parts])))


def finished_study_events(statuses: Sequence[RoiStatus], *, studies: Iterable[str], settings_hash: str,
                          run_id: str, table_version: int | None, source_event_ids: dict[str, str] | None = None,
                          code_version: str = CODE_VERSION) -> list:
    """One ``features computed`` event per study of ``studies`` whose every ROI has features or a failure."""

    by_study: dict[str, list[RoiStatus]] = {}
    for s in statuses:
        by_study.setdefault(s.study_uid, []).append(s)
    events = []
    for study in sorted(set(studies)):
        members = sorted(by_study.get(study, []), key=lambda s: (s.series_uid, s.roi))
        if not members or any(s.feature_count == 0 and s.reason is None for s in members):
            continue  # nothing registered, or an ROI still pending (e.g. left out by --where)
        head = members[0]
        events.append(FeaturesComputed(
            event_id=features_event_id(study, settings_hash, code_version, members),
            provider=head.provider,
            data=FeaturesComputedData(
                project=head.project, pseudo_patient_id=head.pseudo_patient_id, study_uid=study,
                settings_hash=settings_hash, code_version=code_version, table=FEATURES_TABLE,
                table_version=table_version, run_id=run_id,
                source_event_id=(source_event_ids or {}).get(study),
                rois=tuple(FeaturesComputedRoi(
                    series_uid=s.series_uid, roi=s.roi, mask_sha256=s.mask_sha256,
                    status="failed" if s.feature_count == 0 else "computed",
                    feature_count=s.feature_count, reason=s.reason if s.feature_count == 0 else None)
                    for s in members),
            ),
        ))
    return events


def run_id_for(settings_hash: str, started: datetime) -> str:
    return f"radiomics-{started.strftime('%Y%m%dT%H%M%S')}-{hashlib.sha256(settings_hash.encode()).hexdigest()[:8]}"


# -- registering DICOM masks -------------------------------------------------------------------------------

def rois_from_dicom_mask(ds, *, mask_uri: str, mask_sha256: str, provider: str, project: str,
                         source: str = "manual") -> list[dict]:
    """``silver/rois`` rows for a (de-identified) DICOM SEG (one per segment) or RTSTRUCT (one per ROI).

    The image series is the one the object references; the ROI name is the segment label / ROI name
    with its number (``nodule#1``), unique within the object.
    """
    modality = ds.get("Modality")
    common = {"provider": provider, "project": project, "pseudo_patient_id": str(ds.PatientID),
              "study_uid": str(ds.StudyInstanceUID), "mask_uri": mask_uri, "mask_sha256": mask_sha256,
              "source": source}
    try:
        if modality == "SEG":
            series_uid = str(ds.ReferencedSeriesSequence[0].SeriesInstanceUID)
            return [{**common, "series_uid": series_uid, "roi": f"{s.SegmentLabel}#{int(s.SegmentNumber)}",
                     "mask_kind": "seg", "label": int(s.SegmentNumber)} for s in ds.SegmentSequence]
        if modality == "RTSTRUCT":
            series_uid = str(ds.ReferencedFrameOfReferenceSequence[0].RTReferencedStudySequence[0]
                             .RTReferencedSeriesSequence[0].SeriesInstanceUID)
            return [{**common, "series_uid": series_uid, "roi": f"{r.ROIName}#{int(r.ROINumber)}",
                     "mask_kind": "rtstruct", "label": int(r.ROINumber)} for r in ds.StructureSetROISequence]
    except (AttributeError, IndexError, KeyError) as err:
        raise InvalidInputError(RadiomicsReason.UNREADABLE_INPUT,
                                f"{modality} object lacks its referenced series or segments: {err}") from err
    raise InvalidInputError(RadiomicsReason.UNREADABLE_INPUT,
                            f"a mask is a DICOM SEG or RTSTRUCT (NIfTI masks are registered by row), not {modality}")
