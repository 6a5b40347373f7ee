"""A CT series as a volume with its patient geometry, loaded from the object store by claim-check.

The ``study completed`` event lists every instance of a series (object URI, SHA-256, position); the
loader fetches each object, verifies its hash, decodes the pixels to HU and checks that the slices
form one regular grid. Bad input is a :class:`StudyRejected` with a reason, never a crash.
"""

from __future__ import annotations

from dataclasses import dataclass
from io import BytesIO

import numpy as np
import pydicom
from pydicom.dataset import Dataset

from inference_workers.errors import InferenceReason, StudyRejected
from lake_schemas.events import SeriesSummary, StudyCompletedData
from radlake.dicom_io import PARSE_ERRORS
from radlake.object_store import ObjectStore, ObjectStoreError

MIN_SLICES = 8


@dataclass(frozen=True)
class CTVolume:
    hu: np.ndarray  # (z, y, x) float32, array order of the series (slice k = k-th instance)
    spacing: tuple[float, float, float]  # (dz, dy, dx) mm
    origin: tuple[float, float, float]  # patient LPS (mm) of voxel (0, 0, 0)
    row_dir: tuple[float, float, float]  # patient direction of increasing x (column index): IOP[0:3]
    col_dir: tuple[float, float, float]  # patient direction of increasing y (row index): IOP[3:6]
    slice_dir: tuple[float, float, float]  # patient direction of increasing z (slice index)

    def index_to_patient(self, index_zyx: np.ndarray) -> np.ndarray:
        """Voxel indices (..., 3) as (z, y, x) -> patient LPS mm (..., 3)."""
        idx = np.asarray(index_zyx, dtype=float)
        axes = np.stack([np.asarray(self.slice_dir) * self.spacing[0], np.asarray(self.col_dir) * self.spacing[1],
                         np.asarray(self.row_dir) * self.spacing[2]])
        return np.asarray(self.origin) + idx @ axes


def select_series(data: StudyCompletedData) -> SeriesSummary:
    """The CT series the nodule model reads: the CT series with the most instances (at least MIN_SLICES)."""
    ct = [s for s in data.series if s.modality.upper() == "CT" and len(s.instances) >= MIN_SLICES]
    if not ct:
        raise StudyRejected(InferenceReason.NO_CT_SERIES, f"no CT series with >= {MIN_SLICES} instances")
    return max(ct, key=lambda s: (len(s.instances), s.series_uid))


def _fetch(store: ObjectStore, uri: str, sha256: str) -> bytes:
    try:
        return store.get(uri, expected_sha256=sha256)
    except ObjectStoreError as err:
        try:
            present = store.exists(uri)
        except (OSError, ValueError):
            present = False
        reason = InferenceReason.HASH_MISMATCH if present else InferenceReason.UNREADABLE_VOLUME
        raise StudyRejected(reason, str(err)[:500]) from err


def _decode(data: bytes, uri: str) -> tuple[Dataset, np.ndarray]:
    try:
        ds = pydicom.dcmread(BytesIO(data))
        pixels = ds.pixel_array.astype(np.float32)
    except PARSE_ERRORS as err:
        raise StudyRejected(InferenceReason.UNREADABLE_VOLUME, f"{uri}: {type(err).__name__}: {err}"[:500]) from err
    if pixels.ndim != 2:
        raise StudyRejected(InferenceReason.INCONSISTENT_GEOMETRY, f"{uri}: not a single-frame slice")
    slope, intercept = float(ds.get("RescaleSlope", 1) or 1), float(ds.get("RescaleIntercept", 0) or 0)
    return ds, pixels * slope + intercept


def load_series(store: ObjectStore, series: SeriesSummary) -> tuple[CTVolume, tuple[Dataset, ...]]:
    """Fetch, verify and stack a series; returns the volume and the datasets in slice order."""
    decoded = [_decode(_fetch(store, ref.object_uri, ref.sha256), ref.object_uri) for ref in series.instances]
    return stack_slices([ds for ds, _ in decoded], [px for _, px in decoded])


def stack_slices(datasets: list[Dataset], planes: list[np.ndarray]) -> tuple[CTVolume, tuple[Dataset, ...]]:
    try:
        iop = np.array([float(v) for v in datasets[0].ImageOrientationPatient])
        positions = np.array([[float(v) for v in ds.ImagePositionPatient] for ds in datasets])
        dy, dx = (float(v) for v in datasets[0].PixelSpacing)
    except (AttributeError, TypeError, ValueError) as err:
        raise StudyRejected(InferenceReason.INCONSISTENT_GEOMETRY, f"missing geometry: {err}") from err
    row, col = iop[:3], iop[3:]
    normal = np.cross(row, col)
    order = np.argsort(positions @ normal, kind="stable")
    shapes = {p.shape for p in planes}
    if len(shapes) != 1:
        raise StudyRejected(InferenceReason.INCONSISTENT_GEOMETRY, f"slices of different sizes {sorted(shapes)}")
    steps = np.diff((positions @ normal)[order])
    if len(steps) == 0 or steps.min() <= 0 or (steps.max() - steps.min()) > 0.01 * steps.mean():
        raise StudyRejected(InferenceReason.INCONSISTENT_GEOMETRY, "slice positions are not evenly spaced")
    volume = CTVolume(
        hu=np.stack([planes[k] for k in order]).astype(np.float32),
        spacing=(float(steps.mean()), dy, dx),
        origin=tuple(float(v) for v in positions[order[0]]),
        row_dir=tuple(float(v) for v in row),
        col_dir=tuple(float(v) for v in col),
        slice_dir=tuple(float(v) for v in normal),
    )
    return volume, tuple(datasets[k] for k in order)
