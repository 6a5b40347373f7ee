"""A generated, already de-identified study in the object store and its ``study completed`` event.

Used by the tests, the benchmark and anyone who wants to feed the workers without the upstream
pipeline: slices of a :class:`~radlake.synthetic.chest_ct.ChestCT` are written as CT instances with
pseudonymous ``2.25.`` UIDs, stored content-addressed, and listed as claim-checks in slice order.
"""

from __future__ import annotations

import io
import uuid

import numpy as np
import pydicom
from pydicom.dataset import FileDataset, FileMetaDataset
from pydicom.uid import CTImageStorage, ExplicitVRLittleEndian

from lake_schemas.events import InstanceRef, SeriesSummary, StudyCompleted, StudyCompletedData
from radlake.synthetic.chest_ct import ChestCT
from radlake.object_store import ObjectStore

_NAMESPACE = uuid.UUID("5d3c0b7e-9a41-4c8e-8f63-2a7d1c9e0b55")


def pseudonymous_uid(*parts: object) -> str:
    return f"2.25.{uuid.uuid5(_NAMESPACE, '/'.join(str(p) for p in parts)).int}"


def ct_slices(ct: ChestCT, study_uid: str, series_uid: str, patient: str, flip_rows: bool = False) -> list[bytes]:
    """Part-10 CT instances of the phantom, slice 0 most inferior; ``flip_rows`` stores rows anterior-up
    reversed (column direction -y) to exercise re-orientation."""
    frame = pseudonymous_uid(series_uid, "frame")
    dz, dy, dx = ct.spacing
    rows = ct.image.shape[1]
    out = []
    for k, plane in enumerate(ct.image):
        meta = FileMetaDataset()
        meta.MediaStorageSOPClassUID = CTImageStorage
        meta.MediaStorageSOPInstanceUID = pseudonymous_uid(series_uid, k)
        meta.TransferSyntaxUID = ExplicitVRLittleEndian
        ds = FileDataset(None, {}, file_meta=meta, preamble=b"\0" * 128)
        ds.SOPClassUID = CTImageStorage
        ds.SOPInstanceUID = meta.MediaStorageSOPInstanceUID
        ds.StudyInstanceUID, ds.SeriesInstanceUID, ds.FrameOfReferenceUID = study_uid, series_uid, frame
        ds.PatientID, ds.PatientName = patient, f"{patient}^"
        ds.PatientBirthDate, ds.PatientSex, ds.AccessionNumber, ds.ReferringPhysicianName = "", "O", "", ""
        ds.StudyDate, ds.StudyTime, ds.StudyID = "20260101", "120000", "1"
        ds.Modality, ds.SeriesNumber, ds.InstanceNumber = "CT", 1, k + 1
        ds.Manufacturer = "radlake-synthetic"
        pixels = plane[::-1] if flip_rows else plane
        if flip_rows:
            ds.ImagePositionPatient = [0.0, float((rows - 1) * dy), float(k * dz)]
            ds.ImageOrientationPatient = [1.0, 0.0, 0.0, 0.0, -1.0, 0.0]
        else:
            ds.ImagePositionPatient = [0.0, 0.0, float(k * dz)]
            ds.ImageOrientationPatient = [1.0, 0.0, 0.0, 0.0, 1.0, 0.0]
        ds.PixelSpacing = [dy, dx]
        ds.SliceThickness = dz
        ds.SamplesPerPixel, ds.PhotometricInterpretation = 1, "MONOCHROME2"
        ds.Rows, ds.Columns = pixels.shape
        ds.BitsAllocated, ds.BitsStored, ds.HighBit, ds.PixelRepresentation = 16, 16, 15, 1
        ds.RescaleIntercept, ds.RescaleSlope, ds.RescaleType = -1024, 1, "HU"
        ds.PositionReferenceIndicator = ""
        ds.PixelData = (np.ascontiguousarray(pixels).astype(np.int32) + 1024).astype(np.int16).tobytes()
        buffer = io.BytesIO()
        pydicom.dcmwrite(buffer, ds, enforce_file_format=True)
        out.append(buffer.getvalue())
    return out


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
