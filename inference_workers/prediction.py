"""From ``study completed`` events to ``prediction created`` events: load, pre_process, predict (one batch
across the studies), post_process, write SEG / SR / Grad-CAM, describe. No Kafka here: the worker loop
(:mod:`inference_workers.worker`) only moves events in and out of this step.
"""

from __future__ import annotations

import logging
import time
import uuid
import warnings
from dataclasses import dataclass

import torch

from inference_workers import dicom_outputs
from inference_workers.errors import InferenceError, InferenceReason, StudyRejected
from inference_workers.model_registry import RegisteredModel
from inference_workers.network import NoduleNet3D, fused_for_inference
from inference_workers.pipeline import (
    PreparedStudy,
    StudyPrediction,
    post_process,
    pre_process,
    predict,
)
from inference_workers.volume import load_series, select_series
from lake_schemas.events import (
    PredictionCandidate,
    PredictionCreated,
    PredictionCreatedData,
    PredictionInput,
    PredictionModel,
    Quarantined,
    QuarantinedData,
    StoredDicom,
    StudyCompleted,
)
from platform_layer.object_store import ObjectStore, ObjectStoreError

log = logging.getLogger(__name__)

# Namespace of prediction event ids (fixed: changing it would change every id).
_PREDICTION_NAMESPACE = uuid.UUID("a7f3c2d1-58e4-4b9a-9d0c-3e6f1b2a4c87")


def prediction_event_id(study_uid: str, study_version: int, model_name: str, model_version: int) -> str:
    """One id per (study, study version, model version): a replay or a retry yields the same id."""
    return str(uuid.uuid5(_PREDICTION_NAMESPACE, f"prediction/{study_uid}/{study_version}/{model_name}:{model_version}"))


def select_device(prefer: str = "auto") -> torch.device:
    """CUDA when present (or asked for), else the CPU with a warning."""
    if prefer != "cpu" and torch.cuda.is_available():
        return torch.device("cuda:0" if prefer == "auto" else prefer)
    if prefer not in ("auto", "cpu"):
        raise InferenceError(f"device {prefer!r} is not available")
    if prefer == "auto":
        warnings.warn("no CUDA device: the inference worker runs on the CPU", RuntimeWarning, stacklevel=2)
    return torch.device("cpu")


@dataclass(frozen=True)
class Outcome:
    source: StudyCompleted
    event_id: str  # of the prediction this study gets (or would have got)
    prediction: PredictionCreated | None = None
    rejection: Quarantined | None = None


