"""Exceptions of the radiomics package; each carries a reason code for callers and records."""

from __future__ import annotations

from enum import Enum

from lake_schemas.errors import RadlakeError


class RadiomicsReason(str, Enum):
    """Why a feature computation was refused."""

    EMPTY_MASK = "empty_mask"
    MASK_OUTSIDE_IMAGE = "mask_outside_image"
    GEOMETRY_MISMATCH = "geometry_mismatch"
    SINGLE_VOXEL_ROI = "single_voxel_roi"
    LABEL_NOT_FOUND = "label_not_found"
    UNREADABLE_INPUT = "unreadable_input"
    INVALID_SETTINGS = "invalid_settings"
    EMPTY_AFTER_RESEGMENTATION = "empty_after_resegmentation"
    DEVICE_UNAVAILABLE = "device_unavailable"


class RadiomicsError(RadlakeError):
    """Base class of the package's errors; ``reason`` says which rule the input broke."""

    def __init__(self, reason: RadiomicsReason, message: str) -> None:
        super().__init__(f"{reason.value}: {message}")
        self.reason = reason
        self.message = message


class InvalidInputError(RadiomicsError):
    """The image or mask cannot be used as given (empty ROI, geometry mismatch, ...)."""


class SettingsError(RadiomicsError):
    """The settings file is unreadable or inconsistent."""

    def __init__(self, message: str) -> None:
        super().__init__(RadiomicsReason.INVALID_SETTINGS, message)
