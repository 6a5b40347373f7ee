"""A CT series as a volume with its patient geometry, loaded from the object store by claim-check.

The ``study completed`` event lists every instance of a series (object URI, SHA-256, position); the
loader fetches each object, verifies its hash, and builds the volume with
:func:`radlake.imaging.volume.volume_from_datasets` (HU through the Modality LUT rescale, slices ordered
along the normal on one regular grid), as float32. Bad input is a :class:`StudyRejected` with a reason,
never a crash.
"""

from __future__ import annotations

from io import BytesIO

import numpy as np
import pydicom
from pydicom.dataset import Dataset

from inference_workers.errors import InferenceReason, StudyRejected
from lake_schemas.events import SeriesSummary, StudyCompletedData
from platform_layer.object_store import ObjectStore, ObjectStoreError
from radlake.dicom_io import PARSE_ERRORS
from radlake.imaging.volume import GeometryError, PixelDataError, Volume, volume_from_datasets

MIN_SLICES = 8

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


def _read(data: bytes, uri: str) -> Dataset:
    try:
        return pydicom.dcmread(BytesIO(data))
    except PARSE_ERRORS as err:
        raise StudyRejected(InferenceReason.UNREADABLE_VOLUME, f"{uri}: {type(err).__name__}: {err}"[:500]) from err


def load_series(store: ObjectStore, series: SeriesSummary) -> tuple[Volume, tuple[Dataset, ...]]:
    """Fetch, verify and stack a series; returns the (float32 HU) volume and the datasets in slice order."""
    datasets = [_read(_fetch(store, ref.object_uri, ref.sha256), ref.object_uri) for ref in series.instances]
    try:
        return volume_from_datasets(datasets, dtype=np.float32)
    except PixelDataError as err:
        raise StudyRejected(InferenceReason.UNREADABLE_VOLUME, str(err)[:500]) from err
    except GeometryError as err:
        raise StudyRejected(InferenceReason.INCONSISTENT_GEOMETRY, str(err)[:500]) from err