class Predictor:
    """One loaded model version on one device, turning batches of study events into outcomes."""

    def __init__(self, model: RegisteredModel, net: NoduleNet3D, store: ObjectStore, device: torch.device,
                 worker_id: str, batch_size: int = 64, dtype: torch.dtype = torch.float32) -> None:
        self.model = model
        self.net = fused_for_inference(net.to(device).eval())
        self.store = store
        self.device = device
        self.worker_id = worker_id
        self.batch_size = batch_size
        self.dtype = dtype
        self.identity = dicom_outputs.ModelIdentity(model.name, model.version, model.weights_sha256)

    def event_id(self, study: StudyCompleted) -> str:
        return prediction_event_id(study.data.study_uid, study.data.study_version, self.model.name, self.model.version)

    def _reject(self, study: StudyCompleted, err: StudyRejected) -> Outcome:
        log.warning("study %s rejected: %s", study.data.study_uid, err)
        return Outcome(study, self.event_id(study), rejection=Quarantined(
            event_id=str(uuid.uuid5(_PREDICTION_NAMESPACE, f"rejected/{self.event_id(study)}/{err.reason.value}")),
            provider=study.provider, trace_id=study.trace_id,
            data=QuarantinedData(project=study.data.project, stage="inference", reason=err.reason.value,
                                 message=err.message[:2000], study_uid=study.data.study_uid),
        ))

    def run(self, studies: list[tuple[StudyCompleted, float]]) -> list[Outcome]:
        """``studies``: (event, arrival time on ``time.monotonic``). One outcome per study, in order."""
        outcomes: dict[int, Outcome] = {}
        loaded: list[tuple[int, StudyCompleted, float, object, tuple, PreparedStudy]] = []
        for index, (study, arrived) in enumerate(studies):
            try:
                series = select_series(study.data)
                volume, datasets = load_series(self.store, series)
                prepared = pre_process(volume, self.model.spec, self.device, key=str(index))
            except StudyRejected as err:
                outcomes[index] = self._reject(study, err)
                continue
            loaded.append((index, study, arrived, series, datasets, prepared))
        raws = predict(self.net, [item[5] for item in loaded], self.model.spec, self.batch_size, self.dtype)
        for (index, study, arrived, series, datasets, prepared), raw in zip(loaded, raws):
            try:
                result = post_process(prepared, raw, self.model.spec)
                outcomes[index] = self._describe(study, arrived, series, datasets, result, len(loaded))
            except StudyRejected as err:
                outcomes[index] = self._reject(study, err)
        return [outcomes[i] for i in range(len(studies))]

    def _put(self, data: bytes, prefix: str, suffix: str):
        try:
            return self.store.put(data, prefix=prefix, suffix=suffix)
        except ObjectStoreError as err:
            raise StudyRejected(InferenceReason.OUTPUT_FAILED, str(err)) from err

    def _describe(self, study: StudyCompleted, arrived: float, series, datasets, result: StudyPrediction,
                  batch_studies: int) -> Outcome:
        event_id = self.event_id(study)
        prefix = f"{study.data.project}/{study.data.study_uid}/predictions/{self.model.name}-v{self.model.version}"
        seg_ds = dicom_outputs.segmentation(result, datasets, self.identity, event_id)
        sr_ds = dicom_outputs.measurement_report(result, datasets, seg_ds, self.identity, event_id)
        seg = sr = None
        if seg_ds is not None:
            stored = self._put(dicom_outputs.to_bytes(seg_ds), prefix, ".seg.dcm")
            seg = StoredDicom(uri=stored.uri, sha256=stored.sha256, sop_instance_uid=str(seg_ds.SOPInstanceUID))
        stored = self._put(dicom_outputs.to_bytes(sr_ds), prefix, ".sr.dcm")
        sr = StoredDicom(uri=stored.uri, sha256=stored.sha256, sop_instance_uid=str(sr_ds.SOPInstanceUID))
        candidates = []
        for k, finding in enumerate(result.findings, start=1):
            cam = self._put(dicom_outputs.gradcam_nifti(finding), f"{prefix}/gradcam", ".nii.gz")
            candidates.append(PredictionCandidate(
                finding_id=k, centre_mm=finding.centre_mm, centre_voxel=finding.centre_voxel,
                diameter_mm=round(finding.diameter_mm, 3), probability=finding.probability,
                malignancy_probability=finding.malignancy, segment_number=k if seg is not None else None,
                gradcam_uri=cam.uri, gradcam_sha256=cam.sha256))
        spec = self.model.spec
        data = PredictionCreatedData(
            project=study.data.project, pseudo_patient_id=study.data.pseudo_patient_id,
            study_uid=study.data.study_uid, study_version=study.data.study_version, series_uid=series.series_uid,
            source_event_id=study.event_id,
            model=PredictionModel(name=self.model.name, version=self.model.version, stage=self.model.stage,
                                  weights_sha256=self.model.weights_sha256),
            inputs=tuple(PredictionInput(sop_instance_uid=r.sop_instance_uid, sha256=r.sha256) for r in series.instances),
            candidates=tuple(candidates), malignancy_score=result.malignancy_score,
            threshold=spec.malignancy_threshold, positive=result.malignancy_score >= spec.malignancy_threshold,
            seg=seg, sr=sr, latency_ms=round((time.monotonic() - arrived) * 1000.0, 1), batch_studies=batch_studies,
            worker_id=self.worker_id, device=str(self.device),
        )
        return Outcome(study, event_id, prediction=PredictionCreated(
            event_id=event_id, provider=study.provider, trace_id=study.trace_id, data=data))
