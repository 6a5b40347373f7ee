"""The worker's DICOM results: SEG (PS3.3 A.51) of the candidates and a Comprehensive 3D SR with the
TID 1500 Measurement Report (one TID 1411 volumetric group per candidate), plus the 3D Grad-CAM maps.

UIDs of the new objects are ``2.25.<uuid5>`` derived from the prediction's event id, so a retried study
gets the same SOP instance UIDs; patient, study and frame of reference come from the (pseudonymous)
source series, which both objects reference instance by instance.
"""

from __future__ import annotations

import gzip
import io
import uuid
from dataclasses import dataclass

import highdicom as hd
import nibabel as nib
import numpy as np
from pydicom.dataset import Dataset
from pydicom.sr.codedict import codes

from inference_workers.errors import InferenceReason, StudyRejected
from inference_workers.pipeline import Finding, StudyPrediction

MANUFACTURER = "radlake"
_UID_NAMESPACE = uuid.UUID("0c6f5d1e-4f0b-4f57-a3a5-6c1b0f6e9d21")


def derived_uid(*parts: object) -> str:
    """A DICOM UID under the 2.25 root, deterministic in its parts."""
    return f"2.25.{uuid.uuid5(_UID_NAMESPACE, '/'.join(str(p) for p in parts)).int}"


@dataclass(frozen=True)
class ModelIdentity:
    name: str
    version: int
    weights_sha256: str

    def algorithm(self):

        return hd.AlgorithmIdentificationSequence(name=self.name, family=codes.DCM.ArtificialIntelligence,
                                                  version=str(self.version), parameters={"weights_sha256": self.weights_sha256})


def segmentation(prediction: StudyPrediction, sources: tuple[Dataset, ...], model: ModelIdentity,
                 event_id: str) -> Dataset | None:
    """A binary DICOM SEG with one segment per finding (``None`` without findings)."""

    if not prediction.findings:
        return None
    descriptions = [
        hd.seg.SegmentDescription(
            segment_number=k,
            segment_label=f"nodule candidate {k}",
            segmented_property_category=codes.SCT.MorphologicallyAbnormalStructure,
            segmented_property_type=codes.SCT.Nodule,
            algorithm_type=hd.seg.SegmentAlgorithmTypeValues.AUTOMATIC,
            algorithm_identification=model.algorithm(),
            tracking_uid=derived_uid(event_id, "finding", k),
            tracking_id=f"nodule candidate {k}",
        )
        for k in range(1, len(prediction.findings) + 1)
    ]
    try:
        return hd.seg.Segmentation(
            source_images=list(sources),
            pixel_array=prediction.labels,
            segmentation_type=hd.seg.SegmentationTypeValues.BINARY,
            segment_descriptions=descriptions,
            series_instance_uid=derived_uid(event_id, "seg-series"),
            series_number=9101,
            sop_instance_uid=derived_uid(event_id, "seg"),
            instance_number=1,
            manufacturer=MANUFACTURER,
            manufacturer_model_name=model.name,
            software_versions=str(model.version),
            device_serial_number=model.weights_sha256[:16],
            series_description=f"{model.name} v{model.version} nodule candidates",
        )
    except (ValueError, TypeError, AttributeError) as err:
        raise StudyRejected(InferenceReason.OUTPUT_FAILED, f"DICOM SEG: {err}") from err


def _finding_group(k: int, finding: Finding, seg: Dataset, series_uid: str, model: ModelIdentity, event_id: str):

    measurements = [
        hd.sr.Measurement(name=codes.SCT.Diameter, value=round(finding.diameter_mm, 2), unit=codes.UCUM.Millimeter),
        hd.sr.Measurement(name=codes.DCM.Probability, value=round(finding.probability, 4), unit=codes.UCUM.NoUnits,
                          algorithm_id=hd.sr.AlgorithmIdentification(model.name, str(model.version))),
        hd.sr.Measurement(name=codes.DCM.ProbabilityOfCancer, value=round(finding.malignancy, 4),
                          unit=codes.UCUM.NoUnits, algorithm_id=hd.sr.AlgorithmIdentification(model.name, str(model.version))),
    ]
    return hd.sr.VolumetricROIMeasurementsAndQualitativeEvaluations(
        tracking_identifier=hd.sr.TrackingIdentifier(uid=derived_uid(event_id, "finding", k),
                                                     identifier=f"nodule candidate {k}"),
        referenced_segment=hd.sr.ReferencedSegment(
            sop_class_uid=seg.SOPClassUID, sop_instance_uid=seg.SOPInstanceUID, segment_number=k,
            source_series=hd.sr.SourceSeriesForSegmentation(series_uid),
        ),
        finding_type=codes.SCT.Nodule,
        algorithm_id=hd.sr.AlgorithmIdentification(model.name, str(model.version)),
        measurements=measurements,
    )


