"""``radlake demo`` — the main job, end to end on generated data, with a printed summary.

1. generate a multi-provider sample: chest CTs with one nodule each, malignant or benign, from the
   generator the nodule model is trained on (``radlake.synthetic.chest_ct``, seeds it never saw; known
   masks and labels), whose headers are full of fake PHI, plus bad inputs (truncated file, non-DICOM file, an archive with a path-traversal member);
2. upload each provider's folder through its NiFi edge (``radlake provider add`` + ``radlake upload``:
   STOW-RS requests by study and the archive as it is), where radlake's engine de-identifies every
   instance (PS3.15 Annex E, Vault Transit pseudonyms), stores it in the object store and announces it
   on Kafka as a typed, registry-validated ``instance received`` event (claim-check: URI + SHA-256, no
   pixels); refused inputs get a ``quarantined`` event;
3. land the topic in the Delta bronze table ``instances`` with Spark (exactly once, MERGE on event id);
4. complete studies with the streams worker (quiet period); rebuild each series' volume from the
   object store using the lake's geometry (verifying every hash) and compute IBSI radiomic features on the nodule, written to the gold Delta table ``radiomics_features``;
5. run an inference worker on the `study completed` events with the registered nodule model (a demo-size
   model is trained and registered first if the registry has none): predictions to Kafka and gold;
6. the segmentation created trigger: each prediction's DICOM SEG becomes ROIs of the lake and gets its
   features (``radlake radiomics follow --on segmentations``), beside the true nodule's;
7. complete the lake: bronze ``study_completed``, silver ``series`` and ``studies`` behind the quality gates
   (the tables the cohort notebook reads);
8. print what happened at each step, each prediction beside the study's ground truth.

The demo calls the libraries of the commands it mirrors; only the streams worker runs as its own process
(as it does in production). Spark's and the libraries' logs go to ``<state dir>/logs``. Needs the stack
(``radlake stack up``); ``make demo`` runs both.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import logging
import socket
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from io import BytesIO
from pathlib import Path

import numpy as np
import pydicom
from deltalake import DeltaTable
from pydicom.uid import generate_uid

from apps._common import command
from inference_workers import predictions_table
from inference_workers.errors import InferenceError
from inference_workers.model_registry import stack_registry
from inference_workers.service import ServeOptions, serve
from inference_workers.service import ensure_topics as ensure_inference_topics
from inference_workers.training import TrainConfig, train_and_register
from lake_schemas.errors import RadlakeError
from lake_schemas.tables import ERASURES, GATE_REPORTS, QUARANTINE, SILVER_SERIES, SILVER_STUDIES
from lake_schemas.topics import INSTANCE_RECEIVED, STUDY_COMPLETED
from nifi import providers
from nifi.edge.client import (
    Uploader,
    plan,
    study_report,
    upload_id_for,
    wait_until_listening,
)
from platform_layer.endpoints import kafka_bootstrap
from platform_layer.object_store import ObjectStore
from platform_layer.settings import Settings
from platform_layer.spark import spark_session
from radlake.imaging.volume import Geometry
from radlake.radiomics import RadiomicsSettings
from radlake.radiomics.nifti import write_nifti
from radlake.synthetic import phi_dicom
from radlake.synthetic.chest_ct import chest_ct
from radlake.synthetic.dicom_series import write_ct_series
from spark_jobs import bronze, radiomics_follow, radiomics_job, tables
from spark_jobs.pipeline import start_pipeline

log = logging.getLogger(__name__)

# the known label of each provider's studies: one nodule each, malignant or benign
PROVIDERS = {"st-olav": (True, False), "haukeland": (True,)}
PROJECT = "demo-nodules"
# seeds of the demo's chest CTs: far from the model's training, validation and test seed ranges
DEMO_SEEDS = 7_000_000


class DemoError(RadlakeError):
    """A step of the main job could not complete; the message names it."""


@dataclass(frozen=True)
class GroundTruth:
    provider: str
    kind: str  # malignant | benign
    mask: np.ndarray
    volume_sha256: str  # of the int16 pixel volume: de-identification must not change it
    centre_vox: tuple[float, float, float]  # (z, y, x) of the nodule
    diameter_mm: float
    spacing: tuple[float, float, float]  # (dz, dy, dx) mm

    def describe(self) -> str:
        z, y, x = (round(c) for c in self.centre_vox)
        return f"{self.kind} nodule, {self.diameter_mm:.1f} mm, centre (z,y,x)=({z},{y},{x})"

    def distance_mm(self, centre_vox) -> float:
        """Distance of a source voxel (z, y, x) from the nodule centre: the series is written unflipped,
        so source voxels are the generator's."""
        return float(np.linalg.norm((np.asarray(centre_vox, dtype=float) - self.centre_vox) * self.spacing))


