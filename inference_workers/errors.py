"""Exceptions of the inference workers, each with a reason code a dead-letter record can carry."""

from __future__ import annotations

from enum import Enum

from lake_schemas.errors import RadlakeError


class InferenceReason(str, Enum):
    UNREADABLE_VOLUME = "UNREADABLE_VOLUME"  # an instance is missing or does not parse as DICOM pixels
    HASH_MISMATCH = "HASH_MISMATCH"  # the object's bytes differ from the claim-check's sha256
    NO_CT_SERIES = "NO_CT_SERIES"  # the study has no CT series with enough slices
    INCONSISTENT_GEOMETRY = "INCONSISTENT_GEOMETRY"  # mixed sizes, uneven spacing, oblique orientation
    UNDECODABLE_EVENT = "UNDECODABLE_EVENT"  # the message does not match the study completed contract
    OUTPUT_FAILED = "OUTPUT_FAILED"  # SEG/SR/Grad-CAM could not be written


class InferenceError(RadlakeError):
    """Base of the inference workers' errors."""


class StudyRejected(InferenceError):
    """This study cannot be predicted (bad input); it goes to the dead-letter topic with the reason."""

    def __init__(self, reason: InferenceReason, message: str) -> None:
        super().__init__(f"{reason.value}: {message}")
        self.reason = reason
        self.message = message


class ModelRegistryError(InferenceError):
    """A model version is missing, or its weights do not match the registered SHA-256."""