def measurement_report(prediction: StudyPrediction, sources: tuple[Dataset, ...], seg: Dataset | None,
                       model: ModelIdentity, event_id: str) -> Dataset:
    """Comprehensive 3D SR holding a TID 1500 Measurement Report of the findings."""

    series_uid = str(sources[0].SeriesInstanceUID)
    algorithm = hd.sr.AlgorithmIdentification(model.name, str(model.version))
    # TID 1501: the study-level score, present with or without findings (TID 1500 needs >= 1 group).
    study_level = hd.sr.MeasurementsAndQualitativeEvaluations(
        tracking_identifier=hd.sr.TrackingIdentifier(uid=derived_uid(event_id, "study-level"),
                                                     identifier="study-level malignancy score"),
        finding_type=codes.SCT.Nodule,
        algorithm_id=algorithm,
        measurements=[hd.sr.Measurement(name=codes.DCM.ProbabilityOfCancer, value=round(prediction.malignancy_score, 4),
                                        unit=codes.UCUM.NoUnits, algorithm_id=algorithm)],
    )
    groups = [study_level] + ([_finding_group(k, f, seg, series_uid, model, event_id)
                               for k, f in enumerate(prediction.findings, start=1)] if seg is not None else [])
    try:
        context = hd.sr.ObservationContext(
            observer_device_context=hd.sr.ObserverContext(
                observer_type=codes.DCM.Device,
                observer_identifying_attributes=hd.sr.DeviceObserverIdentifyingAttributes(
                    uid=derived_uid("device", model.name, model.version), name=model.name,
                    manufacturer_name=MANUFACTURER, model_name=f"{model.name} v{model.version}"),
            ),
        )
        report = hd.sr.MeasurementReport(
            observation_context=context,
            procedure_reported=codes.LN.CTUnspecifiedBodyRegion,
            imaging_measurements=groups,
        )
        return hd.sr.Comprehensive3DSR(
            evidence=[_header(d) for d in sources] + ([_header(seg)] if seg is not None else []),
            content=report[0],
            series_instance_uid=derived_uid(event_id, "sr-series"),
            series_number=9102,
            sop_instance_uid=derived_uid(event_id, "sr"),
            instance_number=1,
            manufacturer=MANUFACTURER,
            is_complete=True,
            series_description=f"{model.name} v{model.version} measurement report",
        )
    except (ValueError, TypeError, AttributeError) as err:
        raise StudyRejected(InferenceReason.OUTPUT_FAILED, f"DICOM SR: {err}") from err


def _header(ds: Dataset) -> Dataset:
    """The dataset without its pixel data: evidence lists need UIDs and the patient/study modules only,
    and highdicom deep-copies what it is given."""
    out = Dataset()
    for element in ds:
        if element.tag.group != 0x7FE0:
            out.add(element)
    return out


def to_bytes(ds: Dataset) -> bytes:
    buffer = io.BytesIO()
    ds.save_as(buffer, enforce_file_format=True)
    return buffer.getvalue()


def gradcam_nifti(finding: Finding) -> bytes:
    """The finding's Grad-CAM map as gzipped NIfTI-1 in RAS world coordinates (mtime 0: same map, same bytes)."""

    data = np.ascontiguousarray(finding.cam.transpose(2, 1, 0), dtype=np.float32)  # (x, y, z)
    zyx = finding.cam_affine
    affine = np.eye(4)
    affine[:3, :3] = zyx[:3, [2, 1, 0]]
    affine[:3, 3] = zyx[:3, 3]
    affine[:2, :] *= -1  # LPS -> RAS
    image = nib.Nifti1Image(data, affine)
    image.header.set_xyzt_units("mm")
    buffer = io.BytesIO()
    with gzip.GzipFile(fileobj=buffer, mode="wb", mtime=0) as gz:
        gz.write(image.to_bytes())
    return buffer.getvalue()