def describe_findings(candidates: list[dict], truth: GroundTruth | None) -> list[str]:
    """One line per finding of a prediction, most suspicious first, with its distance from the true nodule:
    a finding within max(radius, 5 mm) of the true centre is a hit (the criterion of ``radlake model
    evaluate``), else a false positive; a last line says when the nodule was missed."""
    lines, hit = [], False
    for c in sorted(candidates, key=lambda c: -c["probability"] * c["malignancy_probability"]):
        z, y, x = (round(v) for v in c["centre_voxel"])
        where = ""
        if truth:
            distance = truth.distance_mm(c["centre_voxel"])
            near = distance <= max(truth.diameter_mm / 2, 5.0)
            hit |= near
            where = f" ({distance:.1f} mm from the true centre{'' if near else ': a false positive'})"
        lines.append(f"found: nodule at (z,y,x)=({z},{y},{x}){where}, {c['diameter_mm']:.1f} mm, "
                     f"P(nodule)={c['probability']:.2f} P(malignant)={c['malignancy_probability']:.2f}")
    if not lines:
        lines.append("found: nothing")
    if truth and not hit:
        lines.append("the true nodule was missed")
    return lines


def _volume_hash(volume: np.ndarray) -> str:
    return hashlib.sha256(np.ascontiguousarray(volume, dtype=np.int16).tobytes()).hexdigest()


def _chest_ct_with(malignant: bool, start: int, shape: tuple[int, int, int]):
    """The first generated chest CT from seed ``start`` on with exactly one nodule of that label: the same
    generator the nodule model is trained on (``radlake.synthetic.chest_ct``), seeds it never saw."""
    for seed in range(start, start + 500):
        ct = chest_ct(seed, shape=shape, min_nodules=1, max_nodules=1)
        if len(ct.nodules) == 1 and ct.nodules[0].malignant == malignant:
            return seed, ct
    raise DemoError(f"no {'malignant' if malignant else 'benign'} case among 500 seeds from {start}")


