"""Claim-check: store a de-identified instance and describe it in an ``instance received`` event, or, for an
annotation (SEG, RTSTRUCT, SR, KOS, PR: :mod:`radlake.annotations`), an ``annotation received`` event.

The event carries the metadata downstream needs (pseudonymous UIDs, geometry or references, transfer
syntax), the object's URI, SHA-256 and size — never pixel data. Used by the edge (NiFi) and by ``radlake demo``.
"""

from __future__ import annotations

import uuid
from io import BytesIO

import pydicom
from pydicom.dataset import Dataset

from lake_schemas.errors import RadlakeError
from lake_schemas.events import AnnotationReceived, AnnotationReceivedData, InstanceReceived, InstanceReceivedData
from radlake.annotations import annotation_kind, referenced_series_uids, referenced_sop_instance_uids
from radlake.claim_check import ObjectSink, StoredObject
from radlake.imaging.series_geometry import InstancePlane


class InstanceEventError(RadlakeError):
    """A de-identified instance lacks what an ``instance received`` event needs."""


def describe(ds: Dataset, stored: StoredObject, *, provider: str, project: str,
             deid_profile_version: str) -> InstanceReceived | AnnotationReceived:
    """The event for a stored, de-identified dataset (header only is enough): ``annotation received`` for an
    annotation SOP class, else ``instance received``."""
    if annotation_kind(ds.get("SOPClassUID")) is not None:
        return describe_annotation(ds, stored, provider=provider, project=project,
                                   deid_profile_version=deid_profile_version)
    plane = InstancePlane.of_dataset(ds)
    try:
        data = InstanceReceivedData(
            project=project,
            pseudo_patient_id=str(ds.PatientID),
            study_uid=str(ds.StudyInstanceUID),
            series_uid=str(ds.SeriesInstanceUID),
            sop_instance_uid=str(ds.SOPInstanceUID),
            frame_of_reference_uid=str(ds.FrameOfReferenceUID) if "FrameOfReferenceUID" in ds else None,
            sop_class_uid=str(ds.SOPClassUID),
            modality=str(ds.get("Modality", "OT") or "OT"),
            transfer_syntax_uid=str(ds.file_meta.TransferSyntaxUID),
            instance_number=plane.instance_number,
            rows=plane.rows,
            columns=plane.columns,
            pixel_spacing=plane.pixel_spacing,
            slice_thickness=plane.slice_thickness,
            image_position_patient=plane.image_position_patient,
            image_orientation_patient=plane.image_orientation_patient,
            object_uri=stored.uri,
            sha256=stored.sha256,
            size_bytes=stored.size_bytes,
            deid_profile_version=deid_profile_version,
        )
    except (AttributeError, ValueError) as err:
        raise InstanceEventError(f"de-identified instance cannot be described: {err}") from err
    return InstanceReceived(event_id=instance_event_id(provider, data), provider=provider, data=data)


def describe_annotation(ds: Dataset, stored: StoredObject, *, provider: str, project: str,
                        deid_profile_version: str) -> AnnotationReceived:
    """The ``annotation received`` event of a stored, de-identified annotation (header only is enough)."""
    kind = annotation_kind(ds.get("SOPClassUID"))
    if kind is None:
        raise InstanceEventError("not an annotation SOP class")
    try:
        data = AnnotationReceivedData(
            project=project,
            pseudo_patient_id=str(ds.PatientID),
            study_uid=str(ds.StudyInstanceUID),
            series_uid=str(ds.SeriesInstanceUID),
            sop_instance_uid=str(ds.SOPInstanceUID),
            sop_class_uid=str(ds.SOPClassUID),
            annotation_kind=kind.value,
            modality=str(ds.get("Modality", "OT") or "OT"),
            transfer_syntax_uid=str(ds.file_meta.TransferSyntaxUID),
            frame_of_reference_uid=str(ds.FrameOfReferenceUID) if ds.get("FrameOfReferenceUID") else None,
            referenced_series_uids=referenced_series_uids(ds),
            referenced_instance_count=len(referenced_sop_instance_uids(ds)),
            object_uri=stored.uri,
            sha256=stored.sha256,
            size_bytes=stored.size_bytes,
            deid_profile_version=deid_profile_version,
        )
    except (AttributeError, ValueError) as err:
        raise InstanceEventError(f"de-identified annotation cannot be described: {err}") from err
    name = f"annotation.received/{provider}/{project}/{data.sop_instance_uid}/{data.sha256}"
    return AnnotationReceived(event_id=str(uuid.uuid5(_EVENT_ID_NAMESPACE, name)), provider=provider, data=data)


# Namespace of the deterministic event ids (a fixed, random UUID: changing it would change every id).
_EVENT_ID_NAMESPACE = uuid.UUID("6f0b6c55-2a55-4b4e-9b7e-2f6d1f3c8a11")


def instance_event_id(provider: str, data: InstanceReceivedData) -> str:
    """The same stored instance from the same provider always gets the same event id.

    A retried publish, a resumed upload or a re-sent archive therefore produces redeliveries that every
    consumer (bronze MERGE, streams dedupe) drops by event id; a changed instance (same SOP UID,
    other bytes) gets a new id and is caught downstream as a conflict.
    """
    name = f"instance.received/{provider}/{data.project}/{data.sop_instance_uid}/{data.sha256}"
    return str(uuid.uuid5(_EVENT_ID_NAMESPACE, name))


def store_and_describe(deidentified: bytes, store: ObjectSink, *, provider: str, project: str,
                       deid_profile_version: str) -> InstanceReceived | AnnotationReceived:
    """Put the bytes in the object store (content-addressed, under project/study) and build the event."""
    ds = pydicom.dcmread(BytesIO(deidentified), stop_before_pixels=True)
    stored = store.put(deidentified, prefix=f"{project}/{ds.StudyInstanceUID}")
    return describe(ds, stored, provider=provider, project=project, deid_profile_version=deid_profile_version)
