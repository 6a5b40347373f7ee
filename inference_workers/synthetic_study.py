"""A generated, already de-identified study in the object store and its ``study completed`` event.

Used by the tests, the benchmark and anyone who wants to feed the workers without the upstream
pipeline: slices of a :class:`~radlake.synthetic.chest_ct.ChestCT` are written as CT instances with
pseudonymous ``2.25.`` UIDs (by :mod:`radlake.synthetic.dicom_series`, the one CT series writer), stored
content-addressed, and listed as claim-checks in slice order.
"""

from __future__ import annotations

import uuid

from lake_schemas.events import (
    InstanceRef,
    SeriesSummary,
    StudyCompleted,
    StudyCompletedData,
)
from platform_layer.object_store import ObjectStore
from radlake.synthetic.chest_ct import ChestCT
from radlake.synthetic.dicom_series import ct_series

_NAMESPACE = uuid.UUID("5d3c0b7e-9a41-4c8e-8f63-2a7d1c9e0b55")


def pseudonymous_uid(*parts: object) -> str:
    return f"2.25.{uuid.uuid5(_NAMESPACE, '/'.join(str(p) for p in parts)).int}"


def ct_slices(ct: ChestCT, study_uid: str, series_uid: str, patient: str, flip_rows: bool = False) -> list[bytes]:
    """Part-10 CT instances of the phantom, slice 0 most inferior (stored HU + 1024, intercept -1024);
    ``flip_rows`` stores rows anterior-up reversed (column direction -y) to exercise re-orientation."""
    return ct_series(ct.image, ct.spacing, study_uid=study_uid, series_uid=series_uid,
                     frame_uid=pseudonymous_uid(series_uid, "frame"), sop_uid=lambda k: pseudonymous_uid(series_uid, k),
                     patient_id=patient, patient_name=f"{patient}^", rescale_intercept=-1024, flip_rows=flip_rows)


def publishable_study(store: ObjectStore, ct: ChestCT, *, name: str, project: str = "nodule-study",
                      provider: str = "synthetic", study_version: int = 1, flip_rows: bool = False) -> StudyCompleted:
    """Store the study's instances and return its ``study completed`` event (deterministic in ``name``)."""
    study_uid, series_uid = pseudonymous_uid(name, "study"), pseudonymous_uid(name, "series")
    patient = f"RL-{uuid.uuid5(_NAMESPACE, name).hex[:10]}"
    refs = []
    first_row_y = float((ct.image.shape[1] - 1) * ct.spacing[1]) if flip_rows else 0.0
    for k, blob in enumerate(ct_slices(ct, study_uid, series_uid, patient, flip_rows)):
        stored = store.put(blob, prefix=f"{project}/{study_uid}")
        refs.append(InstanceRef(sop_instance_uid=pseudonymous_uid(series_uid, k), object_uri=stored.uri,
                                sha256=stored.sha256, instance_number=k + 1,
                                image_position_patient=(0.0, first_row_y, float(k * ct.spacing[0]))))
    series = SeriesSummary(
        series_uid=series_uid, modality="CT", frame_of_reference_uid=pseudonymous_uid(series_uid, "frame"),
        instance_count=len(refs), rows=ct.image.shape[1], columns=ct.image.shape[2],
        pixel_spacing=(ct.spacing[1], ct.spacing[2]), slice_thickness=ct.spacing[0],
        image_orientation_patient=(1.0, 0.0, 0.0, 0.0, -1.0 if flip_rows else 1.0, 0.0),
        first_position=refs[0].image_position_patient, last_position=refs[-1].image_position_patient,
        instances=tuple(refs),
    )
    data = StudyCompletedData(project=project, pseudo_patient_id=patient, study_uid=study_uid,
                              study_version=study_version, completion_reason="manifest", providers=(provider,),
                              instance_count=len(refs), series=(series,), event_ids=())
    event_id = str(uuid.uuid5(_NAMESPACE, f"study.completed/{study_uid}/{study_version}"))
    return StudyCompleted(event_id=event_id, provider=provider, data=data)