def generate_sample(root: Path, shape: tuple[int, int, int]) -> dict[str, GroundTruth]:
    """Write each provider's upload folder; return the nodule masks keyed by pixel-volume hash."""
    truths: dict[str, GroundTruth] = {}
    seed = DEMO_SEEDS
    for p_index, (provider, labels) in enumerate(PROVIDERS.items()):
        upload = root / provider
        for s_index, malignant in enumerate(labels):
            seed, ct = _chest_ct_with(malignant, seed + 1, shape)
            # Fixed original UIDs: a re-run uploads the same instances again, which the pipeline must
            # absorb (same pseudonyms, same event ids: nothing new in the lake, no second prediction).
            study_uid, series_uid, frame_uid = (generate_uid(entropy_srcs=[provider, str(s_index), part])
                                                for part in ("study", "series", "frame"))
            # Headers full of fake PHI: the same patient name, ids, dates and institution on every slice.
            patient = phi_dicom.Patient()
            write_ct_series(
                ct.image, ct.spacing, upload / f"study{s_index}", study_uid=study_uid, series_uid=series_uid,
                frame_uid=frame_uid,
                sop_uid=lambda k, provider=provider, s_index=s_index: generate_uid(
                    entropy_srcs=[provider, str(s_index), "sop", str(k)]),
                patient_id=f"{patient.patient_id}{p_index}{s_index}", patient_name=patient.name,
                attributes={"PatientBirthDate": patient.birth_date, "InstitutionName": patient.institution,
                            "InstitutionAddress": patient.address, "AccessionNumber": f"ACC{p_index}{s_index}7731",
                            "ReferringPhysicianName": "Hansen^Kari"})
            nodule = ct.nodules[0]
            truths[_volume_hash(ct.image)] = GroundTruth(
                provider, "malignant" if nodule.malignant else "benign", ct.labels == 1, _volume_hash(ct.image),
                nodule.centre_vox, nodule.diameter_mm, ct.spacing)
        (upload / "bad").mkdir(parents=True, exist_ok=True)
        good = sorted((upload / "study0").glob("*"))[0].read_bytes()
        (upload / "bad" / "truncated.dcm").write_bytes(good[: len(good) // 3])
        (upload / "bad" / "notes.txt").write_text("Patient Ola Nordmann, not an image\n")
        (upload / "bad" / "traversal.zip").write_bytes(phi_dicom.zip_archive([("../../etc/evil.dcm", good)]))
    return truths


def upload_through_edges(root: Path, journal_dir: Path, settings: Settings) -> tuple[dict[str, dict], int, float]:
    """Each provider's upload goes through its NiFi edge (as ``radlake provider add`` + ``radlake upload``): STOW-RS
    and archives in, de-identification at the edge, object store + registry-validated events out.

    Returns a report per provider (shaped like ``radlake deid``'s: counts by status and reason), the number of
    instance events published and the seconds the uploads took."""
    reports: dict[str, dict] = {}
    sent = 0
    started = time.monotonic()
    providers.follow_stack(settings)  # an edge kept from an earlier run points at today's Kafka, registry and Vault
    for provider in PROVIDERS:
        try:
            edge = providers.find_edge(settings, provider)
        except providers.ProviderError:
            edge = providers.add(settings, provider, PROJECT)
        if edge.project != PROJECT:
            raise DemoError(f"provider {provider} has an edge for project {edge.project}; "
                            f"`radlake provider remove {provider}` first")
        verify = providers.edge_verification(settings)  # the edge's HTTPS certificate, against the platform CA
        wait_until_listening(edge.url, verify=verify)
        uploader = Uploader(edge.url, providers.endpoint_token(settings, provider), journal_dir / f"{provider}.jsonl",
                            verify=verify, on_progress=lambda line: None)
        try:
            records = uploader.upload(plan([root / provider]), upload_id_for([root / provider], provider))
        finally:
            uploader.close()
        rows = study_report(records)
        accepted = sum(r["accepted"] for r in rows)
        reasons: dict[str, int] = {}
        for row in rows:
            for reason, count in row["reasons"].items():
                reasons[reason] = reasons.get(reason, 0) + count
        reports[provider] = {"by_status": {"deidentified": accepted, "quarantined": sum(reasons.values()),
                                           "duplicate": sum(r["duplicate"] for r in rows)},
                             "by_reason": reasons}
        sent += accepted
    return reports, sent, time.monotonic() - started


def land_bronze(settings: Settings, topic_name: str):
    spark = spark_session(settings, "radlake-demo")
    lake = settings.resolved_lake_uri
    job = bronze.BronzeJob(kafka_bootstrap(settings), topic_name, f"{lake}/bronze/instances",
                           f"{settings.state_dir}/checkpoints/bronze-instances",
                           deny_list_path=f"{lake}/{ERASURES.relative_path}")
    bronze.start(spark, job, available_now=True).awaitTermination()
    return spark, job.table_path


def radiomics(spark, bronze_path: str, truths: dict[str, GroundTruth], settings: Settings):
    """Register each series' known nodule as a NIfTI ROI of the lake, then run the lake's radiomics job.

    The series is rebuilt from the object store by claim-check (hashes verified) only to recognise which
    generated nodule it carries: de-identification must have left its pixels bit-identical.
    """
    rows = spark.read.format("delta").load(bronze_path).where(f"project = '{PROJECT}'").select(
        "provider", "project", "pseudo_patient_id", "study_uid", "series_uid", "object_uri", "sha256",
        "image_position_patient", "pixel_spacing",
    ).collect()
    series: dict[tuple[str, str], list] = {}
    for row in rows:
        series.setdefault((row.study_uid, row.series_uid), []).append(row)
    store = ObjectStore(settings.resolved_object_store_uri)
    roi_rows = []
    study_truths: dict[str, GroundTruth] = {}
    for (study, series_uid), instances in sorted(series.items()):
        instances.sort(key=lambda r: r.image_position_patient[2])
        planes = [pydicom.dcmread(BytesIO(store.get(r.object_uri, r.sha256))) for r in instances]
        truth = truths.get(_volume_hash(np.stack([p.pixel_array for p in planes])))
        if truth is None:
            raise DemoError(f"series {series_uid} pixels changed during de-identification")
        study_truths[study] = truth
        dz = abs(instances[1].image_position_patient[2] - instances[0].image_position_patient[2])
        geometry = Geometry(shape=truth.mask.shape, spacing=(dz, *instances[0].pixel_spacing),
                            origin=tuple(instances[0].image_position_patient),
                            direction=((1.0, 0.0, 0.0), (0.0, 1.0, 0.0), (0.0, 0.0, 1.0)))
        with tempfile.TemporaryDirectory(prefix="radlake-demo-mask-") as tmp:
            write_nifti(f"{tmp}/mask.nii.gz", truth.mask.astype(np.uint8), geometry)
            stored = store.put(Path(f"{tmp}/mask.nii.gz").read_bytes(), prefix=f"masks/{study}", suffix=".nii.gz")
        first = instances[0]
        roi_rows.append({"provider": first.provider, "project": first.project,
                         "pseudo_patient_id": first.pseudo_patient_id, "study_uid": study, "series_uid": series_uid,
                         "roi": f"nodule-{truth.kind}", "mask_kind": "nifti", "mask_uri": stored.uri,
                         "mask_sha256": stored.sha256, "label": None, "source": "synthetic:ground-truth"})
    radiomics_job.register_rois(spark, settings.resolved_lake_uri, roi_rows)
    job = radiomics_job.RadiomicsJob(settings.resolved_lake_uri, settings.resolved_object_store_uri,
                                     RadiomicsSettings(aggregations=("3D",)), where=f"project = '{PROJECT}'")
    result = radiomics_job.run(spark, job)
    radiomics_follow.ensure_topics(settings)
    radiomics_job.publish_outbox(spark, job, radiomics_follow.features_publisher(settings))
    gold = spark.read.format("delta").load(job.path(radiomics_job.RADIOMICS_FEATURES)).where(
        f"project = '{PROJECT}' AND settings_hash = '{job.settings_hash}' "
        "AND roi IN ('nodule-malignant', 'nodule-benign')")  # the ground truth's, not the predicted segments'
    return result, [r.asDict() for r in gold.collect()], job.path(radiomics_job.RADIOMICS_FEATURES), study_truths


def start_streams_worker(settings: Settings, quiet_period_s: float) -> subprocess.Popen:
    """The study-completion worker, in the background: no manifest here, so studies complete
    after a quiet period without new instances."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        web_port = sock.getsockname()[1]
    log_file = settings.logs_dir / "demo-streams.log"
    log_file.parent.mkdir(parents=True, exist_ok=True)
    argv = [sys.executable, "-m", "apps.cli", "streams", "run", "--app-id", "radlake-demo-streams",
            "--quiet-period-s", str(quiet_period_s), "--tick-interval-s", "1", "--web-port", str(web_port)]
    with open(log_file, "ab") as log:
        return subprocess.Popen(argv, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)  # noqa: S603


def ensure_model(settings: Settings) -> str:
    """The Production nodule model from the registry; trains and registers a demo-size one if there is none."""
    registry = stack_registry(settings)
    try:
        return registry.get("nodule-cnn", stage="Production").label
    except InferenceError:
        pass
    config = TrainConfig(train_studies=32, validation_studies=8, epochs=3, width=8)
    return train_and_register(registry, "nodule-cnn", config, stage="Production").label


def predict(settings: Settings, study_uids: set[str], streams: subprocess.Popen) -> list[dict]:
    """Run an inference worker until the demo's studies have predictions (or it idles out)."""
    table = predictions_table.stack_table_uri(settings)

    def predicted() -> list[dict]:
        if not DeltaTable.is_deltatable(table):
            return []
        rows = DeltaTable(table).to_pyarrow_table(columns=[
            "study_uid", "model_name", "model_version", "malignancy_score", "positive", "candidate_count",
            "candidates_json", "latency_ms"]).to_pylist()
        return [r for r in rows if r["study_uid"] in study_uids]

    deadline = time.monotonic() + 600
    while len({r["study_uid"] for r in predicted()}) < len(study_uids) and time.monotonic() < deadline:
        if streams.poll() is not None:
            raise DemoError(f"the streams worker exited ({streams.returncode}); "
                            f"see {settings.logs_dir / 'demo-streams.log'}")
        missing = len(study_uids) - len({r["study_uid"] for r in predicted()})
        options = ServeOptions(worker_id="radlake-demo-worker", group="radlake-demo-inference",
                               max_predictions=missing, max_idle_s=30)
        ensure_inference_topics(settings, options)
        serve(settings, options)
    return predicted()


def radiomics_of_predictions(settings: Settings, model_label: str) -> tuple[object, list[dict]]:
    """Consume the predictions announced since the last demo run (its own consumer group) as
    ``radlake radiomics follow --on segmentations`` does; return the follower's counts and the gold
    ``morph.vol`` rows of every segment this model predicted on the demo's studies."""
    job = radiomics_job.RadiomicsJob(settings.resolved_lake_uri, settings.resolved_object_store_uri,
                                     RadiomicsSettings(aggregations=("3D",)), where=f"project = '{PROJECT}'")
    radiomics_follow.ensure_topics(settings)
    consumer, serde, handle = radiomics_follow.follower(settings, job, "segmentations",
                                                        group="radlake-demo-radiomics-segmentations")
    spark = spark_session(settings, "radlake-demo-radiomics-segmentations")
    try:
        stats = radiomics_follow.follow(spark, job, consumer, serde, radiomics_follow.features_publisher(settings),
                                        handle=handle, dead_letter=radiomics_follow.stack_dead_letters(settings),
                                        idle_exit_s=5)
        gold = spark.read.format("delta").load(job.path(radiomics_job.RADIOMICS_FEATURES)).where(
            f"project = '{PROJECT}' AND settings_hash = '{job.settings_hash}' AND feature = 'morph.vol' "
            f"AND roi LIKE '{model_label}/%'")
        rows = [r.asDict() for r in gold.collect()]
    finally:
        consumer.close()
    return stats, rows


@dataclass(frozen=True)
class LakeSummary:
    series: list[dict]  # silver/series rows of the demo's project
    studies: list[dict]  # silver/studies rows of the demo's project
    gate_runs: int
    gate_rows_evaluated: int
    gate_rows_quarantined: int
    gates_passed: bool
    quarantined: int  # governance/quarantine rows of the demo's project


def complete_lake(spark, settings: Settings) -> LakeSummary:
    """Bronze for both topics, then silver behind the quality gates, over what is on the topics now (the
    streaming queries with an available-now trigger, on the checkpoints ``radlake lake run`` uses)."""
    lake = settings.resolved_lake_uri
    start_pipeline(spark, bootstrap=kafka_bootstrap(settings), lake_uri=lake,
                   instances_topic=INSTANCE_RECEIVED.name, completed_topic=STUDY_COMPLETED.name,
                   checkpoints=f"{settings.state_dir}/checkpoints", available_now=True)

    def rows(spec, columns: list[str]) -> list[dict]:
        path = tables.table_path(lake, spec)
        if not DeltaTable.is_deltatable(path):
            return []
        return DeltaTable(path).to_pyarrow_table(columns=columns).to_pylist()

    series = [r for r in rows(SILVER_SERIES, ["project", "provider", "study_uid", "series_uid", "instance_count",
                                              "reconstructable", "dims", "spacing"]) if r["project"] == PROJECT]
    studies = [r for r in rows(SILVER_STUDIES, ["project", "provider", "study_uid", "status", "series_count",
                                                "instance_count", "counts_match"]) if r["project"] == PROJECT]
    reports = rows(GATE_REPORTS, ["rows_evaluated", "rows_quarantined", "success"])
    quarantined = [r for r in rows(QUARANTINE, ["project"]) if r["project"] == PROJECT]
    return LakeSummary(series, studies, len(reports), sum(r["rows_evaluated"] or 0 for r in reports),
                       sum(r["rows_quarantined"] or 0 for r in reports), all(r["success"] for r in reports),
                       len(quarantined))


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="radlake demo", description=__doc__.splitlines()[0])
    parser.add_argument("--slices", type=int, default=40, help="slices per generated chest CT (2.5 mm)")
    return parser


def _run(args: argparse.Namespace, settings: Settings) -> int:
    started = time.monotonic()
    topic_name = INSTANCE_RECEIVED.name

    def step(text: str) -> None:
        print(f"[{time.monotonic() - started:6.1f}s] {text}", file=sys.stderr)

    with tempfile.TemporaryDirectory(prefix="radlake-demo-") as tmp:
        root, journals = Path(tmp) / "uploads", Path(tmp) / "journals"
        step("generating a sample upload per provider (CT with nodules, fake PHI, bad files)")
        truths = generate_sample(root, shape=(args.slices, 112, 112))
        step(f"uploading through each provider's NiFi edge (STOW-RS, archives): de-identification "
             f"(PS3.15 Annex E, Vault Transit), object store, claim-check events on {topic_name}")
        reports, sent, edge_seconds = upload_through_edges(root, journals, settings)
        step("streams: worker deciding study completion (quiet period 5 s)")
        streams = start_streams_worker(settings, quiet_period_s=5.0)
        step("landing the topic in Delta bronze with Spark Structured Streaming")
        spark, bronze_path = land_bronze(settings, topic_name)
        step("radiomics: the lake job computes IBSI features of each registered nodule ROI (Spark)")
        features_run, feature_rows, gold_path, study_truths = radiomics(spark, bronze_path, truths, settings)
        summary = spark.read.format("delta").load(bronze_path).groupBy("provider").agg(
            {"study_uid": "approx_count_distinct", "event_id": "count"}).collect()
        step("model: the registered Production nodule model (a demo-size one is trained if none exists)")
        model_label = ensure_model(settings)
        step(f"inference: worker consumes study completed events, publishes predictions ({model_label})")
        study_uids = {row["study_uid"] for row in feature_rows}
        try:
            predictions = predict(settings, study_uids, streams)
        finally:
            streams.terminate()
            streams.wait(60)
        step("radiomics of the predicted segmentations: each prediction's DICOM SEG registered as ROIs (Spark)")
        segmentation_stats, segment_volumes = radiomics_of_predictions(settings, model_label)
        step("lake: bronze study completed, silver series and studies behind the quality gates (Spark)")
        lake = complete_lake(spark, settings)
        spark.stop()

    print("\n== radlake demo summary ==")
    print(f"{'provider':<12} {'accepted':>8} {'quarantined':>11}  reasons")
    for provider, report in reports.items():
        counts = report["by_status"]
        print(f"{provider:<12} {counts.get('deidentified', 0):>8} {counts.get('quarantined', 0):>11}  "
              f"{json.dumps(report['by_reason'], sort_keys=True)}")
    print(f"\nNiFi edges ({', '.join(PROVIDERS)}): uploads acknowledged in {edge_seconds:.1f}s")
    print(f"events published on {topic_name}: {sent}")
    print(f"bronze {bronze_path}:")
    for row in sorted(summary, key=lambda r: r.provider):
        print(f"  {row.provider:<12} studies={row['approx_count_distinct(study_uid)']} instances={row['count(event_id)']}")
    print(f"gold {gold_path}: {len(feature_rows)} feature values "
          f"(this run: {features_run.computed_rois} ROIs computed, {len(features_run.events)} studies announced "
          f"on radlake.features.computed.v1)")
    for name in ("morph.vol", "stat.mean", "cm.contrast[3D:mrg]"):
        for row in sorted(feature_rows, key=lambda r: (r["provider"], r["roi"])):
            if row["feature"] == name:
                print(f"  {row['provider']:<12} {row['roi']:<18} {row['feature']:<14} {row['ibsi_id']}  {row['value']:.3f}")
    print(f"\npredictions ({model_label}) on radlake.prediction.created.v1, landed in gold/predictions:")
    for row in sorted(predictions, key=lambda r: r["study_uid"]):
        truth = study_truths.get(row["study_uid"])
        print(f"  study {row['study_uid'][:24]}... malignancy={row['malignancy_score']:.3f} "
              f"positive={row['positive']} candidates={row['candidate_count']} latency={row['latency_ms']:.0f} ms")
        print(f"    truth ({truth.provider}): {truth.describe()}" if truth else "    truth: unknown (not from this sample)")
        for line in describe_findings(json.loads(row["candidates_json"] or "[]"), truth):
            print(f"    {line}")
    print(f"\nfeatures of the predicted segmentations (segmentation created trigger: "
          f"{segmentation_stats.messages} predictions read, {segmentation_stats.dead_lettered} dead-lettered, "
          f"{segmentation_stats.events} studies announced):")
    true_volumes = {r["study_uid"]: r["value"] for r in feature_rows if r["feature"] == "morph.vol"}
    for row in sorted((r for r in segment_volumes if r["study_uid"] in study_uids),
                      key=lambda r: (r["study_uid"], r["roi"])):
        truth = study_truths.get(row["study_uid"])
        true_volume = true_volumes.get(row["study_uid"], float("nan"))
        print(f"  study {row['study_uid'][:24]}... {row['roi']:<34} morph.vol {row['value']:8.1f} mm³ "
              f"(true {truth.kind if truth else '?'} nodule: {true_volume:.1f} mm³)")
    print(f"\nsilver (what the cohort notebook reads): {len(lake.studies)} studies, {len(lake.series)} series")
    for row in sorted(lake.studies, key=lambda r: (r["provider"], r["study_uid"])):
        print(f"  {row['provider']:<12} study {row['study_uid'][:24]}... {row['status']:<9} "
              f"series={row['series_count']} instances={row['instance_count']} "
              f"counts match the completion event: {row['counts_match']}")
    print(f"quality gates: {lake.gate_runs} runs, {lake.gate_rows_evaluated} rows checked, "
          f"{lake.gate_rows_quarantined} quarantined ({'all passed' if lake.gates_passed else 'some failed'}); "
          f"quarantine holds {lake.quarantined} rows of {PROJECT}")
    print(f"\ndone in {time.monotonic() - started:.0f}s; logs under {settings.logs_dir}")
    return 0


main = command("radlake demo", _parser, _run)
