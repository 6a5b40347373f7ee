"""Delta tables of radiomics: the ROIs to compute, the features, and the ROIs that could not be computed.

* ``silver/rois`` — one row per region of interest on one image series: where its mask is (a
  claim-check into the object store: URI + SHA-256), what kind of object it is and which label in it.
  Whoever produces a mask appends a row (``spark_jobs.radiomics_job.register_rois``): SEG/RTSTRUCT/NIfTI
  registration of curated annotations, or the inference workers for the DICOM SEG they write.
  Re-registering an ROI name with another mask replaces the row (MERGE on study, series, roi).
* ``gold/radiomics_features`` — long format, one row per (ROI, feature) for one settings hash and code
  version, with the lineage needed for erasure (provider, project, pseudonymous patient id) and the mask
  hash the values were computed from.
* ``governance/radiomics_failures`` — one row per ROI the job refused, with the reason (e.g.
  ``geometry_mismatch``: the mask is on another grid; it is reported, never resampled).
"""

from __future__ import annotations

from lake_schemas.tables import LakeTableSpec, SchemaChange

MASK_KINDS = ("seg", "rtstruct", "nifti")

ROIS = LakeTableSpec(
    name="rois",
    layer="silver",
    partition_by=("provider",),
    merge_key=("study_uid", "series_uid", "roi"),
    description="one row per ROI: the image series it is drawn on and the claim-check of its mask",
    changes=(
        SchemaChange(1, (
            ("provider", "STRING"), ("project", "STRING"), ("pseudo_patient_id", "STRING"),
            ("study_uid", "STRING"), ("series_uid", "STRING"),
            ("roi", "STRING"),  # a name unique within the series, e.g. nodule-1 or seg:<sop uid>:<segment>
            ("mask_kind", "STRING"),  # seg | rtstruct | nifti
            ("mask_uri", "STRING"), ("mask_sha256", "STRING"),
            ("label", "BIGINT"),  # SEG segment number, RTSTRUCT ROI number, NIfTI label; NULL: every non-zero voxel
            ("source", "STRING"),  # who drew it: manual, import:<name>, model:<name>:<version>
            ("registered_at", "TIMESTAMP"),
        ), "initial"),
    ),
)

RADIOMICS_FEATURES = LakeTableSpec(
    name="radiomics_features",
    layer="gold",
    partition_by=("provider",),
    merge_key=("study_uid", "series_uid", "roi", "settings_hash", "code_version", "feature"),
    description="IBSI 1 feature values, long format: one row per ROI, feature, settings hash and code version",
    changes=(
        SchemaChange(1, (
            ("provider", "STRING"), ("project", "STRING"), ("pseudo_patient_id", "STRING"),
            ("study_uid", "STRING"), ("series_uid", "STRING"), ("roi", "STRING"),
            ("feature", "STRING"), ("ibsi_id", "STRING"), ("family", "STRING"), ("aggregation_id", "STRING"),
            ("value", "DOUBLE"),
            ("settings_hash", "STRING"), ("code_version", "STRING"), ("mask_sha256", "STRING"),
            ("run_id", "STRING"), ("computed_at", "TIMESTAMP"),
        ), "initial"),
    ),
)

RADIOMICS_FAILURES = LakeTableSpec(
    name="radiomics_failures",
    layer="governance",
    partition_by=("provider",),
    merge_key=("study_uid", "series_uid", "roi", "settings_hash", "code_version"),
    description="ROIs the radiomics job refused, with the reason; kept until the ROI succeeds",
    changes=(
        SchemaChange(1, (
            ("provider", "STRING"), ("project", "STRING"), ("pseudo_patient_id", "STRING"),
            ("study_uid", "STRING"), ("series_uid", "STRING"), ("roi", "STRING"),
            ("settings_hash", "STRING"), ("code_version", "STRING"), ("mask_sha256", "STRING"),
            ("reason", "STRING"), ("message", "STRING"), ("transient", "BOOLEAN"),
            ("run_id", "STRING"), ("failed_at", "TIMESTAMP"),
        ), "initial"),
    ),
)

RADIOMICS_EVENTS = LakeTableSpec(
    name="radiomics_events",
    layer="governance",
    merge_key=("event_id",),
    description="outbox of `features computed` events: written after the gold write, published from here, "
                "marked when Kafka acknowledged them",
    changes=(
        SchemaChange(1, (
            ("event_id", "STRING"),  # deterministic: study, settings hash, code version, ROI statuses
            ("provider", "STRING"), ("study_uid", "STRING"),
            ("settings_hash", "STRING"), ("code_version", "STRING"),
            ("source_computed_at", "TIMESTAMP"),  # newest feature/failure row of the study it covers
            ("payload", "STRING"),  # the event, as JSON
            ("created_at", "TIMESTAMP"),
            ("published_at", "TIMESTAMP"),  # NULL until Kafka acknowledged it
        ), "initial"),
    ),
)

RADIOMICS_TABLES: tuple[LakeTableSpec, ...] = (ROIS, RADIOMICS_FEATURES, RADIOMICS_FAILURES, RADIOMICS_EVENTS)
